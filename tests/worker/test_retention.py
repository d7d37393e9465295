"""Retention in virtual time: ended jobs go 90 days after they end, Creating jobs 14 days after
their last change, each no earlier than due and at most one sweep interval late."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from worker import changes
from worker.clock import Clock
from worker.config import DAY, HOUR, MINUTE, TB, DatacenterConfig, Policy, Range
from worker.datacenter import Datacenter
from worker.memory_bus import MemoryBus
from worker.model import JobState
from worker.plan import PlanHints
from worker.record import DrivePlan, JobRecord
from worker.retention import deletion_due
from worker.service import JobService
from worker.sqlite_store import SQLiteStore
from worker.status import decode_payload

Body = Callable[..., dict[str, Any]]
RunDatacenter = Callable[[Datacenter, Callable[[MemoryBus], Awaitable[None]]], MemoryBus]
MakeDatacenter = Callable[..., Datacenter]

FIXED = DatacenterConfig(
    locations={"West US": 2}, carrier_delay=Range(DAY, DAY), return_delay=Range(2 * DAY, 2 * DAY)
)
ONE_TB = PlanHints(drives={"DRV0": DrivePlan(size_bytes=TB)})


def deletions(service: JobService) -> dict[str, tuple[float, JobRecord]]:
    """Record when each job is deleted, with its last record."""
    seen: dict[str, tuple[float, JobRecord]] = {}

    def listener(before: JobRecord | None, after: JobRecord | None) -> None:
        if after is None and before is not None:
            seen[before.name] = (service.ledger.clock.now(), before)

    service.ledger.watch(listener)
    return seen


def delete_reasons(bus: MemoryBus) -> dict[str, str]:
    reasons = {}
    for message in bus.messages:
        if message.topic.endswith("/events"):
            body = decode_payload(message.payload)
            if body["type"].endswith("jobDeleted"):
                reasons[body["subject"]] = body["data"]["reason"]
    return reasons


async def until_gone(service: JobService, step: float = DAY) -> None:
    while len(service.ledger):
        await service.ledger.clock.sleep(step)


def test_deletion_due() -> None:
    """Creating: last touch + expiry; Completed and Closed: end + retention; else never."""
    from worker.model import JobDetails, JobResponse
    from worker.record import JobSim

    def rec(state: JobState) -> JobRecord:
        return JobRecord(
            job=JobResponse(
                type="Microsoft.ImportExport/jobs",
                id="/j",
                name="j",
                location="West US",
                properties=JobDetails(state=state),
            ),
            sim=JobSim(
                created_at=1.0,
                touched_at=5.0,
                state_entered_at=7.0,
                ended_at=9.0,
                carrier_delay=1.0,
                return_delay=1.0,
            ),
        )

    expected = {
        JobState.CREATING: 5.0 + 14,
        JobState.SHIPPING: None,
        JobState.RECEIVED: None,
        JobState.TRANSFERRING: None,
        JobState.PACKAGING: None,
        JobState.COMPLETED: 9.0 + 90,
        JobState.CLOSED: 9.0 + 90,
    }
    for state, due in expected.items():
        assert deletion_due(rec(state), Policy(retention=90, creating_expiry=14)) == due


def test_completed_job_is_deleted_ninety_days_after_it_ended(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A Completed job is deleted 90 days after it ended, at most one sweep interval later."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)
    ended: list[float] = []

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await clock.sleep(0.3 * HOUR)  # off the sweep grid
        await service.create("job1", import_body(1), hints=ONE_TB)
        await service.update("job1", ship_body())
        while (
            record := service.ledger.get("job1")
        ) is not None and record.state is not JobState.COMPLETED:
            await clock.sleep(HOUR)
        assert record is not None
        assert record.sim.ended_at is not None
        ended.append(record.sim.ended_at)
        await clock.sleep_until(record.sim.ended_at + 90 * DAY - MINUTE)
        assert service.ledger.get("job1") is not None, "deleted before its 90 days were up"
        await until_gone(service, HOUR)

    bus = run_datacenter(dc, scenario)
    when, last = gone["job1"]
    assert last.state is JobState.COMPLETED
    assert ended[0] + 90 * DAY <= when <= ended[0] + 90 * DAY + HOUR
    assert delete_reasons(bus) == {"job1": "retention"}
    assert bus.retained == {}


def test_closed_job_is_deleted_ninety_days_after_it_ended(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A Closed job (lost package), which the customer cannot delete, goes after 90 days."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("lost", import_body(1), hints=PlanHints(package_lost=True))
        await service.update("lost", ship_body())
        await until_gone(service)

    run_datacenter(dc, scenario)
    when, last = gone["lost"]
    assert last.state is JobState.CLOSED
    assert last.sim.ended_at == FIXED.lost_package_after
    assert last.sim.ended_at + 90 * DAY <= when <= last.sim.ended_at + 90 * DAY + HOUR


@pytest.mark.parametrize("created_at", [0.0, 0.3 * HOUR, 5 * DAY + 17 * MINUTE])
def test_creating_job_expires_fourteen_days_after_creation(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    created_at: float,
) -> None:
    """An untouched Creating job expires 14 days after creation, within one sweep interval."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        await service.ledger.clock.sleep(created_at)
        await service.create("idle", import_body(1))
        await until_gone(service, HOUR)

    bus = run_datacenter(dc, scenario)
    when, last = gone["idle"]
    assert last.state is JobState.CREATING
    assert created_at + 14 * DAY <= when <= created_at + 14 * DAY + HOUR
    assert delete_reasons(bus) == {"idle": "expired"}


@pytest.mark.parametrize(
    "patch",
    [
        {"properties": {"logLevel": "Verbose"}},
        # No change at all: an Update call in Creating still resets the timer (D-STATE).
        {"properties": {"state": "", "cancelRequested": False}},
        {},
    ],
)
def test_update_at_day_ten_moves_expiry_to_day_twenty_four(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    patch: dict[str, Any],
) -> None:
    """A PATCH on day 10, whatever it changes, restarts the 14-day timer: the job lives past
    day 14, goes on day 24."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await service.create("job1", import_body(1))
        await clock.sleep(10 * DAY)
        await service.update("job1", patch)
        await clock.sleep_until(24 * DAY - MINUTE)
        assert service.ledger.get("job1") is not None, "expired before day 24"
        await until_gone(service, HOUR)

    run_datacenter(dc, scenario)
    when, _ = gone["job1"]
    assert 24 * DAY <= when <= 24 * DAY + HOUR


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"properties": {"state": "", "cancelRequested": False}},
        {"properties": {"backupDriveManifest": False, "logLevel": "Error"}},
    ],
)
def test_a_noop_patch_in_creating_restarts_the_expiry_and_changes_nothing_else(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    body: dict[str, Any],
) -> None:
    """Microsoft: "Calling Update while Creating keeps it Creating and resets the 2-week
    timer". The job is re-announced (a snapshot, no event) with nothing else changed."""
    dc = make_datacenter()
    service = dc.service
    seen: dict[str, Any] = {}

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1))
        seen["before"] = service.ledger.get("job1")
        await service.ledger.clock.sleep(5 * DAY)
        seen["job"] = await service.update("job1", body)
        seen["after"] = service.ledger.get("job1")

    run_datacenter(dc, scenario)
    before, after = seen["before"], seen["after"]
    assert after.sim.touched_at == before.sim.touched_at + 5 * DAY
    assert seen["job"] == before.job
    assert after.sim.seq == before.sim.seq + 1


def test_replacing_put_restarts_expiry(
    make_datacenter: MakeDatacenter, run_datacenter: RunDatacenter, import_body: Body
) -> None:
    """A second PUT of a Creating job counts as a change: expiry is 14 days after it."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1))
        await service.ledger.clock.sleep(13 * DAY)
        await service.create("job1", import_body(2))
        await until_gone(service, HOUR)

    run_datacenter(dc, scenario)
    when, _ = gone["job1"]
    assert 27 * DAY <= when <= 27 * DAY + HOUR


def test_job_cancelled_in_creating_is_kept_ninety_days(
    make_datacenter: MakeDatacenter, run_datacenter: RunDatacenter, import_body: Body
) -> None:
    """A job cancelled in Creating is Completed: it is kept 90 days, not expired at 14."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1))
        await service.ledger.clock.sleep(DAY)
        await service.cancel("job1")
        await until_gone(service, HOUR)

    bus = run_datacenter(dc, scenario)
    when, last = gone["job1"]
    assert last.state is JobState.COMPLETED
    assert 91 * DAY <= when <= 91 * DAY + HOUR
    assert delete_reasons(bus) == {"job1": "retention"}


def test_customer_delete_before_expiry_is_fine(
    make_datacenter: MakeDatacenter, run_datacenter: RunDatacenter, import_body: Body
) -> None:
    """A job the customer deleted is not deleted again when its expiry comes."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await service.create("job1", import_body(1))
        await clock.sleep(DAY)
        await service.delete("job1")
        await clock.sleep(20 * DAY)

    bus = run_datacenter(dc, scenario)
    assert delete_reasons(bus) == {"job1": "customer"}


def test_policy_sets_retention_expiry_and_sweep_interval(
    make_datacenter: MakeDatacenter, run_datacenter: RunDatacenter, import_body: Body
) -> None:
    """Retention, expiry and the sweep grid come from the policy."""
    policy = Policy(creating_expiry=2 * HOUR, retention=DAY, sweep_interval=10 * MINUTE)
    dc = make_datacenter(datacenter=FIXED, policy=policy)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await clock.sleep(3 * MINUTE)
        await service.create("idle", import_body(1))
        await service.create("done", import_body(1))
        await service.cancel("done")
        await until_gone(service, MINUTE)

    run_datacenter(dc, scenario)
    assert 3 * MINUTE + 2 * HOUR <= gone["idle"][0] <= 3 * MINUTE + 2 * HOUR + 10 * MINUTE
    assert 3 * MINUTE + DAY <= gone["done"][0] <= 3 * MINUTE + DAY + 10 * MINUTE


def test_sweeper_picks_up_jobs_from_a_reopened_store(
    tmp_path: Path,
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
) -> None:
    """After a restart the sweeper deletes jobs it learned about from the store."""
    path = tmp_path / "jobs.db"
    first_dc = make_datacenter(SQLiteStore(path), datacenter=FIXED)
    first = first_dc.service

    async def create(bus: MemoryBus) -> None:
        await first.ledger.clock.sleep(2 * DAY)
        await first.create("old", import_body(1))

    run_datacenter(first_dc, create)
    sim_now = first.ledger.store.get_meta("sim_now")
    first.ledger.store.close()
    assert sim_now is not None
    assert float(sim_now) == 2 * DAY

    second_dc = make_datacenter(
        SQLiteStore(path), datacenter=FIXED, clock=Clock(start=float(sim_now))
    )
    second = second_dc.service
    gone = deletions(second)

    async def wait(bus: MemoryBus) -> None:
        await until_gone(second, HOUR)

    run_datacenter(second_dc, wait)
    second.ledger.store.close()
    assert 16 * DAY <= gone["old"][0] <= 16 * DAY + HOUR


def test_jobs_in_the_datacenter_are_never_swept(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A job stuck in Shipping past 14 days is not expired (only the lost-package rule ends it)."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    now: list[float] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1), hints=PlanHints(carrier_delay=30 * DAY))
        await service.update("job1", ship_body())
        await service.ledger.clock.sleep(29 * DAY)
        record = service.ledger.get("job1")
        assert record is not None
        assert record.state is JobState.SHIPPING
        now.append(service.ledger.clock.now())

    run_datacenter(dc, scenario)
    assert now == [29 * DAY]


def test_ledger_update_in_creating_through_changes_keeps_expiry(
    make_datacenter: MakeDatacenter, run_datacenter: RunDatacenter, import_body: Body
) -> None:
    """Datacenter bookkeeping on a Creating job does not restart its 14-day expiry."""
    dc = make_datacenter(datacenter=FIXED)
    service = dc.service
    gone = deletions(service)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1))
        await service.ledger.clock.sleep(5 * DAY)
        service.ledger.update("job1", lambda r: changes.checkpoint(r, "DRV0", 0))
        await until_gone(service, HOUR)

    run_datacenter(dc, scenario)
    assert 14 * DAY <= gone["job1"][0] <= 14 * DAY + HOUR
