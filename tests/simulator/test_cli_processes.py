"""``drivesim run --processes``: a virtual-time run split between processes says how and how
long each took, on screen and in the report; what cannot be split is refused or run in one
process, saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import main

DATA = Path(__file__).parent / "run" / "data"
THREE = str(DATA / "three-locations.toml")
CONFIGS = Path(__file__).parents[2] / "configs"


def test_a_split_run_says_how_and_reports_each_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path, html = tmp_path / "report.json", tmp_path / "report.html"
    argv = ["run", THREE, "--processes", "2", "--report", str(report_path), "--html", str(html)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "2 processes: East US | West US, North Europe (3 locations with jobs, --processes 2)" in out
    )
    report = json.loads(report_path.read_text())
    split = report["processes"]
    assert (split["count"], split["reason"]) == (2, "3 locations with jobs, --processes 2")
    assert [s["locations"] for s in split["shards"]] == [["East US"], ["West US", "North Europe"]]
    for shard in split["shards"]:
        assert (
            f"shard {shard['shard']}: {', '.join(shard['locations'])} · {shard['jobs']} jobs" in out
        )
        assert f"in {shard['wallSeconds']:.2f} s (process {shard['processSeconds']:.2f} s" in out
    assert sum(s["messages"] for s in split["shards"]) == report["messages"]["published"]
    assert report["ok"] is True
    # The timeline is told after the shards are done, in simulated-time order.
    assert "created · Import" in out
    assert "2 processes" in html.read_text()


def test_one_process_on_request_says_so_and_reports_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    assert main(["run", THREE, "--processes", "1", "--quiet", "--report", str(report_path)]) == 0
    assert "1 process: --processes 1" in capsys.readouterr().out
    split = json.loads(report_path.read_text())["processes"]
    assert split == {"count": 1, "reason": "--processes 1", "shards": []}


def test_a_fault_that_ties_the_locations_keeps_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tied = tmp_path / "tied.toml"
    tied.write_text(
        Path(THREE).read_text() + '\n[[faults]]\nkind = "cancel-storm"\nat = "2d"\ncount = 5\n'
    )
    assert main(["run", str(tied), "--processes", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (
        "1 process: fault cancel-storm (#0) picks the jobs it cancels among those of every "
        "location" in out
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--db", "DB"], "--db"),
        (["--speed", "1000"], "--speed"),
        (["--live"], "--live"),
    ],
)
def test_processes_with_a_store_file_real_time_or_live_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    """Exit 2, one line naming both options, nothing started or written."""
    db = tmp_path / "run.db"
    options = [str(db) if o == "DB" else o for o in options]
    assert main(["run", THREE, "--processes", "2", *options]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: --processes")
    assert named in line
    assert not db.exists()


def test_the_default_with_a_store_file_is_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", THREE, "--quiet", "--db", str(tmp_path / "run.db")]) == 0
    assert "1 process: --db keeps the run in one store, to resume it" in capsys.readouterr().out


def test_one_location_says_nothing_of_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(CONFIGS / "export-job.toml"), "--quiet"]) == 0
    assert "process" not in capsys.readouterr().out
