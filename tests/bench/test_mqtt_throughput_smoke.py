"""The MQTT throughput benchmark runs end to end and loses nothing (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.mqtt_cases import CASES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_run_delivers_every_message(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.json"
    docs = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.mqtt_throughput",
            "--smoke",
            "--json",
            str(runs_file),
            "--docs",
            str(docs),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(runs_file.read_text())
    assert sorted(run["case"] for run in runs) == sorted(CASES)
    for run in runs:
        assert run["error"] is None, run
        assert run["published"] == run["messages"], run
        assert run["unique"] == run["messages"], run  # nothing lost
        assert run["lost"] == 0, run
        assert run["out_of_order"] == 0, run  # each job's seq in commit order
        assert run["left_in_outbox"] in (None, 0), run  # the relay acknowledged everything
        assert run["rate"] > 0, run
    assert not docs.exists()  # --smoke never writes the docs
