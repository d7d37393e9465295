"""Retention: Completed and Closed jobs go 90 days after they end, Creating jobs 14 days after
their last change.

The sweeper keeps a heap of due times fed by the ledger and wakes on a fixed grid of
``sweep_interval``, so a job is deleted no earlier than it is due and no later than one
interval after, and an idle system is not woken every interval for nothing.
"""

from __future__ import annotations

import heapq
import math

import anyio
import structlog
from anyio.abc import TaskStatus

from worker import changes, states
from worker.config import Policy
from worker.ledger import Ledger
from worker.logs import get_logger
from worker.record import JobRecord
from worker.states import Command
from worker.store import Lease

__all__ = ["RetentionSweeper", "deletion_due"]

log = get_logger("drivesim.retention")


def deletion_due(record: JobRecord, policy: Policy) -> float | None:
    """When ``record`` is due for deletion, or None while it is in the datacenter."""
    match states.self_deletion(record.state):
        case Command.EXPIRE:
            return record.sim.touched_at + policy.creating_expiry
        case Command.RETIRE:
            assert record.sim.ended_at is not None
            return record.sim.ended_at + policy.retention
        case None:
            return None


class RetentionSweeper:
    """Deletes jobs whose retention or expiry has run out: every job, or with a ``fence``
    (workers sharing a store) the jobs of the location its lease holds."""

    def __init__(self, ledger: Ledger, policy: Policy, *, fence: Lease | None = None) -> None:
        self.ledger = ledger
        self.fence = fence
        self.clock = ledger.clock
        self.policy = policy
        self._heap: list[tuple[float, str]] = []
        self._wake = anyio.Event()

    def _ours(self, record: JobRecord) -> bool:
        return self.fence is None or record.job.location == self.fence.location

    def _on_change(self, before: JobRecord | None, after: JobRecord | None) -> None:
        if after is None or not self._ours(after):
            return
        due = deletion_due(after, self.policy)
        if due is not None and (before is None or deletion_due(before, self.policy) != due):
            self._push(due, after.name)

    def _push(self, due: float, name: str) -> None:
        if not self._heap or due < self._heap[0][0]:
            self._wake.set()
        heapq.heappush(self._heap, (due, name))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        for record in self.ledger:
            due = deletion_due(record, self.policy)
            if due is not None and self._ours(record):
                self._push(due, record.name)
        self.ledger.watch(self._on_change)
        task_status.started()
        interval = self.policy.sweep_interval
        while True:
            if self._heap:
                tick = math.ceil(self._heap[0][0] / interval) * interval
                delay = self.clock.loop_delay(tick - self.clock.now())
            else:
                delay = math.inf
            with anyio.move_on_after(delay):
                await self._wake.wait()
            self._wake = anyio.Event()
            self.sweep()

    def sweep(self) -> int:
        """Delete every job due by now; returns how many went."""
        now = self.clock.now()
        deleted = 0
        while self._heap and self._heap[0][0] <= now:
            due, name = heapq.heappop(self._heap)
            record = self.ledger.get(name)
            if record is None or deletion_due(record, self.policy) != due:
                continue  # deleted meanwhile, or its due time moved: a newer entry stands
            command = states.self_deletion(record.state)
            assert command is not None
            events = changes.delete(record, command)
            with structlog.contextvars.bound_contextvars(job=name):
                log.info("job deleted by retention", reason=events[0].data["reason"])
            self.ledger.delete(name, events, fence=self.fence)
            deleted += 1
        return deleted
