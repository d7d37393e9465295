"""A worker's store with jobs in flight, for the crash-recovery benchmark: the scenario that
puts them there, the database built from it in virtual time (in a child process, kept and
reused), and what a store holds, read without disturbing it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from bench.harness import python_code
from worker import DriveState
from worker.record import decode
from worker.states import ACTIVE

__all__ = ["StoreState", "build_db", "read_store", "scenario_text"]


def scenario_text(jobs: int) -> str:
    """A scenario whose ``jobs`` are all in flight, none finished, when cut after a day.

    Created within the first hour and shipped within half an hour of that, packages arrive
    between 2 h and 3 d later, so at the cut about 70 % are still Shipping; the rest wait
    for one of ``jobs / 50`` bays (Received), copy (Transferring: every bay busy, checkpoints
    every 15 min) or wait 2 to 4 days to be shipped back (Packaging).
    """
    west, east = max(1, jobs * 12 // 1000), max(1, jobs * 8 // 1000)
    return f"""\
name = "recovery-{jobs}"
description = "{jobs} jobs in flight after one simulated day: the crash-recovery benchmark."
seed = 7
until = "1d"

[datacenter]
locations = {{ "West US" = {west}, "East US" = {east} }}
throughput_mb_s = 200
checkpoint_interval = "15m"
carrier_delay = ["2h", "3d"]
return_delay = ["2d", "4d"]
drive_size = ["200GB", "2TB"]
export_size = ["500GB", "6TB"]

[workload]
jobs = {jobs}
over = "1h"
arrivals = "uniform"
export_share = 0.2
drives = [1, 4]
ship_after = ["1m", "30m"]
"""


def build_db(workdir: Path, jobs: int) -> tuple[Path, Path, float]:
    """The scenario file and a database of ``jobs`` in flight (built once, then reused);
    and the seconds it took to build (0 when reused)."""
    scenario_path = workdir / f"recovery-{jobs}.toml"
    db = workdir / f"recovery-{jobs}.db"
    text = scenario_text(jobs)
    if db.exists() and scenario_path.exists() and scenario_path.read_text() == text:
        return scenario_path, db, 0.0
    scenario_path.write_text(text)
    for stale in workdir.glob(f"recovery-{jobs}.db*"):
        stale.unlink()
    _, seconds = harness.run(python_code(_BUILD, str(scenario_path), str(db)))
    return scenario_path, db, seconds


_BUILD = """
import os
import sys
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import SQLiteStore, configure_logging
configure_logging(level="warning", fmt="json")
store = SQLiteStore(sys.argv[2] + ".tmp")
try:
    run_scenario(load_scenario(sys.argv[1]), store)
finally:
    store.close()
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
"""


@dataclass(slots=True)
class StoreState:
    """What a (killed) worker's store holds."""

    jobs: set[str]
    states: dict[str, int]
    drives: int
    transferring: int

    @property
    def active(self) -> int:
        return sum(self.states.get(s, 0) for s in ACTIVE)


def read_store(db: Path) -> StoreState:
    """The jobs in ``db``, read-only (no checkpoint of the WAL the worker left behind)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT record FROM jobs").fetchall()
    finally:
        connection.close()
    state = StoreState(jobs=set(), states={}, drives=0, transferring=0)
    for (blob,) in rows:
        record = decode(blob)
        state.jobs.add(record.name)
        name = str(record.state)
        state.states[name] = state.states.get(name, 0) + 1
        state.drives += len(record.sim.drives)
        state.transferring += len(record.drives_in({DriveState.TRANSFERRING}))
    return state
