"""Broker authentication: the worker and clients log in, and the documented ACL lets only the
worker publish status and only clients publish commands."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import anyio
import pytest

from simulator.client import JobsClient
from simulator.live.observer import Observer
from simulator.live.processes import Mosquitto
from worker.clock import Clock
from worker.config import DatacenterConfig
from worker.datacenter import Datacenter
from worker.memory_store import MemoryStore
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.link import MqttLink
from worker.plan import Planner
from worker.status import TOPIC_PREFIX

DOCS = Path(__file__).parents[2] / "docs" / "mosquitto"
USERS = {"drivesim-worker": "worker-secret", "operator": "operator-secret", "watcher": "w"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto with passwords and the ACL shipped in docs/mosquitto."""
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    passwd.chmod(0o600)
    broker = Mosquitto(
        tmp_path,
        anonymous=False,
        extra_config=f"password_file {passwd}\nacl_file {DOCS / 'drivesim.acl'}\n",
    )
    broker.start()
    yield broker
    broker.stop()


def _config(broker: Mosquitto, user: str | None, password: str | None = None) -> BrokerConfig:
    return BrokerConfig(port=broker.port, username=user, password=password or USERS.get(user or ""))


def test_the_acl_separates_worker_and_clients(secured: Mosquitto) -> None:
    """With the documented ACL: the worker's status reaches readers, a client's commands are
    answered, a client cannot publish status, and anonymous clients are refused."""

    async def main() -> None:
        datacenter = Datacenter(
            MemoryStore(), clock=Clock(scale=3600), planner=Planner(DatacenterConfig(), 1)
        )
        link = MqttLink(
            _config(secured, "drivesim-worker"),
            worker_id="secure",
            meta=datacenter.ledger,
            commands=datacenter.commands,
        )
        async with anyio.create_task_group() as tg:
            await tg.start(link.run)
            async with datacenter.running(link):
                with anyio.fail_after(10):
                    await link.ready()
                async with JobsClient(_config(secured, "operator")) as client:
                    reply = await client.request("list")
                    assert reply["status"] == 200
                # A client may not publish status: the broker drops it (and may disconnect it).
                forger = aiomqtt.Client(
                    "127.0.0.1", secured.port, username="operator", password=USERS["operator"]
                )
                with contextlib.suppress(aiomqtt.MqttError):
                    async with forger:
                        await forger.publish(
                            f"{TOPIC_PREFIX}/jobs/forged/state", b"{}", qos=1, timeout=2
                        )
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", secured.port, timeout=5):
                        pass
            await link.stop()
            with anyio.fail_after(10):
                await link.closed.wait()
            tg.cancel_scope.cancel()

    watcher = Observer(secured.port, username="operator", password=USERS["operator"])
    try:
        watcher.wait_subscribed()
        anyio.run(main)
        time.sleep(0.3)
        topics = [t for t, _, _ in watcher.snapshot()]
    finally:
        watcher.close()
    assert f"{TOPIC_PREFIX}/workers/secure/status" in topics, "the worker's status did not arrive"
    assert f"{TOPIC_PREFIX}/jobs/forged/state" not in topics, "a client published status"
