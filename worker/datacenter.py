"""The datacenter, composed once: every part of the worker over one store.

:class:`Datacenter` is the one place the worker's parts are wired together: the
:class:`~worker.ledger.Ledger` over the store, the :class:`~worker.service.JobService` and
its :class:`~worker.commands.CommandHandler`, the
:class:`~worker.pipeline.DatacenterPipeline`, the :class:`~worker.retention.RetentionSweeper`
and, while it runs, the :class:`~worker.relay.OutboxRelay` that drains the outbox into a
sink. The worker process, scenario runs, the demo, the tests and the benchmarks all build
it this way::

    datacenter = Datacenter(store, clock=clock, planner=planner, policy=policy)
    async with datacenter.running(bus):
        await datacenter.service.create("job1", body)

Running it starts the relay, resumes every job the datacenter holds and starts the
retention sweeper (over a store several workers share, a
:class:`~worker.leases.LeaseKeeper` does so for each location this worker holds);
leaving the block stops them all at once (:meth:`Datacenter.halt`) and drains what is
still pending into the sink. The sink is given to :meth:`running` rather
than to the constructor because the worker's sink, its MQTT link, serves the datacenter's
commands and keeps its metadata in the datacenter's ledger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskStatus

from worker.clock import Clock
from worker.commands import CommandHandler
from worker.config import Policy
from worker.leases import LeaseKeeper
from worker.ledger import Ledger
from worker.logs import sim_time
from worker.pipeline import DatacenterPipeline
from worker.plan import Planner
from worker.relay import BATCH, SHARED_BATCH, OutboxRelay
from worker.retention import RetentionSweeper
from worker.service import JobService
from worker.sink import StatusSink
from worker.store import JobStore, SharedStore

__all__ = ["Datacenter"]

#: The largest command payload the handler takes, in bytes, unless told otherwise.
COMMAND_LIMIT = 64 * 1024


class Datacenter:
    """A datacenter over ``store``: its jobs and every part that moves them.

    ``planner`` draws each job's fate from the run's seed and holds the datacenter's
    shape (locations and bays, throughput, delays); ``policy`` holds the service's rules
    (cancel window, retention, expiry). The store stays the caller's to close.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        clock: Clock,
        planner: Planner,
        policy: Policy | None = None,
        command_limit: int = COMMAND_LIMIT,
        lease: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.planner = planner
        self.policy = policy or Policy()
        sim_time.clock = clock  # log lines carry this datacenter's simulated time
        self.ledger = Ledger(store, clock)
        self.service = JobService(self.ledger, planner, policy=self.policy)
        self.commands = CommandHandler(self.service, max_bytes=command_limit)
        #: Over a store several workers share (``lease``: seconds of the database's clock a
        #: lease lasts), the leases on the locations this worker drives. Without a lease,
        #: the datacenter drives every location alone, as in a virtual-time run.
        self.leases = None
        if lease is not None:
            if not isinstance(store, SharedStore):
                raise TypeError(f"{type(store).__name__} cannot be shared between workers")
            self.leases = LeaseKeeper(self.ledger, store, planner, self.policy, lease=lease)
        self.relay: OutboxRelay | None = None
        self._scope: anyio.CancelScope | None = None
        #: Set once the relay, pipelines and sweepers have stopped, after halt().
        self._parts_stopped = anyio.Event()
        self._drained = False

    @asynccontextmanager
    async def running(
        self, sink: StatusSink, *, replay_tail: float = 0.0, announce: bool = False
    ) -> AsyncIterator[OutboxRelay]:
        """Run the datacenter, its status going to ``sink``; yields the outbox relay.

        ``replay_tail``: see :class:`~worker.relay.OutboxRelay`. ``announce``: the sink
        starts empty (a new in-memory bus), so every job's snapshot is announced again as
        soon as the relay runs, before any job moves.
        """
        relay = self.relay = OutboxRelay(
            self.ledger,
            sink,
            replay_tail=replay_tail,
            batch=BATCH if self.leases is None else SHARED_BATCH,
            announces=None if self.leases is None else self.leases.drives,
        )
        if self.leases is not None:
            self.leases.settle = relay.settled
        self._drained = False
        self.commands.open()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._run, relay, announce)
                yield relay
                self.halt()
            if not self._drained:
                await self.drain()
        except (anyio.get_cancelled_exc_class(), KeyboardInterrupt):
            self._stopped()
            raise
        self._stopped()

    def _stopped(self) -> None:
        """The store remembers when the datacenter stopped (or was cancelled), not only its
        last commit: a resumed clock starts there, so simulated time, and the log stamped
        with it, never goes back over what this run already lived. (After an error the
        store may be what failed: it is left alone.) Leases are given up, once the outbox
        has been drained, for other workers to take over at once."""
        self.ledger.note({})
        if self.leases is not None:
            self.leases.leave()

    async def _run(
        self, relay: OutboxRelay, announce: bool, *, task_status: TaskStatus[None]
    ) -> None:
        """The relay, then the pipeline and the retention sweeper (or the leases that run
        them location by location), until :meth:`halt`."""
        self._parts_stopped = anyio.Event()
        with anyio.CancelScope() as self._scope:
            try:
                async with anyio.create_task_group() as parts:
                    await parts.start(relay.run)
                    if announce:
                        relay.connected()
                    if self.leases is not None:
                        await parts.start(self.leases.run)
                    else:
                        pipeline = DatacenterPipeline(
                            self.ledger, self.planner.datacenter, self.planner
                        )
                        await parts.start(pipeline.run)
                        await parts.start(RetentionSweeper(self.ledger, self.policy).run)
                    task_status.started()
            finally:
                self._parts_stopped.set()

    def halt(self) -> None:
        """Stop at once: requests are refused (the worker is shutting down), no job moves
        any more and the relay stops; what is committed stays in the outbox for
        :meth:`drain`."""
        self.commands.close()
        if self._scope is not None:
            self._scope.cancel()

    async def drain(self) -> int:
        """Deliver what the outbox holds into the sink; returns how many messages went.
        Bound it with a timeout where the sink may be down (a broker): what is left goes
        out the next time the datacenter runs."""
        assert self.relay is not None, "drain() belongs to a running datacenter"
        self._drained = True
        if self._scope is not None and self._scope.cancel_called:
            # Halted: no step may commit after the last read of the outbox.
            await self._parts_stopped.wait()
        self.ledger.flush()
        return await self.relay.drain()
