"""The worker's connection to an MQTT broker, kept up for as long as it runs.

aiomqtt 2.x does not reconnect by itself, so :class:`MqttLink` does: capped exponential
backoff with jitter, and on every connect it

1. raises the ``epoch`` (persisted, so it rises across restarts too),
2. sets a Last Will ``lost`` on the worker's status topic (:mod:`worker.mqtt.liveness`),
3. publishes ``online`` (retained) and subscribes to the command topics again
   (:mod:`worker.mqtt.intake`),
4. lets the outbox relay resume: whatever was committed but not acknowledged goes out again,
   oldest first, so each job's messages arrive in ``seq`` order.

As a :class:`~worker.sink.StatusSink` it publishes through a window of QoS 1 publishes
(:mod:`worker.mqtt.publisher`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import aiomqtt
import anyio
from anyio.abc import TaskStatus

from worker.commands import CommandHandler
from worker.logs import get_logger
from worker.metadata import Metadata
from worker.mqtt.broker import BrokerConfig, Version, connected, make_client
from worker.mqtt.intake import CommandIntake
from worker.mqtt.liveness import Liveness
from worker.mqtt.publisher import WindowedPublisher
from worker.status import StatusMessage

__all__ = ["Backoff", "MqttLink"]

EPOCH_KEY = "mqtt/epoch"
VERSION_KEY = "mqtt/version"

log = get_logger("drivesim.mqtt")


class Backoff:
    """Capped exponential backoff with full jitter in its upper half."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap = first, cap
        self.attempt = 0
        self._random = random.Random()

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2**self.attempt)
        self.attempt += 1
        return float(delay * self._random.uniform(0.5, 1.0))


class MqttLink:
    """One worker's connection to the broker, kept up until :meth:`stop`.

    ``meta`` keeps the link's epoch and the protocol version each broker took across
    restarts; ``commands``, if given, are served on the command topics, and ``claim``,
    given where workers share a store, makes each command served by one of them
    (:class:`~worker.mqtt.intake.CommandIntake`).
    """

    def __init__(
        self,
        config: BrokerConfig,
        *,
        worker_id: str,
        meta: Metadata,
        window: int = 100,
        will_delay: int = 5,
        commands: CommandHandler | None = None,
        claim: Callable[[str], bool] | None = None,
        on_connected: Callable[[], None] | None = None,
        on_connection_lost: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.meta = meta
        self.window = window
        self.on_connected = on_connected
        self.on_connection_lost = on_connection_lost
        self.liveness = Liveness(worker_id, will_delay=will_delay)
        self._intake = None if commands is None else CommandIntake(commands, claim=claim)
        self._publisher = WindowedPublisher(window=window)
        self.version: Version = "3.1.1" if config.protocol == "3.1.1" else "5"
        #: The version that worked with this broker before (also in an earlier run).
        self._version_key = f"{VERSION_KEY}/{config.url}"
        known = meta.get_meta(self._version_key)
        if known in (b"5", b"3.1.1") and config.protocol == "auto":
            self.version = "5" if known == b"5" else "3.1.1"
        self._confirmed = known is not None
        # Each worker's own epoch (workers may share a store); the key of one worker
        # per store before is read once.
        self._epoch_key = f"{EPOCH_KEY}/{worker_id}"
        self.epoch = int(meta.get_meta(self._epoch_key) or meta.get_meta(EPOCH_KEY) or 0)
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._connected = anyio.Event()
        self._stopping = anyio.Event()
        #: Set once the run loop has returned after :meth:`stop`.
        self.closed = anyio.Event()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def ready(self) -> None:
        """Return once connected."""
        await self._connected.wait()

    # -- the connection loop -------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, reconnect; ``started`` is signalled once the loop is running."""
        backoff = Backoff()
        task_status.started()
        try:
            while not self._stopping.is_set():
                try:
                    await self._session(backoff)
                except* aiomqtt.MqttError as group:
                    # The session's task group wraps what the reader or a publish raised.
                    error = str(_innermost(group))
                    log.warning("broker connection lost or refused", error=error)
                if self._stopping.is_set():
                    break
                await anyio.sleep(backoff.next())
        finally:
            self.closed.set()

    async def _session(self, backoff: Backoff) -> None:
        self.epoch += 1
        self.meta.note({self._epoch_key: str(self.epoch).encode()})

        def make(version: Version) -> aiomqtt.Client:
            # The publisher keeps the window of status messages itself; paho sends
            # whatever it is handed at once, as its own in-flight queue rescans every
            # message in flight on each PUBACK.
            client = make_client(
                self.config,
                version=version,
                identifier=f"drivesim-worker-{self.worker_id}",
                will=self.liveness.will(version, self.epoch),
                max_inflight=0,
            )
            client.pending_calls_threshold = 10 * self.window
            return client

        # Once a version has worked with this broker (in this run or an earlier one), a
        # failed connect means the broker is in trouble, not that it forgot its protocol.
        fallback = not self._confirmed
        async with connected(self.config, make, prefer=self.version, fallback=fallback) as (
            client,
            version,
        ):
            if not self._confirmed:
                self._confirmed = True
                self.meta.note({self._version_key: version.encode()})
            self.version = version
            backoff.reset()
            self.connects += 1
            liveness = self.liveness
            await client.publish(
                liveness.topic,
                liveness.payload("online", self.epoch),
                qos=1,
                retain=True,
                timeout=10,
            )
            if self._intake is not None:
                await self._intake.subscribe(client, version=version)
            self._publisher.attach(client, version=version, epoch=self.epoch)
            self._client = client
            self._connected.set()
            if self.on_connected is not None:
                self.on_connected()
            log.info(
                "connected to broker", broker=self.config.url, epoch=self.epoch, mqtt=self.version
            )
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._read, client)
                    await self._stopping.wait()
                    tg.cancel_scope.cancel()
                # A clean stop: say so before the DISCONNECT (which discards the will).
                with anyio.move_on_after(5):
                    await client.publish(
                        liveness.topic, liveness.payload("offline", self.epoch), qos=1, retain=True
                    )
            finally:
                self._client = None
                self._connected = anyio.Event()
                # aiomqtt does not fail a publish awaiting its PUBACK when the connection
                # drops; the batches under way fail now, so the relay is ready for the next
                # connection at once.
                self._publisher.detach()
                if self.on_connection_lost is not None and not self._stopping.is_set():
                    self.on_connection_lost()

    async def _read(self, client: aiomqtt.Client) -> None:
        """Read what the broker sends (the commands, if served) until the connection
        drops: aiomqtt's iterator raises MqttError then, which ends the session."""
        if self._intake is not None:
            await self._intake.serve(client)
        else:
            async for _ in client.messages:
                pass

    async def stop(self) -> None:
        """Publish ``offline`` and disconnect cleanly; the run loop then returns."""
        self._stopping.set()

    # -- StatusSink ----------------------------------------------------------------------

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        """Publish ``messages`` in order (see :meth:`WindowedPublisher.publish`)."""
        await self._publisher.publish(messages)


def _innermost(error: BaseException) -> BaseException:
    """The first exception inside nested exception groups (what went wrong, not the group)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
