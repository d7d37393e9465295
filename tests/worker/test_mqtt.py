"""The MQTT link against a real Mosquitto, through the fault proxy."""

from __future__ import annotations

import anyio
import pytest

from simulator.processes import Mosquitto
from simulator.proxy import FaultProxy
from worker.broker import BrokerConfig
from worker.clock import Clock
from worker.errors import PublishError
from worker.ledger import Ledger
from worker.mqtt import MqttLink
from worker.status import PREFIX, StatusMessage
from worker.store import MemoryStore


def test_a_batch_awaiting_pubacks_fails_as_soon_as_the_connection_drops(
    own_mosquitto: Mosquitto,
) -> None:
    """With PUBACKs held back and the connection then reset, the batch fails at once with
    nothing acknowledged, instead of waiting out the publish timeout (30 s); the link then
    reconnects and publishes again."""
    proxy = FaultProxy(own_mosquitto.port)

    async def main() -> None:
        ledger = Ledger(MemoryStore(), Clock(scale=3600))
        broker = BrokerConfig.from_url(f"mqtt://127.0.0.1:{proxy.port}")
        link = MqttLink(broker, worker_id="held", ledger=ledger)
        messages = [
            StatusMessage(
                topic=f"{PREFIX}/jobs/held/progress",
                payload=b"{}",
                qos=1,
                retain=False,
                job="held",
                seq=i,
            )
            for i in range(300)
        ]
        async with anyio.create_task_group() as tg:
            await tg.start(link.run)
            with anyio.fail_after(10):
                await link.ready()
            proxy.blackhole()

            async def reset_soon() -> None:
                await anyio.sleep(0.5)
                proxy.reset()
                proxy.lift_blackhole()

            tg.start_soon(reset_soon)
            with anyio.fail_after(10), pytest.raises(PublishError) as failed:
                await link.publish(messages)
            assert failed.value.delivered == []
            with anyio.fail_after(10):
                await link.ready()
                await link.publish(messages[:10])
            await link.stop()
            await link.closed.wait()

    try:
        anyio.run(main, backend="asyncio")
    finally:
        proxy.close()
