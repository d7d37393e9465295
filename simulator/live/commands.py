"""A live run's customers on MQTT: commands that survive a dead worker or broker."""

from __future__ import annotations

from typing import Any

import aiomqtt
import anyio
from anyio.abc import TaskStatus

from simulator.client import JobsClient
from worker import get_logger
from worker.mqtt import BrokerConfig

__all__ = ["RetryingCommands"]

log = get_logger("drivesim.live")


class RetryingCommands:
    """MQTT 5 requests that survive a dead worker or broker: reconnect and send again.

    One task (:meth:`run`) owns the connection; senders wait for it, and report it lost.
    """

    def __init__(self, broker: BrokerConfig, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout
        self.retries = 0
        self._client: JobsClient | None = None
        self._ready = anyio.Event()
        self._lost = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                async with JobsClient(self.broker, timeout=self.timeout, prefer="5") as client:
                    self._client = client
                    self._ready.set()
                    if not started:
                        started = True
                        task_status.started()
                    await self._lost.wait()
            except* aiomqtt.MqttError as group:
                log.info("command connection lost", error=repr(group.exceptions[0]))
            self._client = None
            if self._ready.is_set():  # senders may be waiting on an unset one: keep it
                self._ready = anyio.Event()
            self._lost = anyio.Event()
            await anyio.sleep(0.2)

    async def send(self, op: str, payload: bytes) -> dict[str, Any]:
        while True:
            await self._ready.wait()
            client, lost = self._client, self._lost
            if client is None:  # lost again while this task waited its turn
                continue
            try:
                reply = await client.send(op, payload)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                self.retries += 1
                log.info("request not answered; sending it again", op=op, error=repr(exc))
                if isinstance(exc, aiomqtt.MqttError):
                    lost.set()
                continue
            if reply.get("status") != 503:
                return reply
            await anyio.sleep(0.2)  # the worker is shutting down: ask its successor
