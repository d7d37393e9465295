"""The datacenter: packages arrive, bays copy drives, drives go back.

One task per active job walks it through Shipping → Received → Transferring → Packaging →
Completed/Closed, sleeping on the simulated clock between steps. Each drive of a job in
the copy step waits for a bay of the job's location, then copies in checkpointed steps.

Best-effort cancel: an accepted cancel cancels the scope in which the job's drives *wait*
for a bay. Transfers run outside that scope, so a drive already copying is never
interrupted by a cancel; it finishes, bounded only by its own deadline. Whether a drive
starts at all is decided by :func:`worker.changes.start_drive`, committed in the same
loop step as the bay was granted: a cancel committed first means the drive is skipped,
a start committed first means it runs on. There is no third outcome.

Everything the job tasks need to resume is in the store: due times, each drive's last
checkpoint. A restarted worker picks every job up where its record says it was.
"""

from __future__ import annotations

import functools
import math

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from worker import changes
from worker.clock import Clock
from worker.errors import InvalidJobState
from worker.ledger import Ledger
from worker.model import DriveState, JobState, JobType
from worker.record import JobRecord
from worker.service import JobService
from worker.status import Event

__all__ = ["DatacenterPipeline"]

J = JobState
ACTIVE = frozenset({J.SHIPPING, J.RECEIVED, J.TRANSFERRING, J.PACKAGING})

log = structlog.get_logger("drivesim.pipeline")


class DatacenterPipeline:
    """Runs every active job of the ledger through the datacenter."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.ledger: Ledger = service.ledger
        self.clock: Clock = service.ledger.clock
        self.datacenter = service.datacenter
        self._bays = {
            name: anyio.CapacityLimiter(bays) for name, bays in self.datacenter.locations.items()
        }
        #: The scopes in which each job's drives wait for a bay; a cancel cancels them.
        self._waiting: dict[str, set[anyio.CancelScope]] = {}
        self._running: set[str] = set()
        self._tg: TaskGroup | None = None
        self._resumed = anyio.Event()
        self._to_resume = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Resume every active job, then take on each job that ships, until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            active = [r for r in self.ledger if r.state in ACTIVE]
            transfers = sum(len(r.drives_in(DriveState.TRANSFERRING)) for r in active)
            self._to_resume = transfers
            if transfers == 0:
                self._resumed.set()
            for record in active:
                self._start(record.name)
            self.ledger.watch(self._on_change)
            task_status.started()
            await self._resumed.wait()  # every job stepped, every transfer holds its bay again
            log.info("jobs resumed", jobs=len(active), transfers=transfers)
            await anyio.sleep_forever()

    def _on_change(self, before: JobRecord | None, after: JobRecord | None) -> None:
        if after is None:
            return
        if after.state in ACTIVE and after.name not in self._running:
            self._start(after.name)
        if after.cancel_requested and not (before and before.cancel_requested):
            for scope in self._waiting.get(after.name, ()):
                scope.cancel()

    def _start(self, name: str) -> None:
        assert self._tg is not None
        self._running.add(name)
        self._tg.start_soon(self._job, name, name=f"job {name}")

    async def _job(self, name: str) -> None:
        with structlog.contextvars.bound_contextvars(job=name):
            try:
                while (record := self.ledger.get(name)) is not None:
                    state = record.state
                    if state is J.SHIPPING:
                        await self._arrive(record)
                    elif state in (J.RECEIVED, J.TRANSFERRING):
                        await self._copy(record)
                    elif state is J.PACKAGING:
                        await self._return(record)
                    else:
                        return
                    after = self.ledger.get(name)
                    if (
                        after is not None
                        and after.state is state
                        and after.sim.seq == record.sim.seq
                    ):
                        raise AssertionError(f"job {name} made no progress in {state}")
            finally:
                self._running.discard(name)

    async def _arrive(self, record: JobRecord) -> None:
        assert record.sim.due_at is not None
        await self.clock.sleep_until(record.sim.due_at)
        name = record.name
        now = self.clock.now()
        if record.sim.package_lost:
            self.ledger.update(name, lambda r: changes.lose_package(r, now))
            return
        if record.job.properties.job_type is JobType.EXPORT:
            package = record.job.properties.delivery_package
            count = 1 if package is None or package.drive_count is None else package.drive_count
            drives = self.service.planner.export_drives(name, count)
            capacity = record.sim.export_drive_bytes

            def receive_export(r: JobRecord) -> list[Event]:
                return changes.add_export_drives(r, drives, capacity) + changes.receive(r, now)

            self.ledger.update(name, receive_export)
        else:
            self.ledger.update(name, lambda r: changes.receive(r, now))

    async def _copy(self, record: JobRecord) -> None:
        name = record.name
        record = self.ledger.update(name, lambda r: changes.settle(r, self.clock.now()))
        if record.state not in (J.RECEIVED, J.TRANSFERRING):
            return
        bays = self._bays[record.job.location]
        self._waiting[name] = set()
        try:
            async with anyio.create_task_group() as tg:
                for drive in record.drives_in(DriveState.TRANSFERRING):
                    tg.start_soon(self._resume_drive, name, drive.drive_id, bays)
                for drive in record.drives_in(DriveState.RECEIVED):
                    tg.start_soon(self._drive, name, drive.drive_id, bays)
                for drive in record.drives_in(DriveState.SPECIFIED):
                    tg.start_soon(self._late_drive, name, drive.drive_id, bays)
        finally:
            del self._waiting[name]
        self.ledger.update(name, lambda r: changes.settle(r, self.clock.now()))

    async def _drive(self, name: str, drive_id: str, bays: anyio.CapacityLimiter) -> None:
        with structlog.contextvars.bound_contextvars(drive=drive_id):
            granted = False
            waiting = anyio.CancelScope()
            record = self.ledger.get(name)
            if record is None or record.cancel_requested:
                waiting.cancel()
            self._waiting[name].add(waiting)
            with waiting:
                await self._resumed.wait()
                await bays.acquire()
                granted = True
            self._waiting[name].discard(waiting)
            if not granted:
                log.info("drive skipped: cancel requested while it waited for a bay")
                return
            try:
                try:
                    self.ledger.update(
                        name, lambda r: changes.start_drive(r, drive_id, self.clock.now())
                    )
                except InvalidJobState:
                    log.info("drive not started: cancel requested as the bay came free")
                    return
                await self._transfer(name, drive_id)
            finally:
                bays.release()

    async def _late_drive(self, name: str, drive_id: str, bays: anyio.CapacityLimiter) -> None:
        """A drive that comes after its package: received when it arrives, then copied
        (or skipped, after a cancel) like the others."""
        record = self.ledger.get(name)
        assert record is not None
        arrives_at = record.sim.drives[drive_id].arrives_at
        assert arrives_at is not None
        await self.clock.sleep_until(arrives_at)
        with structlog.contextvars.bound_contextvars(drive=drive_id):
            now = self.clock.now()
            self.ledger.update(name, lambda r: changes.receive_late_drive(r, drive_id, now))
            log.info("late drive received")
        await self._drive(name, drive_id, bays)

    async def _resume_drive(self, name: str, drive_id: str, bays: anyio.CapacityLimiter) -> None:
        with structlog.contextvars.bound_contextvars(drive=drive_id):
            await bays.acquire()
            self._to_resume -= 1
            if self._to_resume <= 0:
                self._resumed.set()
            try:
                log.info("transfer resumed from checkpoint")
                await self._transfer(name, drive_id)
            finally:
                bays.release()

    async def _transfer(self, name: str, drive_id: str) -> None:
        """Copy one drive in checkpointed steps; finish it, with errors if its plan says so."""
        record = self.ledger.get(name)
        assert record is not None
        sim = record.sim.drives[drive_id]
        plan = sim.plan
        assert sim.started_at is not None
        dc = self.datacenter
        rate = dc.throughput * plan.speed
        nominal = plan.size_bytes / dc.throughput
        deadline = sim.started_at + max(
            nominal * dc.transfer_deadline_factor, dc.checkpoint_interval
        )
        fails = plan.fails_at is not None
        target = (
            math.floor(plan.size_bytes * plan.fails_at)
            if plan.fails_at is not None
            else plan.size_bytes
        )
        copied = record.drive(drive_id).bytes_succeeded or 0
        clock = self.clock
        with anyio.move_on_after(clock.loop_delay(deadline - clock.now())) as timer:
            while copied < target:
                left = (target - copied) / rate
                if left <= dc.checkpoint_interval:
                    await clock.sleep(left)
                    copied = target
                else:
                    await clock.sleep(dc.checkpoint_interval)
                    copied += int(dc.checkpoint_interval * rate)
                    step = functools.partial(changes.checkpoint, drive_id=drive_id, copied=copied)
                    self.ledger.update(name, step)
        error = None
        if timer.cancelled_caught:
            error = "the transfer exceeded its deadline"
        elif fails:
            error = "read errors on the drive; see the error log"
        now = clock.now()
        self.ledger.update(
            name, lambda r: changes.finish_drive(r, drive_id, now, copied=copied, error=error)
        )
        log.info("transfer finished", copied=copied, error=error)

    async def _return(self, record: JobRecord) -> None:
        assert record.sim.due_at is not None
        await self.clock.sleep_until(record.sim.due_at)
        name = record.name
        rng = self.service.planner.rng("return", name)
        tracking = f"{rng.randrange(10**11, 10**12)}"
        now = self.clock.now()
        ship_date = self.clock.isoformat(now)[:10]
        self.ledger.update(
            name,
            lambda r: changes.ship_back(r, now, tracking_number=tracking, ship_date=ship_date),
        )
