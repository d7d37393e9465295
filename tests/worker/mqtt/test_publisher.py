"""Publishing through the MQTT link's window, against a real Mosquitto (and the fault
proxy): batches fail fast, arrive whole and in order."""

from __future__ import annotations

import aiomqtt
import anyio
import anyio.lowlevel
import pytest

from simulator.live.processes import Mosquitto
from simulator.live.proxy import FaultProxy
from worker.errors import PublishError
from worker.metadata import MemoryMetadata
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.link import MqttLink
from worker.status import TOPIC_PREFIX, StatusMessage


def test_a_batch_awaiting_pubacks_fails_as_soon_as_the_connection_drops(
    own_mosquitto: Mosquitto,
) -> None:
    """With PUBACKs held back and the connection then reset, the batch fails at once with
    nothing acknowledged, instead of waiting out the publish timeout (30 s); the link then
    reconnects and publishes again."""
    proxy = FaultProxy(own_mosquitto.port)

    async def main() -> None:
        broker = BrokerConfig.from_url(f"mqtt://127.0.0.1:{proxy.port}")
        link = MqttLink(broker, worker_id="held", meta=MemoryMetadata())
        messages = [
            StatusMessage(
                topic=f"{TOPIC_PREFIX}/jobs/held/progress",
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


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_batches_beyond_the_window_arrive_whole_and_in_order(
    own_mosquitto: Mosquitto, protocol: str
) -> None:
    """Two publish calls at once, each longer than the window: a subscriber gets every
    message once (QoS 1 and QoS 0), the second call's after the first call's, snapshots
    stamped with the connection's epoch; messages nobody subscribes to (PUBACK reason "no
    matching subscribers" on MQTT 5) are acknowledged too."""
    job = f"window-{protocol.replace('.', '')}"
    progress = [
        StatusMessage(
            topic=f"{TOPIC_PREFIX}/jobs/{job}/progress",
            payload=b'{"n":%d}' % i,
            qos=0 if i % 3 == 0 else 1,
            retain=False,
            job=job,
            seq=i,
        )
        for i in range(1, 241)
    ]
    snapshot = StatusMessage(
        topic=f"{TOPIC_PREFIX}/jobs/{job}/state",
        payload=b'{"seq":241}',
        qos=1,
        retain=True,
        job=job,
        seq=241,
    )
    unheard = [
        StatusMessage(
            topic=f"{TOPIC_PREFIX}/elsewhere/{i}",
            payload=b"{}",
            qos=1,
            retain=False,
            job=job,
            seq=i,
        )
        for i in range(30)
    ]

    async def main() -> list[bytes]:
        broker = BrokerConfig.from_url(f"mqtt://127.0.0.1:{own_mosquitto.port}", protocol=protocol)
        link = MqttLink(broker, worker_id=job, meta=MemoryMetadata(), window=7)
        received: list[bytes] = []
        observer = aiomqtt.Client("127.0.0.1", own_mosquitto.port, identifier=f"{job}-observer")
        async with observer, anyio.create_task_group() as tg:
            await observer.subscribe(f"{TOPIC_PREFIX}/jobs/{job}/#", qos=1)
            await tg.start(link.run)
            with anyio.fail_after(10):
                await link.ready()
            with anyio.fail_after(30):
                async with anyio.create_task_group() as calls:
                    calls.start_soon(link.publish, progress[:150])
                    await anyio.lowlevel.checkpoint()
                    calls.start_soon(link.publish, [*progress[150:], snapshot])
                await link.publish(unheard)
                async for message in observer.messages:
                    assert isinstance(message.payload, bytes)
                    received.append(message.payload)
                    if len(received) == len(progress) + 1:
                        break
            assert link.epoch == 1
            await link.stop()
            await link.closed.wait()
        return received

    received = anyio.run(main, backend="asyncio")
    # MQTT orders messages of one QoS; a QoS 0 message may overtake QoS 1 ones the broker
    # queues for the subscriber (its receive window is full), so each QoS is checked apart.
    expected = [m.payload for m in progress] + [b'{"epoch":1,"seq":241}']
    assert sorted(received) == sorted(expected)
    qos0 = {m.payload for m in progress if m.qos == 0}
    assert [p for p in received if p in qos0] == [p for p in expected if p in qos0]
    assert [p for p in received if p not in qos0] == [p for p in expected if p not in qos0]


def test_a_batch_cut_short_takes_the_batches_behind_it_along(own_mosquitto: Mosquitto) -> None:
    """Two publish calls queued, the first cancelled while most of it is still unsent (as
    a stopping worker cancels its relay): the second fails as well, and none of its
    messages reaches the broker ahead of the first call's unsent rest."""
    job = "cut-short"

    def batch(first: int) -> list[StatusMessage]:
        return [
            StatusMessage(
                topic=f"{TOPIC_PREFIX}/jobs/{job}/progress",
                payload=b'{"n":%d}' % i,
                qos=1,
                retain=False,
                job=job,
                seq=i,
            )
            for i in range(first, first + 100)
        ]

    first, second = batch(0), batch(100)

    async def main() -> list[bytes]:
        broker = BrokerConfig.from_url(f"mqtt://127.0.0.1:{own_mosquitto.port}")
        link = MqttLink(broker, worker_id=job, meta=MemoryMetadata(), window=5)
        received: list[bytes] = []
        observer = aiomqtt.Client("127.0.0.1", own_mosquitto.port, identifier=f"{job}-observer")
        outcome: list[BaseException | None] = []

        async def publish_second() -> None:
            try:
                await link.publish(second)
                outcome.append(None)
            except PublishError as exc:
                outcome.append(exc)

        last = anyio.Event()

        async def collect() -> None:
            async for message in observer.messages:
                assert isinstance(message.payload, bytes)
                received.append(message.payload)
                if message.payload == b'{"n":1000}':
                    last.set()

        async with observer, anyio.create_task_group() as tg:
            await observer.subscribe(f"{TOPIC_PREFIX}/jobs/{job}/#", qos=1)
            await tg.start(link.run)
            with anyio.fail_after(10):
                await link.ready()
            tg.start_soon(collect)
            stopping = anyio.CancelScope()

            async def publish_first() -> None:
                with stopping:
                    await link.publish(first)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as calls:
                    calls.start_soon(publish_first)
                    await anyio.lowlevel.checkpoint()
                    calls.start_soon(publish_second)
                    await anyio.lowlevel.checkpoint()
                    stopping.cancel()  # the first call only
            with anyio.fail_after(10):
                # What is in flight settles; then one more message marks the end.
                await link.publish(batch(1000)[:1])
                await last.wait()
            await link.stop()
            await link.closed.wait()
            tg.cancel_scope.cancel()
        assert len(outcome) == 1
        assert isinstance(outcome[0], PublishError)
        return received

    received = anyio.run(main, backend="asyncio")
    heard = received[:-1]
    assert heard == [m.payload for m in first[: len(heard)]]  # a prefix of the first call
    assert len(heard) < len(first)
