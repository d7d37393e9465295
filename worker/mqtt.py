"""The worker's connection to an MQTT broker: liveness, status publishing, command intake.

:class:`MqttLink` keeps one aiomqtt connection up for as long as it runs. aiomqtt 2.x does
not reconnect by itself, so the link does: capped exponential backoff with jitter, and on
every connect it

1. raises the ``epoch`` (persisted, so it rises across restarts too),
2. sets a Last Will ``lost`` on the worker's status topic (with a will delay on MQTT 5, so a
   short blip is not reported as a loss),
3. publishes ``online`` (retained) and subscribes to the command topics again,
4. lets the outbox relay resume: whatever was committed but not acknowledged goes out again,
   oldest first, so each job's messages arrive in ``seq`` order.

As a :class:`~worker.bus.StatusSink` it publishes a batch through a bounded window of
concurrent QoS 1 publishes (never one awaited PUBACK at a time) and reports which messages
the broker acknowledged when the connection drops mid-batch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence

import aiomqtt
import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from worker.broker import BrokerConfig, Version, connected, make_client, mqtt_properties
from worker.commands import CommandHandler, Reply
from worker.errors import PublishError
from worker.ledger import Ledger
from worker.status import PREFIX, StatusMessage

__all__ = ["COMMAND_FILTER", "Backoff", "MqttLink", "worker_status_topic"]

COMMAND_FILTER = f"{PREFIX}/commands/+"
EPOCH_KEY = "mqtt/epoch"
VERSION_KEY = "mqtt/version"

log = structlog.get_logger("drivesim.mqtt")


def worker_status_topic(worker_id: str) -> str:
    return f"{PREFIX}/workers/{worker_id}/status"


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
    """One worker's connection to the broker, kept up until :meth:`stop`."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        worker_id: str,
        ledger: Ledger,
        window: int = 100,
        will_delay: int = 5,
        commands: CommandHandler | None = None,
        on_connected: Callable[[], None] | None = None,
        on_connection_lost: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.ledger = ledger
        self.window = window
        self.will_delay = will_delay
        self.commands = commands
        self.on_connected = on_connected
        self.on_connection_lost = on_connection_lost
        self.status_topic = worker_status_topic(worker_id)
        self.version: Version = "3.1.1" if config.protocol == "3.1.1" else "5"
        #: The version that worked with this broker before (also in an earlier run).
        self._version_key = f"{VERSION_KEY}/{config.url}"
        known = ledger.store.get_meta(self._version_key)
        if known in (b"5", b"3.1.1") and config.protocol == "auto":
            self.version = "5" if known == b"5" else "3.1.1"
        self._confirmed = known is not None
        self.epoch = int(ledger.store.get_meta(EPOCH_KEY) or 0)
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._connected = anyio.Event()
        self._stopping = anyio.Event()
        #: Set once the run loop has returned after :meth:`stop`.
        self.closed = anyio.Event()
        self._session_scope: anyio.CancelScope | None = None
        #: The publish batches in flight on the current connection.
        self._batches: set[anyio.CancelScope] = set()
        self._event_props: Properties | None = None

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
                    error = str(group.exceptions[0])
                    log.warning("broker connection lost or refused", error=error)
                if self._stopping.is_set():
                    break
                await anyio.sleep(backoff.next())
        finally:
            self.closed.set()

    async def _session(self, backoff: Backoff) -> None:
        self.epoch += 1
        self.ledger.note({EPOCH_KEY: str(self.epoch).encode()})

        def make(version: Version) -> aiomqtt.Client:
            return make_client(
                self.config,
                version=version,
                identifier=f"drivesim-worker-{self.worker_id}",
                will=self._will(version),
                max_inflight=self.window,
            )

        # Once a version has worked with this broker (in this run or an earlier one), a
        # failed connect means the broker is in trouble, not that it forgot its protocol.
        fallback = not self._confirmed
        async with connected(self.config, make, prefer=self.version, fallback=fallback) as (
            client,
            version,
        ):
            if not self._confirmed:
                self._confirmed = True
                self.ledger.note({self._version_key: version.encode()})
            self.version = version
            backoff.reset()
            self.connects += 1
            await client.publish(
                self.status_topic, self._liveness("online"), qos=1, retain=True, timeout=10
            )
            if self.commands is not None:
                await client.subscribe(COMMAND_FILTER, qos=1, timeout=10)
            self._client = client
            self._connected.set()
            if self.on_connected is not None:
                self.on_connected()
            log.info(
                "connected to broker", broker=self.config.url, epoch=self.epoch, mqtt=self.version
            )
            try:
                with anyio.CancelScope() as self._session_scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._read_commands, client)
                        await self._stopping.wait()
                        tg.cancel_scope.cancel()
                # A clean stop: say so before the DISCONNECT (which discards the will).
                with anyio.move_on_after(5):
                    await client.publish(
                        self.status_topic, self._liveness("offline"), qos=1, retain=True
                    )
            finally:
                self._client = None
                self._connected = anyio.Event()
                for batch in list(self._batches):
                    batch.cancel()
                if self.on_connection_lost is not None and not self._stopping.is_set():
                    self.on_connection_lost()

    async def _read_commands(self, client: aiomqtt.Client) -> None:
        # The iterator only ends by raising MqttError when the connection drops. Commands
        # run one after the other, in the order they came; their replies go out without
        # waiting for each other's PUBACK.
        async with anyio.create_task_group() as replies:
            async for message in client.messages:
                await self._answer(client, message, replies)

    async def _answer(
        self, client: aiomqtt.Client, message: aiomqtt.Message, replies: TaskGroup
    ) -> None:
        """Run one command and publish its reply: to the MQTT 5 response topic with the
        request's correlation data, or to the ``replyTo`` topic named in the payload."""
        assert self.commands is not None
        op = message.topic.value.rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        with structlog.contextvars.bound_contextvars(op=op):
            try:
                reply = await self.commands.handle(op, payload)
            except Exception:  # a bug must not take the worker down: answer, log, go on
                log.exception("command failed")
                reply = Reply(500, error={"code": "InternalError", "message": "internal error"})
            props = message.properties
            response_topic = getattr(props, "ResponseTopic", None) if props else None
            topic = response_topic or reply.reply_to
            log.info("command", status=reply.status, reply_to=topic)
            if not topic:
                log.warning("command has no reply address; answer dropped", status=reply.status)
                return
            properties = None
            if response_topic:
                properties = mqtt_properties(PacketTypes.PUBLISH)
                properties.ContentType = "application/json"
                correlation = getattr(props, "CorrelationData", None)
                if correlation is not None:
                    properties.CorrelationData = correlation
            replies.start_soon(self._reply, client, topic, reply.to_json(), properties)

    @staticmethod
    async def _reply(
        client: aiomqtt.Client, topic: str, payload: bytes, properties: Properties | None
    ) -> None:
        try:
            await client.publish(topic, payload, qos=1, properties=properties, timeout=10)
        except ValueError as exc:  # an unusable MQTT 5 response topic
            log.warning("reply not sent", reply_to=topic, error=str(exc))

    async def stop(self) -> None:
        """Publish ``offline`` and disconnect cleanly; the run loop then returns."""
        self._stopping.set()

    def _liveness(self, state: str) -> bytes:
        return json.dumps(
            {"state": state, "workerId": self.worker_id, "epoch": self.epoch}
        ).encode()

    def _will(self, version: Version) -> aiomqtt.Will:
        properties = None
        if version == "5":
            properties = mqtt_properties(PacketTypes.WILLMESSAGE)
            properties.WillDelayInterval = self.will_delay
        return aiomqtt.Will(
            self.status_topic, self._liveness("lost"), qos=1, retain=True, properties=properties
        )

    # -- StatusSink ----------------------------------------------------------------------

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        """Publish ``messages`` through a window of ``window`` QoS 1 publishes in flight.

        If not connected, or if the connection drops mid-batch, raises
        :class:`PublishError` listing the messages the broker did acknowledge.
        """
        client = self._client
        if client is None:
            raise PublishError("not connected", delivered=[])
        delivered: list[int] = []
        epoch = self.epoch
        queue = iter(enumerate(messages))

        async def publisher() -> None:
            # ``window`` of these share one iterator: each takes the next message and hands
            # it to paho before its first await, so messages leave in order, with up to
            # ``window`` awaiting their PUBACK. (A task per message costs twice as much.)
            for index, message in queue:
                await client.publish(
                    message.topic,
                    _with_epoch(message, epoch),
                    qos=message.qos,
                    retain=message.retain,
                    properties=self._properties(message),
                    timeout=30,
                )
                delivered.append(index)

        # aiomqtt does not fail a publish awaiting its PUBACK when the connection drops: it
        # waits out its timeout. The session cancels the batch as soon as it ends instead,
        # so the relay is ready for the next connection at once.
        batch = anyio.CancelScope()
        self._batches.add(batch)
        try:
            with batch:
                async with anyio.create_task_group() as tg:
                    for _ in range(min(self.window, len(messages))):
                        tg.start_soon(publisher)
        except* aiomqtt.MqttError as group:
            raise PublishError(
                f"publishing failed after {len(delivered)} of {len(messages)} messages",
                delivered=sorted(delivered),
            ) from group.exceptions[0]
        finally:
            self._batches.discard(batch)
        if batch.cancel_called:
            raise PublishError(
                f"connection lost after {len(delivered)} of {len(messages)} messages",
                delivered=sorted(delivered),
            )

    def _properties(self, message: StatusMessage) -> Properties | None:
        """MQTT 5 events carry the CloudEvents content type (the binding asks for it);
        snapshots and progress are plain JSON and go without, as packing a property costs
        paho about 10 µs a message."""
        if self.version != "5" or not message.payload or not message.topic.endswith("/events"):
            return None
        if self._event_props is None:
            self._event_props = mqtt_properties(PacketTypes.PUBLISH)
            self._event_props.ContentType = "application/cloudevents+json; charset=utf-8"
        return self._event_props


def _with_epoch(message: StatusMessage, epoch: int) -> bytes:
    """Snapshots carry the epoch of the connection that published them."""
    payload = message.payload
    if message.retain and payload.startswith(b"{") and len(payload) > 2:
        return b'{"epoch":%d,' % epoch + payload[1:]
    return payload
