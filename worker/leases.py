"""Workers sharing one store: each drives the locations it holds a lease on.

Locations share nothing (each has its own bays and its own queue), so a location is the
unit of ownership: the worker holding a location's lease drives every job there, with a
pipeline and a retention sweeper of its own whose commits are fenced by that lease. Bays
are then never shared between workers, and a queue is served in the order one worker
would serve it.

The :class:`LeaseKeeper` renews the worker's leases every third of a lease and takes its
fair share of the rest: ``ceil(locations / live workers)``. A worker over its share gives
the excess up (its transfers stop; the next holder resumes them from their last
checkpoints), one under it claims free or run-out leases (at once when another worker
says it gave one up). A location whose pipeline stopped (its lease was lost, or the store
failed under it) is driven again as soon as the lease is held again.

Every worker listens for the customers' changes committed by the others: a change of a job
it drives is read at once, so a cancel committed by any worker reaches the owning worker's
pipeline within milliseconds; any other job it held is forgotten. The datacenter's own
changes (but deletions) are made by the one worker driving their location and tell no
one: a worker keeps up to date the jobs of the locations it drives (the ledger's
``kept``), and of any other only those waiting for their customer or their deletion; it
reads a moving job of another's location from the store whenever asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Awaitable, Callable

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from worker.config import Policy
from worker.errors import StoreError
from worker.ledger import Ledger
from worker.logs import get_logger
from worker.pipeline import DatacenterPipeline
from worker.plan import Planner
from worker.record import JobRecord
from worker.retention import RetentionSweeper
from worker.store import Lease, SharedStore

__all__ = ["LeaseKeeper"]

log = get_logger("drivesim.leases")


@dataclasses.dataclass
class _Driven:
    """A location this worker drives: its lease and the scope its pipeline runs in."""

    lease: Lease
    scope: anyio.CancelScope


class LeaseKeeper:
    """Holds this worker's share of the locations of a shared store and drives each."""

    def __init__(
        self,
        ledger: Ledger,
        store: SharedStore,
        planner: Planner,
        policy: Policy,
        *,
        lease: float,
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.planner = planner
        self.policy = policy
        self.lease = lease
        self.locations = sorted(planner.datacenter.locations)
        self._driven: dict[str, _Driven] = {}
        ledger.kept = self._driven  # the jobs of the locations driven, by location
        self._changed: dict[str, str] = {}
        self._everything = False
        self._scheduled = False
        #: Awaits the publishing of what the outbox relay has read (set by the datacenter).
        self.settle: Callable[[], Awaitable[None]] | None = None
        #: Set when another worker gives a lease up: claim now, not at the next turn.
        self._released = anyio.Event()

    @property
    def driven(self) -> list[str]:
        """The locations this worker drives now."""
        return sorted(self._driven)

    def drives(self, record: JobRecord) -> bool:
        """Whether this worker drives the job now (its snapshots are this worker's to
        announce: another worker's may be newer than what this one holds)."""
        return record.job.location in self._driven

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Join, take a share of the locations and keep it until cancelled; the leases
        stay held (see :meth:`leave`) so that the outbox can still be drained."""
        self.store.join(self.locations, self.lease)
        async with anyio.create_task_group() as tg:
            await tg.start(self._listen)
            await self._turn(tg)
            task_status.started()
            while True:
                with anyio.move_on_after(self.lease / 3):
                    await self._released.wait()
                self._released = anyio.Event()
                await self._turn(tg)

    def leave(self) -> None:
        """Give every lease up at once: another worker takes the locations over without
        waiting for them to run out."""
        try:
            self.store.leave()
        except StoreError as exc:
            log.warning("leases not given up; they run out instead", error=str(exc))

    async def _turn(self, tg: TaskGroup) -> None:
        """Renew, give up what is over the fair share, claim what is under it, and drive
        every location held."""
        try:
            held = {lease.location: lease for lease in self.store.renew()}
            share = math.ceil(len(self.locations) / self.store.live_workers())
            excess = sorted(held)[share:]
            if excess:
                self.ledger.flush()  # what was done there is committed before it is given up
                for location in excess:
                    self._stop(location, "given up to another worker")
                    del held[location]
                # Released only once what this worker read of their outbox is published:
                # an older snapshot of ours must not land after the next holder's.
                self.store.hand_over(excess)
                if self.settle is not None:
                    await self.settle()
                self.store.release(excess)
            for lease in self.store.claim(share - len(held)):
                held[lease.location] = lease
        except StoreError as exc:
            log.warning("leases not renewed", error=str(exc))
            return
        for location, driven in list(self._driven.items()):
            if held.get(location) != driven.lease:
                self._stop(location, "lease lost")
        for location, lease in sorted(held.items()):
            if location not in self._driven:
                await tg.start(self._drive, lease)

    def _stop(self, location: str, why: str) -> None:
        driven = self._driven.pop(location, None)
        if driven is not None:
            driven.scope.cancel()
            log.warning("location no longer driven", location=location, why=why)

    async def _drive(self, lease: Lease, *, task_status: TaskStatus[None]) -> None:
        """Drive one location under its lease until it is lost or given up."""
        location = lease.location
        started = False
        with structlog.contextvars.bound_contextvars(location=location):
            scope = anyio.CancelScope()
            self._driven[location] = _Driven(lease, scope)
            with scope:
                try:
                    self.ledger.refresh(
                        [r.name for r in self.ledger if r.job.location == location],
                        fresh=self.store.load_location(location),
                    )
                    config = dataclasses.replace(
                        self.planner.datacenter,
                        locations={location: self.planner.datacenter.locations[location]},
                    )
                    pipeline = DatacenterPipeline(self.ledger, config, self.planner, fence=lease)
                    retention = RetentionSweeper(self.ledger, self.policy, fence=lease)
                    async with anyio.create_task_group() as parts:
                        await parts.start(pipeline.run)
                        await parts.start(retention.run)
                        log.info("location driven", epoch=lease.epoch)
                        task_status.started()
                        started = True
                except* StoreError as group:
                    log.warning("location stopped", error=str(group.exceptions[0]))
                    if started:  # a change of it undone: taken up again from the store now
                        self._released.set()
            if self._driven.get(location) is not None and self._driven[location].scope is scope:
                del self._driven[location]  # driven again once its lease is held again
            if not started:  # a location that failed at once does not stop the others
                task_status.started()

    # -- other workers' commits ----------------------------------------------------------

    async def _listen(self, *, task_status: TaskStatus[None]) -> None:
        loop = asyncio.get_running_loop()
        task_status.started()
        async with contextlib.aclosing(self.store.changed_jobs()) as changes:
            async for names in changes:
                if names is None:
                    self._everything = True
                else:
                    if any(not name for _, name in names):
                        self._released.set()
                    self._changed.update((name, loc) for loc, name in names if name)
                if not self._scheduled:
                    # Taken in after what arrived in the same read: one query for a burst.
                    self._scheduled = True
                    loop.call_soon(self._take_in_changes)

    def _take_in_changes(self) -> None:
        """Customers' changes and deletions through other workers: of a job this worker
        drives, read now (its pipeline must know); of any other, forgotten (read again
        when asked for)."""
        self._scheduled = False
        changed, self._changed = self._changed, {}
        everything, self._everything = self._everything, False
        fresh: list[str] = []
        stale: list[str] = []
        for name, location in sorted(changed.items()):
            held = self.ledger.cached(name)
            where = location or (held.job.location if held is not None else "")
            (fresh if where in self._driven else stale).append(name)
        self.ledger.forget(stale)
        try:
            self.ledger.refresh(None if everything else fresh)
        except StoreError as exc:
            log.warning("other workers' changes not taken in", error=str(exc))
            self._everything = True
