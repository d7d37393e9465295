"""The chaos scenarios, live: a real Mosquitto, the worker as a process, faults struck for
real; every invariant holds, from the store and from the independent observer, and the
paths each scenario was written for were taken."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from simulator.live.run import LiveResult, LiveRun
from simulator.scenario import load_scenario
from tests.simulator.conftest import CONFIGS, failed_invariants


def _live(
    name: str, workdir: Path, *, until: float | None = None, speed: float = 0, workers: int = 1
) -> dict[str, Any]:
    scenario = load_scenario(CONFIGS / f"{name}.toml")
    if until is not None:
        scenario = dataclasses.replace(scenario, until=until)
    live = LiveRun(scenario, workdir, speed=speed or scenario.live_speed, workers=workers)

    async def bounded() -> LiveResult:
        with anyio.fail_after(180):
            return await live.run()

    report: dict[str, Any] = anyio.run(bounded, backend="asyncio").report()
    return report


def _struck(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["faults"] if f["kind"] == kind and f["at"] is not None]


@pytest.mark.slow
def test_chaos_broker(tmp_path: Path) -> None:
    report = _live("chaos-broker", tmp_path)
    assert failed_invariants(report) == {}
    assert report["finished"]
    for kind in ("broker-kill", "broker-pause", "net-latency", "net-bandwidth", "net-blackhole"):
        (fault, *_) = _struck(report, kind)
        assert fault["until"] is not None, f"{kind} never healed"
    assert _struck(report, "net-reset")
    assert report["sometimes"]["broker or network fault during a transfer"] >= 3
    # The observer saw every committed change (observed/every-change held) and no more
    # job states than the store committed, after deduplication.
    assert report["messages"]["observed"] >= report["throughput"]["changes"]


@pytest.mark.slow
def test_chaos_worker_crash(tmp_path: Path) -> None:
    report = _live("chaos-worker-crash", tmp_path)
    assert failed_invariants(report) == {}
    assert report["finished"]
    assert report["starts"] >= 3  # the first start and at least two restarts
    sometimes = report["sometimes"]
    assert sometimes["worker crash during a transfer"] >= 1
    assert sometimes["worker crash between a cancel and its effect"] >= 1
    assert report["cancel"]["accepted"] >= 1


@pytest.mark.slow
def test_chaos_workers(tmp_path: Path) -> None:
    """Three workers on a PostgreSQL of the run's own: one killed (once right after a
    cancel), the database killed and restarted, one worker cut off from it past its lease;
    every invariant holds, one lease holder per location at a time among them."""
    report = _live("chaos-workers", tmp_path, workers=3)
    assert failed_invariants(report) == {}
    assert "one-holder-per-location" in {c["name"] for c in report["invariants"]}
    assert report["finished"]
    for kind in ("worker-kill", "db-restart", "db-partition"):
        (fault, *_) = _struck(report, kind)
        assert fault["until"] is not None, f"{kind} never healed"
    assert report["starts"] >= 5  # three workers, two of them killed and started again


@pytest.mark.slow
def test_chaos_everything(tmp_path: Path) -> None:
    report = _live("chaos-everything", tmp_path)
    assert failed_invariants(report) == {}
    assert report["finished"]
    kinds = {f["kind"] for f in report["faults"] if f["at"] is not None}
    assert {"broker-kill", "worker-kill", "cancel-storm", "garbage-commands"} <= kinds
    assert all(f["at"] is not None or f["skipped"] for f in report["faults"])
    garbage = [a for a in report["actions"] if a["do"].startswith("garbage")]
    assert garbage
    assert all(a["ok"] and a["outcome"] != "ok" for a in garbage)
    copies = [a for a in report["actions"] if a["detail"].endswith("(copy)")]
    assert copies  # duplicated commands were sent


@pytest.mark.slow
def test_load_small_live_for_its_first_twelve_days(tmp_path: Path) -> None:
    """The CI load scenario against real processes, cut after twelve simulated days (the
    rest is mostly the 90-day retention): every invariant that a cut run can be held to
    holds, from the store and from the observer."""
    report = _live("load-small", tmp_path, until=12 * 86400, speed=64_000)
    cut_short = {"terminal-or-deleted", "scripted-expectations"}  # the run stops early
    assert {k: v for k, v in failed_invariants(report).items() if k not in cut_short} == {}
    assert report["jobs"]["created"] >= 250
    assert report["cancel"]["accepted"] >= 10
    assert report["messages"]["published"] > 10_000
