"""``drivesim demo``: the teaching demo of best-effort cancel."""
