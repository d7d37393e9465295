"""``python -m bench --smoke`` runs all five benchmarks and reads every target from them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHES, targets

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_suite_runs_every_benchmark_and_reports_every_target(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failed"] == []
    assert set(result["reports"]) == set(BENCHES)
    rows = targets(result["reports"])
    # load-small: wall, memory, SimPy ratio; two MQTT references; one each for the rest.
    assert [r.bench for r in rows] == ["load"] * 3 + ["mqtt"] * 2 + [
        "schedule",
        "recovery",
        "commands",
    ]
    assert all(r.met is not None for r in rows)
    assert "## The targets" in done.stdout
    for row in rows:
        assert f"| {row.bench} | {row.name} | {row.figure} |" in done.stdout
