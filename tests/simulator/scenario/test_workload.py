"""Workloads: populations drawn from the seed, expanded into jobs and customer actions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from simulator.report.json_report import without_wall_clock
from simulator.scenario import load_scenario, parse_scenario
from simulator.scenario.workload import Workload, arrival_times, expand
from tests.simulator.conftest import run_to_report
from worker.config import DAY, Range
from worker.errors import ConfigError

CONFIGS = Path(__file__).parents[3] / "configs"


def _workload(**changes: Any) -> Workload:
    fields: dict[str, Any] = {
        "jobs": 500,
        "over": 10 * DAY,
        "arrivals": "poisson",
        "burst_size": 20,
        "export_share": 0.2,
        "drives": (1, 10),
        "ship_after": Range(3600, 2 * DAY),
        "never_ship": 0.1,
        "cancel": 0.2,
        "cancel_after": Range(3600, 5 * DAY),
        "delete_finished": 0.3,
        "delete_after": Range(DAY, 30 * DAY),
    }
    return Workload(**(fields | changes))


def test_the_same_seed_draws_the_same_workload() -> None:
    """Expansion is a pure function of the workload and the seed."""
    assert expand(_workload(), 7, ["West US"]) == expand(_workload(), 7, ["West US"])
    assert expand(_workload(), 7, ["West US"]) != expand(_workload(), 8, ["West US"])


def test_every_job_is_created_and_most_are_shipped() -> None:
    """One create per job, in arrival order; ships, cancels and deletes in their shares."""
    jobs, actions = expand(_workload(), 3, ["West US", "East US"])
    kinds = Counter(a.do for a in actions)
    assert len(jobs) == kinds["create"] == 500
    assert 0.8 * 500 < kinds["ship"] < 0.97 * 500
    assert 0.1 * 500 < kinds["cancel"] < 0.3 * 500
    assert kinds["delete"] > 0
    assert [a.index for a in actions] == list(range(len(actions)))
    creates = [a.at or 0.0 for a in actions if a.do == "create"]
    assert creates == sorted(creates)
    assert all(a.when == "Completed" for a in actions if a.do == "delete")
    assert {j.location for j in jobs} == {"West US", "East US"}
    exports = [j for j in jobs if j.type == "Export"]
    assert 0.1 * 500 < len(exports) < 0.3 * 500
    assert all(1 <= len(j.drives) <= 10 for j in jobs if j.type == "Import")


@pytest.mark.parametrize("arrivals", ["poisson", "uniform", "burst", "daily"])
def test_arrivals_stay_in_the_window(arrivals: str) -> None:
    """Every arrival process gives exactly `jobs` arrival times within [0, over)."""
    times = arrival_times(_workload(arrivals=arrivals), 1)
    assert len(times) == 500
    assert all(0 <= t < 10 * DAY for t in times)
    assert times == sorted(times)


def test_bursts_arrive_together_and_days_have_a_cycle() -> None:
    """Bursts share their arrival time; the daily cycle is busier at noon than at night."""
    bursts = Counter(arrival_times(_workload(arrivals="burst"), 1))
    assert set(bursts.values()) == {20}
    daily = arrival_times(_workload(arrivals="daily", jobs=5000), 1)
    hours = Counter(int((t % DAY) // 3600) for t in daily)
    assert sum(hours[h] for h in range(10, 14)) > 2 * sum(hours[h] for h in (22, 23, 0, 1))


def test_a_workload_scenario_runs_clean_and_replays(tmp_path: Path) -> None:
    """load-small runs in virtual time with every invariant holding, twice the same."""
    scenario = load_scenario(CONFIGS / "load-small.toml")
    _, first = run_to_report(scenario)
    _, second = run_to_report(scenario)
    assert first["ok"], [i for i in first["invariants"] if not i["ok"]]
    assert first["jobs"]["created"] == 300
    assert first["cancel"]["accepted"] > 0
    assert first["jobs"]["finalStates"].get("Closed", 0) > 0, "no drive fault was drawn"
    paths = first["sometimes"]
    for path in (
        "cancel landed mid-transfer",
        "cancel rejected as too late",
        "job deleted (expired)",
    ):
        assert paths.get(path, 0) > 0, f"the workload never took the path: {path}"
    assert without_wall_clock(first) == without_wall_clock(second)


@pytest.mark.parametrize(
    ("workload", "key"),
    [
        ({"jobs": 10}, "workload"),  # 'over' is missing
        ({"jobs": 10, "over": "0d"}, "workload.over"),
        ({"jobs": 10, "over": "1d", "drives": [0, 3]}, "workload.drives"),
        ({"jobs": 10, "over": "1d", "cancel": 1.5}, "workload.cancel"),
        ({"jobs": 10, "over": "1d", "arrivals": "chaotic"}, "workload.arrivals"),
    ],
)
def test_bad_workloads_name_their_key(workload: dict[str, Any], key: str) -> None:
    """An invalid [workload] table is reported with its key."""
    with pytest.raises(ConfigError) as info:
        parse_scenario({"name": "w", "workload": workload}, "w.toml")
    assert info.value.key == key
