"""docs/benchmarks.md: each benchmark rewrites its own section, between its two markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DOCS", "finish", "markers", "write_section"]

DOCS = Path(__file__).parents[1] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of benchmark ``name``'s section."""
    return f"<!-- bench.{name}: begin -->", f"<!-- bench.{name}: end -->"


def write_section(name: str, section: str, path: Path = DOCS) -> None:
    """Put ``section`` between ``name``'s markers in ``path`` (appended the first time)."""
    begin, end = markers(name)
    text = path.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + section + "\n" + end + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + begin + "\n" + section + "\n" + end + "\n"
    path.write_text(text)


def finish(
    name: str,
    text: str,
    report: Any,
    *,
    json_path: Path | None,
    docs: bool,
    echo: str | None = "\n",
    indent: int = 1,
) -> None:
    """A benchmark's last steps: print ``text`` (its table) after ``echo``, unless that is
    None; write ``report`` to ``json_path`` as JSON, if given; with ``docs``, put ``text``
    in benchmark ``name``'s section of the docs."""
    if echo is not None:
        print(echo + text)
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=indent) + "\n", encoding="utf-8")
    if docs:
        write_section(name, text)
