"""Progress of long runs: counts of the stream, shown as one line."""

from __future__ import annotations

import io

from rich.console import Console

from simulator.console.progress import RunProgress
from simulator.run.runner import run_scenario
from simulator.scenario import parse_scenario
from worker.clock import DEFAULT_EPOCH
from worker.memory_store import MemoryStore

SCENARIO = {
    "name": "p",
    "seed": 1,
    "datacenter": {"carrier_delay": "1d", "return_delay": "1d", "drive_size": "100GB"},
    "workload": {"jobs": 5, "over": "1d", "ship_after": "1h"},
}


def test_progress_counts_jobs_and_messages_of_a_real_run() -> None:
    """Fed a run's stream, the line counts every job created and ended, and every message."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    scenario = parse_scenario(SCENARIO)
    with RunProgress(console, DEFAULT_EPOCH, jobs=len(scenario.jobs)) as progress:
        progress._every = 0.0  # print on every event, not every ten seconds
        result = run_scenario(scenario, MemoryStore(), on_message=progress.on_message)
    assert progress.messages == len(result.history)
    assert progress.created == 5
    assert progress.ended == 5
    last = out.getvalue().strip().splitlines()[-1]
    assert "jobs created 5/5" in last
    assert "ended" in last
    assert last.startswith("simulated ")
