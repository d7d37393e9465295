"""The worker behind a three-node NATS cluster speaking MQTT 3.1.1: the worker takes 3.1.1
(NATS refuses MQTT 5), commands and replies go through other nodes, retained status is
read on another node, and the loss of a node, the worker's own included, loses nothing."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.live.nats import NatsCluster
from simulator.live.observer import Observer
from tests.worker.test_app import (
    SETTINGS,
    WORKER_ID,
    _body,
    _commands,
    _retained_equals_store,
    _ship,
    _terminal,
    _transferring,
)
from tests.worker_process import worker_process


@pytest.fixture
def nats() -> Iterator[NatsCluster]:
    cluster = NatsCluster(Path(tempfile.mkdtemp(prefix="drivesim-nats-")))
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_worker_behind_a_nats_cluster_serves_through_every_node(
    nats: NatsCluster, tmp_path: Path
) -> None:
    """The worker on node 1 takes MQTT 3.1.1, commands and their replies go through node
    3, the stream and the retained snapshots are read on node 2."""
    n1, n2, n3 = nats.nodes
    observer = Observer(n2.mqtt_port)
    worker = worker_process(tmp_path, n1.mqtt_url, SETTINGS)
    try:
        observer.wait_subscribed()
        worker.start()
        worker.wait_connected()
        replies = _commands(
            n3.mqtt_port,
            ("create", {"job": "alpha", "body": _body(["A1", "A2"])}),
            _ship("alpha"),
        )
        assert [r["status"] for r in replies] == [201, 200]
        observer.wait_for(_terminal({"alpha"}), what="alpha done")
        assert worker.signal(signal.SIGTERM) == 0
        assert observer.violations() == {}
        assert '"mqtt": "3.1.1"' in (tmp_path / "worker.log").read_text()
    finally:
        observer.close()
        worker.stop()
    _retained_equals_store(n2.mqtt_port, tmp_path / "worker.db")


@pytest.mark.slow
def test_a_worker_behind_a_nats_cluster_survives_the_loss_of_nodes(
    nats: NatsCluster, tmp_path: Path
) -> None:
    """The worker on node 1, the observer on node 2, customers on node 3. While drives
    copy, node 1, the worker's own, is killed and started again, then node 3 is killed for
    good (one node down at a time: the cluster keeps its quorum): every job ends, the
    observer's stream is whole and in order, and the retained snapshots read on node 2
    equal the store."""
    n1, n2, n3 = nats.nodes
    observer = Observer(n2.mqtt_port)
    worker = worker_process(tmp_path, n1.mqtt_url, SETTINGS)
    try:
        observer.wait_subscribed()
        worker.start()
        worker.wait_connected()
        observer.wait_for(lambda ms: "online" in observer.worker_states(WORKER_ID), what="online")
        replies = _commands(
            n3.mqtt_port,
            ("create", {"job": "alpha", "body": _body(["A1", "A2", "A3"])}),
            ("create", {"job": "bravo", "body": _body(["B1", "B2"])}),
            _ship("alpha"),
            _ship("bravo"),
        )
        assert [r["status"] for r in replies] == [201, 201, 200, 200]
        observer.wait_for(_transferring, what="a transfer")
        n1.kill()
        n1.start()
        nats.wait_healthy()
        n3.kill()
        observer.wait_for(_terminal({"alpha", "bravo"}), what="both jobs done", timeout=90)
        assert worker.signal(signal.SIGTERM) == 0
        assert observer.violations() == {}
        log = (tmp_path / "worker.log").read_text()
        assert '"mqtt": "3.1.1"' in log  # NATS refused MQTT 5; the worker fell back
    finally:
        observer.close()
        worker.stop()
    _retained_equals_store(n2.mqtt_port, tmp_path / "worker.db")
