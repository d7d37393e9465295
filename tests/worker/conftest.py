"""Shared fixtures of the worker tests: request bodies, stores, services, a virtual-time runner.

Test modules take what is shared from fixtures, except the plain record factory
:func:`record`, which they import as ``tests.worker.conftest``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from worker import (
    Clock,
    Datacenter,
    DatacenterConfig,
    JobService,
    JobStore,
    MemoryBus,
    MemoryStore,
    Planner,
    Policy,
    SQLiteStore,
    virtual_loop,
)
from worker.model import DriveState, DriveStatus, JobDetails, JobResponse, JobState
from worker.postgres_store import PostgresStore
from worker.record import DrivePlan, DriveSim, JobRecord, JobSim, encode

ACCOUNT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
    "/providers/Microsoft.Storage/storageAccounts/acct"
)
RETURN_ADDRESS: dict[str, str] = {
    "recipientName": "Ada",
    "streetAddress1": "1 Main Street",
    "city": "Redmond",
    "postalCode": "98007",
    "countryOrRegion": "USA",
    "phone": "4250000000",
    "email": "ada@example.com",
}
DELIVERY_PACKAGE: dict[str, Any] = {"carrierName": "FedEx", "trackingNumber": "123456789"}

#: Signature of the ``run_datacenter`` fixture.
Scenario = Callable[[MemoryBus], Awaitable[None]]


def _import_body(
    drives: int = 2,
    *,
    address: bool = True,
    package: bool = False,
    key_prefix: str = "BEK-SECRET-",
    drive_prefix: str = "DRV",
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "jobType": "Import",
        "storageAccountId": ACCOUNT_ID,
        "driveList": [
            {"driveId": f"{drive_prefix}{i}", "bitLockerKey": f"{key_prefix}{i:04d}"}
            for i in range(drives)
        ],
    }
    if address:
        properties["returnAddress"] = dict(RETURN_ADDRESS)
    if package:
        properties["deliveryPackage"] = dict(DELIVERY_PACKAGE)
    return {"location": "West US", "properties": properties}


def _export_body(*, address: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "jobType": "Export",
        "storageAccountId": ACCOUNT_ID,
        "export": {"blobList": {"blobPathPrefix": ["/"]}},
    }
    if address:
        properties["returnAddress"] = dict(RETURN_ADDRESS)
    return {"location": "West US", "properties": properties}


def _ship_body(*, address: bool = False, drive_count: int | None = None) -> dict[str, Any]:
    package: dict[str, Any] = dict(DELIVERY_PACKAGE)
    if drive_count is not None:
        package["driveCount"] = drive_count
    properties: dict[str, Any] = {"state": "Shipping", "deliveryPackage": package}
    if address:
        properties["returnAddress"] = dict(RETURN_ADDRESS)
    return {"properties": properties}


@pytest.fixture
def import_body() -> Callable[..., dict[str, Any]]:
    """``import_body(drives=2, *, address=True, package=False, key_prefix, drive_prefix)``."""
    return _import_body


@pytest.fixture
def export_body() -> Callable[..., dict[str, Any]]:
    """``export_body(*, address=True)``: an export of every blob."""
    return _export_body


@pytest.fixture
def ship_body() -> Callable[..., dict[str, Any]]:
    """``ship_body(*, address=False, drive_count=None)``: PATCH to Shipping with a package."""
    return _ship_body


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """Each test using it runs against the in-memory store, a real SQLite file and a real
    PostgreSQL database."""
    job_store: JobStore
    if request.param == "memory":
        job_store = MemoryStore()
    elif request.param == "sqlite":
        job_store = SQLiteStore(tmp_path / "jobs.db")
    else:
        job_store = PostgresStore(request.getfixturevalue("postgresql_url"))
    yield job_store
    job_store.close()


def _make_datacenter(
    store: JobStore | None = None,
    *,
    datacenter: DatacenterConfig | None = None,
    policy: Policy | None = None,
    seed: int = 7,
    clock: Clock | None = None,
) -> Datacenter:
    return Datacenter(
        store if store is not None else MemoryStore(),
        clock=clock or Clock(),
        planner=Planner(datacenter or DatacenterConfig(), seed=seed),
        policy=policy,
    )


@pytest.fixture
def make_datacenter() -> Callable[..., Datacenter]:
    """``make_datacenter(store=None, *, datacenter=None, policy=None, seed=7, clock=None)``:
    a datacenter, not running, over the store (default: a new in-memory one)."""
    return _make_datacenter


@pytest.fixture
def make_service() -> Callable[..., JobService]:
    """``make_service(...)``: the service of ``make_datacenter(...)``, for tests that never
    run the datacenter."""
    return lambda *args, **kwargs: _make_datacenter(*args, **kwargs).service


@pytest.fixture
def service(store: JobStore) -> JobService:
    """A service with the default datacenter and policy over the parametrized store."""
    return _make_datacenter(store).service


def _contents(subject: JobService | JobStore) -> object:
    """Everything a store holds (and, for a service, its ledger's view), in a form that
    compares equal iff nothing changed."""
    if isinstance(subject, JobService):
        ledger = {record.name: encode(record) for record in subject.ledger}
        return ledger, _contents(subject.ledger.store)
    store = subject
    jobs = {name: encode(record) for name, record in store.load_jobs().items()}
    history = [(entry.id, entry.message) for entry in store.history()]
    pending = [entry.id for entry in store.pending(1_000_000)]
    meta = {key: store.get_meta(key) for key in store.meta_keys("")}
    return jobs, history, pending, meta


@pytest.fixture
def contents() -> Callable[[JobService | JobStore], object]:
    """``contents(service_or_store)``: jobs, outbox history, pending ids, metadata (and the
    ledger's records for a service), to compare before and after a refused request."""
    return _contents


def _run_datacenter(datacenter: Datacenter, scenario: Scenario) -> MemoryBus:
    bus = MemoryBus()

    async def main() -> None:
        # Bind the clock to the loop's start, so simulated time is loop time from here on
        # (the clock binds on its first now(); see test_clock for sleeps before that).
        datacenter.clock.now()
        async with datacenter.running(bus):
            await scenario(bus)

    anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_loop})
    return bus


@pytest.fixture
def run_datacenter() -> Callable[[Datacenter, Scenario], MemoryBus]:
    """``run_datacenter(datacenter, scenario)``: run ``scenario(bus)`` in virtual time while
    the datacenter runs (its pipeline, retention sweeper and outbox relay); returns the bus
    afterwards, with everything committed delivered."""
    return _run_datacenter


def record(
    name: str = "job1",
    state: JobState = JobState.CREATING,
    seq: int = 1,
    *,
    drives: Sequence[str] = (),
    drive_state: DriveState = DriveState.SPECIFIED,
    tags: dict[str, str] | None = None,
) -> JobRecord:
    """A bare record in ``state``: with ``drives`` in ``drive_state`` (a key and a plan
    each), else with one key and no drive list."""
    return JobRecord(
        job=JobResponse(
            type="Microsoft.ImportExport/jobs",
            id=f"/jobs/{name}",
            name=name,
            location="West US",
            tags=tags,
            properties=JobDetails(
                state=state,
                drive_list=[DriveStatus(drive_id=d, state=drive_state) for d in drives]
                if drives
                else None,
            ),
        ),
        keys={d: f"KEY-{d}" for d in drives} if drives else {"D1": "secret"},
        sim=JobSim(
            seq=seq,
            created_at=0.0,
            touched_at=0.0,
            state_entered_at=0.0,
            carrier_delay=1.0,
            return_delay=2.0,
            drives={d: DriveSim(plan=DrivePlan(size_bytes=10**12)) for d in drives},
        ),
    )
