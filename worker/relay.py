"""The outbox relay: committed status messages into a sink, in commit order.

The relay is the only reader of the outbox: it hands committed messages to a sink in
commit order and marks them delivered once the sink has taken them. After a crash,
whatever was committed but not delivered goes out again, so a sink sees every message at
least once, in ``seq`` order per job.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from worker.errors import PublishError, StoreError
from worker.ledger import Ledger
from worker.logs import get_logger
from worker.record import JobRecord
from worker.sink import ImmediateSink, StatusSink
from worker.status import StatusMessage, snapshot_messages
from worker.store import OutboxEntry, SharedStore

__all__ = ["BATCH", "SHARED_BATCH", "OutboxRelay"]

log = get_logger("drivesim.outbox")

#: How many outbox entries the relay reads at a time.
BATCH = 2000
#: The same from a store shared over the network: each read and mark is a round trip, and
#: the worker's loop waits for it and for the rows to be decoded (2,000 entries held it
#: 30 to 40 ms under load; 250, a few).
SHARED_BATCH = 250


class OutboxRelay:
    """Drains the ledger's outbox into a sink, in commit order, acknowledging as it goes.

    ``replay_tail``: a broker without persistence that crashes loses what it had
    acknowledged but not yet passed on. When the sink reports the connection lost
    (:meth:`connection_lost`), everything acknowledged in the last ``replay_tail`` seconds
    is sent again after the reconnect. Consumers drop the duplicates by ``(job, seq)``.

    ``overlap``: hand the next batch over while the sink still awaits acknowledgements of
    the current one (see :meth:`drain`). A sink that holds a batch as soon as it is given,
    such as :class:`MemoryBus`, has nothing to overlap: ``overlap=False`` sends batches in
    turn, without a task per batch.

    An :class:`ImmediateSink` (the :class:`MemoryBus`) is not drained by a task at all:
    the running relay delivers the messages of a burst of commits in one loop callback,
    right after the step that made them (a virtual-time run commits a change every few
    microseconds; a task woken per commit cost more than the commit). Never inside a
    commit: the step that committed finishes first (a scripted action records its answer
    before anyone sees its effect, so a worker killed by someone who saw it loses nothing).
    """

    def __init__(
        self,
        ledger: Ledger,
        sink: StatusSink,
        *,
        batch: int = BATCH,
        replay_tail: float = 0.0,
        overlap: bool = True,
        announces: Callable[[JobRecord], bool] | None = None,
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.batch = batch
        self.replay_tail = replay_tail
        self.overlap = overlap
        #: Which jobs this relay announces again (workers sharing a store: those it drives).
        self.announces = announces
        self._recent: deque[tuple[float, list[int]]] = deque()
        self._reannounce = False
        self._immediate = sink if isinstance(sink, ImmediateSink) else None
        self._scheduled = False
        #: Batches handed to the sink and not yet settled.
        self._flights: set[_Flight] = set()

    def connected(self) -> None:
        """The sink (re)connected: once the backlog is out, announce every job again.

        A broker restarted without persistence has lost its retained snapshots; this
        restores them. The snapshots go after the backlog, so none is older than one
        already published.
        """
        self._reannounce = True
        self.ledger.wake_outbox()

    def _ack(self, ids: list[int]) -> None:
        self.ledger.store.ack(ids)
        if self.replay_tail > 0 and ids:
            now = anyio.current_time()
            self._recent.append((now, ids))
            while self._recent and self._recent[0][0] < now - self.replay_tail:
                self._recent.popleft()

    def connection_lost(self) -> None:
        """Requeue what the broker acknowledged just before the connection went."""
        horizon = anyio.current_time() - self.replay_tail
        ids = sorted(i for stamp, batch in self._recent if stamp >= horizon for i in batch)
        self._recent.clear()
        if ids:
            self.ledger.store.requeue(ids)
            self.ledger.wake_outbox()
            log.info("outbox tail requeued after a lost connection", messages=len(ids))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if self._immediate is not None:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()  # the relay's own: no job bound

            def hook() -> None:
                if not self._scheduled:
                    self._scheduled = True
                    loop.call_soon(self._deliver_scheduled, context=context)

            self.ledger.on_outbox(hook)
            try:
                self._deliver_pending()
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self.ledger.off_outbox(hook)
        task_status.started()
        while True:
            try:
                await self.drain()
            except StoreError as exc:
                if not isinstance(self.ledger.store, SharedStore):
                    raise  # a file that fails is not coming back by itself
                # A database restarting or out of reach: the entries wait in it.
                log.warning("outbox not read; trying again", error=str(exc))
                await anyio.sleep(1.0)
                continue
            await self.ledger.wait_for_outbox()

    def _deliver_scheduled(self) -> None:
        self._scheduled = False
        self._deliver_pending()

    def _deliver_pending(self) -> int:
        """Everything pending, and the snapshots if asked for, into the immediate sink."""
        sink = self._immediate
        assert sink is not None
        sent = 0
        store = self.ledger.store
        while entries := store.pending(self.batch):  # a subscriber's commits included
            sink.deliver([e.message for e in entries])
            self._ack([e.id for e in entries])
            sent += len(entries)
        if self._reannounce:
            messages = self._snapshots()
            sink.deliver(messages)
            self._reannounce = False
            sent += len(messages)
            log.info("every job announced again", messages=len(messages))
        return sent

    async def drain(self) -> int:
        """Deliver everything pending now; returns how many messages went out.

        With ``overlap``, two batches are with the sink at a time: the next one is handed
        over while the current one awaits its acknowledgements, so the sink never runs dry
        between batches (an MQTT link would otherwise idle for a round trip, or for a
        delayed TCP ACK, at the end of every batch). Each batch is acknowledged as soon as
        the sink took it.
        """
        if self._immediate is not None:
            return self._deliver_pending()
        sent = await (self._drain_overlapped() if self.overlap else self._drain_in_turn())
        if self._reannounce:
            sent += await self._announce_all()
        return sent

    async def _drain_in_turn(self) -> int:
        sent = 0
        while True:
            await self.sink.ready()  # before the fetch: see _drain_overlapped
            entries = self.ledger.store.pending(self.batch)
            if not entries:
                return sent
            try:
                await self.sink.publish([e.message for e in entries])
            except PublishError as exc:
                sent += self._interrupted(entries, exc)
                continue
            self._ack([e.id for e in entries])
            sent += len(entries)

    async def _drain_overlapped(self) -> int:
        sent = 0
        flights: deque[_Flight] = deque()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            while True:
                if not flights:
                    # Fetch only once the sink is ready, so a batch read before a lost
                    # connection is never sent after the tail requeued by that loss: order
                    # is commit order.
                    await self.sink.ready()
                    entries = self.ledger.store.pending(self.batch)
                    if not entries:
                        break
                    flights.append(self._start(tg, entries))
                    # Let the publish start, so that the sink holds this batch before the
                    # next one is handed over.
                    await anyio.lowlevel.checkpoint()
                flight = flights[0]
                if len(flights) == 1 and not flight.done.is_set():
                    # Still under way, so the connection has not dropped since (the sink
                    # fails every batch it holds when it does): read on from the last entry
                    # handed over, and queue the next batch behind this one.
                    entries = self.ledger.store.pending_after(flight.entries[-1].id, self.batch)
                    if entries:
                        flights.append(self._start(tg, entries))
                await flight.done.wait()
                flights.popleft()
                if flight.error is None:
                    sent += len(flight.entries)  # acknowledged by its task already
                    continue
                # The batch failed, so the one behind it does too (or is cancelled): settle
                # both in order, then start over from the oldest pending entry.
                settled = [flight, *flights]
                flights.clear()
                for other in settled[1:]:
                    if not other.done.is_set():
                        other.scope.cancel()
                for each in settled:
                    await each.done.wait()
                    if each.error is None:
                        sent += len(each.entries)
                    elif isinstance(each.error, PublishError):
                        sent += self._interrupted(each.entries, each.error)
                    elif failure is None and not each.cancelled:
                        failure = each.error
                if failure is not None:
                    break  # raised once out of the task group, unwrapped
        if failure is not None:
            raise failure
        return sent

    def _start(self, tg: TaskGroup, entries: list[OutboxEntry]) -> _Flight:
        flight = _Flight(entries)
        self._flights.add(flight)
        tg.start_soon(self._publish, flight)
        return flight

    async def settled(self) -> None:
        """Return once every batch handed to the sink before the call has been settled
        (published or failed): a worker giving a location up waits for this, so that no
        message of its goes out after the next holder's."""
        for flight in list(self._flights):
            await flight.done.wait()

    async def _publish(self, flight: _Flight) -> None:
        try:
            with flight.scope:
                await self.sink.publish([e.message for e in flight.entries])
                # Acknowledged at once, with no await in between: a drain cancelled from
                # here on does not send the batch again.
                self._ack([e.id for e in flight.entries])
            if flight.scope.cancelled_caught:
                flight.cancelled = True
                flight.error = PublishError("cancelled", delivered=[])
        except Exception as exc:  # the drain deals with it, in batch order
            flight.error = exc
        finally:
            self._flights.discard(flight)
            flight.done.set()

    def _interrupted(self, entries: list[OutboxEntry], error: PublishError) -> int:
        """Mark what the sink acknowledged of a broken-off batch; the rest goes again, in
        order, next round. The batch broke off because the connection went, after
        connection_lost() requeued the tail: what it had acknowledged belongs to that tail
        too."""
        delivered = [entries[i].id for i in error.delivered]
        self._ack(delivered)
        if self.replay_tail > 0 and delivered:
            self.ledger.store.requeue(delivered)
        log.info("outbox batch interrupted", delivered=len(delivered), error=str(error))
        return len(delivered)

    def _snapshots(self) -> list[StatusMessage]:
        self.ledger.flush()  # announce only what is committed
        clock = self.ledger.clock
        return [
            message
            for record in self.ledger
            if self.announces is None or self.announces(record)
            for message in snapshot_messages(
                record, sim_time=clock.isoformat(record.sim.changed_at)
            )
        ]

    async def _announce_all(self) -> int:
        messages = self._snapshots()
        for start in range(0, len(messages), self.batch):
            try:
                await self.sink.publish(messages[start : start + self.batch])
            except PublishError:
                return start  # still flagged: announced again after the next connect
        self._reannounce = False
        log.info("every job announced again", messages=len(messages))
        return len(messages)


class _Flight:
    """A batch of outbox entries with the sink, and how its publish ended."""

    __slots__ = ("cancelled", "done", "entries", "error", "scope")

    def __init__(self, entries: list[OutboxEntry]) -> None:
        self.entries = entries
        self.done = anyio.Event()
        self.scope = anyio.CancelScope()
        self.error: Exception | None = None
        self.cancelled = False
