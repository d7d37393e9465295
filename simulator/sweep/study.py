"""The worked study in docs/studies.md, made by the program: ``python -m simulator.sweep.study``.

It runs ``drivesim sweep configs/study-cancel-windows.toml`` as a user would (no flags), keeps
the table as ``docs/study-cancel-windows.json``, renders the sweep's HTML page in headless
Chromium as ``docs/study-cancel-windows.png``, and rewrites the summary docs/studies.md
quotes between its markers::

    <!-- begin study:summary -->
    <!-- end study:summary -->

``--check`` only says whether the quote differs from the kept table (exit 1);
tests/simulator/sweep/test_study.py checks the quote, and that a cell of the kept table is
what the program gives.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.sweep.command import HTML_FILE, JSON_FILE, print_summary
from simulator.sweep.grid import load_grid
from worker import configure_logging

__all__ = ["CONFIG", "DOC", "PICTURE", "TABLE", "main", "quote", "rewrite"]

ROOT = Path(__file__).parents[2]
#: The study's scenario (relative to the repository, as the page prints it), its kept table,
#: its picture and the page that quotes it.
CONFIG = Path("configs") / "study-cancel-windows.toml"
TABLE = Path("docs") / "study-cancel-windows.json"
PICTURE = Path("docs") / "study-cancel-windows.png"
DOC = Path("docs") / "studies.md"
#: The picture's size (px).
PICTURE_SIZE = (1400, 1560)
#: The width the quoted summary is printed at.
QUOTE_WIDTH = 110

BLOCK = re.compile(
    r"(?P<open><!-- begin study:summary -->\n)(?P<body>.*?)(?P<close><!-- end study:summary -->)",
    re.DOTALL,
)


def quote(table: dict[str, Any], root: Path = ROOT) -> str:
    """The summary ``drivesim sweep`` prints for ``table``, as a fenced block."""
    grid = load_grid(root / CONFIG)
    out = io.StringIO()
    console = Console(file=out, width=QUOTE_WIDTH, color_system=None, highlight=False)
    print_summary(console, grid, table)
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def rewrite(text: str, block: str) -> str:
    """``text`` with its quoted summary replaced by ``block``."""
    if not BLOCK.search(text):
        raise KeyError("no <!-- begin study:summary --> ... <!-- end study:summary --> quote")
    return BLOCK.sub(lambda m: m["open"] + block + m["close"], text)


def make(root: Path = ROOT) -> None:
    """Run the study, keep its table, draw its picture, rewrite the quote."""
    from simulator.cli import main as drivesim
    from simulator.report.html.chromium import screenshot

    os.chdir(root)  # the page names the scenario as the docs do: configs/...
    with tempfile.TemporaryDirectory(prefix="drivesim-study-") as folder:
        out = Path(folder) / "sweep"
        code = drivesim(["sweep", str(CONFIG), "--out", str(out)])
        if code != 0:
            raise SystemExit(f"the study's sweep exited {code}")
        shutil.copyfile(out / JSON_FILE, root / TABLE)
        screenshot(out / HTML_FILE, root / PICTURE, *PICTURE_SIZE)
    table = json.loads((root / TABLE).read_text(encoding="utf-8"))
    doc = root / DOC
    doc.write_text(rewrite(doc.read_text(encoding="utf-8"), quote(table, root)), encoding="utf-8")


def stale(root: Path = ROOT) -> bool:
    """Whether docs/studies.md quotes other figures than the kept table's."""
    table = json.loads((root / TABLE).read_text(encoding="utf-8"))
    text = (root / DOC).read_text(encoding="utf-8")
    return rewrite(text, quote(table, root)) != text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.sweep.study",
        description="Run the study of configs/study-cancel-windows.toml and redraw its table, "
        "picture and quote in docs/ (needs Chromium; about a minute on two cores).",
    )
    parser.add_argument(
        "--check", action="store_true", help="only check the quote against the kept table"
    )
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    if args.check:
        return 1 if stale() else 0
    make()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
