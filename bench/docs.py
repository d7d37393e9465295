"""docs/benchmarks.md: each benchmark rewrites its own section, between its two markers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DOCS", "markers", "write_section"]

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
