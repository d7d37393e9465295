"""Every page drivesim draws reads at 800 and 1400 px wide in headless Chromium: no SVG text
below a readable size, no two labels on top of each other, no mark over a label. Measured
from the layout Chromium computes (getBoundingClientRect), not from the markup."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.demo.command import play_virtual
from simulator.demo.picture import write_picture
from simulator.demo.story import StoryOptions
from simulator.faults.kinds import Fault
from simulator.faults.plan import FaultRecord
from simulator.report.history import History
from simulator.report.html.chromium import measure_text
from simulator.report.html.figures import make_demo
from simulator.report.html.page import write_html
from simulator.report.invariants import check_run
from simulator.report.json_report import build_report
from simulator.scenario import load_scenario
from tests.pictures import screenshot_colours
from tests.simulator.conftest import run_to_report
from worker.states import CancelWindow

CONFIGS = Path(__file__).parents[4] / "configs"
#: The smallest font, in CSS px as rendered, a label may have.
READABLE_PX = 10.0
WIDTHS = (800, 1400)


def _demo(path: Path) -> None:
    write_picture(path, [play_virtual(StoryOptions())])


def _compare(path: Path) -> None:
    write_picture(path, [play_virtual(StoryOptions(policy)) for policy in CancelWindow])


def _report(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        scenario = load_scenario(CONFIGS / f"{name}.toml")
        result, report = run_to_report(scenario)
        write_html(path, report, History(result.history, scenario.epoch), result)

    return write


def _crowded_faults(path: Path) -> None:
    """cancel-mid-transfer with ten faults struck a minute apart: labels that cannot all fit."""
    scenario = load_scenario(CONFIGS / "cancel-mid-transfer.toml")
    result, _ = run_to_report(scenario)
    history = History(result.history, scenario.epoch)
    kinds = ("broker-pause", "worker-kill", "broker-kill", "net-latency")
    faults = [
        FaultRecord(
            Fault(index=i, kind=kinds[i % len(kinds)], at=94_000.0 + 60 * i, lasts=600.0),
            struck=94_000.0 + 60 * i,
            healed=94_600.0 + 60 * i,
            detail="struck",
        )
        for i in range(10)
    ]
    faulty = dataclasses.replace(result, faults=faults)
    report = build_report(faulty, history, check_run(faulty, history))
    write_html(path, report, history, faulty)


PAGES: dict[str, Callable[[Path], None]] = {
    "demo": _demo,
    "demo-compare": _compare,
    "report-cancel-mid-transfer": _report("cancel-mid-transfer"),
    "report-chaos-broker": _report("chaos-broker"),
    "report-load-small": _report("load-small"),
    "report-crowded-faults": _crowded_faults,
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pages")
    written = {}
    for name, write in PAGES.items():
        written[name] = folder / f"{name}.html"
        write(written[name])
    return written


def _overlap(a: dict[str, Any], b: dict[str, Any], slack: float = 0.5) -> bool:
    return bool(
        a["x"] + slack < b["x"] + b["w"]
        and b["x"] + slack < a["x"] + a["w"]
        and a["y"] + slack < b["y"] + b["h"]
        and b["y"] + slack < a["y"] + a["h"]
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(PAGES))
def test_every_label_reads(pages: dict[str, Path], name: str, width: int) -> None:
    measured = measure_text(pages[name], width)
    texts = measured["texts"]
    assert texts, name
    small = sorted({(t["text"], round(t["px"], 1)) for t in texts if t["px"] < READABLE_PX})
    assert not small, f"{name} at {width} px: text below {READABLE_PX} px: {small[:8]}"
    clashes = [
        (a["text"], b["text"])
        for i, a in enumerate(texts)
        for b in texts[i + 1 :]
        if a["svg"] == b["svg"] and _overlap(a, b)
    ]
    assert not clashes, f"{name} at {width} px: labels on top of each other: {clashes[:8]}"
    covered = [
        (m["mark"], t["text"])
        for m in measured["marks"]
        for t in texts
        if m["svg"] == t["svg"] and _overlap(m, t)
    ]
    assert not covered, f"{name} at {width} px: marks over labels: {covered[:8]}"


def test_a_load_gets_a_zoom_on_the_days_its_jobs_are_at_work(pages: dict[str, Path]) -> None:
    """load-small's lanes are mostly Completed bands waiting for retention: the page adds a
    panel over the days until 80 % of them ended, a small part of the whole window."""
    page = pages["report-load-small"].read_text(encoding="utf-8")
    assert page.count("While the jobs are at work, zoomed") == 1
    assert 'class="zlane"' in page
    match = re.search(r"until (\d+) of the (\d+) lanes had ended", page)
    assert match is not None
    within, shown = int(match[1]), int(match[2])
    assert 0.8 * shown <= within <= shown
    # A small run keeps its zoom on the copy step instead.
    small = pages["report-cancel-mid-transfer"].read_text(encoding="utf-8")
    assert "The copy step, zoomed" in small
    assert "While the jobs are at work" not in small


def test_the_docs_pictures_are_made_by_the_program(tmp_path: Path) -> None:
    """python -m simulator.report.html.figures draws docs/demo.png as Chromium renders it."""
    png = tmp_path / "demo.png"
    make_demo(png)
    screenshot_colours(png.read_bytes(), (1400, 720))
