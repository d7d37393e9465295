"""bench/lateness.py measures how late the worker's timers fire, on a real clock and loop."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from bench.lateness import PROBE_PERIOD, Recorder, probe_loop, replay, wake_hook
from worker.clock import Clock
from worker.store import Commit


def test_the_recorder_keeps_the_worker_s_timers_and_their_commits() -> None:
    recorder = Recorder()
    clock = Clock(scale=100.0)  # 100 simulated seconds a wall second

    async def main() -> None:
        done = asyncio.Event()

        def step() -> None:  # a pipeline timer: a callback outside any task
            recorder.on_commit(Commit())  # the change it commits
            done.set()

        clock.call_at(clock.now() + 2.0, step)  # due 20 ms from now
        await done.wait()
        await clock.sleep(1.0)  # a task not named after the worker: a customer's

    with wake_hook(recorder.on_wake):
        assert Clock.wake_hook is not None
        anyio.run(main)
    assert Clock.wake_hook is None
    ((due, late),) = recorder.wakes
    assert due == pytest.approx(2.0, abs=0.01)
    assert 0.0 <= late < 1.0  # wall seconds late
    ((commit_due, commit_late),) = recorder.commits
    assert commit_due == due
    assert commit_late >= late  # the commit ends after the wake
    assert recorder.other_wakes == 1
    assert recorder.anchor is not None


def test_the_hook_is_unset_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), wake_hook(Recorder().on_wake):
        raise RuntimeError("the run failed")
    assert Clock.wake_hook is None


def test_replay_sleeps_to_each_offset_and_says_how_late_it_woke() -> None:
    offsets = [0.0, 0.05, 0.1, 0.1, 0.3]
    late = anyio.run(replay, offsets)
    assert len(late) == len(offsets)
    assert all(0.0 <= x < 0.5 for x in late)


def test_the_loop_probe_wakes_every_period_until_cancelled() -> None:
    samples: list[tuple[float, float]] = []

    async def main() -> None:
        with anyio.move_on_after(20 * PROBE_PERIOD):
            await probe_loop(samples)

    anyio.run(main)
    assert 5 <= len(samples) <= 20
    dues = [due for due, _ in samples]
    assert dues == sorted(dues)
    assert all(late >= 0 for _, late in samples)
