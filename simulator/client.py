"""A client of the worker's command topics: request, wait for the matching reply.

On MQTT 5 a request carries a response topic and correlation data; on 3.1.1 (amqtt) the
same two travel in the payload as ``replyTo`` and ``correlationId``. Replies are matched
by correlation id, so one client can have several requests in flight.
"""

from __future__ import annotations

import json
import uuid
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

import aiomqtt
import anyio
from anyio.abc import TaskGroup
from paho.mqtt.packettypes import PacketTypes

from worker import TOPIC_PREFIX, CommandFailed, DrivesimError
from worker.mqtt import (
    BrokerConfig,
    Version,
    connected,
    make_client,
    mqtt_properties,
    subscribe,
)

__all__ = ["JobsClient"]


class JobsClient:
    """``async with JobsClient(broker) as jobs: await jobs.call("get", job="x")``."""

    def __init__(
        self, broker: BrokerConfig, *, timeout: float = 10.0, prefer: Version = "3.1.1"
    ) -> None:
        self.broker = broker
        self.timeout = timeout
        self.prefer: Version = prefer
        self.client_id = f"drivesim-client-{uuid.uuid4().hex[:12]}"
        self.reply_topic = f"{TOPIC_PREFIX}/replies/{self.client_id}"
        self.version: Version = "3.1.1"
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[str, tuple[anyio.Event, list[dict[str, Any]]]] = {}
        self._tg: TaskGroup | None = None
        self._session: AbstractAsyncContextManager[tuple[aiomqtt.Client, Version]] | None = None

    async def __aenter__(self) -> Self:
        def make(version: Version) -> aiomqtt.Client:
            return make_client(self.broker, version=version, identifier=self.client_id)

        # 3.1.1 first by default: every broker speaks it (the embedded one speaks nothing
        # else), and replies are matched the same way on both. Only MQTT 5 gets an answer
        # to a payload that cannot carry its own reply address.
        self._session = connected(self.broker, make, prefer=self.prefer)
        self._client, self.version = await self._session.__aenter__()
        try:
            await subscribe(self._client, self.reply_topic)
        except aiomqtt.MqttError as exc:
            await self._session.__aexit__(None, None, None)
            raise DrivesimError(
                f"{exc}: no answer could reach this client (does the broker's ACL let it "
                f"subscribe to {TOPIC_PREFIX}/replies/#?)"
            ) from None
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._read)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        assert self._session is not None
        self._tg.cancel_scope.cancel()
        try:
            await self._tg.__aexit__(None, None, None)  # raises if the connection dropped
        finally:
            # Always, and shielded: a disconnect skipped or cut short leaves aiomqtt's
            # disconnection future unread (and asyncio complaining about it).
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._session.__aexit__(exc_type, exc, tb)

    async def _read(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                reply = json.loads(payload)
            except ValueError:
                continue
            props = message.properties
            correlation = getattr(props, "CorrelationData", None) if props else None
            key = correlation.decode() if correlation else reply.get("correlationId")
            waiting = self._waiting.get(str(key))
            if waiting is not None:
                waiting[1].append(reply)
                waiting[0].set()

    async def send(
        self, op: str, payload: bytes, *, correlation: str | None = None
    ) -> dict[str, Any]:
        """Publish raw ``payload`` to the ``op`` command topic and wait for the reply."""
        assert self._client is not None
        key = correlation or uuid.uuid4().hex
        done: tuple[anyio.Event, list[dict[str, Any]]] = (anyio.Event(), [])
        self._waiting[key] = done
        properties = None
        if self.version == "5":
            properties = mqtt_properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = key.encode()
        try:
            # One deadline for the publish and the reply: a publish on a connection that
            # dies waits for a PUBACK that never comes.
            with anyio.fail_after(self.timeout):
                await self._client.publish(
                    f"{TOPIC_PREFIX}/commands/{op}", payload, qos=1, properties=properties
                )
                await done[0].wait()
        finally:
            del self._waiting[key]
        return done[1][0]

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and return its full reply (``ok``, ``status``, ``result``/``error``)."""
        key = uuid.uuid4().hex
        if self.version != "5":
            fields = {**fields, "replyTo": self.reply_topic, "correlationId": key}
        return await self.send(op, json.dumps(fields).encode(), correlation=key)

    async def call(self, op: str, **fields: Any) -> Any:
        """Send a command and return its result, or raise :class:`~worker.errors.CommandFailed`."""
        reply = await self.request(op, **fields)
        if not reply.get("ok"):
            raise CommandFailed(reply)
        return reply.get("result")
