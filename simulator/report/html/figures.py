"""The pictures in docs/, made by the program: ``python -m simulator.report.html.figures``.

``docs/demo.png`` is ``drivesim demo --virtual --html`` in headless Chromium;
``docs/report-<config>.png`` the HTML report of ``configs/<config>.toml`` run in virtual
time (the same page ``drivesim run --html`` writes). ``docs/report-chaos-broker.png`` is of
a live run (``drivesim run configs/chaos-broker.toml --live --html``, against Mosquitto and
the fault proxy) and is not made here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from simulator.demo.command import play_virtual
from simulator.demo.picture import write_picture
from simulator.demo.story import StoryOptions
from simulator.report.history import History
from simulator.report.html.chromium import screenshot
from simulator.report.html.page import write_html
from simulator.report.invariants import check_run
from simulator.report.json_report import build_report
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import MemoryStore, configure_logging

__all__ = ["REPORTS", "main", "make_demo", "make_report"]

ROOT = Path(__file__).parents[3]
#: The reports pictured in docs/, and the height of each picture (px, at 1400 wide).
REPORTS = {"cancel-mid-transfer": 1250, "load-small": 1300}


def make_demo(png: Path) -> None:
    """docs/demo.png: the default story's picture."""
    with tempfile.TemporaryDirectory(prefix="drivesim-figures-") as folder:
        html = Path(folder) / "demo.html"
        write_picture(html, [play_virtual(StoryOptions())])
        screenshot(html, png, 1400, 720)


def make_report(config: str, png: Path, height: int) -> None:
    """docs/report-<config>.png: the report of a virtual run of ``configs/<config>.toml``
    (run from the repository's root)."""
    # Relative to the repository, as the page prints the path it was loaded from.
    scenario = load_scenario(Path("configs") / f"{config}.toml")
    result = run_scenario(scenario, MemoryStore())
    history = History(result.history, scenario.epoch)
    report = build_report(result, history, check_run(result, history))
    with tempfile.TemporaryDirectory(prefix="drivesim-figures-") as folder:
        html = Path(folder) / "report.html"
        write_html(html, report, history, result)
        screenshot(html, png, 1400, height)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.report.html.figures",
        description="Redraw docs/demo.png and the report pictures in docs/ (needs Chromium).",
    )
    parser.parse_args(argv)
    configure_logging(level="warning")
    os.chdir(ROOT)
    make_demo(ROOT / "docs" / "demo.png")
    for config, height in REPORTS.items():
        make_report(config, ROOT / "docs" / f"report-{config}.png", height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
