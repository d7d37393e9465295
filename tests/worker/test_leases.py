"""Workers sharing one PostgreSQL database: in one process, fair shares and a released lease
claimed at once, and a job another worker changed read again when asked for; as real
processes behind a real Mosquitto, each location driven by one of them, commands answered
once by any of them, a SIGKILLed worker's locations taken over after its lease, and one
stream without gaps or repeats for a consumer that deduplicates by ``(job, seq)``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest

from simulator.live.observer import Observer, Received
from simulator.live.processes import Mosquitto, WorkerProcess, free_port
from tests.worker.test_app import TERMINAL, _body, _commands, _events, _ship, _terminal
from worker import Clock, Datacenter, DatacenterConfig, MemoryBus, Planner
from worker.postgres_store import PostgresStore

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


#: Each worker's REST API, by worker id (``workers`` fixture, ``http=True``).
HTTP: dict[str, str] = {}


@pytest.fixture
def workers(tmp_path: Path, own_mosquitto: Mosquitto, postgresql_url: str) -> Iterator[Any]:
    made: list[WorkerProcess] = []

    def start(*names: str, http: bool = False, protocol: str = "auto") -> list[WorkerProcess]:
        for name in names:
            home = tmp_path / name
            home.mkdir()
            settings = SETTINGS.format(worker=name)
            if http:
                HTTP[name] = f"127.0.0.1:{free_port()}"
                settings = f'http = "{HTTP[name]}"\n' + settings
            settings += f'\n[broker]\nurl = "{own_mosquitto.url}"\nprotocol = "{protocol}"\n'
            (home / "worker.toml").write_text(settings)
            args = ["--config", str(home / "worker.toml")]
            worker = WorkerProcess(args, log=home / "worker.log", db=postgresql_url)
            worker.start()
            made.append(worker)
        for worker in made[-len(names) :]:
            worker.wait_connected()
        return made[-len(names) :]

    yield start
    for worker in made:
        worker.stop()


def _datacenter(url: str, worker: str, lease: float = 3.0) -> Datacenter:
    config = DatacenterConfig(locations={location: 1 for location in LOCATIONS})
    store = PostgresStore(url, worker_id=worker)
    return Datacenter(store, clock=Clock(), planner=Planner(config, seed=1), lease=lease)


def test_a_worker_joining_gets_its_share_and_the_first_gives_it_up(postgresql_url: str) -> None:
    """Alone, a worker drives every location; a second joining takes one of the three
    (the first's fair share is two) within a turn, and the two drive disjoint sets."""
    first, second = _datacenter(postgresql_url, "w1"), _datacenter(postgresql_url, "w2")
    assert first.leases is not None
    assert second.leases is not None

    async def main() -> tuple[list[str], list[str], list[str]]:
        assert first.leases is not None
        assert second.leases is not None
        async with first.running(MemoryBus()):
            alone = first.leases.driven
            async with second.running(MemoryBus()):
                # Within a turn of the first (a third of the lease) and a claim at once.
                with anyio.fail_after(10):
                    while not second.leases.driven or len(first.leases.driven) > 2:  # noqa: ASYNC110 (no event to wait on)
                        await anyio.sleep(0.05)
                return alone, first.leases.driven, second.leases.driven

    try:
        alone, kept, taken = anyio.run(main, backend="asyncio")
    finally:
        first.store.close()
        second.store.close()
    assert alone == sorted(LOCATIONS)
    assert len(kept) == 2
    assert len(taken) == 1
    assert set(kept) | set(taken) == set(LOCATIONS)


def test_a_job_another_worker_changed_is_read_again_when_asked_for(postgresql_url: str) -> None:
    """A worker keeps up to date the jobs of the locations it drives (none here). Of any
    other, one that moves through the datacenter is read from the store whenever it is
    asked for; one that waits for its customer (or its deletion) is kept until it hears
    that another worker changed it (forgotten, as on NOTIFY), since only a customer's
    change or a deletion can change it."""
    first, second = _datacenter(postgresql_url, "w1"), _datacenter(postgresql_url, "w2")
    body = _body(["D1"])
    ship = {"properties": {"state": "Shipping", "deliveryPackage": _ship("")[1]["deliveryPackage"]}}

    async def main() -> None:
        await first.service.create("moving", body)
        await first.service.update("moving", ship)
        assert second.ledger.cached("moving") is None
        assert (await second.service.get("moving")).properties.state == "Shipping"
        await first.service.cancel("moving")
        assert (await second.service.get("moving")).properties.cancel_requested is True

        await first.service.create("waiting", body)
        held = second.ledger.get("waiting")  # read from the store, then kept
        assert held is not None
        assert second.ledger.get("waiting") is held
        await first.service.update("waiting", ship)
        second.ledger.forget(["waiting"])  # as a worker not driving West US does on NOTIFY
        assert (await second.service.get("waiting")).properties.state == "Shipping"
        names = sorted(job.name for job in await second.service.list())
        assert names == ["moving", "waiting"]

    try:
        anyio.run(main, backend="asyncio")
    finally:
        first.store.close()
        second.store.close()


def holders(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT location, owner FROM leases ORDER BY location").fetchall()
    return {str(location): owner for location, owner in rows}


def _jobs_shipped(port: int, jobs: dict[str, str]) -> None:
    """Create and ship ``jobs`` (name: location), four drives each."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for name, location in jobs.items():
        drives = [f"{name}-{i}" for i in range(4)]
        calls += [("create", {"job": name, "body": _body(drives, location)}), _ship(name)]
    replies = _commands(port, *calls)
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


def test_a_cancel_sent_to_a_worker_that_does_not_drive_the_job_is_honoured(
    own_mosquitto: Mosquitto, postgresql_url: str, workers: Any
) -> None:
    """PATCH cancelRequested on the REST API of the worker that does not hold the job's
    location: answered 200 once committed; the owning worker starts no drive after it
    (its start would be judged against a stale job and refused by the guard), and the job
    ends Completed."""
    observer = Observer(own_mosquitto.port)
    try:
        observer.wait_subscribed()
        workers("w1", "w2", http=True)
        observer.wait_for(
            lambda ms: set(holders(postgresql_url).values()) == {"w1", "w2"}, what="shared"
        )
        owner = holders(postgresql_url)["West US"]
        other = "w2" if owner == "w1" else "w1"
        _jobs_shipped(own_mosquitto.port, {"west1": "West US"})
        observer.wait_for(_copying("West US", {"west1": "West US"}), what="copying")
        jobs = (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/drivesim"
            "/providers/Microsoft.ImportExport/jobs"
        )
        with httpx.Client(base_url=f"http://{HTTP[other]}", timeout=10) as http:
            answer = http.patch(
                f"{jobs}/west1",
                params={"api-version": "2021-01-01"},
                json={"properties": {"cancelRequested": True}},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["properties"]["cancelRequested"] is True
        observer.wait_for(_terminal({"west1"}), what="west1 done")
        (west1,) = observer.history().incarnations
        assert west1.final_state == "Completed"
        cancel = west1.cancel
        assert cancel is not None
        started_after = [
            e
            for e in west1.events_of("driveStateChanged")
            if e.seq > cancel.seq and e.data["to"] == "Transferring"
        ]
        assert started_after == []
        skipped = [e for e in west1.events_of("driveStateChanged") if e.data["to"] == "Received"]
        assert skipped, "the drives still waiting for a bay are skipped"
        assert observer.violations() == {}
    finally:
        observer.close()


def test_on_mqtt_3_1_1_every_command_is_run_by_one_worker(
    own_mosquitto: Mosquitto, postgresql_url: str, workers: Any
) -> None:
    """Without shared subscriptions every worker receives every command: each is run by
    the one worker that claims it first, answered once, and the job created once."""
    observer = Observer(own_mosquitto.port)
    try:
        observer.wait_subscribed()
        started = workers("w1", "w2", "w3", protocol="3.1.1")
        _jobs_shipped(own_mosquitto.port, {"east1": "East US", "north1": "North Europe"})
        observer.wait_for(_terminal({"east1", "north1"}), what="both jobs done")
        ran = [
            line
            for worker in started
            for line in worker.log.read_text().splitlines()
            if '"event": "command"' in line
        ]
        assert len(ran) == 4  # two creates, two ships
        assert len(_events(observer.snapshot(), "jobCreated")) == 2
        assert observer.violations() == {}
    finally:
        observer.close()
