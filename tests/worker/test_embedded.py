"""The zero-install broker: amqtt in the worker's loop, and the MQTT 5 → 3.1.1 fall-back."""

from __future__ import annotations

import dataclasses
import gc

import anyio
import pytest

from simulator.client import JobsClient
from worker.bus import OutboxRelay
from worker.clock import Clock
from worker.commands import CommandHandler
from worker.config import DatacenterConfig
from worker.embedded import embedded_broker, free_port
from worker.ledger import Ledger
from worker.mqtt import MqttLink
from worker.plan import Planner
from worker.service import JobService
from worker.store import MemoryStore

BODY = {
    "location": "West US",
    "properties": {
        "jobType": "Export",
        "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/"
        "Microsoft.Storage/storageAccounts/acct",
        "export": {"blobList": {"blobPathPrefix": ["/"]}},
    },
}


# amqtt leaves the socket of the refused MQTT 5 attempt to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_worker_on_the_embedded_broker_falls_back_to_3_1_1_and_serves() -> None:
    """A worker asked for MQTT 5 ("auto") on amqtt connects with 3.1.1 and answers commands."""

    async def main() -> None:
        async with embedded_broker(port=free_port()) as broker:
            assert broker.host == "127.0.0.1"
            ledger = Ledger(MemoryStore(), Clock(scale=3600))
            service = JobService(ledger, Planner(DatacenterConfig(), 1))
            auto = dataclasses.replace(broker, protocol="auto")
            link = MqttLink(
                auto, worker_id="embedded", ledger=ledger, commands=CommandHandler(service)
            )
            async with anyio.create_task_group() as tg:
                await tg.start(link.run)
                tg.start_soon(OutboxRelay(ledger, link).run)
                with anyio.fail_after(30):
                    await link.ready()
                assert link.version == "3.1.1"
                async with JobsClient(broker) as client:
                    created = await client.request("create", job="emb", body=BODY)
                    assert created["status"] == 201
                    got = await client.call("get", job="emb")
                    assert got["properties"]["state"] == "Creating"
                await link.stop()
                with anyio.fail_after(10):
                    await link.closed.wait()
                tg.cancel_scope.cancel()

    anyio.run(main)
    gc.collect()  # let amqtt's leaked socket warn here, under this test's filters
