"""Simulated time: the clock over virtual and real loops, durations and their formats."""

from __future__ import annotations

import asyncio
import math
import signal
from datetime import UTC, datetime

import anyio
import pytest

from worker.clock import Clock, format_duration, parse_duration, virtual_loop
from worker.config import DAY, HOUR


def run_virtual(main: object) -> None:
    anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_loop})  # type: ignore[arg-type]


def test_virtual_days_pass_at_once() -> None:
    """On the virtual loop, sleeping 90 simulated days moves now() by exactly that."""
    seen: list[float] = []

    async def main() -> None:
        clock = Clock()
        seen.append(clock.now())
        await clock.sleep(90 * DAY)
        seen.append(clock.now())
        await clock.sleep_until(91 * DAY)
        seen.append(clock.now())

    run_virtual(main)
    assert seen == [0.0, 90 * DAY, 91 * DAY]


def test_time_slept_before_the_first_reading_counts() -> None:
    """A sleep is a use of the clock: time slept before the first now() is not lost."""
    seen: list[float] = []

    async def main() -> None:
        clock = Clock(start=100.0)
        await clock.sleep(2 * DAY)
        seen.append(clock.now())

    run_virtual(main)
    assert seen == [100.0 + 2 * DAY]


def test_virtual_time_runs_past_two_hundred_days() -> None:
    """Virtual time passes 2**24 loop seconds (194 days) and timers still fire (watchdog: 5 s)."""
    loop = virtual_loop()
    reached: list[float] = []

    async def sleep_on() -> None:
        clock = Clock()
        clock.now()
        for _ in range(8):
            await clock.sleep(40 * DAY)
            reached.append(clock.now())

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError(f"virtual time stuck after {reached[-1:]} simulated seconds")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        loop.run_until_complete(sleep_on())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    assert reached == [40 * DAY * i for i in range(1, 9)]


def test_scale_and_start() -> None:
    """With scale s, one loop second is s simulated seconds; start offsets now()."""
    seen: list[float] = []

    async def main() -> None:
        clock = Clock(scale=3600.0, start=10 * DAY)
        t0 = anyio.current_time()
        seen.append(clock.now())
        await clock.sleep(2 * HOUR)
        seen.append(clock.now())
        seen.append(anyio.current_time() - t0)
        assert clock.loop_delay(HOUR) == 1.0

    run_virtual(main)
    assert seen[0] == 10 * DAY
    assert seen[1] == pytest.approx(10 * DAY + 2 * HOUR)
    assert seen[2] == pytest.approx(2.0)


def test_sleep_until_the_past_returns_at_once() -> None:
    """sleep_until a passed time and sleep of a negative duration do not wait."""
    seen: list[float] = []

    async def main() -> None:
        clock = Clock(start=100.0)
        await clock.sleep_until(50.0)
        await clock.sleep(-5.0)
        seen.append(clock.now())

    run_virtual(main)
    assert seen == [100.0]


@pytest.mark.asyncio
async def test_clock_on_a_real_loop_follows_loop_time() -> None:
    """On an ordinary loop the clock starts at its start and follows the loop's time."""
    clock = Clock(scale=1000.0)
    first = clock.now()
    await anyio.sleep(0.01)
    second = clock.now()
    assert first == 0.0
    assert second >= 10.0


def test_clock_needs_a_running_loop() -> None:
    """Reading the clock outside a loop is a RuntimeError (logging relies on it)."""
    with pytest.raises(RuntimeError):
        Clock().now()


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_bad_scale_is_refused(scale: float) -> None:
    """A scale that is not a positive finite number is a ValueError."""
    with pytest.raises(ValueError, match="scale"):
        Clock(scale=scale)


def test_timestamps_and_isoformat() -> None:
    """Simulated seconds map to the epoch plus that many seconds, in ARM's ISO format."""
    clock = Clock(epoch=datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    assert clock.timestamp(90.5) == datetime(2026, 1, 5, 8, 1, 30, 500000, tzinfo=UTC)
    assert clock.isoformat(0.0) == "2026-01-05T08:00:00.000Z"
    assert clock.isoformat(DAY + 1.2345) == "2026-01-06T08:00:01.234Z"


def test_isoformat_of_an_instant_again_and_of_others_between() -> None:
    """Formatting the instant formatted last gives the same text; any other, its own."""
    clock = Clock(epoch=datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    texts = [clock.isoformat(t) for t in (5.0, 5.0, DAY, 5.0, 5.0005, 5.0005)]
    assert texts == [
        "2026-01-05T08:00:05.000Z",
        "2026-01-05T08:00:05.000Z",
        "2026-01-06T08:00:00.000Z",
        "2026-01-05T08:00:05.000Z",
        "2026-01-05T08:00:05.000Z",  # 500 µs: the milliseconds round down, as datetime does
        "2026-01-05T08:00:05.000Z",
    ]
    assert clock.isoformat(5.0015) == "2026-01-05T08:00:05.001Z"


def test_loop_delay_is_never_negative() -> None:
    """loop_delay of a passed time is zero."""
    assert Clock(scale=2.0).loop_delay(-10.0) == 0.0
    assert Clock(scale=2.0).loop_delay(10.0) == 5.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * DAY),
        ("1d 2h", DAY + 2 * HOUR),
        ("30m", 1800.0),
        ("1.5h", 5400.0),
        ("45s", 45.0),
        ("0s", 0.0),
        ("1h 1h", 7200.0),
        (12, 12.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    """Durations in d/h/m/s parts or plain seconds parse to seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "   ", "5", "5x", "d", "-1h", "1 h", "infh", "nanh", -3, True, None, "1d,2h"]
)
def test_parse_duration_rejects(text: object) -> None:
    """Anything else, negatives and non-finite values included, is a ValueError."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "  0d 00:00:00"),
        (3 * DAY + 4 * HOUR + 5 * 60 + 6, "  3d 04:05:06"),
        (123 * DAY, "123d 00:00:00"),
        (59.6, "  0d 00:01:00"),
        (-5.0, "  0d 00:00:00"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    """Durations print as days and hh:mm:ss, rounded to the second, never negative."""
    assert format_duration(seconds) == text


def test_wake_hook_hears_every_timer_that_ends() -> None:
    """Clock.wake_hook is told (clock, due, woke) for each sleep that ends, not a cancelled
    one; a sleep_until of a passed time counts from that time. Unset, nothing is told."""
    heard: list[tuple[float, float]] = []

    async def main() -> None:
        clock = Clock(start=100.0)
        await clock.sleep(50.0)  # before the hook: not heard
        Clock.wake_hook = lambda c, due, woke: heard.append((due, woke))
        await clock.sleep(HOUR)
        await clock.sleep_until(2 * HOUR)
        await clock.sleep_until(10.0)  # passed: due then, woke now
        with anyio.move_on_after(1.0):
            await clock.sleep(DAY)  # cancelled: not heard
        await clock.sleep(-5.0)

    try:
        run_virtual(main)
    finally:
        Clock.wake_hook = None
    start = 150.0
    assert heard == [
        (start + HOUR, start + HOUR),
        (2 * HOUR, 2 * HOUR),
        (10.0, 2 * HOUR),
        (2 * HOUR + 1.0, 2 * HOUR + 1.0),
    ]


def test_wait_until_ends_at_the_time_or_at_the_event() -> None:
    """wait_until returns False at the time (a timer's wake, told to the hook) and True as
    soon as the event is set (not a timer's: the hook hears nothing)."""
    heard: list[tuple[float, float]] = []
    answers: list[tuple[bool, float]] = []

    async def main() -> None:
        clock = Clock()
        Clock.wake_hook = lambda c, due, woke: heard.append((due, woke))
        answers.append((await clock.wait_until(HOUR, anyio.Event()), clock.now()))
        event = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def set_later() -> None:
                await clock.sleep_until(HOUR + 60.0)
                event.set()

            tg.start_soon(set_later)
            answers.append((await clock.wait_until(DAY, event), clock.now()))

    try:
        run_virtual(main)
    finally:
        Clock.wake_hook = None
    assert answers == [(False, HOUR), (True, HOUR + 60.0)]
    assert heard == [(HOUR, HOUR), (HOUR + 60.0, HOUR + 60.0)]  # the second: set_later's
