"""JobService: the Import/Export operations, their answers, their errors, and that a refused
request changes nothing (checked against the in-memory store and a real SQLite file)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from worker import changes
from worker.config import Policy
from worker.errors import InvalidJobState, ResourceNotFound, ServiceError, ValidationError
from worker.model import DriveState, JobState, to_builtins
from worker.record import JobRecord
from worker.service import JobService
from worker.states import CancelAnswer, CancelWindow
from worker.status import Event, decode_payload
from worker.store import JobStore

J = JobState
Body = Callable[..., dict[str, Any]]
Contents = Callable[[JobService | JobStore], object]

pytestmark = pytest.mark.asyncio


def _dump(value: Any) -> str:
    return json.dumps(to_builtins(value))


async def refused(
    service: JobService,
    contents: Contents,
    call: Callable[[], Awaitable[object]],
    error: type[ServiceError],
    code: str,
) -> ServiceError:
    """Run ``call``, expect ``error`` with ``code`` and its class's status, and no change."""
    before = contents(service)
    with pytest.raises(error) as info:
        await call()
    assert info.value.code == code
    assert info.value.status == {ValidationError: 400, ResourceNotFound: 404}.get(error, 409)
    assert contents(service) == before
    return info.value


def history_len(service: JobService) -> int:
    return len(list(service.ledger.store.history()))


async def put_in_state(
    service: JobService, name: str, body: dict[str, Any], state: JobState
) -> None:
    """Create ``name`` and walk it to ``state`` through the datacenter's own changes."""
    ledger = service.ledger
    now = ledger.clock.now
    await service.create(name, body)
    if state is J.CREATING:
        return
    await service.update(
        name,
        {
            "properties": {
                "state": "Shipping",
                "deliveryPackage": {"carrierName": "UPS", "trackingNumber": "1"},
            }
        },
    )
    if state is J.SHIPPING:
        return
    if state is J.CLOSED:
        ledger.update(name, lambda r: changes.lose_package(r, now()))
        return
    ledger.update(name, lambda r: changes.receive(r, now()))
    if state is J.RECEIVED:
        return
    record = ledger.get(name)
    assert record is not None
    drive_ids = [d.drive_id for d in record.drives]
    ledger.update(name, lambda r: changes.start_drive(r, drive_ids[0], now()))
    if state is J.TRANSFERRING:
        return
    for drive_id in drive_ids:
        size = record.sim.drives[drive_id].plan.size_bytes

        def start(r: JobRecord, d: str = drive_id) -> list[Event]:
            return changes.start_drive(r, d, now())

        def finish(r: JobRecord, d: str = drive_id, s: int = size) -> list[Event]:
            return changes.finish_drive(r, d, now(), copied=s, error=None)

        if drive_id != drive_ids[0]:
            ledger.update(name, start)
        ledger.update(name, finish)
    if state is J.PACKAGING:
        return
    ledger.update(
        name, lambda r: changes.ship_back(r, now(), tracking_number="42", ship_date="2026-01-09")
    )
    assert state is J.COMPLETED


async def state_of(service: JobService, name: str) -> JobState | None:
    job = await service.get(name)
    return job.properties.state


# -- create ----------------------------------------------------------------------------


async def test_create_returns_a_new_job_in_creating(service: JobService, import_body: Body) -> None:
    """A new job is Creating, with ARM fields filled in, drives Specified and no keys shown."""
    result = await service.create("job1", import_body(2))
    job = result.job
    props = job.properties
    assert result.created is True
    assert job.name == "job1"
    assert job.type == "Microsoft.ImportExport/jobs"
    assert job.id.endswith("/resourceGroups/drivesim/providers/Microsoft.ImportExport/jobs/job1")
    assert props.state is J.CREATING
    assert props.cancel_requested is False
    assert props.provisioning_state == "Succeeded"
    assert props.log_level == "Error"
    assert props.backup_drive_manifest is False
    assert props.encryption_key is not None
    assert props.encryption_key.kek_type == "MicrosoftManaged"
    assert props.shipping_information is not None
    assert props.shipping_information.recipient_name
    assert [(d.drive_id, d.state, d.bit_locker_key) for d in props.drive_list or []] == [
        ("DRV0", DriveState.SPECIFIED, None),
        ("DRV1", DriveState.SPECIFIED, None),
    ]
    assert await service.get("job1") == job


async def test_create_ignores_client_set_read_only_fields(
    service: JobService, import_body: Body
) -> None:
    """Drive state and progress, percentComplete and returnPackage in a PUT are not taken."""
    body = import_body(1)
    body["properties"]["driveList"][0] |= {
        "state": "Completed",
        "bytesSucceeded": 5,
        "percentComplete": 100,
    }
    body["properties"]["percentComplete"] = 100
    body["properties"]["returnPackage"] = {
        "carrierName": "x",
        "trackingNumber": "y",
        "driveCount": 1,
        "shipDate": "2026-01-01",
    }
    job = (await service.create("job1", body)).job
    drive = (job.properties.drive_list or [])[0]
    assert (drive.state, drive.bytes_succeeded, drive.percent_complete) == (
        DriveState.SPECIFIED,
        None,
        None,
    )
    assert job.properties.percent_complete is None
    assert job.properties.return_package is None


async def test_create_accepts_str_and_bytes_bodies(service: JobService, import_body: Body) -> None:
    """A JSON string and JSON bytes create the same job as a mapping."""
    await service.create("a", import_body(1))
    await service.create("b", json.dumps(import_body(1)))
    await service.create("c", json.dumps(import_body(1)).encode())
    jobs = [await service.get(n) for n in "abc"]
    assert len({_dump(j.properties) for j in jobs}) == 1


async def test_create_replaces_a_job_still_in_creating(
    service: JobService, import_body: Body
) -> None:
    """A second PUT of a Creating job replaces it (created False) and its seq keeps rising."""
    await service.create("job1", import_body(2))
    seq_before = service.ledger.get("job1").sim.seq  # type: ignore[union-attr]
    result = await service.create("job1", import_body(3, key_prefix="NEW-"))
    assert result.created is False
    assert len(result.job.properties.drive_list or []) == 3
    record = service.ledger.get("job1")
    assert record is not None
    assert record.sim.seq == seq_before + 1
    keys = await service.list_bitlocker_keys("job1")
    assert [k.bit_locker_key for k in keys] == ["NEW-0000", "NEW-0001", "NEW-0002"]
    assert len(await service.list()) == 1


@pytest.mark.parametrize("state", [J.SHIPPING, J.RECEIVED, J.COMPLETED, J.CLOSED])
async def test_create_refuses_to_replace_a_job_past_creating(
    service: JobService, contents: Contents, import_body: Body, state: JobState
) -> None:
    """A PUT over a job that left Creating is InvalidJobState and changes nothing."""
    await put_in_state(service, "job1", import_body(1), state)
    error = await refused(
        service,
        contents,
        lambda: service.create("job1", import_body(1)),
        InvalidJobState,
        "InvalidJobState",
    )
    assert error.target == "jobName"
    assert str(state) in error.message


@pytest.mark.parametrize("name", ["", "-x", "a/b", "a b", "x" * 65, "jöb"])
async def test_create_rejects_invalid_names(
    service: JobService, contents: Contents, import_body: Body, name: str
) -> None:
    """An invalid job name is InvalidResourceName (400) and creates nothing."""
    await refused(
        service,
        contents,
        lambda: service.create(name, import_body(1)),
        ValidationError,
        "InvalidResourceName",
    )


def _too_many(body: dict[str, Any]) -> None:
    body["properties"]["driveList"] = [
        {"driveId": f"D{i}", "bitLockerKey": f"k{i}"} for i in range(11)
    ]


def _duplicate(body: dict[str, Any]) -> None:
    body["properties"]["driveList"].append({"driveId": "DRV0", "bitLockerKey": "again"})


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (_too_many, "TooManyDrives"),
        (_duplicate, "DuplicateDriveId"),
        (lambda b: b.update(location=7), "InvalidRequestContent"),
        (lambda b: b.update(location="Mars"), "InvalidLocation"),
        (lambda b: b.update(extra=True), "InvalidRequestContent"),
        (lambda b: b["properties"].update(jobType=1), "InvalidRequestContent"),
        (lambda b: b["properties"].update(surprise="x"), "InvalidRequestContent"),
        (
            lambda b: b["properties"]["driveList"][0].update(driveId="has space"),
            "InvalidRequestContent",
        ),
        (lambda b: b["properties"]["driveList"][0].pop("bitLockerKey"), "InvalidRequestContent"),
        (lambda b: b["properties"].update(cancelRequested=True), "InvalidRequestContent"),
        (lambda b: b["properties"].update(state="Completed"), "InvalidRequestContent"),
    ],
)
async def test_create_rejects_bad_bodies(
    service: JobService,
    contents: Contents,
    import_body: Body,
    edit: Callable[[dict[str, Any]], object],
    code: str,
) -> None:
    """A bad PUT body raises ValidationError with its code and leaves the store unchanged."""
    await service.create("other", import_body(1))
    body = import_body(2)
    edit(body)
    await refused(service, contents, lambda: service.create("job1", body), ValidationError, code)


@pytest.mark.parametrize("body", [b"{not json", b"\x00", "[]", b"123", [1, 2], None, 3.5])
async def test_create_rejects_non_object_bodies(
    service: JobService, contents: Contents, body: Any
) -> None:
    """Invalid JSON or a body that is not an object is InvalidRequestContent, nothing created."""
    await refused(
        service,
        contents,
        lambda: service.create("job1", body),
        ValidationError,
        "InvalidRequestContent",
    )


async def test_a_replacing_create_with_a_bad_body_keeps_the_old_job(
    service: JobService, contents: Contents, import_body: Body
) -> None:
    """A refused PUT over an existing job leaves that job exactly as it was."""
    await service.create("job1", import_body(2))
    await refused(
        service,
        contents,
        lambda: service.create("job1", import_body(11)),
        ValidationError,
        "TooManyDrives",
    )


# -- get and list ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope", "", "a/b", 42, None])
async def test_get_unknown_job_is_not_found(service: JobService, name: Any) -> None:
    """Getting a job that does not exist is ResourceNotFound with status 404."""
    with pytest.raises(ResourceNotFound) as info:
        await service.get(name)
    assert (info.value.code, info.value.status) == ("ResourceNotFound", 404)
    assert info.value.to_arm()["error"]["code"] == "ResourceNotFound"


async def test_list_in_creation_order_and_top(service: JobService, import_body: Body) -> None:
    """list returns jobs in creation order; top 1..100 cuts the list."""
    for name in ["c", "a", "b"]:
        await service.create(name, import_body(1))
    assert [j.name for j in await service.list()] == ["c", "a", "b"]
    assert [j.name for j in await service.list(top=1)] == ["c"]
    assert [j.name for j in await service.list(top=2)] == ["c", "a"]
    assert [j.name for j in await service.list(top=100)] == ["c", "a", "b"]


async def test_list_keeps_the_position_of_a_replaced_job(
    service: JobService, import_body: Body
) -> None:
    """Replacing a Creating job does not move it in the list."""
    for name in ["a", "b"]:
        await service.create(name, import_body(1))
    await service.create("a", import_body(2))
    assert [j.name for j in await service.list()] == ["a", "b"]


async def test_list_top_caps_at_one_hundred(service: JobService, import_body: Body) -> None:
    """top=100 returns exactly 100 of 101 jobs."""
    for i in range(101):
        await service.create(f"job{i}", import_body(1))
    assert len(await service.list(top=100)) == 100
    assert [j.name for j in await service.list(top=3)] == ["job0", "job1", "job2"]


@pytest.mark.parametrize("top", [0, -1, 101, 1000, True, False, 1.0, "5", None])
async def test_list_rejects_bad_top(service: JobService, import_body: Body, top: Any) -> None:
    """top outside 1..100 or not an int is a ValidationError on $top (None means no limit)."""
    await service.create("job1", import_body(1))
    if top is None:
        assert len(await service.list(top=top)) == 1
        return
    with pytest.raises(ValidationError) as info:
        await service.list(top=top)
    assert (info.value.target, info.value.status) == ("$top", 400)


async def test_list_filters_by_state(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """state filters the list to jobs in that state; a state nobody is in gives []."""
    for name in ["a", "b", "c"]:
        await service.create(name, import_body(1))
    await service.update("b", ship_body())
    assert [j.name for j in await service.list(state="Shipping")] == ["b"]
    assert [j.name for j in await service.list(state="Creating")] == ["a", "c"]
    assert [j.name for j in await service.list(state="Creating", top=1)] == ["a"]
    assert await service.list(state="Completed") == []


@pytest.mark.parametrize("state", ["Bogus", "creating", "", "Cancelled", 3])
async def test_list_rejects_unknown_state(service: JobService, state: Any) -> None:
    """An unknown state filter is a ValidationError on $filter."""
    with pytest.raises(ValidationError) as info:
        await service.list(state=state)
    assert (info.value.target, info.value.status) == ("$filter", 400)


# -- update ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"properties": {}},
        {"properties": {"state": ""}},
        {"properties": {"cancelRequested": False}},
        {"properties": {"state": "", "cancelRequested": False}},
    ],
)
@pytest.mark.parametrize("state", [J.SHIPPING, J.TRANSFERRING, J.COMPLETED, J.CLOSED])
async def test_noop_patches_change_nothing(
    service: JobService,
    contents: Contents,
    import_body: Body,
    body: dict[str, Any],
    state: JobState,
) -> None:
    """state '' and cancelRequested false are no-ops in every state past Creating: nothing
    is committed. (In Creating the call restarts the expiry, and nothing else.)"""
    await put_in_state(service, "job1", import_body(2), state)
    before = contents(service)
    job = await service.update("job1", body)
    assert job.properties.state is state
    assert contents(service) == before


@pytest.mark.parametrize("state", [J.SHIPPING, J.RECEIVED, J.TRANSFERRING, J.PACKAGING])
async def test_a_field_given_with_its_current_value_is_no_change_in_any_state(
    service: JobService, contents: Contents, import_body: Body, state: JobState
) -> None:
    """Newer SDKs send backupDriveManifest false (and cancelRequested false) in every PATCH:
    with the values the job has, that is no change, so no state refuses it."""
    await put_in_state(service, "job1", import_body(2), state)
    current = (await service.get("job1")).properties
    before = contents(service)
    body = {
        "properties": {
            "backupDriveManifest": current.backup_drive_manifest,
            "logLevel": current.log_level,
            "cancelRequested": False,
        }
    }
    await service.update("job1", body)
    assert contents(service) == before
    if state is J.PACKAGING:  # a different value is still refused where it cannot change
        with pytest.raises(InvalidJobState):
            await service.update("job1", {"properties": {"logLevel": "Verbose"}})


async def test_ship_with_address_from_create(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """PATCH state=Shipping with a package moves a job whose address came with the PUT."""
    await service.create("job1", import_body(3))
    job = await service.update("job1", ship_body())
    assert job.properties.state is J.SHIPPING
    assert job.properties.delivery_package is not None
    assert job.properties.delivery_package.drive_count == 3
    assert await state_of(service, "job1") is J.SHIPPING


async def test_ship_with_package_from_an_earlier_patch(
    service: JobService, import_body: Body
) -> None:
    """The package may come in an earlier PATCH and the address in the shipping one."""
    await service.create("job1", import_body(1, address=False))
    package = {"carrierName": "DHL", "trackingNumber": "77"}
    job = await service.update("job1", {"properties": {"deliveryPackage": package}})
    assert job.properties.state is J.CREATING
    from_conftest_address = import_body(1)["properties"]["returnAddress"]
    job = await service.update(
        "job1", {"properties": {"state": "Shipping", "returnAddress": from_conftest_address}}
    )
    assert job.properties.state is J.SHIPPING


@pytest.mark.parametrize(
    ("address_on_create", "patch", "missing"),
    [
        (
            False,
            {"state": "Shipping", "deliveryPackage": {"carrierName": "x", "trackingNumber": "1"}},
            ["returnAddress"],
        ),
        (True, {"state": "Shipping"}, ["deliveryPackage"]),
        (False, {"state": "Shipping"}, ["returnAddress", "deliveryPackage"]),
    ],
)
async def test_ship_without_shipping_information_is_refused(
    service: JobService,
    contents: Contents,
    import_body: Body,
    address_on_create: bool,
    patch: dict[str, Any],
    missing: list[str],
) -> None:
    """Shipping with no returnAddress or deliveryPackage, now or before, is refused; no change."""
    await service.create("job1", import_body(1, address=address_on_create))
    error = await refused(
        service,
        contents,
        lambda: service.update("job1", {"properties": patch}),
        ValidationError,
        "MissingShippingInformation",
    )
    assert error.target == f"properties.{missing[0]}"
    for field in missing:
        assert field in error.message


@pytest.mark.parametrize("value", ["Creating", "Received", "Completed", "shipping", "Canceled"])
async def test_patch_state_other_than_shipping_is_refused(
    service: JobService, contents: Contents, import_body: Body, value: str
) -> None:
    """Any PATCH state but Shipping or '' is a ValidationError and nothing changes."""
    await service.create("job1", import_body(1))
    error = await refused(
        service,
        contents,
        lambda: service.update("job1", {"properties": {"state": value}}),
        ValidationError,
        "InvalidRequestContent",
    )
    assert error.target == "properties.state"


@pytest.mark.parametrize("state", [J.RECEIVED, J.TRANSFERRING, J.PACKAGING, J.COMPLETED, J.CLOSED])
async def test_ship_after_shipping_is_refused(
    service: JobService, contents: Contents, import_body: Body, state: JobState
) -> None:
    """PATCH state=Shipping of a job past Shipping is InvalidJobState (409)."""
    await put_in_state(service, "job1", import_body(1), state)
    await refused(
        service,
        contents,
        lambda: service.update("job1", {"properties": {"state": "Shipping"}}),
        InvalidJobState,
        "InvalidJobState",
    )


async def test_ship_again_while_shipping_updates_tracking(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """Shipping again while Shipping is allowed and changes the tracking number."""
    await service.create("job1", import_body(1))
    await service.update("job1", ship_body())
    body = ship_body()
    body["properties"]["deliveryPackage"]["trackingNumber"] = "NEW-42"
    job = await service.update("job1", body)
    assert job.properties.state is J.SHIPPING
    assert job.properties.delivery_package is not None
    assert job.properties.delivery_package.tracking_number == "NEW-42"


FIELD_VALUES: dict[str, Any] = {
    "returnAddress": {
        "recipientName": "Bob",
        "streetAddress1": "2 Side St",
        "city": "Oslo",
        "postalCode": "0150",
        "countryOrRegion": "Norway",
        "phone": "1",
        "email": "b@x.no",
    },
    "returnShipping": {"carrierName": "FedEx", "carrierAccountNumber": "9"},
    "deliveryPackage": {"carrierName": "UPS", "trackingNumber": "555"},
    "logLevel": "Verbose",
    "backupDriveManifest": True,
    "driveList": [{"driveId": "NEWDRIVE", "bitLockerKey": "NEW-KEY-1"}],
}

#: Which fields a PATCH may change in each state (tags: always).
UPDATABLE: dict[JobState, set[str]] = {
    J.CREATING: {
        "returnAddress",
        "returnShipping",
        "deliveryPackage",
        "logLevel",
        "backupDriveManifest",
        "driveList",
    },
    J.SHIPPING: {
        "returnAddress",
        "returnShipping",
        "deliveryPackage",
        "logLevel",
        "backupDriveManifest",
    },
    J.RECEIVED: {"returnAddress", "returnShipping", "logLevel"},
    J.TRANSFERRING: {"returnAddress", "returnShipping", "logLevel"},
    J.PACKAGING: set(),
    J.COMPLETED: set(),
    J.CLOSED: set(),
}


@pytest.mark.parametrize("field", list(FIELD_VALUES))
@pytest.mark.parametrize("state", list(JobState))
async def test_field_updates_by_state(
    service: JobService, contents: Contents, import_body: Body, state: JobState, field: str
) -> None:
    """A field is updated in states that allow it, else InvalidJobState (409) and no change."""
    await put_in_state(service, "job1", import_body(1), state)
    body = {"properties": {field: FIELD_VALUES[field]}}
    if field in UPDATABLE[state]:
        job = await service.update("job1", body)
        shown = to_builtins(job.properties)[field]
        if field == "driveList":
            assert [d["driveId"] for d in shown] == ["NEWDRIVE"]
        else:
            assert shown == FIELD_VALUES[field]
        assert job.properties.state is state
    else:
        error = await refused(
            service,
            contents,
            lambda: service.update("job1", body),
            InvalidJobState,
            "InvalidJobState",
        )
        assert error.target == f"properties.{field}"


@pytest.mark.parametrize("state", list(JobState))
async def test_tags_update_in_every_state(
    service: JobService, import_body: Body, state: JobState
) -> None:
    """Tags may change in any state."""
    await put_in_state(service, "job1", import_body(1), state)
    job = await service.update("job1", {"tags": {"team": "ops"}})
    assert job.tags == {"team": "ops"}
    assert (await service.get("job1")).tags == {"team": "ops"}


async def test_drive_list_update_replaces_drives_and_keys(
    service: JobService, import_body: Body
) -> None:
    """A driveList PATCH in Creating replaces the drives and their keys."""
    await service.create("job1", import_body(2))
    body = {
        "properties": {
            "driveList": [
                {"driveId": "DRV1", "bitLockerKey": "K-ONE"},
                {"driveId": "X9", "bitLockerKey": "K-X9"},
            ]
        }
    }
    job = await service.update("job1", body)
    assert [(d.drive_id, d.state) for d in job.properties.drive_list or []] == [
        ("DRV1", DriveState.SPECIFIED),
        ("X9", DriveState.SPECIFIED),
    ]
    keys = await service.list_bitlocker_keys("job1")
    assert [(k.drive_id, k.bit_locker_key) for k in keys] == [("DRV1", "K-ONE"), ("X9", "K-X9")]
    assert "K-ONE" not in _dump(job)


async def test_drive_list_update_of_an_export_job_is_refused(
    service: JobService, contents: Contents, export_body: Body
) -> None:
    """An export job takes no driveList, in a PATCH either."""
    await service.create("exp", export_body())
    await refused(
        service,
        contents,
        lambda: service.update("exp", {"properties": {"driveList": FIELD_VALUES["driveList"]}}),
        ValidationError,
        "InvalidRequestContent",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "InvalidRequestContent"),
        (b"\xff", "InvalidRequestContent"),
        ("[]", "InvalidRequestContent"),
        ([1], "InvalidRequestContent"),
        (None, "InvalidRequestContent"),
        ({"properties": {"unknown": 1}}, "InvalidRequestContent"),
        ({"location": "West US"}, "InvalidRequestContent"),
        ({"properties": {"cancelRequested": "yes"}}, "InvalidRequestContent"),
        ({"properties": {"logLevel": 3}}, "InvalidRequestContent"),
        ({"properties": {"logLevel": "Debug"}}, "InvalidRequestContent"),
        (
            {
                "properties": {
                    "driveList": [{"driveId": f"D{i}", "bitLockerKey": "k"} for i in range(11)]
                }
            },
            "TooManyDrives",
        ),
        (
            {"properties": {"driveList": [{"driveId": "D", "bitLockerKey": "k"}] * 2}},
            "DuplicateDriveId",
        ),
    ],
)
async def test_update_rejects_bad_bodies(
    service: JobService, contents: Contents, import_body: Body, body: Any, code: str
) -> None:
    """A malformed PATCH is a ValidationError (400) with its code and changes nothing."""
    await service.create("job1", import_body(1))
    await refused(service, contents, lambda: service.update("job1", body), ValidationError, code)


async def test_update_unknown_job_is_not_found(
    service: JobService, contents: Contents, ship_body: Body
) -> None:
    """A PATCH of a job that does not exist is ResourceNotFound."""
    await refused(
        service,
        contents,
        lambda: service.update("ghost", ship_body()),
        ResourceNotFound,
        "ResourceNotFound",
    )


async def test_export_drive_count_must_be_one_to_ten(
    service: JobService, contents: Contents, export_body: Body, ship_body: Body
) -> None:
    """Shipping an export job with driveCount outside 1..10 (0 included) is refused."""
    await service.create("exp", export_body())
    for count in (0, -1, 11):
        error = await refused(
            service,
            contents,
            lambda c=count: service.update("exp", ship_body(drive_count=c)),  # type: ignore[misc]
            ValidationError,
            "InvalidRequestContent",
        )
        assert error.target == "properties.deliveryPackage.driveCount"
    job = await service.update("exp", ship_body(drive_count=10))
    assert job.properties.state is J.SHIPPING


# -- cancel ----------------------------------------------------------------------------


async def test_cancel_in_creating_completes_the_job(service: JobService, import_body: Body) -> None:
    """A cancel in Creating is accepted and the job is Completed at once, outcome cancelled."""
    await service.create("job1", import_body(1))
    result = await service.cancel("job1")
    assert result.answer is CancelAnswer.ACCEPTED
    assert result.job.properties.state is J.COMPLETED
    assert result.job.properties.cancel_requested is True
    record = service.ledger.get("job1")
    assert record is not None
    assert record.sim.outcome == "cancelled"
    snapshot = [
        e.message for e in service.ledger.store.history() if e.message.topic.endswith("/state")
    ][-1]
    assert decode_payload(snapshot.payload)["outcome"] == "cancelled"


async def test_cancel_twice_is_already_requested(
    service: JobService, contents: Contents, import_body: Body, ship_body: Body
) -> None:
    """A second cancel answers already-requested and commits nothing."""
    await service.create("job1", import_body(1))
    await service.update("job1", ship_body())
    first = await service.cancel("job1")
    assert first.answer is CancelAnswer.ACCEPTED
    assert first.job.properties.state is J.SHIPPING
    before = contents(service)
    second = await service.cancel("job1")
    assert second.answer is CancelAnswer.ALREADY_REQUESTED
    assert second.job.properties.cancel_requested is True
    assert contents(service) == before


async def test_cancel_patch_returns_the_cancelled_job(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """PATCH cancelRequested=true is the same accepted cancel."""
    await service.create("job1", import_body(1))
    await service.update("job1", ship_body())
    job = await service.update("job1", {"properties": {"cancelRequested": True}})
    assert (job.properties.state, job.properties.cancel_requested) == (J.SHIPPING, True)


async def test_cancel_in_received_skips_the_copy(service: JobService, import_body: Body) -> None:
    """A cancel of a Received job with nothing copying sends it to Packaging, drives skipped."""
    await put_in_state(service, "job1", import_body(2), J.RECEIVED)
    result = await service.cancel("job1")
    assert result.answer is CancelAnswer.ACCEPTED
    assert result.job.properties.state is J.PACKAGING
    record = service.ledger.get("job1")
    assert record is not None
    assert all(d.skipped for d in record.sim.drives.values())


async def test_cancel_in_transferring_lets_the_running_drive_go_on(
    service: JobService, import_body: Body
) -> None:
    """A cancel during a copy is accepted, the job stays Transferring, no new drive starts."""
    await put_in_state(service, "job1", import_body(2), J.TRANSFERRING)
    result = await service.cancel("job1")
    assert result.answer is CancelAnswer.ACCEPTED
    assert result.job.properties.state is J.TRANSFERRING
    now = service.ledger.clock.now()
    with pytest.raises(InvalidJobState):
        service.ledger.update("job1", lambda r: changes.start_drive(r, "DRV1", now))


@pytest.mark.parametrize("state", [J.PACKAGING, J.COMPLETED, J.CLOSED])
async def test_cancel_too_late_names_the_state(
    service: JobService, contents: Contents, import_body: Body, state: JobState
) -> None:
    """A cancel from Packaging on is CancelTooLate (409) naming the state; nothing changes."""
    await put_in_state(service, "job1", import_body(1), state)
    error = await refused(
        service, contents, lambda: service.cancel("job1"), InvalidJobState, "CancelTooLate"
    )
    assert isinstance(error, InvalidJobState)
    assert error.state == str(state)
    assert str(state) in error.message
    assert error.target == "properties.cancelRequested"


@pytest.mark.parametrize(
    ("window", "state", "accepted"),
    [
        (CancelWindow.CREATING_OR_SHIPPING, J.SHIPPING, True),
        (CancelWindow.CREATING_OR_SHIPPING, J.RECEIVED, False),
        (CancelWindow.CREATING_ONLY, J.CREATING, True),
        (CancelWindow.CREATING_ONLY, J.SHIPPING, False),
        (CancelWindow.BEFORE_PACKAGING, J.TRANSFERRING, True),
    ],
)
async def test_cancel_window_policy(
    make_service: Callable[..., JobService],
    store: JobStore,
    contents: Contents,
    import_body: Body,
    window: CancelWindow,
    state: JobState,
    accepted: bool,
) -> None:
    """The configured cancel window decides between accepted and too late."""
    service = make_service(store, policy=Policy(cancel_window=window))
    await put_in_state(service, "job1", import_body(1), state)
    if accepted:
        assert (await service.cancel("job1")).answer is CancelAnswer.ACCEPTED
    else:
        error = await refused(
            service, contents, lambda: service.cancel("job1"), InvalidJobState, "CancelTooLate"
        )
        assert str(state) in error.message


async def test_ship_and_cancel_in_one_patch_is_judged_in_shipping(
    make_service: Callable[..., JobService],
    store: JobStore,
    contents: Contents,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Under creating-only, a PATCH that ships and cancels is refused as a whole."""
    service = make_service(store, policy=Policy(cancel_window=CancelWindow.CREATING_ONLY))
    await service.create("job1", import_body(1))
    body = ship_body()
    body["properties"]["cancelRequested"] = True
    error = await refused(
        service, contents, lambda: service.update("job1", body), InvalidJobState, "CancelTooLate"
    )
    assert "Shipping" in error.message
    assert await state_of(service, "job1") is J.CREATING


async def test_ship_and_cancel_in_one_patch_before_packaging(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """Under before-packaging, a PATCH that ships and cancels leaves a cancelled Shipping job."""
    await service.create("job1", import_body(1))
    body = ship_body()
    body["properties"]["cancelRequested"] = True
    job = await service.update("job1", body)
    assert (job.properties.state, job.properties.cancel_requested) == (J.SHIPPING, True)


async def test_cancel_unknown_job_is_not_found(service: JobService, contents: Contents) -> None:
    """Cancelling a job that does not exist is ResourceNotFound."""
    await refused(
        service, contents, lambda: service.cancel("ghost"), ResourceNotFound, "ResourceNotFound"
    )


# -- delete ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [J.CREATING, J.COMPLETED])
async def test_delete_then_get_is_not_found(
    service: JobService, import_body: Body, state: JobState
) -> None:
    """Delete works in Creating and Completed; afterwards get is ResourceNotFound (404)."""
    await put_in_state(service, "job1", import_body(2), state)
    await service.delete("job1")
    with pytest.raises(ResourceNotFound) as info:
        await service.get("job1")
    assert info.value.status == 404
    assert await service.list() == []
    with pytest.raises(ResourceNotFound):
        await service.list_bitlocker_keys("job1")
    with pytest.raises(ResourceNotFound):
        await service.delete("job1")


async def test_delete_clears_retained_topics(service: JobService, import_body: Body) -> None:
    """A delete publishes empty retained payloads for the job and each of its drives."""
    await service.create("job1", import_body(2))
    before = history_len(service)
    await service.delete("job1")
    new = [e.message for e in service.ledger.store.history()][before:]
    cleared = {m.topic for m in new if m.retain and m.payload == b""}
    assert cleared == {
        "importexport/v1/jobs/job1/state",
        "importexport/v1/jobs/job1/drives/DRV0/state",
        "importexport/v1/jobs/job1/drives/DRV1/state",
    }
    events = [decode_payload(m.payload) for m in new if m.topic.endswith("/events")]
    assert [e["type"] for e in events] == ["com.drivesim.importexport.jobDeleted"]
    assert events[0]["data"]["reason"] == "customer"


def retained_topics(service: JobService) -> set[str]:
    """The retained topics a broker holds after every committed message so far."""
    retained: dict[str, bytes] = {}
    for entry in service.ledger.store.history():
        message = entry.message
        if message.retain:
            if message.payload:
                retained[message.topic] = message.payload
            else:
                retained.pop(message.topic, None)
    return set(retained)


async def test_replacing_put_clears_dropped_drives(service: JobService, import_body: Body) -> None:
    """A replacing PUT with fewer drives clears the dropped drives' retained topics."""
    await service.create("job1", import_body(3))
    await service.create("job1", import_body(1))
    assert retained_topics(service) == {
        "importexport/v1/jobs/job1/state",
        "importexport/v1/jobs/job1/drives/DRV0/state",
    }
    await service.delete("job1")
    assert retained_topics(service) == set()


async def test_drive_list_patch_clears_dropped_drives(
    service: JobService, import_body: Body
) -> None:
    """A driveList PATCH that drops drives clears their retained topics."""
    await service.create("job1", import_body(2))
    body = {"properties": {"driveList": [{"driveId": "NEW", "bitLockerKey": "K-NEW"}]}}
    await service.update("job1", body)
    assert retained_topics(service) == {
        "importexport/v1/jobs/job1/state",
        "importexport/v1/jobs/job1/drives/NEW/state",
    }
    await service.delete("job1")
    assert retained_topics(service) == set()


async def test_recreated_job_continues_the_sequence(service: JobService, import_body: Body) -> None:
    """A job created again after a delete continues the seq of its name."""
    await service.create("job1", import_body(1))
    await service.delete("job1")
    seqs = [e.message.seq for e in service.ledger.store.history()]
    await service.create("job1", import_body(1))
    new = [e.message.seq for e in service.ledger.store.history()][len(seqs) :]
    assert min(new) == max(seqs) + 1


@pytest.mark.parametrize("state", [J.SHIPPING, J.RECEIVED, J.TRANSFERRING, J.PACKAGING, J.CLOSED])
async def test_delete_refused_outside_creating_and_completed(
    service: JobService, contents: Contents, import_body: Body, state: JobState
) -> None:
    """Delete elsewhere, Closed included, is DeleteNotAllowed (409) and the job stays."""
    await put_in_state(service, "job1", import_body(1), state)
    error = await refused(
        service, contents, lambda: service.delete("job1"), InvalidJobState, "DeleteNotAllowed"
    )
    assert str(state) in error.message
    assert await state_of(service, "job1") is state


async def test_delete_unknown_job_is_not_found(service: JobService, contents: Contents) -> None:
    """Deleting a job that does not exist is ResourceNotFound."""
    await refused(
        service, contents, lambda: service.delete("ghost"), ResourceNotFound, "ResourceNotFound"
    )


# -- keys ------------------------------------------------------------------------------


async def test_list_bitlocker_keys(service: JobService, import_body: Body) -> None:
    """list_bitlocker_keys returns each drive's key, in drive order."""
    await service.create("job1", import_body(3))
    keys = await service.list_bitlocker_keys("job1")
    assert [(k.drive_id, k.bit_locker_key) for k in keys] == [
        ("DRV0", "BEK-SECRET-0000"),
        ("DRV1", "BEK-SECRET-0001"),
        ("DRV2", "BEK-SECRET-0002"),
    ]


async def test_list_bitlocker_keys_of_unknown_job(service: JobService) -> None:
    """Keys of a job that does not exist: ResourceNotFound."""
    with pytest.raises(ResourceNotFound):
        await service.list_bitlocker_keys("ghost")


async def test_no_snapshot_ever_carries_a_key(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """Over a whole job life no response and no status message contains a BitLocker key."""
    secrets = ["BEK-SECRET-", "NEW-KEY-", "K-LATE"]
    responses = []
    responses.append((await service.create("job1", import_body(2))).job)
    responses.append((await service.create("job1", import_body(3, key_prefix="NEW-KEY-"))).job)
    responses.append(
        await service.update(
            "job1", {"properties": {"driveList": [{"driveId": "L", "bitLockerKey": "K-LATE"}]}}
        )
    )
    responses.append(await service.update("job1", ship_body()))
    await put_in_state(service, "job2", import_body(2), J.COMPLETED)
    responses += await service.list()
    await service.delete("job2")
    texts = [_dump(r) for r in responses] + [
        e.message.payload.decode() for e in service.ledger.store.history()
    ]
    assert any("K-LATE" in k.bit_locker_key for k in await service.list_bitlocker_keys("job1"))
    for text in texts:
        for secret in secrets:
            assert secret not in text
