"""The garbage collector, set for a heap of long-lived jobs.

A simulation holds every live job in memory and allocates a few dozen short-lived objects
per change. With CPython's default thresholds (700, 10, 10) the collector runs a young
collection every 700 allocations and a full one each time a quarter of the heap is new:
on load-10k, 28 full collections over a growing heap that freed 5 objects in all, about a
fifth of the run's CPU. Larger thresholds leave the short-lived objects to reference
counting, as they die anyway, and collect the rare cycles later.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["THRESHOLDS", "long_lived_heap", "pause_for_start_up"]

#: Young collections every 50,000 net allocations; a full one every 200 young ones at most.
THRESHOLDS = (50_000, 20, 10)


@contextmanager
def long_lived_heap() -> Iterator[None]:
    """Run the block with :data:`THRESHOLDS`; the previous thresholds come back after."""
    previous = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def pause_for_start_up() -> Callable[[], None]:
    """Turn the collector off while a start-up allocates what will live long (a record per
    job, a task per active job): collecting then would only walk an ever larger heap.
    Returns the call that ends the pause: it freezes what is alive out of future
    collections and turns the collector back on (if it was on)."""
    collecting = gc.isenabled()
    gc.disable()

    def resume() -> None:
        if collecting:
            gc.freeze()
            gc.enable()

    return resume
