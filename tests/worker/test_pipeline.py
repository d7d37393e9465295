"""The datacenter pipeline in virtual time: arrival, bays, copies, best-effort cancel, return.

Every test runs the real pipeline, retention sweeper and outbox relay with a MemoryBus on
the virtual loop (the ``run_datacenter`` fixture); times are exact simulated seconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog.testing

from worker import changes
from worker.clock import Clock
from worker.config import DAY, GB, HOUR, TB, DatacenterConfig, Policy, Range
from worker.datacenter import Datacenter
from worker.errors import InvalidJobState
from worker.memory_bus import MemoryBus
from worker.model import DriveState, JobState
from worker.pipeline import DatacenterPipeline
from worker.plan import PlanHints
from worker.record import DrivePlan, JobRecord
from worker.service import JobService
from worker.sqlite_store import SQLiteStore
from worker.states import TERMINAL, CancelAnswer, CancelWindow, decide_cancel
from worker.status import decode_payload
from worker.virtual_time import virtual_loop

Body = Callable[..., dict[str, Any]]
RunDatacenter = Callable[[Datacenter, Callable[[MemoryBus], Awaitable[None]]], MemoryBus]
MakeDatacenter = Callable[..., Datacenter]

J = JobState
D = DriveState
CARRIER = DAY
RETURN = 2 * DAY


def datacenter(bays: int = 2, **kwargs: Any) -> DatacenterConfig:
    return DatacenterConfig(
        locations={"West US": bays},
        carrier_delay=Range(CARRIER, CARRIER),
        return_delay=Range(RETURN, RETURN),
        **kwargs,
    )


def sized(*sizes: int, **plan: Any) -> PlanHints:
    return PlanHints(
        drives={f"DRV{i}": DrivePlan(size_bytes=s, **plan) for i, s in enumerate(sizes)}
    )


def timeline(service: JobService, name: str) -> list[tuple[float, JobState]]:
    """Each state the job enters, with the simulated time it entered it."""
    seen: list[tuple[float, JobState]] = []

    def listener(before: JobRecord | None, after: JobRecord | None) -> None:
        if (
            after is not None
            and after.name == name
            and (before is None or before.state is not after.state)
        ):
            seen.append((service.ledger.clock.now(), after.state))

    service.ledger.watch(listener)
    return seen


async def until_ended(service: JobService, name: str) -> JobRecord:
    """Wait (in simulated hours) until the job is Completed or Closed; return its record."""
    while True:
        record = service.ledger.get(name)
        assert record is not None, f"{name} vanished before it ended"
        if record.state in TERMINAL:
            return record
        await service.ledger.clock.sleep(HOUR)


def events(bus: MemoryBus, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    found = []
    for message in bus.messages:
        if message.topic == f"importexport/v1/jobs/{name}/events":
            body = decode_payload(message.payload)
            if kind is None or body["type"].endswith("." + kind):
                found.append(body)
    return found


def test_import_job_walks_every_state_on_time(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """An import job enters each state at the planned time and every drive is copied in full."""
    dc = make_datacenter(datacenter=datacenter(bays=2))
    service = dc.service
    seen = timeline(service, "job1")
    final: list[JobRecord] = []
    tp = service.datacenter.throughput

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=sized(TB, 500 * GB))
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    bus = run_datacenter(dc, scenario)
    assert seen == [
        (0.0, J.CREATING),
        (0.0, J.SHIPPING),
        (CARRIER, J.RECEIVED),
        (CARRIER, J.TRANSFERRING),
        (CARRIER + TB / tp, J.PACKAGING),
        (CARRIER + TB / tp + RETURN, J.COMPLETED),
    ]
    record = final[0]
    assert record.sim.outcome == "succeeded"
    assert record.job.properties.percent_complete == 100
    assert [
        (d.drive_id, d.state, d.copy_status, d.bytes_succeeded, d.percent_complete)
        for d in record.drives
    ] == [
        ("DRV0", D.SHIPPED_BACK, "Completed", TB, 100),
        ("DRV1", D.SHIPPED_BACK, "Completed", 500 * GB, 100),
    ]
    assert record.sim.drives["DRV1"].finished_at == CARRIER + 500 * GB / tp
    package = record.job.properties.return_package
    assert package is not None
    assert package.drive_count == 2
    assert package.carrier_name == "DHL"
    assert package.ship_date == "2026-01-08"  # epoch 2026-01-05 08:00 + 3 days 1h23m
    snapshot = decode_payload(bus.retained["importexport/v1/jobs/job1/state"])
    assert (snapshot["properties"]["state"], snapshot["outcome"]) == ("Completed", "succeeded")


def test_bays_limit_concurrent_copies(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """With one bay, drives copy one after another: each starts when the previous ends."""
    dc = make_datacenter(datacenter=datacenter(bays=1))
    service = dc.service
    final: list[JobRecord] = []
    tp = service.datacenter.throughput

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(3), hints=sized(TB, TB, TB))
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    spans = sorted((d.started_at, d.finished_at) for d in final[0].sim.drives.values())
    step = TB / tp
    assert spans == [
        (CARRIER, CARRIER + step),
        (CARRIER + step, CARRIER + 2 * step),
        (CARRIER + 2 * step, CARRIER + 3 * step),
    ]


def test_two_jobs_share_the_bays_of_their_location(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Jobs at one location queue for the same bays: never more copies at once than bays."""
    dc = make_datacenter(datacenter=datacenter(bays=2))
    service = dc.service
    final: dict[str, JobRecord] = {}

    async def scenario(bus: MemoryBus) -> None:
        for name in ("a", "b"):
            await service.create(name, import_body(3), hints=sized(TB, TB, TB))
            await service.update(name, ship_body())
        for name in ("a", "b"):
            final[name] = await until_ended(service, name)

    run_datacenter(dc, scenario)
    spans = [(d.started_at, d.finished_at) for r in final.values() for d in r.sim.drives.values()]
    moments = {t for span in spans for t in span if t is not None}
    for t in moments:
        running = sum(1 for s, f in spans if s is not None and f is not None and s <= t < f)
        assert running <= 2
    assert all(r.sim.outcome == "succeeded" for r in final.values())


def test_cancel_mid_transfer(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Cancel mid-copy: running drives finish in full, waiting ones are skipped, job cancelled."""
    dc = make_datacenter(datacenter=datacenter(bays=2))
    service = dc.service
    seen = timeline(service, "job1")
    answers: list[CancelAnswer] = []
    final: list[JobRecord] = []
    cancel_at = CARRIER + 0.6 * HOUR

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await service.create("job1", import_body(4), hints=sized(TB, TB, TB, TB))
        await service.update("job1", ship_body())
        await clock.sleep_until(cancel_at)
        answers.append((await service.cancel("job1")).answer)
        final.append(await until_ended(service, "job1"))

    bus = run_datacenter(dc, scenario)
    assert answers == [CancelAnswer.ACCEPTED]
    record = final[0]
    assert (record.state, record.cancel_requested, record.sim.outcome) == (
        J.COMPLETED,
        True,
        "cancelled",
    )
    drives = {d.drive_id: d for d in record.drives}
    for ran in ("DRV0", "DRV1"):
        assert (drives[ran].state, drives[ran].copy_status, drives[ran].bytes_succeeded) == (
            D.SHIPPED_BACK,
            "Completed",
            TB,
        )
        assert record.sim.drives[ran].bytes_at_cancel == 2 * int(
            service.datacenter.checkpoint_interval * service.datacenter.throughput
        )
        assert not record.sim.drives[ran].skipped
    for skipped in ("DRV2", "DRV3"):
        assert (
            drives[skipped].state,
            drives[skipped].copy_status,
            drives[skipped].bytes_succeeded,
        ) == (D.SHIPPED_BACK, None, None)
        assert record.sim.drives[skipped].skipped
        assert record.sim.drives[skipped].started_at is None
    assert record.sim.cancel_state is J.TRANSFERRING
    assert record.sim.cancel_requested_at == cancel_at
    (requested,) = events(bus, "job1", "cancelRequested")
    assert requested["data"]["drivesInFlight"] == ["DRV0", "DRV1"]
    assert requested["data"]["drivesNotStarted"] == ["DRV2", "DRV3"]
    assert [e["data"]["driveId"] for e in events(bus, "job1", "driveSkipped")] == ["DRV2", "DRV3"]
    assert [s for _, s in seen][-2:] == [J.PACKAGING, J.COMPLETED]
    assert seen[-2][0] == CARRIER + TB / service.datacenter.throughput


async def busy_and_waiting(service: JobService, import_body: Body, ship_body: Body) -> None:
    """Jobs busy (one 4 TB drive) and waiting (two of 1 TB) shipped: with one bay, waiting's
    drives wait for busy's."""
    await service.create("busy", import_body(1), hints=sized(4 * TB))
    await service.create("waiting", import_body(2), hints=sized(TB, TB))
    for name in ("busy", "waiting"):
        await service.update(name, ship_body())


def test_cancel_while_waiting_for_another_jobs_bay(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A job waiting for another job's bay goes to Packaging when its cancel is accepted."""
    dc = make_datacenter(datacenter=datacenter(bays=1))
    service = dc.service
    waiting = timeline(service, "waiting")
    final: dict[str, JobRecord] = {}
    cancel_at = CARRIER + HOUR

    async def scenario(bus: MemoryBus) -> None:
        await busy_and_waiting(service, import_body, ship_body)
        await service.ledger.clock.sleep_until(cancel_at)
        record = service.ledger.get("waiting")
        assert record is not None
        assert record.state is J.RECEIVED
        assert (await service.cancel("waiting")).answer is CancelAnswer.ACCEPTED
        for name in ("busy", "waiting"):
            final[name] = await until_ended(service, name)

    run_datacenter(dc, scenario)
    assert waiting[-3:] == [
        (CARRIER, J.RECEIVED),
        (cancel_at, J.PACKAGING),
        (cancel_at + RETURN, J.COMPLETED),
    ]
    assert all(d.bytes_succeeded is None for d in final["waiting"].drives)
    assert final["waiting"].sim.outcome == "cancelled"
    assert final["busy"].sim.outcome == "succeeded"
    assert final["busy"].drive("DRV0").bytes_succeeded == 4 * TB


def test_a_cancel_heard_after_the_copy_step_was_arranged_ends_it_when_nothing_runs(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A cancel committed without ending the copy step (as one judged before the datacenter
    took the job's drives up, on another worker) reaches the pipeline while the job's
    drives wait for a bay: nothing of it will start, so the pipeline ends the step itself."""
    dc = make_datacenter(datacenter=datacenter(bays=1))
    service = dc.service
    waiting = timeline(service, "waiting")
    cancel_at = CARRIER + HOUR

    async def scenario(bus: MemoryBus) -> None:
        await busy_and_waiting(service, import_body, ship_body)
        await service.ledger.clock.sleep_until(cancel_at)
        accepted = decide_cancel(J.RECEIVED, False, CancelWindow.BEFORE_PACKAGING)
        service.ledger.update("waiting", lambda r: changes.cancel(r, cancel_at, accepted))
        await service.ledger.clock.sleep_until(cancel_at + 1)

    run_datacenter(dc, scenario)
    assert waiting[-2:] == [(CARRIER, J.RECEIVED), (cancel_at, J.PACKAGING)]


def test_locations_have_their_own_bays(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Jobs at two locations with one bay each copy at the same time."""
    config = DatacenterConfig(
        locations={"West US": 1, "East US": 1},
        carrier_delay=Range(CARRIER, CARRIER),
        return_delay=Range(RETURN, RETURN),
    )
    dc = make_datacenter(datacenter=config)
    service = dc.service
    final: dict[str, JobRecord] = {}

    async def scenario(bus: MemoryBus) -> None:
        for name, location in (("west", "West US"), ("east", "East US")):
            body = import_body(1)
            body["location"] = location
            await service.create(name, body, hints=sized(TB))
            await service.update(name, ship_body())
        for name in ("west", "east"):
            final[name] = await until_ended(service, name)

    run_datacenter(dc, scenario)
    for record in final.values():
        assert record.sim.drives["DRV0"].started_at == CARRIER
        assert record.sim.drives["DRV0"].finished_at == CARRIER + TB / config.throughput


def test_package_without_any_drive_closes_the_job(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A package in which no drive arrived goes straight to Packaging and ends Closed."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    seen = timeline(service, "job1")
    final: list[JobRecord] = []
    hints = sized(TB, TB, arrives=False)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=hints)
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    assert [s for _, s in seen] == [J.CREATING, J.SHIPPING, J.RECEIVED, J.PACKAGING, J.CLOSED]
    record = final[0]
    assert all(d.state is D.NEVER_RECEIVED for d in record.drives)
    assert record.job.properties.return_package is not None
    assert record.job.properties.return_package.drive_count == 0
    assert record.sim.outcome == "failed"


def test_verbose_log_level_gives_each_drive_a_verbose_log(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """With logLevel Verbose every finished drive has a verbose log URI; with Error none."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    final: dict[str, JobRecord] = {}

    async def scenario(bus: MemoryBus) -> None:
        for name, level in (("loud", "Verbose"), ("quiet", "Error")):
            body = import_body(2)
            body["properties"]["logLevel"] = level
            await service.create(name, body, hints=sized(GB, GB))
            await service.update(name, ship_body())
        for name in ("loud", "quiet"):
            final[name] = await until_ended(service, name)

    run_datacenter(dc, scenario)
    for drive in final["loud"].drives:
        assert drive.verbose_log_uri is not None
        assert drive.verbose_log_uri.startswith(
            f"https://acct.blob.core.windows.net/waimportexport/waies/loud_{drive.drive_id}_"
        )
        assert drive.verbose_log_uri.endswith("_verbose.xml")
    assert all(d.verbose_log_uri is None for d in final["quiet"].drives)


def test_cancel_while_shipping_skips_the_copy(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A job cancelled in Shipping goes Received → Packaging at arrival and copies nothing."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    seen = timeline(service, "job1")
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2))
        await service.update("job1", ship_body())
        assert (await service.cancel("job1")).answer is CancelAnswer.ACCEPTED
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    assert [s for _, s in seen] == [J.CREATING, J.SHIPPING, J.RECEIVED, J.PACKAGING, J.COMPLETED]
    assert seen[2][0] == seen[3][0] == CARRIER
    record = final[0]
    assert record.sim.outcome == "cancelled"
    assert all(d.bytes_succeeded is None and d.state is D.SHIPPED_BACK for d in record.drives)


@pytest.mark.parametrize("offset", [-1.0, 0.0, 1.0])
def test_cancel_racing_the_last_drive(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
    offset: float,
) -> None:
    """A cancel as the last drive finishes gets an answer that the final record agrees with."""
    dc = make_datacenter(datacenter=datacenter(bays=2))
    service = dc.service
    sizes = (TB, 700 * GB)
    last_done = CARRIER + max(sizes) / service.datacenter.throughput
    answers: list[CancelAnswer | InvalidJobState] = []
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        await service.create("job1", import_body(2), hints=sized(*sizes))
        await service.update("job1", ship_body())
        await clock.sleep_until(last_done + offset)
        try:
            answers.append((await service.cancel("job1")).answer)
        except InvalidJobState as error:
            answers.append(error)
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    (answer,) = answers
    record = final[0]
    assert record.state is J.COMPLETED
    assert [d.bytes_succeeded for d in record.drives] == list(sizes)
    assert record.sim.drives["DRV0"].finished_at == last_done
    if answer is CancelAnswer.ACCEPTED:
        assert (record.cancel_requested, record.sim.outcome) == (True, "cancelled")
    else:
        assert isinstance(answer, InvalidJobState)
        assert (answer.code, answer.state) == ("CancelTooLate", "Packaging")
        assert "Packaging" in answer.message
        assert (record.cancel_requested, record.sim.outcome) == (False, "succeeded")
    if offset < 0:
        assert answer is CancelAnswer.ACCEPTED
    if offset > 0:
        assert isinstance(answer, InvalidJobState)


@pytest.mark.parametrize("offset", [-1.0, 0.0, 1.0])
def test_cancel_racing_a_bay_hand_over(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
    offset: float,
) -> None:
    """A cancel as a bay passes to the next drive: it runs in full or never starts, as reported."""
    dc = make_datacenter(datacenter=datacenter(bays=1))
    service = dc.service
    hand_over = CARRIER + TB / service.datacenter.throughput
    answers: list[CancelAnswer] = []
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=sized(TB, TB))
        await service.update("job1", ship_body())
        await service.ledger.clock.sleep_until(hand_over + offset)
        answers.append((await service.cancel("job1")).answer)
        final.append(await until_ended(service, "job1"))

    bus = run_datacenter(dc, scenario)
    assert answers == [CancelAnswer.ACCEPTED]
    record = final[0]
    assert (record.state, record.sim.outcome) == (J.COMPLETED, "cancelled")
    (requested,) = events(bus, "job1", "cancelRequested")
    in_flight = set(requested["data"]["drivesInFlight"])
    not_started = set(requested["data"]["drivesNotStarted"])
    for drive in record.drives:
        sim = record.sim.drives[drive.drive_id]
        if drive.drive_id in not_started:
            assert (sim.skipped, sim.started_at, drive.bytes_succeeded) == (True, None, None)
        else:
            assert drive.bytes_succeeded == TB
            assert not sim.skipped
    assert record.drive("DRV0").bytes_succeeded == TB
    if offset < 0:
        assert (in_flight, not_started) == ({"DRV0"}, {"DRV1"})
    if offset > 0:
        assert (in_flight, not_started) == ({"DRV1"}, set())


def test_cancel_after_arrival_under_creating_or_shipping_is_too_late(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Under the FAQ window, a cancel once the package arrived is refused and the job runs on."""
    dc = make_datacenter(
        datacenter=datacenter(), policy=Policy(cancel_window=CancelWindow.CREATING_OR_SHIPPING)
    )
    service = dc.service
    errors: list[InvalidJobState] = []
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1), hints=sized(TB))
        await service.update("job1", ship_body())
        await service.ledger.clock.sleep_until(CARRIER + HOUR)
        with pytest.raises(InvalidJobState) as info:
            await service.cancel("job1")
        errors.append(info.value)
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    assert errors[0].state == "Transferring"
    assert final[0].sim.outcome == "succeeded"


def test_export_job_registers_drives_at_receipt(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    export_body: Body,
    ship_body: Body,
) -> None:
    """An export job gets generated drives and keys on arrival; keys are listed, never published."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    at_receipt: list[JobRecord] = []
    keys: list[list[tuple[str, str]]] = []
    final: list[JobRecord] = []

    def listener(before: JobRecord | None, after: JobRecord | None) -> None:
        if (
            after is not None
            and after.state is J.RECEIVED
            and before is not None
            and before.state is J.SHIPPING
        ):
            at_receipt.append(after)

    service.ledger.watch(listener)

    async def scenario(bus: MemoryBus) -> None:
        await service.create("exp", export_body(), hints=PlanHints(export_bytes=5 * TB))
        job = (await service.get("exp")).properties
        assert job.drive_list == []
        assert await service.list_bitlocker_keys("exp") == []
        await service.update("exp", ship_body(drive_count=2))
        final.append(await until_ended(service, "exp"))
        keys.append(
            [(k.drive_id, k.bit_locker_key) for k in await service.list_bitlocker_keys("exp")]
        )

    bus = run_datacenter(dc, scenario)
    received = at_receipt[0]
    ids = [d.drive_id for d in received.drives]
    assert len(ids) == 2
    assert len(set(ids)) == 2
    assert all(re.fullmatch(r"[0-9A-F]{8}", i) for i in ids)
    assert all(d.state is D.RECEIVED for d in received.drives)
    assert [received.sim.drives[i].plan.size_bytes for i in ids] == [4 * TB, 1 * TB]
    assert received.job.properties.incomplete_blob_list_uri is None
    assert [k for k, _ in keys[0]] == ids
    secrets = [key for _, key in keys[0]]
    assert all(re.fullmatch(r"\d{6}(-\d{6}){7}", s) for s in secrets)
    record = final[0]
    assert record.sim.outcome == "succeeded"
    assert [d.bytes_succeeded for d in record.drives] == [4 * TB, 1 * TB]
    for message in bus.messages:
        for secret in secrets:
            assert secret.encode() not in message.payload


def test_export_too_big_for_its_drives_lists_incomplete_blobs(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    export_body: Body,
    ship_body: Body,
) -> None:
    """Data beyond the drives' capacity is reported at incompleteBlobListUri."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("exp", export_body(), hints=PlanHints(export_bytes=10 * TB))
        await service.update("exp", ship_body(drive_count=2))
        final.append(await until_ended(service, "exp"))

    run_datacenter(dc, scenario)
    props = final[0].job.properties
    assert props.incomplete_blob_list_uri == (
        "https://acct.blob.core.windows.net/waimportexport/exp_incomplete.xml"
    )
    assert [d.bytes_succeeded for d in final[0].drives] == [4 * TB, 4 * TB]


def test_drive_with_errors_closes_the_job(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A drive failing halfway ends CompletedMoreInfo with an error log; the job ends Closed."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    drive_states: list[str] = []
    final: list[JobRecord] = []
    hints = PlanHints(
        drives={"DRV0": DrivePlan(size_bytes=TB, fails_at=0.5), "DRV1": DrivePlan(size_bytes=TB)}
    )

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=hints)
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    bus = run_datacenter(dc, scenario)
    for message in bus.messages:
        if message.topic == "importexport/v1/jobs/job1/drives/DRV0/state" and message.payload:
            drive_states.append(decode_payload(message.payload)["state"])
    assert "CompletedMoreInfo" in drive_states
    record = final[0]
    assert (record.state, record.sim.outcome) == (J.CLOSED, "failed")
    bad = record.drive("DRV0")
    assert (bad.copy_status, bad.bytes_succeeded, bad.percent_complete) == (
        "CompletedWithErrors",
        TB // 2,
        50,
    )
    assert bad.error_log_uri is not None
    assert bad.error_log_uri.startswith(
        "https://acct.blob.core.windows.net/waimportexport/waies/job1_DRV0_"
    )
    assert record.drive("DRV1").copy_status == "Completed"
    (failed,) = [
        e
        for e in events(bus, "job1", "driveStateChanged")
        if e["data"].get("to") == "CompletedMoreInfo"
    ]
    assert "error" in failed["data"]


def test_slow_drive_is_cut_off_at_its_deadline(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A too-slow drive stops at three times its nominal time, CompletedMoreInfo, partly copied."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1), hints=sized(TB, speed=0.2))
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    record = final[0]
    drive = record.drive("DRV0")
    nominal = TB / service.datacenter.throughput
    assert record.sim.drives["DRV0"].finished_at == CARRIER + 3 * nominal
    assert drive.copy_status == "CompletedWithErrors"
    assert drive.bytes_succeeded is not None
    assert 0 < drive.bytes_succeeded < TB * 0.6
    assert record.state is J.CLOSED


def test_missing_drive_is_never_received_and_closes_the_job(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A drive missing from the package is NeverReceived, not returned, and the job ends Closed."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    final: list[JobRecord] = []
    hints = PlanHints(
        drives={"DRV0": DrivePlan(size_bytes=TB), "DRV1": DrivePlan(size_bytes=TB, arrives=False)}
    )

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=hints)
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    record = final[0]
    assert [(d.drive_id, d.state) for d in record.drives] == [
        ("DRV0", D.SHIPPED_BACK),
        ("DRV1", D.NEVER_RECEIVED),
    ]
    assert record.job.properties.return_package is not None
    assert record.job.properties.return_package.drive_count == 1
    assert record.job.properties.percent_complete == 100
    assert (record.state, record.sim.outcome) == (J.CLOSED, "failed")


def test_lost_package_closes_the_job(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A lost package closes the job after lost_package_after with every drive NeverReceived."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    seen = timeline(service, "job1")
    final: list[JobRecord] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(2), hints=PlanHints(package_lost=True))
        await service.update("job1", ship_body())
        final.append(await until_ended(service, "job1"))

    run_datacenter(dc, scenario)
    assert seen[-1] == (service.datacenter.lost_package_after, J.CLOSED)
    assert all(d.state is D.NEVER_RECEIVED for d in final[0].drives)
    assert final[0].sim.outcome == "failed"


def test_seq_rises_by_one_per_job_on_the_bus(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """On the bus, each job's snapshots carry seq 1, 2, 3... with no gap until it is deleted."""
    dc = make_datacenter(datacenter=datacenter(bays=1))
    service = dc.service

    async def scenario(bus: MemoryBus) -> None:
        for name in ("a", "b"):
            await service.create(name, import_body(2), hints=sized(TB, TB))
            await service.update(name, ship_body())
        await service.ledger.clock.sleep(DAY + HOUR)
        await service.cancel("b")
        while len(service.ledger):
            await service.ledger.clock.sleep(DAY)

    bus = run_datacenter(dc, scenario)
    for name in ("a", "b"):
        mine = [m for m in bus.messages if m.job == name]
        seqs = [m.seq for m in mine]
        assert seqs == sorted(seqs)
        assert sorted(set(seqs)) == list(range(1, max(seqs) + 1))
        snapshots = [
            m.seq for m in mine if m.topic.endswith("/state") and "/drives/" not in m.topic
        ]
        assert snapshots == list(range(1, max(seqs) + 1))


def test_progress_is_checkpointed_and_never_goes_back(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Progress messages come every checkpoint interval with bytes that only grow."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service

    async def scenario(bus: MemoryBus) -> None:
        await service.create("job1", import_body(1), hints=sized(TB))
        await service.update("job1", ship_body())
        await until_ended(service, "job1")

    bus = run_datacenter(dc, scenario)
    progress = [decode_payload(m.payload) for m in bus.messages if m.topic.endswith("/progress")]
    step = int(service.datacenter.checkpoint_interval * service.datacenter.throughput)
    assert [p["bytesSucceeded"] for p in progress] == [step * i for i in range(1, 6)]
    assert all(m.qos == 0 for m in bus.messages if m.topic.endswith("/progress"))


def _busy_day(
    service: JobService, import_body: Body, ship_body: Body
) -> Callable[[MemoryBus], Awaitable[None]]:
    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        for i in range(6):
            await service.create(f"job{i}", import_body(3))
            await service.update(f"job{i}", ship_body())
            await clock.sleep(7 * HOUR)
        await service.create("idle", import_body(1))
        await clock.sleep_until(2 * DAY)
        for name in ("job1", "job4"):
            with contextlib.suppress(InvalidJobState):
                await service.cancel(name)
        while len(service.ledger):
            await clock.sleep(DAY)

    return scenario


def test_same_seed_same_history(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Two runs of one seed publish identical messages in identical order; another seed does not."""
    config = DatacenterConfig(
        locations={"West US": 2},
        drive_error_rate=0.3,
        drive_missing_rate=0.1,
        package_lost_rate=0.15,
    )

    def run(seed: int) -> list[tuple[str, bytes]]:
        dc = make_datacenter(datacenter=config, seed=seed)
        service = dc.service
        bus = run_datacenter(dc, _busy_day(service, import_body, ship_body))
        assert len(service.ledger) == 0
        return [(m.topic, m.payload) for m in bus.messages]

    first, second, other = run(11), run(11), run(12)
    assert len(first) > 100
    assert first == second
    assert first != other


def test_resume_after_restart_mid_transfer(
    tmp_path: Path,
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A restart mid-copy resumes from the last checkpoint and time, seq going on without a gap."""
    path = tmp_path / "jobs.db"
    first_dc = make_datacenter(SQLiteStore(path), datacenter=datacenter())
    first = first_dc.service

    async def start(bus: MemoryBus) -> None:
        await first.create("job1", import_body(1), hints=sized(TB))
        await first.update("job1", ship_body())
        await first.ledger.clock.sleep_until(CARRIER + 0.6 * HOUR)

    bus1 = run_datacenter(first_dc, start)
    stopped = first.ledger.get("job1")
    sim_now = first.ledger.store.get_meta("sim_now")
    first.ledger.store.close()
    assert stopped is not None
    assert stopped.state is J.TRANSFERRING
    checkpoint = 2 * int(first.datacenter.checkpoint_interval * first.datacenter.throughput)
    assert stopped.drive("DRV0").bytes_succeeded == checkpoint
    assert sim_now is not None
    assert float(sim_now) == CARRIER + 0.6 * HOUR  # where the stopped datacenter's clock was

    second_dc = make_datacenter(
        SQLiteStore(path), datacenter=datacenter(), clock=Clock(start=float(sim_now))
    )
    second = second_dc.service
    seen = timeline(second, "job1")
    final: list[JobRecord] = []

    async def resume(bus: MemoryBus) -> None:
        final.append(await until_ended(second, "job1"))

    bus2 = run_datacenter(second_dc, resume)
    second.ledger.store.close()
    record = final[0]
    assert record.sim.outcome == "succeeded"
    assert record.drive("DRV0").bytes_succeeded == TB
    # The clock goes on from the stop; what was copied after the last checkpoint (a tenth
    # of an hour) is copied again.
    finish = CARRIER + TB / second.datacenter.throughput + 0.1 * HOUR
    assert seen[0] == (finish, J.PACKAGING)
    seqs = [m.seq for m in bus1.messages + bus2.messages if m.job == "job1"]
    assert sorted(set(seqs)) == list(range(1, max(seqs) + 1))
    assert bus2.messages[0].seq == bus1.messages[-1].seq + 1


def test_restart_keeps_a_cancel_best_effort(
    tmp_path: Path,
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """After a restart a cancelled job finishes its copying drive, never starts the waiting one."""
    path = tmp_path / "jobs.db"
    first_dc = make_datacenter(SQLiteStore(path), datacenter=datacenter(bays=1))
    first = first_dc.service

    async def start(bus: MemoryBus) -> None:
        await first.create("job1", import_body(2), hints=sized(TB, TB))
        await first.update("job1", ship_body())
        await first.ledger.clock.sleep_until(CARRIER + 0.6 * HOUR)
        assert (await first.cancel("job1")).answer is CancelAnswer.ACCEPTED

    run_datacenter(first_dc, start)
    sim_now = first.ledger.store.get_meta("sim_now")
    first.ledger.store.close()
    assert sim_now is not None

    second_dc = make_datacenter(
        SQLiteStore(path), datacenter=datacenter(bays=1), clock=Clock(start=float(sim_now))
    )
    second = second_dc.service
    final: list[JobRecord] = []

    async def resume(bus: MemoryBus) -> None:
        final.append(await until_ended(second, "job1"))

    run_datacenter(second_dc, resume)
    second.ledger.store.close()
    record = final[0]
    assert (record.state, record.sim.outcome) == (J.COMPLETED, "cancelled")
    assert record.drive("DRV0").bytes_succeeded == TB
    assert record.drive("DRV1").bytes_succeeded is None
    assert record.sim.drives["DRV1"].skipped
    assert record.sim.drives["DRV1"].started_at is None


def test_restart_before_arrival_keeps_the_arrival_time(
    tmp_path: Path,
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A job shipped before a restart still arrives at the time planned when it shipped."""
    path = tmp_path / "jobs.db"
    first_dc = make_datacenter(SQLiteStore(path), datacenter=datacenter())
    first = first_dc.service

    async def start(bus: MemoryBus) -> None:
        await first.ledger.clock.sleep(HOUR)
        await first.create("job1", import_body(1), hints=sized(TB))
        await first.update("job1", ship_body())

    run_datacenter(first_dc, start)
    sim_now = first.ledger.store.get_meta("sim_now")
    first.ledger.store.close()
    assert sim_now is not None
    assert float(sim_now) == HOUR

    second_dc = make_datacenter(SQLiteStore(path), datacenter=datacenter(), clock=Clock(start=HOUR))
    second = second_dc.service
    seen = timeline(second, "job1")

    async def resume(bus: MemoryBus) -> None:
        await until_ended(second, "job1")

    run_datacenter(second_dc, resume)
    second.ledger.store.close()
    assert seen[0] == (HOUR + CARRIER, J.RECEIVED)


def test_keys_never_reach_the_bus_or_the_logs(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    export_body: Body,
    ship_body: Body,
) -> None:
    """Through an import and an export life no BitLocker key reaches the bus or the logs."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service
    keys: list[str] = []

    async def scenario(bus: MemoryBus) -> None:
        await service.create("imp", import_body(3), hints=sized(GB, GB, GB))
        await service.create("exp", export_body(), hints=PlanHints(export_bytes=2 * GB))
        await service.update("imp", ship_body())
        await service.update("exp", ship_body(drive_count=2))
        for name in ("imp", "exp"):
            await until_ended(service, name)
            keys.extend(k.bit_locker_key for k in await service.list_bitlocker_keys(name))
        while len(service.ledger):
            await service.ledger.clock.sleep(DAY)

    with structlog.testing.capture_logs() as logs:
        bus = run_datacenter(dc, scenario)
    assert len(keys) == 5
    assert logs, "the run logged nothing: the check below would be empty"
    text = repr(logs)
    for key in keys:
        assert key not in text
        for message in bus.messages:
            assert key.encode() not in message.payload


def test_ninety_days_of_many_jobs_run_to_the_end(
    make_datacenter: MakeDatacenter,
    run_datacenter: RunDatacenter,
    import_body: Body,
    ship_body: Body,
) -> None:
    """A hundred days of twenty jobs run to completion and deletion in virtual time."""
    dc = make_datacenter(datacenter=DatacenterConfig(locations={"West US": 4}), seed=3)
    service = dc.service
    now: list[float] = []

    async def scenario(bus: MemoryBus) -> None:
        clock = service.ledger.clock
        for i in range(20):
            await service.create(f"job{i}", import_body(1 + i % 10))
            await service.update(f"job{i}", ship_body())
            await clock.sleep(3 * HOUR)
        while len(service.ledger):
            await clock.sleep(DAY)
        now.append(clock.now())

    bus = run_datacenter(dc, scenario)
    assert now[0] > 90 * DAY
    assert bus.retained == {}
    outcomes = [
        e["data"].get("outcome")
        for e in (decode_payload(m.payload) for m in bus.messages if m.topic.endswith("/events"))
        if e["type"].endswith("stateChanged")
    ]
    assert outcomes.count("succeeded") == 20


def test_a_stopped_pipeline_takes_no_step_queued_before_it_stopped(
    make_datacenter: MakeDatacenter, import_body: Body, ship_body: Body
) -> None:
    """A job ships and the pipeline is stopped in the same turn: its next move, queued by
    the ledger's listener before the stop, finds the pipeline stopped and arranges nothing,
    so nothing of the job moves after the stop (at shutdown, after the outbox's last read)."""
    dc = make_datacenter(datacenter=datacenter())
    service = dc.service

    async def main() -> JobRecord | None:
        await service.create("job1", import_body(1))
        pipeline = DatacenterPipeline(dc.ledger, dc.planner.datacenter, dc.planner)
        async with anyio.create_task_group() as tg:
            await tg.start(pipeline.run)
            tg.cancel_scope.cancel()  # the pipeline's task is woken to stop first...
            await service.update("job1", ship_body())  # ...then its listener queues a move
        await dc.clock.sleep(2 * CARRIER)  # well past the package's arrival
        return dc.ledger.get("job1")

    record = anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_loop})
    assert record is not None
    assert record.state is J.SHIPPING
