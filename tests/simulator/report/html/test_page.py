"""The HTML report: self-contained, escaped, one lane per job, faults marked; and it renders
in headless Chromium (installed by ``make test``)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.faults.kinds import Fault
from simulator.faults.plan import FaultRecord
from simulator.report.history import History
from simulator.report.html.chromium import dump_dom, screenshot
from simulator.report.html.page import render_html, write_html
from simulator.report.invariants import check_run
from simulator.report.json_report import build_report
from simulator.run.result import RunResult
from simulator.scenario import load_scenario, parse_scenario
from tests.pictures import screenshot_colours
from tests.simulator.conftest import run_to_report
from worker.errors import ChromiumMissing

CONFIGS = Path(__file__).parents[4] / "configs"
Run = tuple[RunResult, dict[str, Any], History]


def _run(name: str) -> Run:
    scenario = load_scenario(CONFIGS / f"{name}.toml")
    result, report = run_to_report(scenario)
    return result, report, History(result.history, scenario.epoch)


@pytest.fixture(scope="module")
def mid() -> Run:
    return _run("cancel-mid-transfer")


@pytest.fixture(scope="module")
def load() -> Run:
    return _run("load-small")


def _lanes(page: str) -> list[str]:
    return re.findall(r'<g class="lane" data-job="([^"]*)"', page)


def _assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert re.findall(r"\b(?:src|href)\s*=", page) == []
    assert "http://" not in page
    assert "https://" not in page


def test_small_run_page_is_self_contained_with_a_lane_per_job(mid: Run) -> None:
    """cancel-mid-transfer: one job lane with its four drives, the cancel and the deletion."""
    result, report, history = mid
    page = render_html(report, history, result)
    _assert_self_contained(page)
    assert "cancel-mid-transfer" in page
    assert "all 13 invariants hold" in page
    assert _lanes(page) == ["contoso-import"]
    for drive in ("9CA995BB", "9CA995BC", "9CA995BD", "9CA995BE"):
        assert drive in page
    assert 'class="mk-cancel"' in page
    assert page.count('class="mk-skip"') == 4  # two skipped drives, in the timeline and the zoom
    assert "deleted (retention, was Completed)" in page
    assert "The copy step, zoomed" in page
    assert 'class="fault-mark"' not in page


def test_faults_are_marked_and_listed(mid: Run) -> None:
    """A struck fault is a shaded span labelled with its kind; a skipped one is only listed."""
    result, _, history = mid
    struck = FaultRecord(
        Fault(index=0, kind="broker-pause", at=94_000.0, lasts=1800.0),
        struck=94_000.0,
        healed=95_800.0,
        detail="broker paused",
    )
    skipped = FaultRecord(
        Fault(index=1, kind="worker-kill", at=96_000.0), skipped="needs real processes"
    )
    faulty = dataclasses.replace(result, faults=[struck, skipped])
    report = build_report(faulty, history, check_run(faulty, history))
    assert [f["kind"] for f in report["faults"]] == ["broker-pause", "worker-kill"]
    page = render_html(report, history, faulty)
    _assert_self_contained(page)
    # The timeline, its zoom and the four plots each mark the struck fault once.
    assert page.count('class="fault-mark"') == 6
    assert '<text class="fault-label"' in page
    assert "broker-pause" in page
    assert "worker-kill" in page
    assert "needs real processes" in page


def test_text_is_escaped(mid: Run) -> None:
    """Names from a scenario never become markup."""
    result, _, history = mid
    odd = dataclasses.replace(
        result, scenario=dataclasses.replace(result.scenario, name="<b>x</b> & co")
    )
    page = render_html(build_report(odd, history, check_run(odd, history)), history, odd)
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt; &amp; co" in page


def test_big_run_lanes_are_capped_and_the_page_stays_small(load: Run, tmp_path: Path) -> None:
    """load-small (300 jobs): a capped set of lanes, every cancelled job among them."""
    result, report, history = load
    path = tmp_path / "load.html"
    write_html(path, report, history, result)
    page = path.read_text(encoding="utf-8")
    _assert_self_contained(page)
    lanes = _lanes(page)
    assert 100 < len(lanes) <= 200
    assert len(set(lanes)) == len(lanes)
    assert f"{300 - len(lanes)} left out" in page
    cancelled = {life.label for life in history.incarnations if life.cancel is not None}
    assert cancelled <= set(lanes)
    assert path.stat().st_size < 1_000_000


def test_a_run_without_jobs_renders() -> None:
    """No jobs, no events: empty figures, no lanes, still a whole page."""
    scenario = parse_scenario({"name": "empty"})
    result, report = run_to_report(scenario)
    assert report["latency"]["transfer"] == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
        "max": None,
    }
    assert report["bays"]["overall"]["utilisation"] is None
    page = render_html(report, History(result.history, scenario.epoch), result)
    _assert_self_contained(page)
    assert _lanes(page) == []
    assert page.rstrip().endswith("</html>")


# -- headless Chromium -----------------------------------------------------------------------


def _render(run: Run, tmp_path: Path, name: str) -> tuple[Path, Path]:
    result, report, history = run
    html_path, png_path = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    write_html(html_path, report, history, result)
    try:
        screenshot(html_path, png_path, width=1400, height=1000, timeout=120)
    except ChromiumMissing as exc:
        pytest.fail(f"{exc}. Run `make test`: it installs chromium before the suite.")
    return html_path, png_path


@pytest.mark.parametrize("which", ["mid", "load"])
def test_chromium_renders_the_report(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A 1400x1000 screenshot full of colour, and the lanes in Chromium's DOM."""
    run: Run = request.getfixturevalue(which)
    html_path, png_path = _render(run, tmp_path, which)
    _, colours = screenshot_colours(png_path.read_bytes(), (1400, 1000))
    if which == "mid":
        # The timeline is on the first screen: Packaging and Completed bands are drawn.
        assert bytes((0xC0, 0x84, 0xFC)) in colours
        assert bytes((0x86, 0xEF, 0xAC)) in colours

    dom = dump_dom(html_path, timeout=120)
    lanes = _lanes(dom)
    assert lanes == _lanes(html_path.read_text(encoding="utf-8"))
    if which == "mid":
        assert lanes == ["contoso-import"]
    else:
        assert len(lanes) > 100
    assert dom.count("<svg") == html_path.read_text(encoding="utf-8").count("<svg")
