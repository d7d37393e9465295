"""bench/stats.py: the order statistics the benchmarks report."""

from __future__ import annotations

import math

import pytest

from bench.stats import busiest, busiest_span, median, nearest_index, nearest_rank, summary_ms


def test_nearest_rank_is_the_smallest_value_with_that_share_at_or_below_it() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]  # unsorted on purpose
    assert nearest_rank(values, 0.2) == 1.0
    assert nearest_rank(values, 0.5) == 3.0
    assert nearest_rank(values, 0.21) == 2.0  # just over a rank takes the next value
    assert nearest_rank(values, 1.0) == 5.0
    assert nearest_rank(list(range(1, 101)), 0.99) == 99
    assert math.isnan(nearest_rank([], 0.5))


def test_nearest_index_rounds_q_times_n_minus_one() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert nearest_index(values, 0.0) == 1.0
    assert nearest_index(values, 0.5) == 3.0  # index round(1.5) = 2
    assert nearest_index(values, 0.99) == 4.0
    assert nearest_index(list(range(1, 101)), 0.99) == 99  # index round(98.01) = 98
    assert math.isnan(nearest_index([], 0.5))


def test_the_two_rules_differ_on_few_samples() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert nearest_rank(values, 0.5) == 2.0
    assert nearest_index(values, 0.5) == 3.0


def test_summary_ms_gives_count_percentiles_and_max_in_milliseconds() -> None:
    seconds = [i / 1000 for i in range(1, 1001)]  # 1 ms to 1,000 ms
    s = summary_ms(seconds)
    assert s["n"] == 1000
    assert s["p50_ms"] == pytest.approx(500.0)
    assert s["p99_ms"] == pytest.approx(990.0)
    assert s["p999_ms"] == pytest.approx(999.0)
    assert s["max_ms"] == pytest.approx(1000.0)
    empty = summary_ms([])
    assert empty["n"] == 0
    assert all(math.isnan(empty[k]) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))


def test_median_or_what_an_empty_list_gives() -> None:
    assert median([3.0, 1.0, 2.0], None) == 2.0
    assert median([1.0, 2.0], None) == 1.5
    assert median([], None) is None
    assert median([], 0.0) == 0.0


def test_busiest_counts_the_most_times_in_any_window() -> None:
    times = [0.0, 0.1, 0.2, 1.5, 1.6, 1.7, 1.8, 5.0]
    assert busiest(times) == 4  # 1.5 to 1.8
    assert busiest(times, window=2.0) == 7  # 0.0 to 1.8
    assert busiest([]) == 0
    assert busiest([3.0]) == 1


def test_busiest_span_takes_the_densest_stretch_and_shifts_it_to_zero() -> None:
    offsets = [0.0, 5.0, 5.5, 6.0, 6.2, 20.0]
    assert busiest_span(offsets, 1.5) == pytest.approx([0.0, 0.5, 1.0, 1.2])
    assert busiest_span(offsets, 100.0) == offsets
    assert busiest_span([], 1.0) == []
