"""Commands through a real Mosquitto, on MQTT 5 and 3.1.1: where replies may go, and where
BitLocker keys can be read.

The rule: a reply address (an MQTT 5 response topic, or the ``replyTo`` of a 3.1.1 payload)
lies under ``importexport/v1/replies/``; a request naming another is not run. The
subscription every hint prints (``STATUS_FILTERS``) never shows a key, and with the ACL of
``docs/mosquitto`` not even ``importexport/v1/#`` does.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import pytest
import structlog
from paho.mqtt.packettypes import PacketTypes

from simulator.client import JobsClient
from simulator.live.nats import NatsCluster
from simulator.live.processes import Mosquitto
from worker import (
    STATUS_FILTERS,
    Clock,
    Datacenter,
    DrivesimError,
    MemoryStore,
    Planner,
    watch_command,
)
from worker.config import DatacenterConfig
from worker.mqtt.broker import BrokerConfig, mqtt_properties
from worker.mqtt.link import MqttLink
from worker.status import TOPIC_PREFIX

ROOT = Path(__file__).parents[3]
ACL = ROOT / "docs" / "mosquitto" / "drivesim.acl"
COMMANDS = f"{TOPIC_PREFIX}/commands"
Body = Callable[..., dict[str, Any]]
PASSWORDS = {"drivesim-worker": "worker-secret", "operator": "operator-secret"}


@asynccontextmanager
async def _worker(broker: BrokerConfig) -> AsyncIterator[Datacenter]:
    """A datacenter behind a live MQTT link; its clock so slow that jobs stay where put."""
    datacenter = Datacenter(
        MemoryStore(), clock=Clock(scale=1.0), planner=Planner(DatacenterConfig(), seed=1)
    )
    link = MqttLink(
        broker,
        worker_id=f"intake-{uuid.uuid4().hex[:6]}",
        meta=datacenter.ledger,
        commands=datacenter.commands,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(link.run)
        async with datacenter.running(link):
            await link.ready()
            yield datacenter
        await link.stop()
        await link.closed.wait()
        tg.cancel_scope.cancel()


def _cancel_requested(datacenter: Datacenter, job: str) -> bool:
    record = datacenter.ledger.get(job)
    assert record is not None
    return bool(record.job.properties.cancel_requested)


@pytest.mark.asyncio
async def test_a_311_reply_to_outside_the_reply_prefix_is_not_run_and_is_logged(
    own_mosquitto: Mosquitto, import_body: Body
) -> None:
    broker = BrokerConfig.from_url(own_mosquitto.url)
    async with (
        _worker(broker) as datacenter,
        JobsClient(BrokerConfig.from_url(own_mosquitto.url, protocol="3.1.1")) as jobs,
    ):
        assert jobs.version == "3.1.1"
        await jobs.call("create", job="alpha", body=import_body(1))
        with structlog.testing.capture_logs() as logs:
            async with aiomqtt.Client(
                "127.0.0.1", own_mosquitto.port, protocol=aiomqtt.ProtocolVersion.V311
            ) as client:
                payload = {
                    "job": "alpha",
                    "replyTo": f"{TOPIC_PREFIX}/jobs/alpha/events",
                    "correlationId": "c-311",
                }
                await client.publish(f"{COMMANDS}/cancel", json.dumps(payload), qos=1)
            # A valid request sent after it is answered after it: the refusal is done.
            assert (await jobs.call("get", job="alpha"))["name"] == "alpha"
        assert not _cancel_requested(datacenter, "alpha")
        refused = [e for e in logs if e["event"].startswith("command refused")]
        assert len(refused) == 1, logs
        assert refused[0]["log_level"] == "warning"
        assert refused[0]["topic"] == f"{COMMANDS}/cancel"
        assert refused[0]["correlation"] == "c-311"
        assert f"{TOPIC_PREFIX}/jobs/alpha/events" in refused[0]["error"]

        # The control: the same request with a reply address is run and answered.
        answer = await jobs.call("cancel", job="alpha")
        assert answer["answer"] == "accepted"
        assert _cancel_requested(datacenter, "alpha")


@pytest.mark.asyncio
async def test_mqtt5_answers_a_bad_reply_to_with_an_error_and_refuses_a_bad_response_topic(
    own_mosquitto: Mosquitto, import_body: Body
) -> None:
    broker = BrokerConfig.from_url(own_mosquitto.url)
    async with (
        _worker(broker) as datacenter,
        JobsClient(BrokerConfig.from_url(own_mosquitto.url, protocol="5"), prefer="5") as jobs,
    ):
        assert jobs.version == "5"
        await jobs.call("create", job="alpha", body=import_body(1))

        # A bad replyTo beside a good response topic: an error reply there, nothing run.
        bad = {"job": "alpha", "replyTo": "elsewhere/x"}
        reply = await jobs.send("cancel", json.dumps(bad).encode())
        assert reply["status"] == 400
        assert reply["error"]["code"] == "InvalidReplyTo"
        assert not _cancel_requested(datacenter, "alpha")

        # A response topic in the status tree: not run, nothing published there, a warning.
        events = f"{TOPIC_PREFIX}/jobs/alpha/events"
        with structlog.testing.capture_logs() as logs:
            async with aiomqtt.Client(
                "127.0.0.1", own_mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                await client.subscribe(events, qos=1)
                properties = mqtt_properties(PacketTypes.PUBLISH)
                properties.ResponseTopic = events
                properties.CorrelationData = b"c-5"
                await client.publish(
                    f"{COMMANDS}/list-bitlocker-keys",
                    json.dumps({"job": "alpha"}),
                    qos=1,
                    properties=properties,
                )
                assert (await jobs.call("get", job="alpha"))["name"] == "alpha"
                with anyio.move_on_after(0.5):
                    async for message in client.messages:
                        pytest.fail(f"a reply landed on a status topic: {message.payload!r}")
        refused = [e for e in logs if e["event"].startswith("command refused")]
        assert len(refused) == 1, logs
        assert (refused[0]["response_topic"], refused[0]["correlation"]) == (events, "c-5")


def _keys_in(messages: list[aiomqtt.Message], keys: set[str]) -> list[str]:
    return [
        m.topic.value
        for m in messages
        if isinstance(m.payload, bytes) and any(k.encode() in m.payload for k in keys)
    ]


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until what the subscribers collected holds ``predicate``."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def _collect(client: aiomqtt.Client, into: list[aiomqtt.Message]) -> None:
    async for message in client.messages:
        into.append(message)


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_the_documented_watch_subscription_shows_no_key(
    own_mosquitto: Mosquitto, protocol: str, import_body: Body
) -> None:
    """``importexport/v1/#`` shows the keys of create commands and keys replies; the
    filters every hint prints show the job but no key."""
    assert "importexport/v1/#" not in watch_command("h", 1)
    broker = BrokerConfig.from_url(own_mosquitto.url)
    everything: list[aiomqtt.Message] = []
    status: list[aiomqtt.Message] = []
    async with (
        aiomqtt.Client("127.0.0.1", own_mosquitto.port) as all_topics,
        aiomqtt.Client("127.0.0.1", own_mosquitto.port) as watcher,
        anyio.create_task_group() as tg,
    ):
        await all_topics.subscribe(f"{TOPIC_PREFIX}/#", qos=1)
        for topic in STATUS_FILTERS:
            await watcher.subscribe(topic, qos=1)
        tg.start_soon(_collect, all_topics, everything)
        tg.start_soon(_collect, watcher, status)
        async with (
            _worker(broker),
            JobsClient(BrokerConfig.from_url(own_mosquitto.url, protocol=protocol)) as jobs,
        ):
            await jobs.call("create", job="alpha", body=import_body(2))
            keys = {
                k["bitLockerKey"]
                for k in (await jobs.call("list-bitlocker-keys", job="alpha"))["value"]
            }
            await _until(lambda: any(m.topic.value.endswith("/alpha/events") for m in status))
            await _until(lambda: len(_keys_in(everything, keys)) >= 2)
        tg.cancel_scope.cancel()
    assert len(keys) == 2
    leaked = set(_keys_in(everything, keys))
    assert leaked == {f"{COMMANDS}/create", jobs.reply_topic}
    assert _keys_in(status, keys) == []
    assert any(m.topic.value == f"{TOPIC_PREFIX}/jobs/alpha/state" for m in status)


@pytest.fixture
def acl_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """Mosquitto with the ACL of docs/mosquitto and its two users."""
    passwords = tmp_path / "passwd"
    passwords.touch()
    for user, password in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
    passwords.chmod(0o600)
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Mosquitto(
        workdir,
        anonymous=False,
        extra_config=f"password_file {passwords}\nacl_file {ACL}\n",
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_under_the_documented_acl_an_operator_on_everything_reads_no_key_but_its_own(
    acl_mosquitto: Mosquitto, protocol: str, import_body: Body
) -> None:
    """With docs/mosquitto/drivesim.acl, the worker works, an operator's commands are
    answered, and another operator subscribed to ``importexport/v1/#`` reads status but
    neither the create command nor the keys reply of the first."""
    url = f"mqtt://operator:operator-secret@127.0.0.1:{acl_mosquitto.port}"
    worker = BrokerConfig.from_url(
        f"mqtt://drivesim-worker:worker-secret@127.0.0.1:{acl_mosquitto.port}"
    )
    snooped: list[aiomqtt.Message] = []
    async with (
        aiomqtt.Client(
            "127.0.0.1",
            acl_mosquitto.port,
            username="operator",
            password="operator-secret",
            identifier="snooper",
        ) as snooper,
        anyio.create_task_group() as tg,
    ):
        await snooper.subscribe(f"{TOPIC_PREFIX}/#", qos=1)
        tg.start_soon(_collect, snooper, snooped)
        async with (
            _worker(worker),
            JobsClient(BrokerConfig.from_url(url, protocol=protocol)) as jobs,
        ):
            await jobs.call("create", job="alpha", body=import_body(2))
            answer = await jobs.call("list-bitlocker-keys", job="alpha")
            keys = {k["bitLockerKey"] for k in answer["value"]}
            await _until(lambda: any(m.topic.value.endswith("/alpha/events") for m in snooped))
            await anyio.sleep(0.3)  # what else the broker would deliver
        tg.cancel_scope.cancel()
    assert len(keys) == 2
    assert _keys_in(snooped, keys) == []
    assert not any("/commands/" in m.topic.value or "/replies/" in m.topic.value for m in snooped)


def _hinted_filters() -> Iterator[tuple[str, str]]:
    """Every topic filter a ``mosquitto_sub`` hint names, in the docs and the program."""
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "docs").glob("*.yaml")]
    files += [*(ROOT / "simulator").rglob("*.py"), *(ROOT / "worker").rglob("*.py")]
    for path in files:
        for line in path.read_text().splitlines():
            if "mosquitto_sub" in line:
                for topic in re.findall(r"-t '([^']+)'", line):
                    yield str(path.relative_to(ROOT)), topic


def test_every_watch_hint_subscribes_to_status_only() -> None:
    """No hint tells a user to subscribe where a command or a reply (and so a key) travels."""
    hints = list(_hinted_filters())
    assert ("README.md", f"{TOPIC_PREFIX}/jobs/#") in hints
    assert re.findall(r"-t '([^']+)'", watch_command("h", 1)) == list(STATUS_FILTERS)
    status_tree = (f"{TOPIC_PREFIX}/jobs/", f"{TOPIC_PREFIX}/workers/")
    wrong = [(where, t) for where, t in hints if not t.startswith(status_tree)]
    assert wrong == []


def _nats_users(deny_commands: bool) -> str:
    """NATS's users: ``w`` (password ``p``), maybe refused the command topics."""
    deny = 'permissions: { subscribe: { deny: ["importexport.v1.commands.*"] } }'
    user = f"user: w, password: p, {deny if deny_commands else ''}"
    return f"authorization {{ users: [ {{ {user} }} ] }}\n"


@pytest.mark.asyncio
async def test_a_refused_command_subscription_is_retried_until_granted(tmp_path: Path) -> None:
    """A broker that answers the command subscription with a failure (SUBACK 0x80, as a
    NATS node does while its JetStream leader is re-elected; here a NATS permission that
    is lifted later, by a restart of the node) does not leave the worker deaf: the link
    drops that connection and tries again with its backoff until the subscription is
    granted."""
    cluster = NatsCluster(tmp_path / "nats", extra_config=_nats_users(deny_commands=True))
    cluster.start()
    datacenter = Datacenter(
        MemoryStore(), clock=Clock(scale=1.0), planner=Planner(DatacenterConfig(), seed=1)
    )
    link = MqttLink(
        BrokerConfig.from_url(f"mqtt://w:p@127.0.0.1:{cluster.nodes[0].mqtt_port}"),
        worker_id="refused",
        meta=datacenter.ledger,
        commands=datacenter.commands,
    )
    try:
        with structlog.testing.capture_logs() as logs, anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                await tg.start(link.run)
                await _until(lambda: link.connects >= 2)
                assert not link.connected
                refused = [e for e in logs if "refused the subscription" in str(e.get("error"))]
                assert len(refused) >= 1
                # Lifted by a restart of the node (see NatsCluster.reconfigure).
                cluster.reconfigure(_nats_users(deny_commands=False))
                cluster.kill(0)
                await anyio.to_thread.run_sync(cluster.start, 0)
                await link.ready()
                assert link.connected
                assert link.version == "3.1.1"
                await link.stop()
                await link.closed.wait()
                tg.cancel_scope.cancel()
    finally:
        cluster.stop()


@pytest.mark.asyncio
async def test_a_client_refused_its_reply_subscription_says_so(tmp_path: Path) -> None:
    """A client whose reply subscription the broker refuses could never hear an answer: it
    says so at once, naming the topic, instead of waiting for answers that cannot come."""
    deny = 'permissions: { subscribe: { deny: ["importexport.v1.replies.>"] } }'
    users = f"authorization {{ users: [ {{ user: w, password: p, {deny} }} ] }}\n"
    cluster = NatsCluster(tmp_path / "nats", extra_config=users)
    cluster.start()
    broker = BrokerConfig.from_url(f"mqtt://w:p@127.0.0.1:{cluster.nodes[0].mqtt_port}")
    try:
        with anyio.fail_after(30), pytest.raises(DrivesimError, match="refused the subscription"):
            async with JobsClient(broker, timeout=5):
                pass
    finally:
        cluster.stop()
