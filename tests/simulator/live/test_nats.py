"""The worker as a real process against a real three-node NATS cluster speaking MQTT 3.1.1:
commands on one node, the status stream on another, retained state on the third; and one
node SIGKILLed during a run (another node, then the worker's own)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.live.nats import NatsCluster
from simulator.live.observer import Observer, collect_retained
from simulator.live.processes import WorkerProcess
from tests.worker.test_app import (
    SETTINGS,
    _body,
    _commands,
    _ship,
    _terminal,
    _transferring,
)
from tests.worker_process import worker_process
from worker.sqlite_store import SQLiteStore
from worker.status import TOPIC_PREFIX


def _settings(speed: int) -> str:
    """test_app's worker settings at ``speed`` simulated seconds a second."""
    assert "\nspeed = 20000\n" in SETTINGS
    return SETTINGS.replace("\nspeed = 20000\n", f"\nspeed = {speed}\n")


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[WorkerProcess] = []

    def make(broker_url: str, speed: int) -> WorkerProcess:
        worker = worker_process(tmp_path, broker_url, _settings(speed))
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


def _create_and_ship(job: str, drives: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [("create", {"job": job, "body": _body(drives)}), _ship(job)]


def _connected_over(worker: WorkerProcess) -> list[str]:
    """The MQTT version of each of the worker's connects, from its JSON log."""
    versions = []
    for line in worker.log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "connected to broker":
                versions.append(entry["mqtt"])
    return versions


def _assert_every_change_once(observer: Observer, db: Path, jobs: set[str]) -> dict[str, int]:
    """Deduplicated by (job, seq), the observer saw seq 1..N of every job, N the store's
    last seq; the stream checks hold. Returns each job's N."""
    store = SQLiteStore(db)
    try:
        last = {name: record.sim.seq for name, record in store.load_jobs().items()}
    finally:
        store.close()
    assert set(last) == jobs
    seen: dict[str, set[int]] = {}
    for message in observer.status_messages():
        if message.seq > 0:
            seen.setdefault(message.job, set()).add(message.seq)
    for job, n in last.items():
        assert sorted(seen.get(job, ())) == list(range(1, n + 1)), job
    assert observer.violations() == {}
    return last


def test_worker_on_node_1_status_on_node_2_retained_on_node_3(
    nats_cluster: NatsCluster, worker_factory: Any
) -> None:
    """With protocol auto the worker settles on MQTT 3.1.1 (NATS refuses 5); a job created
    over node 1 runs to Completed; node 2's subscriber sees seq 1..N with no gap, and
    node 3 holds the retained snapshot at seq N."""
    n1, n2, n3 = nats_cluster.nodes
    observer = Observer(n2.mqtt_port)
    try:
        observer.wait_subscribed()
        worker = worker_factory(n1.mqtt_url, 20000)
        worker.start()
        worker.wait_connected()
        assert _connected_over(worker) == ["3.1.1"]
        replies = _commands(n1.mqtt_port, *_create_and_ship("n-alpha", ["A1", "A2"]))
        assert [r["status"] for r in replies] == [201, 200]
        observer.wait_for(_terminal({"n-alpha"}), timeout=30, what="n-alpha done")
        assert worker.signal(signal.SIGTERM) == 0
        history = observer.history()
        (alpha,) = [i for i in history.incarnations if i.job == "n-alpha"]
        assert alpha.final_state == "Completed"
        last = _assert_every_change_once(observer, worker.db, {"n-alpha"})
    finally:
        observer.close()
    retained = collect_retained(n3.mqtt_port)
    snapshot = json.loads(retained[f"{TOPIC_PREFIX}/jobs/n-alpha/state"])
    assert snapshot["seq"] == last["n-alpha"]


def _run_through_a_node_kill(cluster: NatsCluster, worker_factory: Any, *, kill: int) -> None:
    """The worker on node 1 runs three jobs; node ``kill`` is SIGKILLed mid-transfer and
    restarted a little later; an observer on another node sees every change once."""
    observe = 1 if kill != 1 else 2
    jobs = {"k-alpha": ["A1", "A2"], "k-bravo": ["B1", "B2"], "k-charlie": ["C1", "C2"]}
    observer = Observer(cluster.nodes[observe].mqtt_port)
    try:
        observer.wait_subscribed()
        worker = worker_factory(cluster.nodes[0].mqtt_url, 2000)
        worker.start()
        worker.wait_connected()
        calls = [call for job, drives in jobs.items() for call in _create_and_ship(job, drives)]
        replies = _commands(cluster.nodes[0].mqtt_port, *calls)
        assert [r["status"] for r in replies] == [201, 200] * len(jobs)
        observer.wait_for(_transferring, what="a transfer")
        cluster.kill(kill)
        time.sleep(1.0)  # the run goes on while the node is down
        cluster.start(kill)
        observer.wait_for(_terminal(set(jobs)), timeout=60, what="every job done")
        assert worker.signal(signal.SIGTERM) == 0
        _assert_every_change_once(observer, worker.db, set(jobs))
        connects = _connected_over(worker)
        # Its own node gone, the worker connected again (over 3.1.1 at once: a version that
        # worked is kept); another node's death need not touch its connection.
        assert connects[0] == "3.1.1"
        if kill == 0:
            assert len(connects) >= 2, connects
            assert set(connects) == {"3.1.1"}, connects
    finally:
        observer.close()


@pytest.mark.slow
def test_killing_another_node_loses_nothing(
    own_nats_cluster: NatsCluster, worker_factory: Any
) -> None:
    """SIGKILL another node than the worker's (the JetStream meta leader, unless that is
    the worker's) mid-run and restart it: every change of every job reaches a subscriber on
    the third node exactly once after deduplication by (job, seq)."""
    leader = own_nats_cluster.meta_leader()
    _run_through_a_node_kill(own_nats_cluster, worker_factory, kill=leader or 2)


@pytest.mark.slow
def test_killing_the_workers_own_node_loses_nothing(
    own_nats_cluster: NatsCluster, worker_factory: Any
) -> None:
    """SIGKILL node 1, the worker's only broker URL, mid-run and restart it: the worker
    reconnects (retrying refused subscriptions), and node 2's subscriber sees every change
    of every job once after deduplication by (job, seq)."""
    _run_through_a_node_kill(own_nats_cluster, worker_factory, kill=0)
