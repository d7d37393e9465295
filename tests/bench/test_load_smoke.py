"""bench/load.py measures a run in its own process (smoke size, so the bench never rots)."""

from __future__ import annotations

from pathlib import Path

from bench.load import main, measure, measure_sharded, measure_simpy

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


TWO_LOCATIONS = SCENARIO.replace(
    "[datacenter]\n", '[datacenter]\nlocations = { "West US" = 2, "East US" = 2 }\n'
)


def test_load_bench_measures_a_run_split_into_processes(tmp_path: Path) -> None:
    """``--processes``: the split run commits what the run in one process does, and says
    each shard's run, process and memory."""
    path = tmp_path / "smoke.toml"
    path.write_text(TWO_LOCATIONS)
    one, split = measure(str(path)), measure_sharded(str(path), 2)
    assert split["processes"] == 2
    assert (split["jobs"], split["changes"], split["messages"]) == (
        one["jobs"],
        one["changes"],
        one["messages"],
    )
    assert split["sim_days"] == one["sim_days"]
    assert [s["locations"] for s in split["shards"]] == [["West US"], ["East US"]] or [
        s["locations"] for s in split["shards"]
    ] == [["East US"], ["West US"]]
    for shard in split["shards"]:
        assert 0 < shard["wallSeconds"] < shard["processSeconds"] <= split["wall"]
        assert shard["peakRssMiB"] > 10


def test_load_bench_tables_a_split_run(tmp_path: Path) -> None:
    path = tmp_path / "smoke.toml"
    path.write_text(TWO_LOCATIONS)
    report = main([str(path), "--processes", "2", "--no-simpy"])
    (row,) = [line for line in report["split_table"].splitlines() if line.startswith(f"| `{path}`")]
    assert row.startswith(f"| `{path}` | 2 | ")
    assert row.endswith(" | yes |")
