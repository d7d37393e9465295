"""Simulated time: the only source of "now" in the worker.

Simulated time is seconds since the run's epoch. It is read from the event loop's clock
times a scale, so the same code runs

* in scaled real time on an ordinary loop (``scale=3600``: one simulated hour a second);
* in virtual time on a loop whose clock jumps to the next timer whenever every task is
  idle (:func:`worker.virtual_time.virtual_loop`): 90 simulated days take milliseconds.

Nothing in the worker reads the wall clock. Under virtual time every wait must be on a
timer, never on a thread or socket, or the clock would jump while it waits: the SQLite
store therefore calls :mod:`sqlite3` in the loop, not through a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import anyio

from worker.virtual_time import virtual_loop

__all__ = ["Clock", "WakeHook", "format_duration", "parse_duration", "virtual_loop"]

DEFAULT_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

#: ``hook(clock, due, woke)``: a timer of ``clock`` due at simulated time ``due`` ended its
#: sleep at simulated time ``woke`` (both simulated seconds; ``woke - due`` is how late).
WakeHook = Callable[["Clock", float, float], None]


class Clock:
    """Simulated seconds since ``epoch``, paced at ``scale`` simulated seconds per loop second.

    ``start`` resumes a run at a simulated time persisted earlier. The clock binds to the
    running loop on first use.
    """

    __slots__ = (
        "_days",
        "_epoch_day",
        "_epoch_us",
        "_last_iso",
        "_loop",
        "_origin",
        "epoch",
        "scale",
        "start",
    )

    #: Told of every :meth:`sleep` and :meth:`sleep_until` of every clock that ends
    #: normally (not cancelled), in the task that slept, before it goes on, and of every
    #: :meth:`call_at` timer (set before it was scheduled) before its callback: a benchmark
    #: sets it to measure how late timers fire (``bench/schedule.py``). None, the
    #: default, costs one attribute read per sleep and changes nothing.
    wake_hook: ClassVar[WakeHook | None] = None

    def __init__(
        self, *, epoch: datetime = DEFAULT_EPOCH, scale: float = 1.0, start: float = 0.0
    ) -> None:
        if scale <= 0 or not math.isfinite(scale):
            raise ValueError(f"clock scale must be a positive number, got {scale}")
        self.epoch = epoch
        self.scale = scale
        self.start = start
        self._origin: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # isoformat() in integer arithmetic from the epoch's UTC midnight: the date part
        # once per simulated day. None: an epoch that is not UTC formats through datetime.
        self._days: dict[int, str] | None = None
        self._epoch_day = datetime(epoch.year, epoch.month, epoch.day, tzinfo=epoch.tzinfo)
        self._epoch_us = (epoch - self._epoch_day) // timedelta(microseconds=1)
        if epoch.utcoffset() == timedelta(0):
            self._days = {}
        #: The last time formatted and its text: half of a run's commits share their
        #: instant with the one before.
        self._last_iso: tuple[float, str] = (math.nan, "")

    def now(self) -> float:
        """Simulated seconds since the epoch."""
        loop = asyncio.get_running_loop()
        loop_now = loop.time()  # anyio.current_time(), 4x cheaper
        if self._origin is None:
            self._origin = loop_now
            self._loop = loop
        return self.start + (loop_now - self._origin) * self.scale

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this clock reads (None until its first :meth:`now`): its time
        means nothing on another loop."""
        return self._loop

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time."""
        await self._sleep(seconds, self.now() + max(0.0, seconds))  # now() binds the loop

    async def sleep_until(self, when: float) -> None:
        """Wait until simulated time ``when`` (at once if it has passed)."""
        await self._sleep(when - self.now(), when)

    async def wait_until(self, when: float, event: anyio.Event) -> bool:
        """Wait until simulated time ``when`` or until ``event`` is set, whichever comes
        first; True if the event did. A wake at ``when`` is a timer's, told to the hook."""
        with anyio.move_on_after(self.loop_delay(when - self.now())):
            await event.wait()
            return True
        self._tell_hook(when)
        return False

    async def _sleep(self, seconds: float, due: float) -> None:
        """Sleep, then tell :attr:`wake_hook` when the timer due at ``due`` woke (a time
        that had passed already counts from then: the step was late before it slept)."""
        await anyio.sleep(self.loop_delay(seconds))
        self._tell_hook(due)

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: object,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        """Call ``callback(*args)`` from the loop at simulated time ``when`` (at once if it
        has passed), in ``context`` if given: a timer without a task.

        A simulation schedules most of its steps this way: an asyncio task per step would
        cost several times the step itself. The handle's ``cancel()`` unschedules it.
        """
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self.now()) / self.scale  # loop_delay(), inline: a hot path
        if Clock.wake_hook is not None:
            return loop.call_at(
                loop.time() + delay, self._woke, when, callback, args, context=context
            )
        return loop.call_at(loop.time() + delay, callback, *args, context=context)

    def _woke(self, due: float, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self._tell_hook(due)
        callback(*args)

    def _tell_hook(self, due: float) -> None:
        """Tell :attr:`wake_hook`, if set, that the timer due at ``due`` woke now."""
        hook = Clock.wake_hook
        if hook is not None:
            hook(self, due, self.now())

    def loop_delay(self, seconds: float) -> float:
        """The loop-clock seconds that ``seconds`` of simulated time take."""
        return max(0.0, seconds) / self.scale

    def timestamp(self, when: float | None = None) -> datetime:
        """The simulated moment ``when`` (default: now) as an aware datetime."""
        return self.epoch + timedelta(seconds=self.now() if when is None else when)

    def isoformat(self, when: float | None = None) -> str:
        """ISO 8601 UTC with milliseconds, as ARM writes times (a fifth of datetime's cost:
        every status message carries one)."""
        if when is None:
            when = self.now()
        last, text = self._last_iso
        if when == last:
            return text
        days = self._days
        if days is None:
            return self.timestamp(when).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # Microseconds rounded half to even, as timedelta(seconds=...) rounds them.
        micros = self._epoch_us + round(when * 1e6)
        day, micros = divmod(micros, 86_400_000_000)
        date = days.get(day)
        if date is None:
            date = days[day] = (self._epoch_day + timedelta(days=day)).strftime("%Y-%m-%dT")
        millis = micros // 1000
        hours, millis = divmod(millis, 3_600_000)
        minutes, millis = divmod(millis, 60_000)
        seconds, millis = divmod(millis, 1000)
        text = f"{date}{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z"
        self._last_iso = (when, text)
        return text


_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: object) -> float:
    """Seconds in ``"1d 2h"``, ``"90d"``, ``"30m"``, ``"1.5h"`` or a plain number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '2h' or '1d 6h', got {text!r}")
    total = 0.0
    parts = text.split()
    if not parts:
        raise ValueError("expected a duration such as '2h' or '1d 6h', got an empty string")
    for part in parts:
        number, unit = part[:-1], part[-1:]
        if unit not in _UNITS:
            raise ValueError(f"expected a duration such as '2h' or '1d 6h', got {text!r}")
        try:
            value = float(number)
        except ValueError:
            raise ValueError(f"expected a duration such as '2h' or '1d 6h', got {text!r}") from None
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"a duration cannot be negative or infinite: {text!r}")
        total += value * _UNITS[unit]
    return total


def format_duration(seconds: float) -> str:
    """``"3d 04:05:06"``: simulated time since the epoch, as the timeline shows it."""
    seconds = max(0.0, seconds)
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:>3}d {hours:02}:{minutes:02}:{secs:02}"
