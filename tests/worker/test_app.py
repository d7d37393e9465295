"""The worker as a real process against a real Mosquitto, watched by an independent observer:
commands over MQTT, a broker crash, a worker crash, and clean shutdown."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simulator.client import JobsClient
from simulator.live.observer import Observer, Received
from simulator.live.processes import Mosquitto, WorkerProcess
from simulator.live.proxy import FaultProxy
from tests.worker_process import worker_process
from worker.model import to_builtins
from worker.mqtt.broker import BrokerConfig
from worker.postgres_store import PostgresStore
from worker.sqlite_store import SQLiteStore
from worker.status import TOPIC_PREFIX

WORKER_ID = "e2e"
SETTINGS = f"""
worker_id = "{WORKER_ID}"
speed = 20000
seed = 3
will_delay = 1
replay_tail = 2.0
drain_timeout = 5.0

[policy]
retention = "30d"
creating_expiry = "30d"

[datacenter]
locations = {{ "West US" = 2 }}
throughput_mb_s = 100
checkpoint_interval = "10m"
carrier_delay = "1h"
return_delay = "1h"
drive_size = "1TB"
"""
TERMINAL = ("Completed", "Closed")


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[WorkerProcess] = []

    def make(broker_url: str, db: str | Path | None = None) -> WorkerProcess:
        worker = worker_process(tmp_path, broker_url, SETTINGS, db=db)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


def _commands(port: int, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with JobsClient(BrokerConfig(port=port), timeout=20) as client:
            return [await client.request(op, **fields) for op, fields in calls]

    replies: list[dict[str, Any]] = anyio.run(main)
    return replies


def _body(drives: list[str], location: str = "West US") -> dict[str, Any]:
    return {
        "location": location,
        "properties": {
            "jobType": "Import",
            "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/"
            "Microsoft.Storage/storageAccounts/acct",
            "returnAddress": {
                "recipientName": "R",
                "streetAddress1": "S",
                "city": "C",
                "postalCode": "1",
                "countryOrRegion": "US",
                "phone": "1",
                "email": "r@example.com",
            },
            "driveList": [{"driveId": d, "bitLockerKey": f"KEY-{d}"} for d in drives],
        },
    }


def _ship(job: str) -> tuple[str, dict[str, Any]]:
    return "ship", {"job": job, "deliveryPackage": {"carrierName": "UPS", "trackingNumber": "1"}}


def _events(messages: list[Received], kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(p)
        for t, p, _ in messages
        if t.endswith("/events") and p and json.loads(p)["type"].endswith("." + kind)
    ]


def _terminal(jobs: set[str]) -> Any:
    def done(messages: list[Received]) -> bool:
        ended = {
            e["subject"] for e in _events(messages, "stateChanged") if e["data"]["to"] in TERMINAL
        }
        return jobs <= ended

    return done


def _transferring(messages: list[Received]) -> bool:
    return any(e["data"]["to"] == "Transferring" for e in _events(messages, "driveStateChanged"))


def _retained_equals_store(port: int, db: str | Path) -> None:
    """A fresh subscriber's retained job snapshots are exactly the store's jobs."""
    fresh = Observer(port, topics=(f"{TOPIC_PREFIX}/jobs/+/state",))
    try:
        fresh.wait_subscribed()
        store = PostgresStore(db, worker_id=None) if isinstance(db, str) else SQLiteStore(db)
        jobs = store.load_jobs()
        store.close()
        fresh.wait_for(lambda ms: len(ms) >= len(jobs), timeout=10, what="retained snapshots")
        time.sleep(0.3)
        retained = {t.split("/")[3]: json.loads(p) for t, p, r in fresh.snapshot() if r and p}
    finally:
        fresh.close()
    assert set(retained) == set(jobs)
    for name, record in jobs.items():
        snapshot = dict(retained[name])
        assert snapshot.pop("seq") == record.sim.seq
        for extra in ("epoch", "simTime", "outcome"):
            snapshot.pop(extra, None)
        assert snapshot == to_builtins(record.job), name


@pytest.mark.slow
def test_commands_status_and_clean_shutdown(own_mosquitto: Mosquitto, worker_factory: Any) -> None:
    """Jobs driven over MQTT run to the end; the observed stream is consistent; SIGTERM
    drains, publishes offline and exits 0; retained state equals the store."""
    observer = Observer(own_mosquitto.port)
    try:
        observer.wait_subscribed()
        worker = worker_factory(own_mosquitto.url)
        worker.start()
        observer.wait_for(lambda ms: "online" in observer.worker_states(WORKER_ID), what="online")
        replies = _commands(
            own_mosquitto.port,
            ("create", {"job": "alpha", "body": _body(["A1", "A2"])}),
            ("create", {"job": "bravo", "body": _body(["B1", "B2", "B3"])}),
            _ship("alpha"),
            _ship("bravo"),
        )
        assert [r["status"] for r in replies] == [201, 201, 200, 200]
        observer.wait_for(_transferring, what="a transfer")
        (cancel,) = _commands(own_mosquitto.port, ("cancel", {"job": "alpha"}))
        assert cancel["result"]["answer"] == "accepted"
        observer.wait_for(_terminal({"alpha", "bravo"}), what="both jobs done")
        (delete,) = _commands(own_mosquitto.port, ("delete", {"job": "bravo"}))
        assert delete["ok"], delete
        observer.wait_for(lambda ms: _events(ms, "jobDeleted"), what="the deletion")
        assert worker.signal(signal.SIGTERM) == 0
        observer.wait_for(
            lambda ms: observer.worker_states(WORKER_ID)[-1:] == ["offline"], what="offline"
        )
        assert observer.violations() == {}
        history = observer.history()
        alpha = next(i for i in history.incarnations if i.job == "alpha")
        assert alpha.final_state == "Completed"
        assert alpha.cancel is not None
        bravo = next(i for i in history.incarnations if i.job == "bravo")
        assert bravo.cleared, "deleting a job clears its retained topics"
        status = [p for t, p, _ in observer.snapshot() if "/jobs/" in t]
        assert not any(b"KEY-" in payload for payload in status), "a BitLocker key was published"
    finally:
        observer.close()
    _retained_equals_store(own_mosquitto.port, worker.db)


@pytest.mark.slow
def test_broker_crash_is_survived_and_replayed(
    own_mosquitto: Mosquitto, worker_factory: Any
) -> None:
    """SIGKILL the broker mid-transfer and restart it: the worker keeps processing,
    reconnects, replays, re-announces; the observer's stream is still gap-free."""
    proxy = FaultProxy(own_mosquitto.port)
    observer = Observer(own_mosquitto.port)
    try:
        observer.wait_subscribed()
        worker = worker_factory(f"mqtt://127.0.0.1:{proxy.port}")
        worker.start()
        observer.wait_for(lambda ms: "online" in observer.worker_states(WORKER_ID), what="online")
        _commands(
            own_mosquitto.port,
            ("create", {"job": "alpha", "body": _body(["A1", "A2", "A3"])}),
            ("create", {"job": "bravo", "body": _body(["B1", "B2", "B3", "B4"])}),
            _ship("alpha"),
            _ship("bravo"),
        )
        observer.wait_for(_transferring, what="a transfer")
        own_mosquitto.kill()
        proxy.cut()
        time.sleep(2.0)  # the worker goes on copying; its messages wait in the outbox
        own_mosquitto.start()
        observer.wait_subscribed()
        proxy.restore()
        observer.wait_for(_terminal({"alpha", "bravo"}), what="both jobs done")
        assert worker.signal(signal.SIGTERM) == 0
        assert observer.violations() == {}
        snapshots = [json.loads(p) for t, p, _ in observer.snapshot() if "/jobs/" in t and p]
        epochs = {s["epoch"] for s in snapshots if "epoch" in s}
        # A connect attempt while the broker restarts may fail and use up an epoch.
        assert 1 in epochs, epochs
        assert max(epochs) > 1, f"expected snapshots of both connections, got epochs {epochs}"
    finally:
        observer.close()
        proxy.close()
    _retained_equals_store(own_mosquitto.port, worker.db)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_worker_crash_shows_lost_and_resumes(
    own_mosquitto: Mosquitto, worker_factory: Any, kind: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL the worker mid-transfer: the Last Will says lost; restarted on its database
    (a SQLite file, or PostgreSQL) it resumes every job and the stream stays consistent."""
    db = request.getfixturevalue("postgresql_url") if kind == "postgresql" else None
    observer = Observer(
        own_mosquitto.port, topics=(f"{TOPIC_PREFIX}/jobs/+/#", f"{TOPIC_PREFIX}/workers/#")
    )
    try:
        observer.wait_subscribed()
        worker = worker_factory(own_mosquitto.url, db)
        worker.start()
        observer.wait_for(lambda ms: "online" in observer.worker_states(WORKER_ID), what="online")
        _commands(
            own_mosquitto.port,
            ("create", {"job": "charlie", "body": _body(["C1", "C2", "C3"])}),
            _ship("charlie"),
        )
        observer.wait_for(_transferring, what="a transfer")
        assert worker.signal(signal.SIGKILL) == -signal.SIGKILL
        observer.wait_for(
            lambda ms: observer.worker_states(WORKER_ID)[-1:] == ["lost"], what="the Last Will"
        )
        worker.start()
        observer.wait_for(_terminal({"charlie"}), what="charlie done")
        assert worker.signal(signal.SIGTERM) == 0
        states = observer.worker_states(WORKER_ID)
        assert states[:3] == ["online", "lost", "online"]
        assert states[-1] == "offline"
        assert observer.violations() == {}
    finally:
        observer.close()
    _retained_equals_store(own_mosquitto.port, worker.db)
