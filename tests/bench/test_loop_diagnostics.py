"""bench/loop_diagnostics.py: what held the loop, measured on real calls."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import anyio
import pytest

from bench.loop_diagnostics import GcPauses, SlowCallbacks, StoreTimings, TimedSQLiteStore
from bench.messages import make_messages
from worker.store import Commit


def test_a_timed_store_times_its_calls_and_hands_on_each_commit(tmp_path: Path) -> None:
    timings = StoreTimings()
    seen: list[Commit] = []
    store = TimedSQLiteStore(tmp_path / "worker.db", timings, seen.append)
    try:
        messages = make_messages(6, 200)
        for start in (0, 3):
            store.commit(Commit(messages=messages[start : start + 3]))
        batch = store.pending_after(0, 10)
        store.ack([entry.id for entry in batch])
    finally:
        store.close()
    assert len(seen) == 2
    figures = timings.figures()
    assert figures["commit"]["n"] == 2
    assert figures["pending"]["rows"] == 6
    assert figures["ack"]["rows"] == 6
    assert figures["commit"]["max_ms"] > 0
    assert figures["outbox"]["backlog_max"] == 6  # committed, none acknowledged yet


def test_gc_pauses_counts_the_collections_while_installed() -> None:
    pauses = GcPauses()
    with pauses.installed():
        gc.collect()
        gc.collect(0)
    gc.collect()  # not counted: uninstalled
    figures = pauses.figures()
    assert figures["n"] == 2
    assert figures["gen2"] == 1
    assert figures["total_ms"] >= figures["max_ms"] > 0


def test_slow_callbacks_names_the_ones_over_the_threshold() -> None:
    slow = SlowCallbacks(0.02)

    async def blocking() -> None:
        time.sleep(0.05)  # noqa: ASYNC251  # holds the loop, as a synchronous call would

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(blocking, name="blocker")
            tg.start_soon(anyio.sleep, 0.001, name="quick")

    with slow.installed():
        anyio.run(main)
    ((row),) = slow.figures()
    assert row["what"] == "task blocker"
    assert row["n"] == 1
    assert row["max_ms"] >= 50
    assert row["cpu_ms"] < row["max_ms"]  # it slept: wall, not CPU
    assert pytest.approx(row["total_ms"]) == row["max_ms"]
