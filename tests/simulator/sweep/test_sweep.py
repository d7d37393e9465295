"""``drivesim sweep`` end to end on a tiny scenario (2 cancel windows x 2 seeds): the table
(CSV, JSON) and the page, figures equal to each run's own report, a resume after a real
SIGINT, a refused other grid, and the same table from a two-worker Dask cluster."""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from simulator.live.processes import DRIVESIM
from simulator.scenario.file import parse_scenario
from simulator.sweep.cells import METRICS, metrics_of
from simulator.sweep.grid import load_grid
from tests.simulator.conftest import interrupt_when, run_to_report

TINY = Path(__file__).parent / "tiny.toml"
#: Three windows x two seeds: enough cells that a SIGINT lands while some are left.
WINDOWS = "policy.cancel_window=before-packaging,creating-or-shipping,creating-only"


def _sweep(out: Path, *extra: str) -> int:
    return main(["sweep", str(TINY), "--out", str(out), *extra])


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep on two local processes."""
    out = tmp_path_factory.mktemp("sweep") / "local"
    assert _sweep(out, "--processes", "2") == 0
    return out


def test_a_local_sweep_writes_the_table_and_the_page(local: Path) -> None:
    with (local / "sweep.csv").open(encoding="utf-8") as text:
        rows = list(csv.DictReader(text))
    assert [(r["policy.cancel_window"], r["seed"]) for r in rows] == [
        ("before-packaging", "3"),
        ("before-packaging", "4"),
        ("creating-only", "3"),
        ("creating-only", "4"),
    ]
    assert set(rows[0]) >= {m.id for m in METRICS} | {"invariantsOk"}
    table = json.loads((local / "sweep.json").read_text(encoding="utf-8"))
    assert table["cellsDone"] == table["cells"] == 4
    assert [m["id"] for m in table["metrics"]] == [m.id for m in METRICS]
    # What the study is about: the windows differ in cancels accepted and refused.
    by_window = {s["values"]["policy.cancel_window"]: s["metrics"] for s in table["summary"]}
    assert by_window["before-packaging"]["cancelledJobs"]["mean"] > 0
    assert by_window["creating-only"]["cancelsRejectedTooLate"]["mean"] > 0
    assert by_window["creating-only"]["cancelledJobs"]["mean"] == 0
    # Each summary is the mean and the spread of its rows.
    for entry in table["summary"]:
        window = entry["values"]["policy.cancel_window"]
        mine = [r for r in table["rows"] if r["values"]["policy.cancel_window"] == window]
        for metric in METRICS:
            values = [r["metrics"][metric.id] for r in mine if r["metrics"][metric.id] is not None]
            figure = entry["metrics"][metric.id]
            assert figure["n"] == len(values)
            if values:
                assert figure["mean"] == pytest.approx(sum(values) / len(values))
                assert (figure["min"], figure["max"]) == (min(values), max(values))
    page = (local / "sweep.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page
    for metric in METRICS:
        assert page.count(f'aria-label="{metric.label} against policy.cancel_window"') == 1


def test_a_cells_figures_are_its_runs_report(local: Path) -> None:
    """Cell 2 (creating-only, seed 3) has the figures ``drivesim run --report`` gives."""
    grid = load_grid(TINY)
    cell = grid.cells()[2]
    scenario = parse_scenario(grid.document_for(cell.choice, cell.seed), grid.where)
    _, report = run_to_report(scenario, seed=cell.seed)
    row = json.loads((local / "sweep.json").read_text(encoding="utf-8"))["rows"][2]
    assert (row["values"], row["seed"]) == ({"policy.cancel_window": "creating-only"}, 3)
    assert row["metrics"] == metrics_of(report)
    assert row["invariantsOk"] is report["ok"] is True


def test_another_grid_in_the_same_folder_is_refused(
    local: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(local, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _sweep(out, "--seeds", "3") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"error: {out}: --out: a folder of this grid, but it holds another sweep" in err
    assert "(other seeds)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # The same grid again: nothing left to run, the same table.
    assert _sweep(out) == 0
    assert "resuming: 4 of 4 cells already done" in capsys.readouterr().err
    assert (out / "sweep.json").read_bytes() == before["sweep.json"]
    assert (out / "cells.jsonl").read_bytes() == before["cells.jsonl"]


@pytest.mark.slow
def test_an_interrupted_sweep_goes_on_from_its_cells_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT once the first cell is kept: exit 130, the cells done stay; run again,
    only the others run, and the table is the one of a sweep never interrupted."""
    out = tmp_path / "interrupted"
    cells = out / "cells.jsonl"
    process = subprocess.Popen(
        [*DRIVESIM, "sweep", str(TINY), "--vary", WINDOWS, "--processes", "1", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = interrupt_when(
        process,
        lambda: cells.exists() and cells.read_text(encoding="utf-8").count("\n") >= 1,
        "no cell done",
    )
    assert process.returncode == 130, err
    assert "Traceback" not in err
    kept = _lines(cells)
    assert 1 <= len(kept) < 6
    assert f"{len(kept)} of 6 cells kept in {cells}" in err
    assert not (out / "sweep.json").exists()

    assert _sweep(out, "--vary", WINDOWS, "--processes", "2") == 0
    assert f"resuming: {len(kept)} of 6 cells already done" in capsys.readouterr().err
    after = _lines(cells)
    assert after[: len(kept)] == kept  # the cells done were not run again
    assert sorted(row["index"] for row in after) == list(range(6))  # the others once each

    fresh = tmp_path / "fresh"
    assert _sweep(fresh, "--vary", WINDOWS, "--processes", "2") == 0
    for name in ("sweep.json", "sweep.csv", "sweep.html"):
        assert (out / name).read_bytes() == (fresh / name).read_bytes(), name


@pytest.mark.slow
def test_a_dask_cluster_gives_the_local_table(local: Path, tmp_path: Path) -> None:
    """Each cell a task on a two-worker LocalCluster (processes): the same table."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "dask"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert _sweep(out, "--dask", cluster.scheduler_address) == 0
    for name in ("sweep.json", "sweep.csv", "sweep.html"):
        assert (out / name).read_bytes() == (local / name).read_bytes(), name


def test_no_dask_scheduler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    from simulator.sweep import execute

    monkeypatch.setattr(execute, "connect_timeout", 0.5)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert _sweep(tmp_path / "out", "--dask", f"tcp://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no Dask scheduler answered at tcp://127.0.0.1:{port}")
    assert not (tmp_path / "out").exists()
