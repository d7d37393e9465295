"""bench/load.py measures a run in its own process (smoke size, so the bench never rots)."""

from __future__ import annotations

from pathlib import Path

from bench.load import measure, measure_simpy

SCENARIO = """
name = "load-smoke"
seed = 1
[datacenter]
drive_size = "100GB"
carrier_delay = "1d"
return_delay = "1d"
[workload]
jobs = 20
over = "2d"
"""


def test_load_bench_measures_a_small_run(tmp_path: Path) -> None:
    """The load bench reports jobs, changes, messages, wall time and peak memory."""
    path = tmp_path / "smoke.toml"
    path.write_text(SCENARIO)
    result = measure(str(path))
    assert result["jobs"] == 20
    assert result["finished"]
    assert result["changes"] > 20
    assert result["messages"] > result["changes"]
    assert result["wall"] > 0
    assert result["peak_rss_mib"] > 10


def test_load_bench_measures_the_simpy_reference(tmp_path: Path) -> None:
    """``--simpy`` runs the SimPy reference of the same scenario in its own process too."""
    path = tmp_path / "smoke.toml"
    path.write_text(SCENARIO)
    drivesim, simpy = measure(str(path)), measure_simpy(str(path))
    assert simpy["jobs"] == drivesim["jobs"] == 20
    assert simpy["finished"]
    assert simpy["events"] == drivesim["changes"]
    assert simpy["sim_days"] == drivesim["sim_days"]
    assert simpy["wall"] > 0
    assert simpy["peak_rss_mib"] > 10
