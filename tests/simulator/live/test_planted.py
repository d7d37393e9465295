"""Plant a bug in a real worker process and watch a live run's invariant checks name it.

Each test runs the same small scenario live (Mosquitto, fault proxy, observer, the worker as
a child process), with the worker either as shipped or with one bug planted by
``tests.simulator.live.planted``. The checks are computed as ``drivesim run --live`` does. The
control run passes every invariant, so what fails with a bug comes from the bug.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from simulator.live.processes import DRIVESIM
from simulator.live.run import LiveResult, LiveRun
from simulator.scenario import load_scenario
from tests.simulator.conftest import failed_invariants
from tests.simulator.live.planted import DROP_SEQ

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[3]

# One bay: alpha's three drives queue, and beta's behind them. The customer cancels alpha 30
# minutes into its first transfer (A1): A1 finishes, A2 and A3 must never start. Each drive
# copies for about 2 simulated hours; everything is deleted 6 h after it ends. The control
# run takes about 13 simulated hours, the planted start-after-cancel about 18: 12 to 17 s.
SCENARIO = """\
name = "planted"
description = "Two jobs through one bay; alpha is cancelled while its first drive copies."
seed = 5
epoch = 2026-01-05T08:00:00Z
until = "3d"
live_speed = 4000

[policy]
cancel_window = "before-packaging"
retention = "6h"
creating_expiry = "6h"
sweep_interval = "10m"

[datacenter]
locations = { "West US" = 1 }
throughput_mb_s = 200
checkpoint_interval = "20m"
carrier_delay = "1h"
return_delay = "1h"

[[jobs]]
name = "alpha"
carrier_delay = "1h"
drives = [
    { id = "A1", size = "1.5TB" },
    { id = "A2", size = "1.5TB" },
    { id = "A3", size = "1.5TB" },
]

[[jobs]]
name = "beta"
carrier_delay = "2h"
drives = [{ id = "B1", size = "1.5TB" }]

[[actions]]
at = "0h"
job = "alpha"
do = "create"
expect = "created"

[[actions]]
at = "0h"
job = "beta"
do = "create"
expect = "created"

[[actions]]
at = "10m"
job = "alpha"
do = "ship"
expect = "ok"

[[actions]]
at = "10m"
job = "beta"
do = "ship"
expect = "ok"

[[actions]]
when = "Transferring"
after = "30m"
job = "alpha"
do = "cancel"
expect = "accepted"
"""

#: Checks a wrong status stream from the worker could fail but neither bug touches.
UNAFFECTED = {
    "legal-transitions",
    "one-terminal-state",
    "terminal-or-deleted",
    "progress-monotonic",
    "deletes-allowed-and-final",
    "retention-window",
    "cancel-window-respected",
    "retained-equals-store",
    "no-secret-published",
    "scripted-expectations",
    "observed/legal-transitions",
    "observed/one-terminal-state",
    "observed/progress-monotonic",
}


def _live(tmp_path: Path, program: tuple[str, ...]) -> dict[str, Any]:
    """Run the scenario live with ``program`` as the worker; its report."""
    path = tmp_path / "planted.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path)
    live = LiveRun(scenario, tmp_path / "live", speed=scenario.live_speed, program=program)

    async def bounded() -> LiveResult:
        with anyio.fail_after(120):
            return await live.run()

    report: dict[str, Any] = anyio.run(bounded, backend="asyncio").report()
    return report


def _planted(bug: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "tests.simulator.live.planted", bug)


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m tests.simulator.live.planted`` works whatever directory pytest runs from."""
    monkeypatch.chdir(ROOT)


def _passing(report: dict[str, Any]) -> set[str]:
    return {i["name"] for i in report["invariants"] if i["ok"]}


def test_control_run_passes_every_invariant(tmp_path: Path) -> None:
    report = _live(tmp_path, DRIVESIM)
    assert failed_invariants(report) == {}
    assert report["ok"] is True
    assert report["finished"] is True
    # The scenario does what the planted runs rely on: a cancel mid-transfer, drives skipped.
    assert report["cancel"]["accepted"] == 1
    assert report["cancel"]["drivesSkipped"] == 2
    assert report["jobs"]["finalStates"] == {"Completed": 2}


def test_dropped_status_message_is_caught(tmp_path: Path) -> None:
    report = _live(tmp_path, _planted("drop-status"))
    assert failed_invariants(report) == {
        "observed/every-change": [f"alpha: the observer never received seq {DROP_SEQ}"],
        "observed/seq-without-gaps": [f"alpha: seq {DROP_SEQ - 1} followed by {DROP_SEQ + 1}"],
    }
    assert UNAFFECTED - _passing(report) == set()
    # The store did commit it: only the way to the consumer lost it.
    assert "seq-without-gaps" in _passing(report)
    assert report["ok"] is False
    assert report["suspects"] == {"alpha": []}  # no injected fault explains it


def test_start_after_cancel_is_caught(tmp_path: Path) -> None:
    report = _live(tmp_path, _planted("start-after-cancel"))
    failing = failed_invariants(report)
    assert set(failing) == {"no-start-after-cancel", "observed/no-start-after-cancel"}
    for name in failing:
        violations = failing[name]
        assert len(violations) == 2, violations
        for drive, violation in zip(("A2", "A3"), violations, strict=True):
            assert violation.startswith(f"alpha: drive {drive} started (seq "), violation
            assert "after the cancel (seq " in violation
    assert failing["no-start-after-cancel"] == failing["observed/no-start-after-cancel"]
    assert UNAFFECTED - _passing(report) == set()
    assert report["ok"] is False
    assert report["cancel"]["drivesSkipped"] == 0
    assert report["suspects"] == {"alpha": []}
