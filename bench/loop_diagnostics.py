"""What held the event loop: the slowest synchronous store calls, the garbage collector's
pauses, loop callbacks over a threshold, and a profile of the whole run.

Each is installed around the measured run and read after it as figures. Every one times
wall and the CPU the loop's thread spent (``time.thread_time``): wall far over CPU means
the thread was preempted or waited in a system call (an fsync), CPU close to wall is code
holding the loop.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

from bench.stats import summary_ms
from worker import Commit, OutboxEntry, SQLiteStore

__all__ = ["GcPauses", "SlowCallbacks", "StoreTimings", "TimedSQLiteStore", "profiled"]


class StoreTimings:
    """The slowest synchronous store calls: they hold the loop while they run."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {"commit": [], "pending": [], "ack": []}
        #: The CPU the loop's thread spent in each call (wall well over it: I/O, preemption).
        self.cpu: dict[str, list[float]] = {"commit": [], "pending": [], "ack": []}
        self.rows: dict[str, int] = {"pending": 0, "ack": 0}
        #: Outbox messages committed and acknowledged so far, and the most ever pending.
        self.committed = 0
        self.backlog_max = 0

    def figures(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, seconds in self.calls.items():
            s = summary_ms(seconds)
            out[name] = {
                "n": s["n"],
                "p99_ms": s["p99_ms"],
                "max_ms": s["max_ms"],
                "max_cpu_ms": max(self.cpu[name], default=0.0) * 1000,
            }
            if name in self.rows:
                out[name]["rows"] = self.rows[name]
        out["outbox"] = {"backlog_max": self.backlog_max}
        return out


class TimedSQLiteStore(SQLiteStore):
    """The worker's SQLite store, timing its calls into ``timings`` and handing each
    commit, once made, to ``on_commit``."""

    def __init__(
        self, path: Path, timings: StoreTimings, on_commit: Callable[[Commit], None]
    ) -> None:
        super().__init__(path)
        self.timings = timings
        self.on_commit = on_commit

    def commit(self, commit: Commit) -> None:
        started, used = time.perf_counter(), time.thread_time()
        super().commit(commit)
        timings = self.timings
        timings.calls["commit"].append(time.perf_counter() - started)
        timings.cpu["commit"].append(time.thread_time() - used)
        timings.committed += len(commit.messages)
        timings.backlog_max = max(timings.backlog_max, timings.committed - timings.rows["ack"])
        self.on_commit(commit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        """Read a relay batch, timed under ``pending`` (``pending`` reads through this)."""
        started, used = time.perf_counter(), time.thread_time()
        result = super().pending_after(after, limit)
        timings = self.timings
        timings.calls["pending"].append(time.perf_counter() - started)
        timings.cpu["pending"].append(time.thread_time() - used)
        timings.rows["pending"] += len(result)
        return result

    def ack(self, ids: Sequence[int]) -> None:
        """Acknowledge a relay batch, timed under ``ack``."""
        started, used = time.perf_counter(), time.thread_time()
        super().ack(ids)
        timings = self.timings
        timings.calls["ack"].append(time.perf_counter() - started)
        timings.cpu["ack"].append(time.thread_time() - used)
        timings.rows["ack"] += len(ids)


class GcPauses:
    """Garbage-collector pauses while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        #: Unreachable objects the full (generation 2) passes found, in all.
        self.collected_full = 0
        self._started = self._used = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._used = time.perf_counter(), time.thread_time()
        else:
            took = time.perf_counter() - self._started
            self.pauses.append((info["generation"], took, time.thread_time() - self._used))
            if info["generation"] == 2:
                self.collected_full += info["collected"]

    @contextmanager
    def installed(self) -> Iterator[None]:
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)

    def figures(self) -> dict[str, float]:
        seconds = [s for _, s, _ in self.pauses]
        return {
            "n": len(seconds),
            "gen2": sum(1 for g, _, _ in self.pauses if g == 2),
            "max_ms": max(seconds, default=0.0) * 1000,
            "max_cpu_ms": max((c for _, _, c in self.pauses), default=0.0) * 1000,
            "total_ms": sum(seconds) * 1000,
            "collected_full": self.collected_full,
        }


class SlowCallbacks:
    """Loop callbacks (task steps, timers) that ran longer than ``threshold`` wall seconds:
    what held the loop, with the CPU the loop's thread spent in them (wall well over CPU:
    the thread was preempted, or waited in a system call such as an fsync). Opt-in
    (``--blocking MS``): it reads two clocks around every callback."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.slow: list[tuple[float, float, str]] = []

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = asyncio.events.Handle._run
        threshold, slow = self.threshold, self.slow
        wall, cpu = time.perf_counter, time.thread_time

        def timed(handle: asyncio.Handle) -> None:
            started, used = wall(), cpu()
            original(handle)
            took = wall() - started
            if took > threshold:
                slow.append((took, cpu() - used, _describe(handle)))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            asyncio.events.Handle._run = original  # type: ignore[method-assign]

    def figures(self) -> list[dict[str, Any]]:
        """Per callback, most time first: how often it went over, its longest and total,
        and the CPU of that total."""
        by: dict[str, list[tuple[float, float]]] = {}
        for took, used, what in self.slow:
            by.setdefault(what, []).append((took, used))
        rows = [
            {
                "what": what,
                "n": len(t),
                "max_ms": max(w for w, _ in t) * 1000,
                "total_ms": sum(w for w, _ in t) * 1000,
                "cpu_ms": sum(c for _, c in t) * 1000,
            }
            for what, t in by.items()
        ]
        return sorted(rows, key=lambda r: -float(r["total_ms"]))


def _describe(handle: asyncio.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return "task " + owner.get_name()
    step = handle._args[0] if getattr(handle, "_args", None) else None  # the pipeline's _call
    if callable(step):
        return getattr(step, "__qualname__", repr(step))[:100]
    return repr(callback)[:100]


def profiled(main: Callable[[], Any], path: Path) -> None:
    """``anyio.run(main)`` under pyinstrument, its report into ``path`` (HTML for
    ``.html``, else text). Sampling adds lateness of its own."""
    from pyinstrument import Profiler  # only when asked: it is a development tool

    profiler = Profiler(async_mode="disabled")
    profiler.start()
    try:
        anyio.run(main, backend="asyncio")
    finally:
        profiler.stop()
        if path.suffix == ".html":
            path.write_text(profiler.output_html())
        else:
            path.write_text(profiler.output_text(unicode=True, show_all=False))
        print(f"profile: {path}", flush=True)
