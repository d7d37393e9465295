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
QoS 1 publishes in flight (never one awaited PUBACK at a time), handing messages straight to
the connection's paho client as PUBACKs come in, and reports which messages the broker
acknowledged when the connection drops mid-batch.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import aiomqtt
import anyio
import paho.mqtt.client as mqtt
import structlog
from anyio.abc import TaskGroup, TaskStatus
from paho.mqtt.client import CallbackOnPublish_v2
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from worker.broker import BrokerConfig, Version, connected, make_client, mqtt_properties
from worker.commands import CommandHandler, Reply
from worker.errors import PublishError
from worker.ledger import Ledger
from worker.logs import get_logger
from worker.status import PREFIX, StatusMessage

__all__ = ["COMMAND_FILTER", "Backoff", "MqttLink", "worker_status_topic"]

COMMAND_FILTER = f"{PREFIX}/commands/+"
EPOCH_KEY = "mqtt/epoch"
VERSION_KEY = "mqtt/version"
#: A batch fails when no PUBACK has come for this long (the connection itself is watched
#: by the keepalive).
PUBACK_TIMEOUT = 30.0
#: What the PUBACK fast path in :meth:`MqttLink._attach` relies on in paho's client.
_PAHO_INTERNALS = frozenset({"_in_packet", "_out_messages", "_inflight_messages"})

log = get_logger("drivesim.mqtt")


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
        #: The current connection's paho client, which status messages go through.
        self._paho: mqtt.Client | None = None
        #: Batches with messages not yet handed to paho, oldest first.
        self._queue: deque[_Batch] = deque()
        #: The status messages awaiting their PUBACK: paho's message id -> batch, index.
        self._mids: dict[int, tuple[_Batch, int]] = {}
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
            # The link keeps the window of status messages itself (see _fill); paho sends
            # whatever it is handed at once, as its own in-flight queue rescans every
            # message in flight on each PUBACK.
            client = make_client(
                self.config,
                version=version,
                identifier=f"drivesim-worker-{self.worker_id}",
                will=self._will(version),
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
                self.ledger.note({self._version_key: version.encode()})
            self.version = version
            backoff.reset()
            self.connects += 1
            await client.publish(
                self.status_topic, self._liveness("online"), qos=1, retain=True, timeout=10
            )
            if self.commands is not None:
                await client.subscribe(COMMAND_FILTER, qos=1, timeout=10)
            self._attach(client)
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
                # aiomqtt does not fail a publish awaiting its PUBACK when the connection
                # drops; the batches under way fail now, so the relay is ready for the next
                # connection at once.
                self._detach()
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
        """Publish ``messages`` in order, with up to ``window`` QoS 1 publishes in flight.

        Returns once the broker acknowledged every one. If not connected, if the connection
        drops mid-batch, or if no PUBACK comes for :data:`PUBACK_TIMEOUT` seconds, raises
        :class:`PublishError` listing the messages the broker did acknowledge.
        """
        if self._client is None or self._paho is None:
            raise PublishError("not connected", delivered=[])
        if not messages:
            return
        batch = _Batch(messages, self.epoch)
        self._queue.append(batch)
        self._fill()
        try:
            while not batch.done.is_set():
                progress = len(batch.delivered)
                with anyio.move_on_after(PUBACK_TIMEOUT):
                    await batch.done.wait()
                if not batch.done.is_set() and len(batch.delivered) == progress:
                    self._fail(batch, f"no PUBACK for {PUBACK_TIMEOUT:.0f} s")
        finally:
            if not batch.done.is_set():  # the caller was cancelled: hand no more of it
                self._fail(batch, "cancelled")
        if batch.exception is not None:
            raise batch.exception
        if batch.error is not None:
            delivered = sorted(batch.delivered)
            raise PublishError(
                f"{batch.error} after {len(delivered)} of {len(messages)} messages",
                delivered=delivered,
            )

    # Publishing goes straight through the connection's paho client: aiomqtt's publish()
    # costs an Event, a wait_for Task and a scan of every pending call per message, more
    # than paho itself. Messages are handed to paho from a queue of batches, oldest first,
    # while fewer than ``window`` await their PUBACK; each PUBACK (paho's on_publish,
    # called in the event loop by aiomqtt's socket reader) marks its message delivered and
    # hands on the next one. The waiting publish() call wakes once, when its batch is done.

    def _attach(self, client: aiomqtt.Client) -> None:
        """Take over paho's PUBACK handling for this connection's status messages;
        aiomqtt's own publishes (the liveness messages and command replies) still reach
        aiomqtt's handler."""
        paho = client._client
        # aiomqtt sets up paho with the version 2 callback API.
        aiomqtt_on_publish = cast("CallbackOnPublish_v2 | None", paho.on_publish)
        mids, queue = self._mids, self._queue

        def acknowledged(batch: _Batch, index: int) -> None:
            delivered = batch.delivered
            delivered.append(index)
            if len(delivered) == len(batch.messages):
                batch.done.set()
            if queue:
                self._fill()

        def on_publish(
            client: mqtt.Client,
            userdata: Any,
            mid: int,
            reason_code: ReasonCode,
            properties: Properties,
        ) -> None:
            entry = mids.pop(mid, None)
            if entry is not None:
                if reason_code.is_failure:
                    # A broker that refuses a message refuses it again: it counts as
                    # delivered (sent again, it would hold up the rest of the outbox).
                    log.warning(
                        "broker refused a status message",
                        topic=entry[0].messages[entry[1]].topic,
                        reason=str(reason_code),
                    )
                acknowledged(*entry)
            elif aiomqtt_on_publish is not None:
                aiomqtt_on_publish(client, userdata, mid, reason_code, properties)

        paho.on_publish = on_publish
        self._paho = paho
        handle_pubackcomp = getattr(paho, "_handle_pubackcomp", None)
        if handle_pubackcomp is None or not _PAHO_INTERNALS.issubset(vars(paho)):
            return  # another paho: everything goes through on_publish

        def on_puback(cmd: str) -> MQTTErrorCode:
            # A plain PUBACK of a status message: the message id, and on MQTT 5 maybe a
            # success reason code (0x10 when nobody subscribes), no properties. paho would
            # build a ReasonCode and a Properties object to decode it, which costs more
            # than the rest of the acknowledgement; anything else goes through paho (and
            # on_publish above).
            packet = paho._in_packet["packet"]
            size = len(packet)
            if cmd == "PUBACK" and (size == 2 or (size == 3 and packet[2] < 0x80)):
                mid = packet[0] << 8 | packet[1]
                entry = mids.pop(mid, None)
                if entry is not None:
                    if paho._out_messages.pop(mid, None) is not None:
                        paho._inflight_messages -= 1
                    acknowledged(*entry)
                    return MQTTErrorCode.MQTT_ERR_SUCCESS
            return cast(MQTTErrorCode, handle_pubackcomp(cmd))

        setattr(paho, "_handle_pubackcomp", on_puback)  # noqa: B010

    def _fill(self) -> None:
        """Hand queued messages to paho, oldest first, until ``window`` are in flight."""
        paho, mids, queue = self._paho, self._mids, self._queue
        if paho is None:
            return
        room = self.window - len(mids)
        while room > 0 and queue:
            batch = queue[0]
            messages, epoch, first = batch.messages, batch.epoch, batch.next
            end = min(len(messages), first + room)
            for index in range(first, end):
                message = messages[index]
                try:
                    info = paho.publish(
                        message.topic,
                        _with_epoch(message, epoch),
                        message.qos,
                        message.retain,
                        self._properties(message),
                    )
                except ValueError as exc:  # a message paho refuses (a malformed topic)
                    batch.next = index
                    batch.exception = exc
                    self._fail(batch, "refused")
                    return
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    batch.next = index
                    self._fail(batch, f"publishing failed ({mqtt.error_string(info.rc)})")
                    return
                mids[info.mid] = (batch, index)
            batch.next = end
            room -= end - first
            if end == len(messages):
                queue.popleft()

    def _fail(self, batch: _Batch, error: str) -> None:
        """End ``batch`` without waiting for the rest of its PUBACKs. If some of it was
        never handed to paho, the batches queued behind it fail too: their messages must
        not reach the broker before that rest, which goes again, first, next round."""
        if batch.done.is_set():
            return
        queue = self._queue
        ended = [(batch, error)]
        with contextlib.suppress(ValueError):  # queued: some of it not handed to paho yet
            at = queue.index(batch)
            # Those behind it were handed nothing: _fill finishes one batch before the next.
            behind = f"an earlier batch ended unsent ({error})"
            ended += [(later, behind) for later in list(queue)[at + 1 :]]
            while len(queue) > at:
                queue.pop()
        stale = [mid for mid, (owner, _) in self._mids.items() if owner is batch]
        for mid in stale:
            del self._mids[mid]
        for each, why in ended:
            each.error = why
            each.done.set()
        if queue:
            self._fill()

    def _detach(self) -> None:
        """The connection is gone: every batch still under way fails at once."""
        self._paho = None
        batches = {id(b): b for b in self._queue}
        batches.update((id(b), b) for b, _ in self._mids.values())
        self._queue.clear()
        self._mids.clear()
        for batch in batches.values():
            self._fail(batch, "connection lost")

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


class _Batch:
    """One publish() call under way: its messages, handed to paho in order."""

    __slots__ = ("delivered", "done", "epoch", "error", "exception", "messages", "next")

    def __init__(self, messages: Sequence[StatusMessage], epoch: int) -> None:
        self.messages = messages
        self.epoch = epoch
        #: The index of the next message to hand to paho.
        self.next = 0
        #: Indices of the messages the broker acknowledged, in the order it did.
        self.delivered: list[int] = []
        #: Set once every message is acknowledged, or the batch failed.
        self.done = anyio.Event()
        self.error: str | None = None
        self.exception: Exception | None = None


def _with_epoch(message: StatusMessage, epoch: int) -> bytes:
    """Snapshots carry the epoch of the connection that published them."""
    payload = message.payload
    if message.retain and payload.startswith(b"{") and len(payload) > 2:
        return b'{"epoch":%d,' % epoch + payload[1:]
    return payload
