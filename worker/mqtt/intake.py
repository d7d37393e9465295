"""Commands over MQTT: requests on ``importexport/v1/commands/{op}``, answered one by one.

A request is answered on its MQTT 5 response topic, with its correlation data, or on the
``replyTo`` topic named in its payload (MQTT 3.1.1 clients have no response topic). Either
must lie under ``importexport/v1/replies/``: a request that names another reply address is
not run; it is answered with ``InvalidReplyTo`` where an answer can go (a valid response
topic), and otherwise refused with a warning in the log naming the command topic, the
address and the correlation id. A request with no reply address at all runs, and the log
says its answer was dropped.

Workers sharing a store each answer a share of the commands: on MQTT 5 through the shared
subscription ``$share/drivesim/importexport/v1/commands/+`` (the broker gives each command
to one of them); on MQTT 3.1.1, which has no shared subscriptions, every worker receives
every command and runs only those it is first to ``claim`` in the store (by the request's
topic and payload, its correlation id included: the same request repeated within ten
minutes is a duplicate, not run again). The
:class:`~worker.commands.CommandHandler` does the work; this module only moves requests
and replies between it and the connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import aiomqtt
import anyio
import structlog
from anyio.abc import TaskGroup
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from worker.commands import CommandHandler, Reply, reply_address_error
from worker.logs import get_logger
from worker.mqtt.broker import mqtt_properties, subscribe
from worker.status import TOPIC_PREFIX

__all__ = ["COMMAND_FILTER", "SHARED_COMMAND_FILTER", "CommandIntake"]

COMMAND_FILTER = f"{TOPIC_PREFIX}/commands/+"
#: The same, shared by the workers of one store (MQTT 5): each command goes to one.
SHARED_COMMAND_FILTER = f"$share/drivesim/{COMMAND_FILTER}"

log = get_logger("drivesim.mqtt")


class CommandIntake:
    """Reads the commands of one connection and publishes their replies."""

    def __init__(
        self, handler: CommandHandler, *, claim: Callable[[str], bool] | None = None
    ) -> None:
        self.handler = handler
        #: Workers sharing a store: takes a request (by its key) for this worker, or not.
        self.claim = claim
        self._claiming = False

    async def subscribe(self, client: aiomqtt.Client, *, version: str) -> None:
        """Subscribe to the command topics (shared among the workers of one store on MQTT
        5). A refused subscription raises MqttError, which ends the session, so the link
        reconnects with its backoff and asks again (a NATS node answers SUBACK 0x80 while
        its JetStream leader is being elected)."""
        shared = self.claim is not None and version == "5"
        self._claiming = self.claim is not None and not shared
        topic = SHARED_COMMAND_FILTER if shared else COMMAND_FILTER
        await subscribe(client, topic)

    async def serve(self, client: aiomqtt.Client) -> None:
        """Answer the connection's commands until it drops.

        The iterator only ends by raising MqttError when the connection drops. Commands
        run one after the other, in the order they came; their replies go out without
        waiting for each other's PUBACK.
        """
        async with anyio.create_task_group() as replies:
            async for message in client.messages:
                await self._answer(client, message, replies)

    async def _answer(
        self, client: aiomqtt.Client, message: aiomqtt.Message, replies: TaskGroup
    ) -> None:
        """Run one command and publish its reply: to the MQTT 5 response topic with the
        request's correlation data, or to the ``replyTo`` topic named in the payload."""
        op = message.topic.value.rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        if self._claiming and self.claim is not None:
            # MQTT 3.1.1: the correlation id, if any, is in the payload.
            key = hashlib.sha256(message.topic.value.encode() + b"\0" + payload).hexdigest()
            if not self.claim(key):
                log.debug("command taken by another worker", topic=message.topic.value)
                return
        with structlog.contextvars.bound_contextvars(op=op):
            if response_topic and (why := reply_address_error(response_topic)) is not None:
                log.warning(
                    "command refused, not run: its MQTT 5 response topic is no reply address",
                    topic=message.topic.value,
                    response_topic=response_topic,
                    correlation=_correlation(props),
                    error=why,
                )
                return
            try:
                reply = await self.handler.handle(op, payload)
            except Exception:  # a bug must not take the worker down: answer, log, go on
                log.exception("command failed")
                reply = Reply(500, error={"code": "InternalError", "message": "internal error"})
            topic = response_topic or reply.reply_to
            log.info("command", status=reply.status, reply_to=topic)
            if not topic:
                refused = reply.error is not None and reply.error.get("code") == "InvalidReplyTo"
                log.warning(
                    "command refused, not run: its replyTo is no reply address"
                    if refused
                    else "command has no reply address; answer dropped",
                    topic=message.topic.value,
                    status=reply.status,
                    correlation=reply.correlation_id,
                    error=reply.error["message"] if refused and reply.error else None,
                )
                return
            properties = None
            if response_topic:
                properties = mqtt_properties(PacketTypes.PUBLISH)
                properties.ContentType = "application/json"
                correlation = getattr(props, "CorrelationData", None)
                if correlation is not None:
                    properties.CorrelationData = correlation
            replies.start_soon(_reply, client, topic, reply.to_json(), properties)


async def _reply(
    client: aiomqtt.Client, topic: str, payload: bytes, properties: Properties | None
) -> None:
    try:
        await client.publish(topic, payload, qos=1, properties=properties, timeout=10)
    except ValueError as exc:  # an unusable MQTT 5 response topic
        log.warning("reply not sent", reply_to=topic, error=str(exc))


def _correlation(props: Properties | None) -> str | None:
    """The MQTT 5 correlation data of a request, for the log."""
    data = getattr(props, "CorrelationData", None) if props else None
    return bytes(data).decode(errors="replace") if data else None
