"""Virtual time: an asyncio event loop whose clock jumps to the next timer when idle.

Whenever no callback is ready, an ordinary loop waits in its selector until the earliest
timer is due. This loop polls for I/O without waiting and, if there is none, sets its
clock to that timer's due time instead of sleeping: 90 simulated days take milliseconds,
and the order of events is the order of their due times, as in real time. Timers due at
the same moment run in the order they were scheduled.

Only waits on timers are compressed. A wait with no timer at all (only I/O or another
thread could wake the loop) really blocks, and the clock stands still. Under virtual
time nothing may wait on a thread or a socket while timers are pending, or the clock
would run past it: the worker's stores therefore call SQLite in the loop.

A simulation is little else than timers, so the loop keeps its own: a heap of ``(due,
order, handle)`` tuples, compared in C, where asyncio's heap compares handles through a
Python method (about 17 calls per push or pop with 60,000 timers pending), and no
system call per timer when nothing but the loop's own wake-up socket is registered.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from contextvars import Context
from typing import Any

__all__ = ["VirtualTimeLoop", "virtual_loop"]

#: Cancelled timers stay in the heap until due, unless they are this many and most of it.
_COMPACT_AT = 100


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock that starts at 0.0."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        # asyncio runs a timer when it is due before time() + the clock's resolution. A
        # microsecond keeps timers due however far the clock has run (a float at 2**24
        # seconds can no longer add the nanosecond of a monotonic clock's resolution).
        self._clock_resolution = 1e-6
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._order = itertools.count()
        self._cancelled_timers = 0

    def time(self) -> float:
        return self._virtual_now

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:  # type: ignore[attr-defined]
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if handle._scheduled:  # type: ignore[attr-defined]
            self._cancelled_timers += 1

    def _run_once(self) -> None:
        """One pass: poll, jump to the next timer if nothing is ready, run what is due."""
        timers = self._timers
        ready: Any = self._ready  # type: ignore[attr-defined]
        if self._cancelled_timers > _COMPACT_AT and 2 * self._cancelled_timers > len(timers):
            timers[:] = [t for t in timers if not t[2].cancelled()]
            heapq.heapify(timers)
            self._cancelled_timers = 0
        while timers and timers[0][2].cancelled():
            heapq.heappop(timers)[2]._scheduled = False  # type: ignore[attr-defined]
            self._cancelled_timers -= 1

        if ready or self._stopping:  # type: ignore[attr-defined]
            events = self._poll()
        elif timers:
            events = self._poll()
            if not events:
                self._virtual_now = max(self._virtual_now, timers[0][0])
        else:  # nothing scheduled: only I/O or another thread can wake the loop
            events = self._selector.select(None)  # type: ignore[attr-defined]
        self._process_events(events)  # type: ignore[attr-defined]

        end = self._virtual_now + self._clock_resolution
        while timers and timers[0][0] < end:
            handle = heapq.heappop(timers)[2]
            handle._scheduled = False  # type: ignore[attr-defined]
            ready.append(handle)

        # As asyncio does: run what is ready now, not what these callbacks make ready.
        # (No slow-callback warnings in debug mode: on this clock a callback takes no time.)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    def _poll(self) -> list[Any]:
        """I/O ready now, without waiting; no system call if nothing but the loop's own
        wake-up socket is registered (a simulation alone makes no I/O). A thread's
        call_soon_threadsafe lands in the ready queue and runs all the same."""
        selector: Any = self._selector  # type: ignore[attr-defined]
        if len(selector.get_map()) <= 1:
            return []
        events: list[Any] = selector.select(0)
        return events

    def close(self) -> None:
        self._timers.clear()
        super().close()

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        raise RuntimeError(
            "a virtual-time loop cannot wait on a thread: time would jump while it works"
        )


def virtual_loop() -> asyncio.AbstractEventLoop:
    """A loop for ``anyio.run(..., backend_options={"loop_factory": virtual_loop})``."""
    return VirtualTimeLoop()
