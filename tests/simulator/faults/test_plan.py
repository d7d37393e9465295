"""Fault plans: read and checked from scenario files, drawn from the seed, and struck in
virtual time where they can be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.faults.kinds import FAULTS
from simulator.report.json_report import without_wall_clock
from simulator.scenario import load_scenario, parse_scenario
from tests.simulator.conftest import Runner
from worker.errors import ConfigError

BASE: dict[str, Any] = {"name": "plan", "seed": 3}


def test_the_same_seed_draws_the_same_plan_and_another_seed_another() -> None:
    chaos = {**BASE, "chaos": {"faults": 12, "between": ["1h", "2d"], "lasts": ["10m", "1h"]}}
    first, again = parse_scenario(chaos), parse_scenario(chaos)
    other = parse_scenario({**chaos, "seed": 4})
    assert first.faults == again.faults
    assert first.faults != other.faults
    assert len(first.faults) == 12
    assert [f.at for f in first.faults] == sorted(f.at for f in first.faults)
    assert all(3600 <= f.at <= 2 * 86400 for f in first.faults)
    assert all(f.lasts == 0 for f in first.faults if f.spec.instant)


def test_hand_written_faults_are_read_with_their_units() -> None:
    scenario = parse_scenario(
        {
            **BASE,
            "faults": [
                {"kind": "net-latency", "at": "2h", "lasts": "30m", "latency_ms": 150},
                {"kind": "worker-kill", "at": "1h", "lasts": "10m", "after_cancel": True},
                {"kind": "net-bandwidth", "at": "3h", "lasts": "1h", "bandwidth_kb_s": 32},
            ],
        }
    )
    kill, latency, bandwidth = scenario.faults
    assert (kill.kind, kill.at, kill.lasts, kill.after_cancel) == ("worker-kill", 3600, 600, True)
    assert (latency.latency, latency.lasts) == (0.15, 1800)
    assert bandwidth.bandwidth == 32_000
    assert scenario.needs_processes
    assert latency.describe() == "net-latency (150 ms latency) for 30m"


@pytest.mark.parametrize(
    ("fault", "key", "expected"),
    [
        ({"kind": "meteor", "at": "1h"}, "faults[0].kind", "one of broker-kill, broker-pause"),
        ({"kind": "broker-kill", "at": "1h", "after_cancel": True}, "after_cancel", "worker-kill"),
        ({"kind": "cancel-storm", "at": "1h", "count": 0}, "faults[0].count", "from 1 to 10,000"),
        ({"kind": "net-latency", "at": "1h", "latency_ms": -5}, "latency_ms", "from 0 to"),
        ({"kind": "net-bandwidth", "at": "1h", "bandwidth_kb_s": 0}, "bandwidth_kb_s", "from 1 to"),
        ({"kind": "broker-kill", "at": "soon"}, "faults[0].at", "duration"),
    ],
)
def test_a_bad_fault_is_refused_naming_its_key(
    fault: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario({**BASE, "faults": [fault]}, "chaos.toml")
    message = str(info.value)
    assert "chaos.toml" in message
    assert key.split(".")[-1] in message
    assert expected.lower() in message.lower()


def test_chaos_in_virtual_time_strikes_client_faults_and_skips_the_rest(
    run_config: Runner,
) -> None:
    """chaos-everything without processes: storms, garbage and duplicates go through the
    command handler, every invariant holds, and the run is reproducible from its seed."""
    _, report = run_config("chaos-everything")
    assert report["ok"], [i for i in report["invariants"] if not i["ok"]]
    faults = report["faults"]
    for fault in faults:
        if not FAULTS[fault["kind"]].needs_processes:
            assert fault["at"] is not None
            assert fault["skipped"] is None
        else:
            assert fault["skipped"] == "needs real processes (drivesim run --live)"
    garbage = [a for a in report["actions"] if a["do"].startswith("garbage")]
    assert garbage
    assert all(a["ok"] for a in garbage)  # each refused with the code expected
    copies = [a for a in report["actions"] if a["detail"].endswith("(copy)")]
    assert copies
    storm = [a for a in report["actions"] if "cancel-storm" in a["detail"]]
    assert {a["outcome"] for a in storm} <= {"accepted", "already-requested", "rejected-too-late"}
    assert "already-requested" in {a["outcome"] for a in storm}  # each job is asked twice
    _, again = run_config("chaos-everything")
    assert without_wall_clock(again) == without_wall_clock(report)


def test_shipped_chaos_configs_parse() -> None:
    configs = Path(__file__).parents[3] / "configs"
    for name in ("chaos-broker", "chaos-worker-crash", "chaos-everything"):
        scenario = load_scenario(configs / f"{name}.toml")
        assert scenario.faults
        assert scenario.needs_processes
