"""The virtual-time loop: timers fire in due order at once, I/O still wakes it, threads are
refused."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from worker.virtual_time import VirtualTimeLoop, virtual_loop


def run(coro_fn: object) -> object:
    loop = virtual_loop()
    try:
        return loop.run_until_complete(coro_fn())  # type: ignore[operator]
    finally:
        loop.close()


def test_timers_fire_in_due_order_without_waiting() -> None:
    """A year of sleeps takes no wall time and each wakes exactly at its due time."""
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        woke.append((name, asyncio.get_running_loop().time()))

    async def main() -> None:
        await asyncio.gather(
            sleeper("year", 365 * 86400.0), sleeper("hour", 3600.0), sleeper("day", 86400.0)
        )

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 5  # a watchdog, not a measurement
    assert woke == [("hour", 3600.0), ("day", 86400.0), ("year", 365 * 86400.0)]


def test_callbacks_ready_now_run_before_the_clock_moves() -> None:
    """Work that is ready (call_soon chains) all runs at the same virtual instant."""
    seen: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100):
            await asyncio.sleep(0)
            seen.append(loop.time())
        await asyncio.sleep(10)
        seen.append(loop.time())

    run(main)
    assert set(seen[:100]) == {0.0}
    assert seen[-1] == 10.0


def test_io_still_wakes_the_loop_and_stops_the_clock_while_waiting() -> None:
    """A socket read with no timer pending blocks for real; the clock does not move."""

    async def main() -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            loop.call_soon(b.send, b"ping")
            data = await loop.sock_recv(a, 4)
        return data, loop.time()

    assert run(main) == (b"ping", 0.0)


def test_threads_are_refused() -> None:
    """Time would jump while a thread works: run_in_executor says so."""

    async def main() -> None:
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0)

    with pytest.raises(RuntimeError, match="cannot wait on a thread"):
        run(main)


def test_the_factory_builds_virtual_loops() -> None:
    loop = virtual_loop()
    try:
        assert isinstance(loop, VirtualTimeLoop)
        assert loop.time() == 0.0
    finally:
        loop.close()
