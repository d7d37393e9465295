"""The order statistics the benchmarks report: percentiles, medians, busiest windows.

Two percentile rules are in use, each kept so that a bench's figures stay comparable with
its own earlier runs: :func:`nearest_rank` (``bench.schedule``'s lateness) and
:func:`nearest_index` (``bench.live`` and ``bench.commands``). On a few hundred samples or
more they agree to within one sample.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["busiest", "busiest_span", "median", "nearest_index", "nearest_rank", "summary_ms"]

T = TypeVar("T")


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q ≤ 1) of ``values``: the smallest value with at
    least ``q`` of them at or below it. NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def nearest_index(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ``values`` as the sorted value at the index nearest
    ``q * (n - 1)``. NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Count, p50, p99, p99.9 and max (nearest rank) of wall ``seconds``, in milliseconds."""
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": nearest_rank(ordered, 0.50) * 1000,
        "p99_ms": nearest_rank(ordered, 0.99) * 1000,
        "p999_ms": nearest_rank(ordered, 0.999) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else math.nan,
    }


def median(values: Sequence[float], empty: T) -> float | T:
    """The median of ``values``, or ``empty`` when there are none."""
    return statistics.median(values) if values else empty


def busiest(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` (sorted) that fall within any ``window`` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def busiest_span(offsets: Sequence[float], seconds: float) -> list[float]:
    """The sorted ``offsets`` inside the ``seconds`` long span holding the most of them,
    shifted to start at 0."""
    if not offsets:
        return []
    best, best_lo, lo = 0, 0, 0
    for hi, value in enumerate(offsets):
        while value - offsets[lo] > seconds:
            lo += 1
        if hi - lo + 1 > best:
            best, best_lo = hi - lo + 1, lo
    first = offsets[best_lo]
    return [x - first for x in offsets[best_lo : best_lo + best]]
