"""Virtual time: an asyncio event loop whose clock jumps to the next timer when idle.

asyncio asks its selector to wait until the earliest timer is due whenever no callback is
ready. This loop's selector polls for I/O without waiting and, if there is none, moves the
loop's clock forward by exactly that wait instead of sleeping: 90 simulated days take
milliseconds, and the order of events is the order of their due times, as in real time.

Only waits on timers are compressed. A wait with no timer at all (``timeout=None``: only
I/O or another thread could wake the loop) really blocks, and the clock stands still.
Under virtual time nothing may wait on a thread or a socket while timers are pending, or
the clock would run past it: the worker's stores therefore call SQLite in the loop.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

__all__ = ["VirtualTimeLoop", "virtual_loop"]


class _Selector(selectors.DefaultSelector):
    """A selector that never sleeps on a timeout: it advances its loop's clock instead."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only I/O or a thread can wake the loop
            return super().select(None)
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock that starts at 0.0."""

    def __init__(self) -> None:
        selector = _Selector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0
        # asyncio runs a timer when it is due before time() + the clock's resolution. A
        # microsecond keeps timers due however far the clock has run (a float at 2**24
        # seconds can no longer add the nanosecond of a monotonic clock's resolution).
        self._clock_resolution = 1e-6

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (what waiting that long would have done)."""
        if seconds > 0:
            self._virtual_now += seconds

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        raise RuntimeError(
            "a virtual-time loop cannot wait on a thread: time would jump while it works"
        )


def virtual_loop() -> asyncio.AbstractEventLoop:
    """A loop for ``anyio.run(..., backend_options={"loop_factory": virtual_loop})``."""
    return VirtualTimeLoop()
