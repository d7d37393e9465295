"""The collector's thresholds for a long-lived heap, restored afterwards."""

from __future__ import annotations

import gc

import pytest

from worker.heap import THRESHOLDS, long_lived_heap


def test_thresholds_hold_inside_and_come_back_after() -> None:
    before = gc.get_threshold()
    with long_lived_heap():
        assert gc.get_threshold() == THRESHOLDS
    assert gc.get_threshold() == before


def test_thresholds_come_back_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), long_lived_heap():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


def test_cycles_are_still_collected() -> None:
    """Larger thresholds delay cyclic garbage; a collection still frees it."""
    with long_lived_heap():
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
