"""bench/tables.py: the Markdown tables of the benchmarks' reports."""

from __future__ import annotations

import pytest

from bench.tables import header, row


def test_a_header_is_the_titles_then_a_rule_aligned_per_column() -> None:
    assert header("scenario | jobs | wall s", "lrr") == (
        "| scenario | jobs | wall s |\n|---|---:|---:|"
    )


def test_a_row_puts_each_cell_between_pipes() -> None:
    assert row("`load-10k`", 10_000, f"{16.62:.1f}") == "| `load-10k` | 10000 | 16.6 |"
    assert row("a / b", "") == "| a / b |  |"


def test_the_alignment_must_name_every_column_and_nothing_else() -> None:
    with pytest.raises(ValueError, match="3 columns"):
        header("a | b | c", "lr")
    with pytest.raises(ValueError, match="alignment"):
        header("a | b", "lc")
