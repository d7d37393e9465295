"""How a run is split between processes: locations shared out by their drives, and one
process where something ties the locations together, with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.run.split import SPLIT_FROM_DRIVES, Split, cores, coupling, plan_split, weights
from simulator.scenario.file import Scenario, parse_scenario


def _scenario(
    locations: dict[str, int],
    *,
    faults: list[dict[str, Any]] | None = None,
    jobs: int = 2_000,
) -> Scenario:
    return parse_scenario(
        {
            "name": "split",
            "seed": 3,
            "datacenter": {"locations": locations},
            "workload": {"jobs": jobs, "over": "5d"},
            "faults": faults or [],
        }
    )


FOUR = {"West US": 2, "East US": 2, "North Europe": 2, "Japan East": 2}


def test_locations_are_shared_out_evenly_by_their_drives() -> None:
    scenario = _scenario(FOUR)
    split = plan_split(scenario, 2)
    assert split.processes == 2
    assert sorted(name for shard in split.shards for name in shard) == sorted(FOUR)
    drives = {name: load[1] for name, load in weights(scenario).items()}
    totals = [sum(drives[name] for name in shard) for shard in split.shards]
    # Each went to the lightest shard: the shards differ by at most one location's drives.
    assert abs(totals[0] - totals[1]) <= max(drives.values())
    assert split.reason == "4 locations with jobs, --processes 2"


def test_no_more_processes_than_locations_with_jobs() -> None:
    split = plan_split(_scenario(FOUR), 16)
    assert [len(shard) for shard in split.shards] == [1, 1, 1, 1]
    assert split.describe().startswith("4 processes: ")


def test_the_default_is_the_cores_capped_by_the_locations() -> None:
    scenario = _scenario({"West US": 2, "East US": 3})
    assert sum(drives for _, drives in weights(scenario).values()) >= SPLIT_FROM_DRIVES
    split = plan_split(scenario, None)
    assert split.processes == min(cores(), 2)
    if split.processes == 2:
        assert split.reason == f"2 locations with jobs, {cores()} cores"
    else:
        assert split.reason == "one core"


@pytest.mark.skipif(cores() < 2, reason="one core: the default is one process anyway")
def test_by_default_a_small_run_stays_in_one_process() -> None:
    scenario = _scenario(FOUR, jobs=100)
    drives = sum(drives for _, drives in weights(scenario).values())
    assert drives < SPLIT_FROM_DRIVES
    split = plan_split(scenario, None)
    assert split.describe() == (
        f"1 process: {drives:,} drives, fewer than the {SPLIT_FROM_DRIVES:,} worth a split"
    )
    assert plan_split(scenario, 2).processes == 2  # asked for, it splits


@pytest.mark.parametrize(
    ("locations", "asked", "reason"),
    [
        ({"West US": 2}, 4, "one location with jobs"),
        (FOUR, 1, "--processes 1"),
    ],
)
def test_one_process_says_why(locations: dict[str, int], asked: int, reason: str) -> None:
    split = plan_split(_scenario(locations), asked)
    assert split == Split((tuple(locations),), reason)
    assert split.describe() == f"1 process: {reason}"


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("cancel-storm", "picks the jobs it cancels among those of every location"),
        ("delete-storm", "picks the jobs it deletes among those of every location"),
        ("duplicate-commands", "sends the next scripted requests of any location twice"),
        ("garbage-commands", "numbers its requests in one sequence with every location's"),
    ],
)
def test_a_customers_fault_keeps_the_run_in_one_process(kind: str, why: str) -> None:
    scenario = _scenario(
        FOUR, faults=[{"kind": "broker-kill", "at": "1d"}, {"kind": kind, "at": "2d"}]
    )
    assert coupling(scenario) == f"fault {kind} (#1) {why}"
    split = plan_split(scenario, 4)
    assert split.processes == 1
    assert split.describe() == f"1 process: fault {kind} (#1) {why}"


def test_faults_a_virtual_time_run_skips_tie_nothing() -> None:
    scenario = _scenario(
        FOUR, faults=[{"kind": "broker-kill", "at": "1d"}, {"kind": "worker-kill", "at": "2d"}]
    )
    assert coupling(scenario) is None
    assert plan_split(scenario, 2).processes == 2


def test_an_option_that_keeps_one_process_is_the_reason() -> None:
    split = plan_split(_scenario(FOUR), 4, why_one="--db keeps the run in one store")
    assert split == Split((tuple(FOUR),), "--db keeps the run in one store")
