"""Parameter sweeps: a scenario run over a grid of changed keys and seeds (``drivesim sweep``)."""
