"""bench/subscriber.py: mosquitto_sub in its own process, its lines read as they come."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.harness import mosquitto
from bench.subscriber import Subscriber, probe, sub_command


def test_the_command_subscribes_at_qos_1_with_a_format() -> None:
    command = sub_command(1883, ["a/#", "b"], "%U %t", version="mqttv311")
    assert command[0].endswith("mosquitto_sub")
    assert command[1:] == [
        *("-h", "127.0.0.1", "-p", "1883", "-q", "1", "-V", "mqttv311"),
        *("-t", "a/#", "-t", "b", "-F", "%U %t"),
    ]


@pytest.mark.slow
def test_the_subscriber_stamps_every_message_and_leaves_the_probes_out(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        subscriber = Subscriber(
            broker.port, ["t/#"], "%q %p", tmp_path / "received.txt", probe_topic="t-probe"
        )
        before = time.time()
        subscriber.start()  # returns once a probe came back: subscribed
        try:
            probe(broker.port, "t/one", "first")
            probe(broker.port, "t/two", "second payload")
            subscriber.wait_for(2, timeout=10, linger=0.1)
            lines = subscriber.lines()
        finally:
            subscriber.stop()
    assert [(topic, rest) for _, topic, rest in lines] == [
        ("t/one", "1 first"),
        ("t/two", "1 second payload"),
    ]
    assert all(before <= stamp <= time.time() for stamp, _, _ in lines)
    assert subscriber.process is not None
    assert subscriber.process.poll() is not None
    # The file holds the probes too; the lines do not.
    assert b"t-probe" in (tmp_path / "received.txt").read_bytes()
