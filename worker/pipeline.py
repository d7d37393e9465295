"""The datacenter: packages arrive, bays copy drives, drives go back.

The pipeline is timers on the simulated clock, not a task per job or drive: an active job
has at most one timer for its next step (its package's arrival, its drives' return), and
each drive in a bay one for its next checkpoint or its end. Every step is a commit through
the ledger. What comes next is read from the committed record, whoever committed it: the
pipeline watches the ledger, so a job a customer ships, or a cancel that leaves nothing
to copy, is taken up exactly as the pipeline's own changes are.

Each location's bays are a count and a queue of the drives waiting for one, first come
first served (:mod:`worker.bays`). Best-effort cancel: a bay that comes free goes to the
next waiting drive, and whether that drive starts is decided by
:func:`worker.changes.start_drive`, committed in the same callback as the bay is granted:
a cancel committed first means the drive is skipped and the bay goes on to the next, a
start committed first means it runs on. There is no third outcome. A drive already
copying is never interrupted by a cancel; it finishes, bounded only by its own deadline.

Everything needed to resume is in the store: due times, each drive's last checkpoint. A
restarted worker puts every interrupted transfer back in a bay first, then takes every
job up where its record says it was.

The pipeline drives the jobs of the locations its ``config`` names. Where several workers
share a store, each location it holds gets a pipeline of its own, whose every commit is
fenced by the location's lease. There the ledger commits a turn's changes together after
the steps that made them; a change that could not be committed (another worker's customer
request changed the job first, the lease lapsed, the database went) is undone, and the
pipeline stops so that its location is taken up again from the store, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import assert_never

import anyio
import structlog
from anyio.abc import TaskStatus

from worker import changes, states
from worker.bays import Bays, Transfer
from worker.config import DatacenterConfig
from worker.errors import InvalidJobState, StoreError
from worker.ledger import Change, Ledger
from worker.logs import get_logger
from worker.model import JobType
from worker.plan import Planner
from worker.record import JobRecord
from worker.states import Step
from worker.status import Event
from worker.store import Lease

__all__ = ["DatacenterPipeline"]

log = get_logger("drivesim.pipeline")


def _datacenter_step(record: JobRecord) -> Step | None:
    """The datacenter's step for the job, or None when it has nothing to do with it (the
    job waits for its customer, or has ended)."""
    step = states.step(record.state)
    match step:
        case Step.ARRIVAL | Step.COPY | Step.RETURN:
            return step
        case Step.CUSTOMER | Step.RETENTION:
            return None
        case _:
            assert_never(step)


class DatacenterPipeline:
    """Runs every job of the ledger that is in the datacenter through its steps: the
    datacenter ``config`` says how many bays and how fast, the ``planner`` draws what
    the datacenter makes up (an export's drives, a return's tracking number)."""

    def __init__(
        self,
        ledger: Ledger,
        config: DatacenterConfig,
        planner: Planner,
        *,
        fence: Lease | None = None,
    ) -> None:
        self.ledger = ledger
        self.fence = fence
        self.clock = ledger.clock
        self.config = config
        self.planner = planner
        self._bays = {name: Bays(n) for name, n in config.locations.items()}
        #: The step each active job's next move is arranged for.
        self._steps: dict[str, Step] = {}
        #: Jobs whose next move is to be arranged once the current commit is over.
        self._soon: set[str] = set()
        #: Each job's timer (arrival, return) and each drive's (late arrival, transfer).
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._late: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._transfers: dict[tuple[str, str], Transfer] = {}
        #: Each job's log context (``job`` bound), in which its timers run.
        self._contexts: dict[str, contextvars.Context] = {}
        self._base = contextvars.Context()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: Exception | None = None
        #: Between run()'s start and its end: a step already queued when the pipeline
        #: stopped (a listener's call_soon) finds it stopped and does nothing.
        self._running = False
        self._failed = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Resume every active job, then take on each job that ships, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._base = contextvars.copy_context()
        self.ledger.watch(self._on_change)
        self.ledger.on_failure(self._not_committed)
        try:
            active = [r for r in self.ledger if self._ours(r) and _datacenter_step(r) is not None]
            # Interrupted transfers first: they get their bays back before any new drive.
            resumed = 0
            for record in active:
                for drive in record.drives_in(states.COPYING_DRIVES):
                    self._take_bay(record.name, drive.drive_id, resumed=True)
                    resumed += 1
            for record in active:
                self._context(record.name).run(self._call, self._advance, record.name)
            self._raise_failure()
            task_status.started()
            log.info("jobs resumed", jobs=len(active), transfers=resumed)
            await self._failed.wait()
            self._raise_failure()
        finally:
            self._running = False
            self.ledger.unwatch(self._on_change)
            self.ledger.off_failure(self._not_committed)
            for timer in [
                *self._timers.values(),
                *self._late.values(),
                *(t.timer for t in self._transfers.values() if t.timer is not None),
            ]:
                timer.cancel()

    # -- scheduling ----------------------------------------------------------------------

    def _on_change(self, before: JobRecord | None, after: JobRecord | None) -> None:
        """Arrange a job's next move when it enters a step, after the commit is over."""
        record = after or before
        assert record is not None
        if not self._ours(record):
            return
        name = record.name
        step = None if after is None else _datacenter_step(after)
        if step is None:
            self._forget(name)
        elif self._steps.get(name) is not step and name not in self._soon:
            self._soon.add(name)
            assert self._loop is not None
            self._loop.call_soon(self._call, self._advance, name, context=self._context(name))
        elif step is Step.COPY and before is not None and not before.cancel_requested:
            assert after is not None
            if after.cancel_requested:  # nothing new starts: the step may be over now
                assert self._loop is not None
                self._loop.call_soon(self._call, self._settle, name, context=self._context(name))

    def _ours(self, record: JobRecord) -> bool:
        return record.job.location in self._bays

    def _update(self, name: str, change: Change) -> JobRecord:
        """Make a step of the job under the pipeline's fence."""
        return self.ledger.update(name, change, fence=self.fence)

    def _not_committed(self, error: StoreError, jobs: list[JobRecord]) -> None:
        """Changes of jobs of ours were undone (on a shared store, committed after the step
        that made them): what the pipeline arranged on them no longer holds, so it stops
        with the error, and its location is taken up again from the store."""
        if self._failure is None and any(self._ours(job) for job in jobs):
            self._failure = error
            self._failed.set()

    def _advance(self, name: str) -> None:
        self._soon.discard(name)
        record = self.ledger.get(name)
        step = None if record is None else _datacenter_step(record)
        if record is None or step is None:
            self._forget(name)
            return
        if self._steps.get(name) is step:
            return
        self._steps[name] = step
        match step:
            case Step.ARRIVAL:
                self._timers[name] = self._at(record, self._arrive)
            case Step.COPY:
                self._copy(record)
            case Step.RETURN:
                self._timers[name] = self._at(record, self._return)
            case _:
                raise AssertionError(f"the pipeline has no {step} step")

    def _at(self, record: JobRecord, step: Callable[[str], None]) -> asyncio.TimerHandle:
        """The job's timer for ``step``, due when its record says."""
        assert record.sim.due_at is not None
        name = record.name
        return self.clock.call_at(
            record.sim.due_at, self._call, step, name, context=self._context(name)
        )

    def _call(self, step: Callable[..., None], *args: object) -> None:
        """Run a step; the first one to fail stops the pipeline with its error."""
        if self._failure is not None or not self._running:
            return
        try:
            step(*args)
        except Exception as exc:
            if self._failure is None:  # a step may fail on what an undone change left
                self._failure = exc
            self._failed.set()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _context(self, name: str) -> contextvars.Context:
        context = self._contexts.get(name)
        if context is None:
            context = self._contexts[name] = self._base.copy()
            context.run(structlog.contextvars.bind_contextvars, job=name)
        return context

    def _drive_context(self, name: str, drive_id: str) -> contextvars.Context:
        context = self._context(name).copy()
        context.run(structlog.contextvars.bind_contextvars, drive=drive_id)
        return context

    def _forget(self, name: str) -> None:
        """The job left the datacenter: nothing of it is scheduled any more."""
        self._steps.pop(name, None)
        self._contexts.pop(name, None)
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # -- the steps -----------------------------------------------------------------------

    def _arrive(self, name: str) -> None:
        del self._timers[name]
        record = self.ledger.get(name)
        assert record is not None
        now = self.clock.now()
        if record.sim.package_lost:
            self._update(name, lambda r: changes.lose_package(r, now))
            return
        if record.job.properties.job_type is JobType.EXPORT:
            package = record.job.properties.delivery_package
            count = 1 if package is None or package.drive_count is None else package.drive_count
            drives = self.planner.export_drives(name, count)
            capacity = record.sim.export_drive_bytes

            def receive_export(r: JobRecord) -> list[Event]:
                return changes.add_export_drives(r, drives, capacity) + changes.receive(r, now)

            self._update(name, receive_export)
        else:
            self._update(name, lambda r: changes.receive(r, now))

    def _copy(self, record: JobRecord) -> None:
        """The copy step begins: every drive that came waits for a bay, late ones are due."""
        name = record.name
        record = self._update(name, lambda r: changes.settle(r, self.clock.now()))
        if states.step(record.state) is not Step.COPY:
            return  # nothing to copy: the ledger's listener takes it on to Packaging
        if not record.cancel_requested:
            for drive in record.drives_in(states.WAITING_DRIVES):
                self._take_bay(name, drive.drive_id)
        for drive in changes.late_drives(record):
            arrives_at = record.sim.drives[drive.drive_id].arrives_at
            assert arrives_at is not None
            self._late[name, drive.drive_id] = self.clock.call_at(
                arrives_at,
                self._call,
                self._late_drive,
                name,
                drive.drive_id,
                context=self._drive_context(name, drive.drive_id),
            )

    def _settle(self, name: str) -> None:
        """A cancel came after the pipeline arranged the job's copy step (judged on the job
        before it): whatever is left to start will not, so the step may be over."""
        record = self.ledger.get(name)
        if record is not None and _datacenter_step(record) is Step.COPY:
            self._update(name, lambda r: changes.settle(r, self.clock.now()))

    def _late_drive(self, name: str, drive_id: str) -> None:
        """A drive that comes after its package: received when it arrives, then copied
        (or skipped, after a cancel) like the others."""
        del self._late[name, drive_id]
        now = self.clock.now()
        record = self._update(name, lambda r: changes.receive_late_drive(r, drive_id, now))
        log.info("late drive received")
        if record.cancel_requested:
            self._update(name, lambda r: changes.settle(r, now))
        else:
            self._take_bay(name, drive_id)

    def _take_bay(self, name: str, drive_id: str, *, resumed: bool = False) -> None:
        """A free bay of the job's location, or a place in the queue for one."""
        record = self.ledger.get(name)
        assert record is not None
        bays = self._bays[record.job.location]
        if bays.free > 0:
            bays.free -= 1
            if not self._start(bays, name, drive_id, resumed=resumed):
                self._release(bays)
        else:
            bays.waiting.append((name, drive_id, resumed))

    def _release(self, bays: Bays) -> None:
        """A bay came free: the next waiting drive that may start takes it."""
        while bays.waiting:
            name, drive_id, resumed = bays.waiting.popleft()
            if self._start(bays, name, drive_id, resumed=resumed):
                return
        bays.free += 1

    def _start(self, bays: Bays, name: str, drive_id: str, *, resumed: bool) -> bool:
        """Start (or resume) copying a drive in a bay just granted; False if it may not."""
        context = self._drive_context(name, drive_id)
        started: bool = context.run(self._begin, bays, name, drive_id, resumed, context)
        return started

    def _begin(
        self, bays: Bays, name: str, drive_id: str, resumed: bool, context: contextvars.Context
    ) -> bool:
        if resumed:
            log.info("transfer resumed from checkpoint")
        else:
            now = self.clock.now()
            try:
                self._update(name, lambda r: changes.start_drive(r, drive_id, now))
            except InvalidJobState:
                log.info("drive not started: cancel requested before its bay came free")
                return False
        record = self.ledger.get(name)
        assert record is not None
        sim = record.sim.drives[drive_id]
        assert sim.started_at is not None
        transfer = Transfer(
            name,
            drive_id,
            bays,
            context,
            plan=sim.plan,
            config=self.config,
            started_at=sim.started_at,
            copied=record.drive(drive_id).bytes_succeeded or 0,
        )
        self._transfers[name, drive_id] = transfer
        self._schedule(transfer)
        return True

    def _schedule(self, transfer: Transfer) -> None:
        """The timer of the transfer's next step: a checkpoint, the end, or the deadline."""
        transfer.timer = self.clock.call_at(
            transfer.next_step(self.clock.now(), self.config.checkpoint_interval),
            self._call,
            self._step,
            transfer,
            context=transfer.context,
        )

    def _step(self, transfer: Transfer) -> None:
        name, drive_id = transfer.name, transfer.drive_id
        if not transfer.cut and not transfer.last:
            transfer.copied += int(self.config.checkpoint_interval * transfer.rate)
            copied = transfer.copied
            self._update(name, lambda r: changes.checkpoint(r, drive_id, copied))
            self._schedule(transfer)
            return
        error = None
        if transfer.cut:
            error = "the transfer exceeded its deadline"
        else:
            transfer.copied = transfer.target
            if transfer.fails:
                error = "read errors on the drive; see the error log"
        copied, now = transfer.copied, self.clock.now()
        self._update(
            name, lambda r: changes.finish_drive(r, drive_id, now, copied=copied, error=error)
        )
        log.info("transfer finished", copied=copied, error=error)
        del self._transfers[name, drive_id]
        transfer.timer = None  # it holds the transfer: leave no cycle for the collector
        self._release(transfer.bays)

    def _return(self, name: str) -> None:
        del self._timers[name]
        rng = self.planner.rng("return", name)
        tracking = f"{rng.randrange(10**11, 10**12)}"
        now = self.clock.now()
        ship_date = self.clock.isoformat(now)[:10]
        self._update(
            name,
            lambda r: changes.ship_back(r, now, tracking_number=tracking, ship_date=ship_date),
        )
