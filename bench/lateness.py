"""Timer lateness on the worker's clock: how late each timer the worker arms fires, and
what a bare timer on the same loop gets for comparison.

:class:`Recorder` is a :attr:`worker.clock.Clock.wake_hook` (set for a block with
:func:`wake_hook`): every :meth:`~worker.clock.Clock.call_at` timer that fires and every
:meth:`~worker.clock.Clock.sleep` that ends reports ``(due, woke)`` in simulated seconds.
Only the worker's own timers count: the pipeline's, which are callbacks outside any task,
and the tasks named after functions of the ``worker`` package (the scripted customers' tasks
are ``simulator.run.runner...``, counted apart). It is also the observer of the store's commits:
a timer's due moment waits for the commit of the change its step makes.

:func:`replay` sleeps on a given schedule with nothing else to do (the reference), and
:func:`probe_loop` wakes on a fixed period (the loop's responsiveness to any timer).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio

from simulator.run.runner import ScenarioRun
from worker import Clock, Commit, deletion_due

__all__ = ["PROBE_PERIOD", "Recorder", "probe_loop", "replay", "wake_hook"]

#: The loop probe's period (wall seconds).
PROBE_PERIOD = 0.01


def _is_worker_task(name: str) -> bool:
    """The worker's own tasks: those anyio names after functions of the ``worker`` package
    (the sweeper); customers run elsewhere."""
    return name.startswith("worker.")


#: Where a timer's due moment waits for its commit when the timer is a callback, not a task.
_TIMER = "timer"


class Recorder:
    """The bench's :attr:`Clock.wake_hook` and its store's commit observer.

    Every worker timer that ends is kept as ``(due, late)``: its simulated due time and
    how late it woke, in loop (wall) seconds. The task's due moment, in loop time, waits
    for the task's next commit, which is kept as ``(due, late)`` too.
    """

    def __init__(self) -> None:
        self.wakes: list[tuple[float, float]] = []
        self.commits: list[tuple[float, float]] = []
        self.other_wakes = 0
        #: (loop time, simulated time, scale) read at the first wake: maps one to the other.
        self.anchor: tuple[float, float, float] | None = None
        self._due_at: dict[asyncio.Task[Any] | str, tuple[float, float]] = {}
        #: The measured run, once made (its clock and ledger, for the sweeper's deletions).
        self.run: ScenarioRun | None = None

    def on_wake(self, clock: Clock, due: float, woke: float) -> None:
        task = asyncio.current_task()
        if task is not None and not _is_worker_task(task.get_name()):
            self.other_wakes += 1
            return
        late = (woke - due) / clock.scale
        loop_now = asyncio.get_running_loop().time()
        if self.anchor is None:
            self.anchor = (loop_now, woke, clock.scale)
        self.wakes.append((due, late))
        self._due_at[task or _TIMER] = (due, loop_now - late)

    def on_commit(self, commit: Commit) -> None:
        task = asyncio.current_task()
        pending = self._due_at.pop(task or _TIMER, None)
        if pending is not None:
            due, due_loop = pending
            self.commits.append((due, asyncio.get_running_loop().time() - due_loop))
        elif (
            commit.delete
            and self.run is not None
            and task is not None
            and task.get_name().startswith("worker.retention.")
        ):
            self._sweeper_commit(commit, self.run)

    def _sweeper_commit(self, commit: Commit, run: ScenarioRun) -> None:
        # The deleted record is still the ledger's: the ledger swaps after the commit.
        policy = run.scenario.policy
        clock = run.clock
        now = clock.now()
        for name in commit.delete:
            record = run.ledger.get(name)
            if record is None:
                continue
            due = deletion_due(record, policy)
            if due is None:
                continue
            tick = math.ceil(due / policy.sweep_interval) * policy.sweep_interval
            self.commits.append((tick, max(0.0, now - tick) / clock.scale))


@contextmanager
def wake_hook(hook: Callable[[Clock, float, float], None]) -> Iterator[None]:
    """``hook`` as the clock's wake hook for the block, none after."""
    Clock.wake_hook = hook
    try:
        yield
    finally:
        Clock.wake_hook = None


async def replay(offsets: Sequence[float], *, lead: float = 0.2) -> list[float]:
    """Sleep until each of ``offsets`` (loop seconds from now + ``lead``), each in a task of
    its own armed up to ``lead`` ahead, as the worker's timers are; how late each woke."""
    late: list[float] = []
    origin = anyio.current_time() + lead

    async def one(due: float) -> None:
        await anyio.sleep(max(0.0, due - anyio.current_time()))
        late.append(anyio.current_time() - due)

    async with anyio.create_task_group() as tg:
        index = 0
        while index < len(offsets):
            horizon = anyio.current_time() + lead
            while index < len(offsets) and origin + offsets[index] <= horizon:
                tg.start_soon(one, origin + offsets[index])
                index += 1
            await anyio.sleep(lead / 2)
    return late


async def probe_loop(late: list[tuple[float, float]]) -> None:
    """Wake every :data:`PROBE_PERIOD`, noting ``(due, late)`` in loop time; until cancelled."""
    while True:
        due = anyio.current_time() + PROBE_PERIOD
        await anyio.sleep(PROBE_PERIOD)
        late.append((due, anyio.current_time() - due))
