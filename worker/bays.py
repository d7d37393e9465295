"""A location's bays, and a drive copying in one: the pipeline's bookkeeping, no I/O.

A location's :class:`Bays` are a count of free bays and a queue of the drives waiting for
one, first come first served. A :class:`Transfer` is a drive in a bay, copying in
checkpointed steps towards its target (its whole size, or the point where it hits read
errors), cut off by its deadline; the pipeline sets a timer for each of its steps.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import deque

from worker.config import DatacenterConfig
from worker.record import DrivePlan

__all__ = ["Bays", "Transfer"]


class Bays:
    """The bays of one location: how many are free, and the drives waiting for one."""

    __slots__ = ("free", "waiting")

    def __init__(self, count: int) -> None:
        self.free = count
        #: (job, drive, resumed): a resumed transfer was copying before a restart.
        self.waiting: deque[tuple[str, str, bool]] = deque()


class Transfer:
    """A drive in a bay, copying in checkpointed steps towards its target."""

    __slots__ = (
        "bays",
        "context",
        "copied",
        "cut",
        "deadline",
        "drive_id",
        "fails",
        "last",
        "name",
        "rate",
        "target",
        "timer",
    )

    def __init__(
        self,
        name: str,
        drive_id: str,
        bays: Bays,
        context: contextvars.Context,
        *,
        plan: DrivePlan,
        config: DatacenterConfig,
        started_at: float,
        copied: int,
    ) -> None:
        """The transfer of drive ``drive_id`` of job ``name``, started at ``started_at``
        and ``copied`` bytes in (its last checkpoint, when it resumes)."""
        self.name = name
        self.drive_id = drive_id
        self.bays = bays
        #: The log context (job and drive bound) its steps run in.
        self.context = context
        self.rate = config.throughput * plan.speed
        self.fails = plan.fails_at is not None
        self.target = (
            math.floor(plan.size_bytes * plan.fails_at)
            if plan.fails_at is not None
            else plan.size_bytes
        )
        self.copied = copied
        nominal = plan.size_bytes / config.throughput
        self.deadline = started_at + max(
            nominal * config.transfer_deadline_factor, config.checkpoint_interval
        )
        #: The step under way ends the copy (``last``) or is cut off by the deadline.
        self.last = False
        self.cut = False
        self.timer: asyncio.TimerHandle | None = None

    def next_step(self, now: float, interval: float) -> float:
        """When the step that starts ``now`` ends: after ``interval`` (a checkpoint), when
        the target is reached (``last``), or at the deadline (``cut``)."""
        left = max(0, self.target - self.copied) / self.rate
        self.last = left <= interval
        end = now + (left if self.last else interval)
        # A step that would end at or after the deadline is cut off by it.
        self.cut = end >= self.deadline
        return min(end, self.deadline)
