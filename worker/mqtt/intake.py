"""Commands over MQTT: requests on ``importexport/v1/commands/{op}``, answered one by one.

A request is answered on its MQTT 5 response topic, with its correlation data, or on the
``replyTo`` topic named in its payload (MQTT 3.1.1 clients have no response topic). The
:class:`~worker.commands.CommandHandler` does the work; this module only moves requests
and replies between it and the connection.
"""

from __future__ import annotations

import aiomqtt
import anyio
import structlog
from anyio.abc import TaskGroup
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from worker.commands import CommandHandler, Reply
from worker.logs import get_logger
from worker.mqtt.broker import mqtt_properties
from worker.status import TOPIC_PREFIX

__all__ = ["COMMAND_FILTER", "CommandIntake"]

COMMAND_FILTER = f"{TOPIC_PREFIX}/commands/+"

log = get_logger("drivesim.mqtt")


class CommandIntake:
    """Reads the commands of one connection and publishes their replies."""

    def __init__(self, handler: CommandHandler) -> None:
        self.handler = handler

    async def subscribe(self, client: aiomqtt.Client) -> None:
        await client.subscribe(COMMAND_FILTER, qos=1, timeout=10)

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
        with structlog.contextvars.bound_contextvars(op=op):
            try:
                reply = await self.handler.handle(op, payload)
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
            replies.start_soon(_reply, client, topic, reply.to_json(), properties)


async def _reply(
    client: aiomqtt.Client, topic: str, payload: bytes, properties: Properties | None
) -> None:
    try:
        await client.publish(topic, payload, qos=1, properties=properties, timeout=10)
    except ValueError as exc:  # an unusable MQTT 5 response topic
        log.warning("reply not sent", reply_to=topic, error=str(exc))
