"""The command line on a terminal: a run's timeline and progress, ``drivesim watch`` and
``drivesim jobs``."""
