"""The collector's thresholds for a long-lived heap, restored afterwards."""

from __future__ import annotations

import gc

import pytest

from worker.heap import THRESHOLDS, long_lived_heap, pause_for_start_up


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


def test_start_up_pause_freezes_what_it_allocated_and_turns_the_collector_back_on() -> None:
    assert gc.isenabled()
    resume = pause_for_start_up()
    try:
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
    finally:
        resume()
    try:
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
