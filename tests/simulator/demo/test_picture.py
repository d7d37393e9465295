"""The demo as one picture: self-contained, every mark drawn, and rendered by headless
Chromium (one timeline per policy with ``--compare``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.demo.command import play_virtual
from simulator.demo.outcome import DemoOutcome, at
from simulator.demo.picture import render_picture, write_picture
from simulator.demo.story import StoryOptions
from simulator.report.html.chromium import dump_dom, screenshot
from simulator.run.result import RunResult
from tests.pictures import screenshot_colours
from worker.errors import ChromiumMissing
from worker.states import CancelWindow


def test_the_picture_is_self_contained(default: tuple[RunResult, DemoOutcome]) -> None:
    """Inline CSS and SVG: no script, no link, no address to fetch; every mark is there."""
    _, outcome = default
    page = render_picture([outcome])
    assert page.startswith("<!DOCTYPE html>")
    for banned in ("<script", "<link", "@import", "http://", "https://"):
        assert banned not in page, banned
    assert re.findall(r"\b(?:src|href)\s*=", page) == []
    assert page.count('class="after"') == len(outcome.finished_after)
    assert page.count('class="skip"') == len(outcome.skipped)
    for mark in ('class="ask"', 'class="effect"', "⑤ cancel: too late", "⑥ delete refused"):
        assert mark in page, mark
    assert outcome.deleted_at is not None
    assert "kept 90 days" in page
    assert f"deleted {at(outcome.deleted_at)}" in page


def test_the_picture_renders_in_chromium(
    default: tuple[RunResult, DemoOutcome], tmp_path: Path
) -> None:
    """A 1400x900 screenshot full of colour, with the after-the-request shade drawn; and
    with --compare, one timeline per policy in Chromium's DOM."""
    _, outcome = default
    html_path, png_path = tmp_path / "demo.html", tmp_path / "demo.png"
    write_picture(html_path, [outcome])
    try:
        screenshot(html_path, png_path, width=1400, height=900, timeout=120)
    except ChromiumMissing as exc:
        pytest.fail(f"{exc}. Run `make test`: it installs chromium before the suite.")
    _, colours = screenshot_colours(png_path.read_bytes(), (1400, 900))
    assert bytes((0x0E, 0x4A, 0x5C)) in colours  # bytes copied after the request
    assert bytes((0xD1, 0xD5, 0xDB)) in colours  # skipped drives

    compare = tmp_path / "compare.html"
    outcomes = [play_virtual(StoryOptions(policy)) for policy in CancelWindow]
    write_picture(compare, outcomes)
    dom = dump_dom(compare, timeout=120)
    assert re.findall(r'data-policy="([^"]+)"', dom) == [str(p) for p in CancelWindow]
