"""Running the demo's story in two phases: paced until every job has ended, then the 90 days
of retention fast-forwarded.

Phase one is a :class:`~simulator.run.runner.ScenarioRun` on the caller's event loop, in virtual
time or in scaled real time, stopped once every job of the story has ended. Phase two
resumes the same store in virtual time (the runner resumes any store it wrote): the same
worker code, on a clock that jumps whenever everything waits, so 90 days take milliseconds.
After a phase one in scaled real time it runs on a loop of its own in a worker thread, so
the caller's loop (its broker connection and live view) stays on real time. Its messages
and answers are handed over once it is done, without the snapshots a resumed run announces
again (they were seen in phase one).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from simulator.run.runner import ScenarioRun
from simulator.scenario.file import Scenario
from worker import (
    Clock,
    MemoryStore,
    StatusMessage,
    decode_payload,
    get_logger,
    sim_time,
    virtual_loop,
)
from worker.states import TERMINAL

__all__ = ["StoryRun"]

log = get_logger("drivesim.demo")


@dataclass(slots=True)
class StoryRun:
    """One run of the story; callbacks see each status message and each answer once."""

    scenario: Scenario
    #: Simulated seconds a second for phase one; None: virtual time.
    speed: float | None
    on_message: Callable[[StatusMessage], None]
    on_action: Callable[[ActionResult], None]
    #: Called between the phases with the simulated time every job had ended by.
    on_ended: Callable[[float], None] | None = None
    _current: ScenarioRun | None = None
    _last_seq: dict[str, int] = field(default_factory=dict)
    _states: dict[str, str] = field(default_factory=dict)
    #: Set by :meth:`run` before phase one starts (and so before :meth:`_paced` runs).
    _stop: anyio.CancelScope = field(init=False)
    _ended_at: float = 0.0

    async def run(self) -> RunResult:
        """Both phases; the result covers the whole story (history, answers, jobs)."""
        store = MemoryStore()
        first = ScenarioRun(
            self.scenario,
            store,
            speed=self.speed,
            on_message=self._paced,
            on_action=self.on_action,
        )
        result: RunResult | None = None
        self._stop = anyio.CancelScope()
        with self._stop:
            self._current = first
            result = await first.run()
        self._current = None
        if result is not None:  # ended on its own (its `until`): nothing to fast-forward
            return result
        if self.on_ended is not None:
            self.on_ended(self._ended_at)
        messages: list[StatusMessage] = []
        answers: list[ActionResult] = []
        second = ScenarioRun(
            self.scenario, store, speed=None, on_message=messages.append, on_action=answers.append
        )
        if self.speed is None:
            result = await second.run()
        else:
            run_virtual = functools.partial(
                anyio.run,
                second.run,
                backend="asyncio",
                backend_options={"loop_factory": virtual_loop},
            )
            result = await anyio.to_thread.run_sync(run_virtual)
            sim_time.clock = None  # that clock's loop is gone; log lines go unstamped
        # The resumed run first announces every job again, as a worker does after a restart.
        for message in messages:
            if message.seq > self._last_seq.get(message.job, 0):
                self.on_message(message)
        for answer in answers:
            self.on_action(answer)
        log.info("demo story done", sim_seconds=result.sim_seconds, starts=result.starts)
        return result

    def now(self) -> float | None:
        """Phase one's simulated time while it runs (for a live view's ticking clock)."""
        clock: Clock | None = getattr(self._current, "clock", None)
        return None if clock is None else clock.now()

    def _paced(self, message: StatusMessage) -> None:
        self._last_seq[message.job] = max(self._last_seq.get(message.job, 0), message.seq)
        self.on_message(message)
        if message.topic.endswith(f"/{message.job}/state"):
            body = decode_payload(message.payload)
            if body is not None:
                self._states[message.job] = body["properties"]["state"]
                if set(self._states) == set(self.scenario.jobs) and all(
                    state in TERMINAL for state in self._states.values()
                ):
                    ended = datetime.fromisoformat(body["simTime"]) - self.scenario.epoch
                    self._ended_at = ended.total_seconds()
                    self._stop.cancel()
