"""Fixtures for simulator tests: run a scenario in virtual time and get its report."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.report.history import History
from simulator.report.invariants import check_run
from simulator.report.json_report import build_report
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from simulator.scenario import Scenario, load_scenario
from worker.memory_store import MemoryStore

CONFIGS = Path(__file__).parents[2] / "configs"

Runner = Callable[..., tuple[RunResult, dict[str, Any]]]


def failed_invariants(report: dict[str, Any]) -> dict[str, list[str]]:
    """The report's failed invariants: their violations by name."""
    return {i["name"]: i["violations"] for i in report["invariants"] if not i["ok"]}


def run_to_report(scenario: Scenario, **kwargs: Any) -> tuple[RunResult, dict[str, Any]]:
    result = run_scenario(scenario, kwargs.pop("store", None) or MemoryStore(), **kwargs)
    history = History(result.history, scenario.epoch)
    return result, build_report(result, history, check_run(result, history))


@pytest.fixture
def run_config() -> Runner:
    """Run ``configs/<name>.toml`` in virtual time; returns the result and its report."""

    def run(name: str, **kwargs: Any) -> tuple[RunResult, dict[str, Any]]:
        return run_to_report(load_scenario(CONFIGS / f"{name}.toml"), **kwargs)

    return run


def interrupt_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], late: str, *, settle: float = 0.0
) -> str:
    """SIGINT ``process``, as Ctrl-C does, once ``ready()`` and ``settle`` seconds more (the
    test fails with ``late`` after 60 s, or with its standard error if it exits first): its
    standard error once it has exited. Killed, its pipes closed, if it does not."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, f"{late} in 60 s"
            time.sleep(0.02)
        time.sleep(settle)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return err
