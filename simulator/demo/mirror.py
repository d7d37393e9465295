"""The demo's messages on a real broker: each status message of the in-process story is
published as the worker publishes it.

The story runs in-process on the runner's in-memory bus; this mirror hands every message
it produces to a :class:`~worker.mqtt.MqttLink`, the worker's own connection: the same
topics, QoS, retain flags and payloads, ``epoch`` in the retained snapshots, the worker's
``online``/``offline`` status (worker id ``demo``) with its Last Will, reconnects with
backoff. Messages are sent in order, and again if a connection drops before the broker
acknowledged them. The link keeps its own bookkeeping (epoch, protocol version) in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from worker import MemoryMetadata, PublishError, StatusMessage, get_logger
from worker.mqtt import BrokerConfig, MqttLink

__all__ = ["BrokerMirror"]

log = get_logger("drivesim.demo")

BATCH = 200
#: Seconds a clean disconnect may take.
CLOSE_TIMEOUT = 5.0


class BrokerMirror:
    """Publishes status messages to a broker in the order they are put."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        on_published: Callable[[StatusMessage], None] | None = None,
        worker_id: str = "demo",
    ) -> None:
        self.on_published = on_published
        self.link = MqttLink(broker, worker_id=worker_id, meta=MemoryMetadata())
        self._queue: deque[StatusMessage] = deque()
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, message: StatusMessage) -> None:
        """Queue ``message``; it goes out as soon as the broker takes it."""
        self._queue.append(message)
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up and publish what is queued, until cancelled."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.link.run)
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await self._drain()
                if not self._queue:
                    self._idle.set()

    async def _drain(self) -> None:
        while self._queue:
            await self.link.ready()
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            try:
                await self.link.publish(batch)
                delivered = list(range(len(batch)))
            except PublishError as exc:
                delivered = exc.delivered
                log.info("mirror batch interrupted", delivered=len(delivered))
            for index in sorted(delivered, reverse=True):
                del self._queue[index]
            if self.on_published is not None:
                for index in delivered:
                    self.on_published(batch[index])

    async def flush(self) -> None:
        """Return once everything queued was published."""
        await self._idle.wait()

    async def close(self) -> None:
        """Publish ``offline`` and disconnect (within :data:`CLOSE_TIMEOUT`)."""
        await self.link.stop()
        with anyio.move_on_after(CLOSE_TIMEOUT):
            await self.link.closed.wait()
