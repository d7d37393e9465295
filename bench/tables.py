"""Markdown tables, as the benchmarks print them and write them into docs/benchmarks.md."""

from __future__ import annotations

__all__ = ["header", "row"]

_RULES = {"l": "---", "r": "---:"}


def header(titles: str, align: str) -> str:
    """A table's first two lines: the column titles (``titles``, as the header row reads:
    ``"scenario | jobs | wall s"``), then the rule under each, aligned as ``align`` says,
    one letter a column (``l`` left, ``r`` right: ``"lrr"``)."""
    columns = titles.split(" | ")
    if len(columns) != len(align) or set(align) - _RULES.keys():
        raise ValueError(f"{len(columns)} columns, alignment {align!r}")
    return row(*columns) + "\n|" + "|".join(_RULES[a] for a in align) + "|"


def row(*cells: object) -> str:
    """One table row: the ``cells`` between pipes."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
