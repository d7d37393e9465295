"""docs/studies.md quotes the study as the program gives it: the kept table is of the study's
grid, a cell of it replays to the same figures, the quoted summary is the table's, and the
claims the prose makes hold in it."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from simulator.scenario.file import load_scenario
from simulator.sweep.cells import CellTask, run_cell
from simulator.sweep.grid import load_grid
from simulator.sweep.study import CONFIG, DOC, PICTURE, PICTURE_SIZE, ROOT, TABLE, stale

COMMAND = ".venv/bin/python -m simulator.sweep.study"


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    kept: dict[str, Any] = json.loads((ROOT / TABLE).read_text(encoding="utf-8"))
    return kept


def _means(table: dict[str, Any], metric: str) -> dict[str, float]:
    return {
        entry["values"]["policy.cancel_window"]: entry["metrics"][metric]["mean"]
        for entry in table["summary"]
    }


def test_the_kept_table_is_of_the_studys_grid(table: dict[str, Any]) -> None:
    grid = load_grid(ROOT / CONFIG)
    assert table["grid"] == grid.identity(), f"the study changed: run {COMMAND}"
    assert table["cellsDone"] == table["cells"] == grid.size == 18
    assert all(row["invariantsOk"] for row in table["rows"])


@pytest.mark.slow
def test_a_cell_of_the_kept_table_replays(table: dict[str, Any]) -> None:
    """The first cell (before-packaging, the first seed), run again: the same figures."""
    grid = load_grid(ROOT / CONFIG)
    cell = grid.cells()[0]
    row = run_cell(
        CellTask(cell.index, str(CONFIG), grid.document_for(cell.choice, cell.seed), cell.seed)
    )
    kept = table["rows"][0]
    assert (kept["cell"], kept["seed"]) == (cell.index, cell.seed)
    assert row["metrics"] == kept["metrics"]


def test_the_doc_quotes_the_kept_table() -> None:
    assert not stale(), f"{DOC} quotes another table than {TABLE}: run {COMMAND}"


def test_the_docs_claims_hold(table: dict[str, Any]) -> None:
    """The wider the window, the more bytes copied after the cancel and drives skipped, the
    fewer cancels refused, and the shorter the queue and the turnaround for everyone."""
    order = ["before-packaging", "creating-or-shipping", "creating-only"]
    after = _means(table, "bytesAfterCancel")
    assert after["before-packaging"] > 0
    assert after["creating-or-shipping"] == after["creating-only"] == 0
    assert _means(table, "cancelledJobs")["creating-only"] == 0
    refused = _means(table, "cancelsRejectedTooLate")
    assert 2.5 < refused["creating-or-shipping"] / refused["before-packaging"] < 3.5
    turnaround = _means(table, "turnaroundP50")
    assert (
        1.5 * 86_400 < turnaround["creating-only"] - turnaround["before-packaging"] < 2.5 * 86_400
    )
    for metric, rising in (
        ("drivesSkipped", False),
        ("cancelledJobs", False),
        ("cancelsRejectedTooLate", True),
        ("queueWaitP50", True),
        ("queueWaitP95", True),
        ("turnaroundP50", True),
        ("turnaroundP95", True),
    ):
        means = [_means(table, metric)[window] for window in order]
        assert means == sorted(means, reverse=not rising), metric


def test_the_picture_is_the_pages() -> None:
    png = (ROOT / PICTURE).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == PICTURE_SIZE
    assert f"({PICTURE.name})" in (ROOT / DOC).read_text(encoding="utf-8")


def test_the_study_runs_with_no_flags() -> None:
    """Its [sweep] table names what it varies: `drivesim sweep FILE` needs nothing more."""
    text = (ROOT / CONFIG).read_text(encoding="utf-8")
    assert "\n[sweep]\n" in text
    assert f"drivesim sweep {CONFIG}" in (ROOT / DOC).read_text(encoding="utf-8")
    # It is a scenario too: `drivesim run` reads it, the [sweep] table left alone.
    assert load_scenario(ROOT / CONFIG).name == "study-cancel-windows"
