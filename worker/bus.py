"""Where status goes: the sink protocol, an in-memory bus, and the outbox relay.

The relay is the only reader of the outbox: it hands committed messages to a sink in
commit order and marks them delivered once the sink has taken them. After a crash,
whatever was committed but not delivered goes out again, so a sink sees every message at
least once, in ``seq`` order per job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

from worker.errors import PublishError
from worker.ledger import Ledger
from worker.status import StatusMessage, snapshot_messages

__all__ = ["MemoryBus", "OutboxRelay", "StatusSink"]

log = structlog.get_logger("drivesim.outbox")


class StatusSink(Protocol):
    """Something that publishes status messages (an MQTT broker, a list in memory)."""

    async def ready(self) -> None:
        """Return once the sink can take messages (at once for an in-memory sink)."""
        ...

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        """Publish ``messages`` in order; return once the sink holds them all.

        Raise :class:`~worker.errors.PublishError` naming the delivered ones if only some
        made it (or none, when the sink is not ready).
        """
        ...


class MemoryBus:
    """A broker in memory: every message in order, plus the retained map."""

    def __init__(self) -> None:
        self.messages: list[StatusMessage] = []
        self.retained: dict[str, bytes] = {}
        self._subscribers: list[Callable[[StatusMessage], None]] = []

    async def ready(self) -> None:
        pass

    def subscribe(self, callback: Callable[[StatusMessage], None]) -> None:
        """Call ``callback`` with each message as it is published."""
        self._subscribers.append(callback)

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        for message in messages:
            self.messages.append(message)
            if message.retain:
                if message.payload:
                    self.retained[message.topic] = message.payload
                else:
                    self.retained.pop(message.topic, None)
            for callback in self._subscribers:
                callback(message)


class OutboxRelay:
    """Drains the ledger's outbox into a sink, in commit order, acknowledging as it goes.

    ``replay_tail``: a broker without persistence that crashes loses what it had
    acknowledged but not yet passed on. When the sink reports the connection lost
    (:meth:`connection_lost`), everything acknowledged in the last ``replay_tail`` seconds
    is sent again after the reconnect. Consumers drop the duplicates by ``(job, seq)``.
    """

    def __init__(
        self, ledger: Ledger, sink: StatusSink, *, batch: int = 2000, replay_tail: float = 0.0
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.batch = batch
        self.replay_tail = replay_tail
        self._recent: deque[tuple[float, list[int]]] = deque()
        self._reannounce = False

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
        task_status.started()
        while True:
            await self.drain()
            await self.ledger.wait_for_outbox()

    async def drain(self) -> int:
        """Deliver everything pending now; returns how many messages went out."""
        store = self.ledger.store
        sent = 0
        while True:
            # Fetch only once the sink is ready, so a batch read before a lost connection
            # is never sent after the tail requeued by that loss: order is commit order.
            await self.sink.ready()
            entries = store.pending(self.batch)
            if not entries:
                break
            try:
                await self.sink.publish([e.message for e in entries])
            except PublishError as exc:
                # Mark what the sink acknowledged; the rest goes again, in order, next round.
                # The batch broke off because the connection went, after connection_lost()
                # requeued the tail: what it had acknowledged belongs to that tail too.
                delivered = [entries[i].id for i in exc.delivered]
                self._ack(delivered)
                if self.replay_tail > 0 and delivered:
                    self.ledger.store.requeue(delivered)
                sent += len(exc.delivered)
                log.info("outbox batch interrupted", delivered=len(exc.delivered))
                continue
            self._ack([e.id for e in entries])
            sent += len(entries)
        if self._reannounce:
            sent += await self._announce_all()
        return sent

    async def _announce_all(self) -> int:
        clock = self.ledger.clock
        messages = [
            message
            for record in self.ledger
            for message in snapshot_messages(
                record, sim_time=clock.isoformat(record.sim.changed_at)
            )
        ]
        for start in range(0, len(messages), self.batch):
            try:
                await self.sink.publish(messages[start : start + self.batch])
            except PublishError:
                return start  # still flagged: announced again after the next connect
        self._reannounce = False
        log.info("every job announced again", messages=len(messages))
        return len(messages)
