"""Status messages through a window of QoS 1 publishes, acknowledged on PUBACK.

:class:`WindowedPublisher` publishes a batch through a bounded window of QoS 1 publishes
in flight (never one awaited PUBACK at a time), handing messages straight to the
connection's paho client as PUBACKs come in, and reports which messages the broker
acknowledged when the connection drops mid-batch. Retained snapshots carry the
``epoch`` of the connection that published them.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import aiomqtt
import anyio
import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackOnPublish_v2
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from worker.errors import PublishError
from worker.logs import get_logger
from worker.mqtt.broker import Version, mqtt_properties
from worker.status import StatusMessage

__all__ = ["PUBACK_TIMEOUT", "WindowedPublisher", "with_epoch"]

#: A batch fails when no PUBACK has come for this long (the connection itself is watched
#: by the keepalive).
PUBACK_TIMEOUT = 30.0
#: What the PUBACK fast path in :meth:`WindowedPublisher.attach` relies on in paho's client.
_PAHO_INTERNALS = frozenset({"_in_packet", "_out_messages", "_inflight_messages"})

log = get_logger("drivesim.mqtt")


class WindowedPublisher:
    """Publishes status messages on the connection it is attached to, ``window`` at a time."""

    def __init__(self, *, window: int = 100) -> None:
        self.window = window
        #: The current connection's paho client, which status messages go through.
        self._paho: mqtt.Client | None = None
        self._version: Version = "5"
        self._epoch = 0
        #: Batches with messages not yet handed to paho, oldest first.
        self._queue: deque[_Batch] = deque()
        #: The status messages awaiting their PUBACK: paho's message id -> batch, index.
        self._mids: dict[int, tuple[_Batch, int]] = {}
        self._event_props: Properties | None = None

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        """Publish ``messages`` in order, with up to ``window`` QoS 1 publishes in flight.

        Returns once the broker acknowledged every one. If not connected, if the connection
        drops mid-batch, or if no PUBACK comes for :data:`PUBACK_TIMEOUT` seconds, raises
        :class:`PublishError` listing the messages the broker did acknowledge.
        """
        if self._paho is None:
            raise PublishError("not connected", delivered=[])
        if not messages:
            return
        batch = _Batch(messages, self._epoch)
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

    def attach(self, client: aiomqtt.Client, *, version: Version, epoch: int) -> None:
        """Publish on ``client`` from now on, stamping snapshots with ``epoch``: take over
        paho's PUBACK handling for this connection's status messages; aiomqtt's own
        publishes (the liveness messages and command replies) still reach aiomqtt's
        handler."""
        self._version, self._epoch = version, epoch
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
                        with_epoch(message, epoch),
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

    def detach(self) -> None:
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
        if self._version != "5" or not message.payload or not message.topic.endswith("/events"):
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


def with_epoch(message: StatusMessage, epoch: int) -> bytes:
    """Snapshots carry the epoch of the connection that published them."""
    payload = message.payload
    if message.retain and payload.startswith(b"{") and len(payload) > 2:
        return b'{"epoch":%d,' % epoch + payload[1:]
    return payload
