"""bench/sweep.py measures the tiny grid on 1 and 2 processes and a Dask LocalCluster
(smoke size, so the bench never rots; no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.sweep import main


@pytest.mark.slow
def test_the_sweep_bench_measures_each_set_up(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "sweep.json"
    assert main(["--smoke", "--json", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [r["setup"] for r in results] == [
        "1 local process",
        "2 local processes",
        "Dask, 2 workers",
    ]
    for result in results:
        assert result["cells"] == 4
        assert result["cellsPerMinute"] > 0
        assert result["metrics"] == results[0]["metrics"]
    assert results[0]["ratio"] == 1.0
