"""Workers sharing one PostgreSQL database, as real processes behind a real Mosquitto: each
location driven by one of them, commands answered once by any of them, a SIGKILLed
worker's locations taken over after its lease, and one stream without gaps or repeats
for a consumer that deduplicates by ``(job, seq)``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from simulator.client import JobsClient
from simulator.live.observer import Observer, Received
from simulator.live.processes import Mosquitto, WorkerProcess
from tests.worker.test_app import TERMINAL, _events, _terminal
from tests.worker_process import worker_process
from worker.mqtt.broker import BrokerConfig

LOCATIONS = ("East US", "North Europe", "West US")
SETTINGS = """
worker_id = "{worker}"
speed = 20000
seed = 3
will_delay = 1
lease = 2.0
drain_timeout = 5.0

[policy]
retention = "30d"
creating_expiry = "30d"

[datacenter]
locations = {{ "East US" = 1, "North Europe" = 1, "West US" = 1 }}
throughput_mb_s = 100
checkpoint_interval = "10m"
carrier_delay = "1h"
return_delay = "1h"
drive_size = "1TB"
"""


@pytest.fixture
def workers(tmp_path: Path, own_mosquitto: Mosquitto, postgresql_url: str) -> Iterator[Any]:
    made: list[WorkerProcess] = []

    def start(*names: str) -> list[WorkerProcess]:
        for name in names:
            home = tmp_path / name
            home.mkdir()
            settings = SETTINGS.format(worker=name)
            worker = worker_process(home, own_mosquitto.url, settings, db=postgresql_url)
            worker.start()
            made.append(worker)
        for worker in made[-len(names) :]:
            worker.wait_connected()
        return made[-len(names) :]

    yield start
    for worker in made:
        worker.stop()


def holders(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT location, owner FROM leases ORDER BY location").fetchall()
    return {str(location): owner for location, owner in rows}


def _body(location: str, drives: list[str]) -> dict[str, Any]:
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


def _send(port: int, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with JobsClient(BrokerConfig(port=port), timeout=20) as client:
            return [await client.request(op, **fields) for op, fields in calls]

    replies: list[dict[str, Any]] = anyio.run(main)
    return replies


def _jobs_shipped(port: int, jobs: dict[str, str]) -> None:
    """Create and ship ``jobs`` (name: location), four drives each."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name, location in jobs.items():
        drives = [f"{name}-{i}" for i in range(4)]
        calls.append(("create", {"job": name, "body": _body(location, drives)}))
        package = {"carrierName": "UPS", "trackingNumber": "1"}
        calls.append(("ship", {"job": name, "deliveryPackage": package}))
    replies = _send(port, calls)
    assert [r["status"] for r in replies] == [201, 200] * len(jobs), replies


def _copying(location: str, jobs: dict[str, str]) -> Any:
    def copying(messages: list[Received]) -> bool:
        started = {e["subject"] for e in _events(messages, "driveStateChanged")}
        return any(jobs[job] == location for job in started)

    return copying


@pytest.mark.slow
def test_three_workers_share_the_locations_and_survive_the_loss_of_one(
    own_mosquitto: Mosquitto, postgresql_url: str, workers: Any
) -> None:
    """Each location is driven by one worker; SIGKILL the holder of one mid-transfer: its
    Last Will says lost, another worker takes the location over once the lease runs out
    and resumes its transfers, every job ends, and the deduplicated stream has every
    change of every job once, in order."""
    observer = Observer(own_mosquitto.port)
    try:
        observer.wait_subscribed()
        w1, w2, w3 = workers("w1", "w2", "w3")
        observer.wait_for(
            lambda ms: (
                sorted(h for h in holders(postgresql_url).values() if h) == ["w1", "w2", "w3"]
            ),
            what="one location each",
        )
        jobs = {f"{loc.split()[0].lower()}{i}": loc for loc in LOCATIONS for i in (1, 2)}
        _jobs_shipped(own_mosquitto.port, jobs)
        observer.wait_for(_copying("West US", jobs), what="copying in West US")
        victim_id = holders(postgresql_url)["West US"]
        victim = {"w1": w1, "w2": w2, "w3": w3}[str(victim_id)]
        assert victim.signal(signal.SIGKILL) == -signal.SIGKILL
        observer.wait_for(
            lambda ms: observer.worker_states(str(victim_id))[-1:] == ["lost"],
            what="the Last Will",
        )
        observer.wait_for(_terminal(set(jobs)), what="every job done", timeout=60)
        taken = holders(postgresql_url)
        assert taken["West US"] not in (None, victim_id)
        assert observer.violations() == {}
        history = observer.history()
        # (A transfer stopped longer than its deadline by the takeover ends the job Closed.)
        assert {i.job for i in history.incarnations if i.final_state in TERMINAL} == set(jobs)
        for worker in (w1, w2, w3):
            if worker is not victim:
                assert worker.signal(signal.SIGTERM) == 0
    finally:
        observer.close()
