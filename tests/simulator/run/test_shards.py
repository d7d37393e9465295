"""A virtual-time run split into processes, one per shard of locations, gives every job the
history the run in one process gives it, byte for byte, and the same report."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import defaultdict
from pathlib import Path

import pytest

from simulator.report.json_report import without_wall_clock
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from simulator.run.shards import ShardFailed, run_sharded
from simulator.run.split import ShardProgress, Split, plan_split
from simulator.scenario import load_scenario
from worker import StatusMessage
from worker.memory_store import MemoryStore

DATA = Path(__file__).parent / "data"
CONFIGS = Path(__file__).parents[3] / "configs"
THREE = DATA / "three-locations.toml"


def _per_job(history: list[StatusMessage]) -> dict[str, list[StatusMessage]]:
    jobs: dict[str, list[StatusMessage]] = defaultdict(list)
    for message in history:
        jobs[message.job].append(message)
    return dict(jobs)


def _judged(result: RunResult) -> dict[str, object]:
    from simulator.report.history import History
    from simulator.report.invariants import check_run
    from simulator.report.json_report import build_report

    history = History(result.history, result.scenario.epoch)
    return build_report(result, history, check_run(result, history))


@pytest.fixture(scope="module")
def both() -> tuple[RunResult, RunResult]:
    """The three-location load with seed 11 (not the file's): in one process, and split in two."""
    scenario = load_scenario(THREE)
    one = run_scenario(scenario, MemoryStore(), seed=11)
    split = plan_split(scenario, 2)
    assert split.processes == 2
    return one, run_sharded(scenario, split, seed=11)


def test_every_job_has_the_same_messages_as_in_one_process(
    both: tuple[RunResult, RunResult],
) -> None:
    """Same topics, payloads (simulated times included), seq, QoS and retain flag, in the
    same order, for every job; nothing more, nothing less in the whole stream."""
    one, split = both
    assert len(one.history) > 3000
    alone, shared = _per_job(one.history), _per_job(split.history)
    assert alone.keys() == shared.keys()
    for job, messages in alone.items():
        assert [(m.topic, m.payload, m.seq, m.qos, m.retain) for m in shared[job]] == [
            (m.topic, m.payload, m.seq, m.qos, m.retain) for m in messages
        ], job
    assert len(split.history) == len(one.history)


def test_the_merged_run_has_the_same_store_answers_and_end(
    both: tuple[RunResult, RunResult],
) -> None:
    one, split = both
    assert split.seed == one.seed == 11
    assert split.jobs == one.jobs
    assert split.retained == one.retained
    assert split.actions == one.actions
    assert split.secrets == one.secrets
    assert split.missing_after_delete == one.missing_after_delete
    assert (split.sim_seconds, split.finished) == (one.sim_seconds, one.finished)
    assert split.sim_seconds == max(shard.sim_seconds for shard in split.shards)


def test_the_merged_report_and_invariants_are_those_of_one_process(
    both: tuple[RunResult, RunResult],
) -> None:
    """Every figure and every invariant agree; only the split (and the wall clock) differ."""
    one, split = both
    alone, shared = _judged(one), _judged(split)
    assert shared["ok"] is True
    assert "processes" not in alone
    told = shared.pop("processes")
    assert without_wall_clock(shared) == without_wall_clock(alone)
    assert told == {
        "count": 2,
        "reason": "3 locations with jobs, --processes 2",
        "shards": [shard.to_json() for shard in split.shards],
    }


def test_each_shard_says_what_it_ran_and_how_long_it_took(
    both: tuple[RunResult, RunResult],
) -> None:
    one, split = both
    assert [shard.locations for shard in split.shards] == [
        ("East US",),
        ("West US", "North Europe"),
    ]
    scenario = one.scenario
    assert sum(shard.jobs for shard in split.shards) == len(scenario.jobs)
    assert sum(shard.messages for shard in split.shards) == len(one.history)
    # A change announces exactly one job snapshot (or clears it).
    snapshots = sum(
        1 for m in one.history if m.topic.count("/") == 4 and m.topic.endswith("/state")
    )
    assert sum(shard.changes for shard in split.shards) == snapshots
    for shard in split.shards:
        assert 0 < shard.wall_seconds < shard.process_seconds <= split.wall_seconds
        assert shard.peak_rss_mib > 0


def test_observers_hear_the_shards_as_they_run_then_the_merged_run_in_time_order() -> None:
    scenario = load_scenario(THREE)
    heard: list[StatusMessage] = []
    answers: list[float] = []
    told: list[ShardProgress] = []
    result = run_sharded(
        scenario,
        plan_split(scenario, 3),
        on_message=heard.append,
        on_action=lambda answer: answers.append(answer.at),
        on_progress=told.append,
    )
    assert len(result.shards) == 3
    assert heard == result.history
    assert answers == sorted(answers)
    assert len(answers) == len(result.actions)
    # Each shard's last word: its whole stream, its jobs, its end.
    last = {p.index: p for p in told}
    assert all(p.finished for p in last.values())
    assert [last[i].messages for i in range(3)] == [s.messages for s in result.shards]
    assert sum(p.created for p in last.values()) == len(scenario.jobs)
    assert max(p.simulated or 0.0 for p in last.values()) <= result.sim_seconds


def test_a_scenario_whose_locations_are_tied_is_not_split(tmp_path: Path) -> None:
    tied = tmp_path / "tied.toml"
    tied.write_text(
        THREE.read_text() + '\n[[faults]]\nkind = "cancel-storm"\nat = "2d"\ncount = 5\n'
    )
    scenario = load_scenario(tied)
    split = plan_split(scenario, 2)
    assert split.processes == 1
    with pytest.raises(ValueError, match="cancel-storm"):
        run_sharded(scenario, Split((("West US",), ("East US", "North Europe")), "asked"))


def test_a_scenario_file_changed_after_it_was_read_is_refused(tmp_path: Path) -> None:
    """Every shard runs the scenario the run read, or the run fails saying so."""
    path = tmp_path / "edited.toml"
    text = THREE.read_text()
    path.write_text(text)
    scenario = load_scenario(path)
    path.write_text(text.replace("jobs = 60", "jobs = 61"))
    with pytest.raises(ShardFailed, match=r"shard \d \(.*\): .*edited\.toml changed after"):
        run_sharded(scenario, plan_split(scenario, 2))


def test_a_shard_killed_on_the_way_fails_the_run_and_stops_the_others() -> None:
    """A shard's process that dies (SIGKILL, the kernel's OOM killer) fails the run at
    once, naming it; the other shards' processes are stopped."""
    scenario = load_scenario(CONFIGS / "load-10k.toml")

    def kill_the_second(progress: ShardProgress) -> None:
        for child in multiprocessing.active_children():
            if child.name == "drivesim-shard-2" and child.pid is not None:
                os.kill(child.pid, signal.SIGKILL)

    with pytest.raises(
        ShardFailed, match=r"shard 2 \(.+\) ended without its result \(exit code -9\)"
    ):
        run_sharded(scenario, plan_split(scenario, 2), on_progress=kill_the_second)
    assert [
        c.name for c in multiprocessing.active_children() if c.name.startswith("drivesim-shard")
    ] == []
