"""bench/commands.py probes a tiny live run and reports sane figures (no timing asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.commands import main, probe_stats

ANSWERED = {"200", "404", "409"}


@pytest.mark.slow
def test_commands_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "commands.json"
    report = main(["--smoke", "--disk-load", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    printed = capsys.readouterr().out
    assert "## Command latency under load" in printed
    assert "| idle |" in printed
    assert "| load |" in printed
    assert "**Under disk load** (`--disk-load`)" in printed

    for phase in ("idle", "load"):
        run = report[phase]
        assert run["phase"] == phase
        assert run["direct"]  # the worker straight to the broker unless --proxy
        assert run["disk_load_mib"] >= 0  # the neighbour ran, and said what it synced
        probe = run["probe"]
        # A steady rate over the probe's seconds: some cancels went out and every one
        # was answered, with one of the answers a cancel can get.
        assert probe["count"] > 0
        assert probe["timeouts"] == 0
        assert probe["answered"] == probe["count"] == len(run["samples"])
        assert set(probe["by_status"]) <= ANSWERED
        assert sum(probe["by_status"].values()) == probe["count"]
        for key in ("p50_s", "p99_s", "max_s"):
            assert math.isfinite(probe[key]), key
            assert probe[key] > 0, key
        assert probe["p50_s"] <= probe["p99_s"] <= probe["max_s"]
        assert run["jobs_created"] > 0
        assert run["observed"] > 0
        assert run["wall_s"] > 0
        assert run["worker_commands_failed"] == 0
        assert run["worker_commands"] >= probe["count"]
        assert run["worker_cpu"] > 0  # the worker was sampled over the probe
        # Shares of the probe's wall time, read from /proc: a wait or a steal is never
        # more than the time there was (two CPUs: steal is at most 2.0 cores).
        assert 0.0 <= run["worker_waited"] <= 1.0
        assert 0.0 <= run["steal"] <= 2.0
    assert report["idle"]["probe"]["by_answer"].get("accepted", 0) > 0
    assert isinstance(report["target_met"], bool)


def test_probe_stats() -> None:
    samples: list[dict[str, Any]] = [
        {"at": 0.0, "latency": 0.002, "status": 200, "answer": "accepted"},
        {"at": 0.05, "latency": 0.004, "status": 409, "answer": "CancelTooLate"},
        {"at": 0.1, "latency": None, "status": 0, "answer": "timeout"},
    ]
    stats = probe_stats(samples)
    assert stats["count"] == 3
    assert stats["answered"] == 2
    assert stats["timeouts"] == 1
    assert stats["max_s"] == 0.004
    assert stats["by_status"] == {"0": 1, "200": 1, "409": 1}
    assert stats["by_answer"] == {"CancelTooLate": 1, "accepted": 1, "timeout": 1}
