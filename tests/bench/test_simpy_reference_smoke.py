"""The SimPy reference model runs load-small like drivesim does (smoke size, no timing).

Exact by construction: the jobs and the customers' actions (the same expanded workload),
so the number of jobs created, the never-shipped jobs that expire, and every job deleted
by the end. Each job's plan is drawn by the same planner with the same seed and key, so
the fates (lost packages, missing and failing drives, delays) agree too; what may differ
is timing where drivesim's machinery orders same-instant steps differently (a cancel and
a bay coming free at one moment, say), which can flip a drive between skipped and copied
and so shift a checkpoint or an outcome. Hence outcomes and change counts within a small
tolerance; today they agree exactly on load-small.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.simpy_reference import run_reference
from simulator.report.history import History
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker.memory_store import MemoryStore

LOAD_SMALL = str(Path(__file__).parents[2] / "configs" / "load-small.toml")


def test_simpy_reference_matches_drivesim_on_load_small() -> None:
    scenario = load_scenario(LOAD_SMALL)
    result = run_scenario(scenario, MemoryStore())
    history = History(result.history, scenario.epoch)
    changes = sum(len(seqs) for seqs in history.seqs.values())
    outcomes = Counter(
        "expired"
        if i.final_state == "Creating"
        else "failed"
        if i.final_state == "Closed"
        else "cancelled"
        if i.cancel is not None
        else "succeeded"
        for i in history.incarnations
    )

    ref = run_reference(LOAD_SMALL)

    # Exact: the same jobs, every one processed and gone by the end.
    assert ref["finished"]
    assert result.finished
    assert ref["jobs"] == len(history.incarnations) == len(scenario.jobs) == 300
    assert ref["deleted"] == ref["jobs"]
    ended = ref["ended"]
    assert sum(ended.values()) + outcomes["expired"] == ref["jobs"]
    # Within a small tolerance: outcomes, changes and the simulated span.
    for outcome in ("succeeded", "failed", "cancelled"):
        assert abs(ended.get(outcome, 0) - outcomes[outcome]) <= 3, (outcome, ended, outcomes)
    assert abs(ref["events"] - changes) <= 0.02 * changes, (ref["events"], changes)
    assert abs(ref["sim_days"] - result.sim_seconds / 86400) <= 1.0
    assert ref["wall"] > 0
