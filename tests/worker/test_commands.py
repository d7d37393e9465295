"""CommandHandler: each operation's reply, each bad input's ARM error, and that a refused
command changes nothing (on the in-memory store and on a real SQLite file)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.worker.conftest import DELIVERY_PACKAGE as PACKAGE
from tests.worker.conftest import RETURN_ADDRESS as ADDRESS
from worker import JobState, JobStore, MemoryStore, SQLiteStore
from worker import changes as change
from worker.commands import OPERATIONS, CommandHandler, Reply
from worker.model import to_builtins
from worker.record import JobRecord
from worker.service import JobService
from worker.status import Event

J = JobState
Body = Callable[..., dict[str, Any]]
Contents = Callable[[JobService | JobStore], object]
MakeService = Callable[..., JobService]

pytestmark = pytest.mark.asyncio

#: Statuses a reply may carry: success, bad request, not found, conflict, payload too large.
STATUSES = {200, 201, 400, 404, 409, 413}


def req(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.fixture
def handler(service: JobService) -> CommandHandler:
    """A handler over the parametrized service (memory and SQLite), default size limit."""
    return CommandHandler(service)


async def job_in(service: JobService, name: str, state: JobState, body: dict[str, Any]) -> None:
    """Create ``name`` and walk it to ``state`` through the datacenter's own changes."""
    ledger = service.ledger
    now = ledger.clock.now
    await service.create(name, body)
    if state is J.CREATING:
        return
    if state is J.COMPLETED:  # a cancel in Creating ends the job at once
        await service.cancel(name)
        return
    await service.update(name, {"properties": {"state": "Shipping", "deliveryPackage": PACKAGE}})
    if state is J.SHIPPING:
        return
    ledger.update(name, lambda r: change.receive(r, now()))
    record = ledger.get(name)
    assert record is not None
    for drive in record.drives:
        drive_id, size = drive.drive_id, record.sim.drives[drive.drive_id].plan.size_bytes

        def start(r: JobRecord, d: str = drive_id) -> list[Event]:
            return change.start_drive(r, d, now())

        def finish(r: JobRecord, d: str = drive_id, s: int = size) -> list[Event]:
            return change.finish_drive(r, d, now(), copied=s, error=None)

        ledger.update(name, start)
        if state is J.TRANSFERRING:
            return
        ledger.update(name, finish)
    assert state is J.PACKAGING
    packaged = ledger.get(name)
    assert packaged is not None
    assert packaged.state is J.PACKAGING


async def refused(
    handler: CommandHandler,
    contents: Contents,
    op: str,
    payload: bytes,
    *,
    status: int,
    code: str,
) -> Reply:
    """Handle ``payload``, expect an error reply with ``status`` and ``code``, and no change."""
    before = contents(handler.service)
    reply = await handler.handle(op, payload)
    assert (reply.status, reply.ok, reply.result) == (status, False, None)
    assert reply.error is not None
    assert reply.error["code"] == code
    assert isinstance(reply.error["message"], str)
    assert reply.error["message"]
    assert contents(handler.service) == before
    return reply


def body_of(reply: Reply) -> Any:
    return json.loads(reply.to_json())


# -- each operation's success --------------------------------------------------------------


async def test_create_answers_201_with_the_job_and_no_keys(
    handler: CommandHandler, import_body: Body
) -> None:
    """create answers 201 with the new job in Creating, its drives Specified, no BitLocker key."""
    reply = await handler.handle("create", req(job="alpha", body=import_body(2)))
    assert (reply.status, reply.ok, reply.error) == (201, True, None)
    job = reply.result
    assert (job["name"], job["properties"]["state"]) == ("alpha", "Creating")
    assert [d["state"] for d in job["properties"]["driveList"]] == ["Specified", "Specified"]
    assert b"bitLockerKey" not in reply.to_json()
    assert b"BEK-SECRET" not in reply.to_json()
    assert job == to_builtins(await handler.service.get("alpha"))


async def test_create_again_in_creating_replaces_with_200(
    handler: CommandHandler, import_body: Body
) -> None:
    """create on a job still in Creating replaces it and answers 200 (ARM's replace)."""
    await handler.handle("create", req(job="alpha", body=import_body(2)))
    reply = await handler.handle("create", req(job="alpha", body=import_body(3)))
    assert reply.status == 200
    assert len(reply.result["properties"]["driveList"]) == 3
    history = [entry.message for entry in handler.service.ledger.store.history()]
    events = [m.payload for m in history if m.topic.endswith("/events")]
    assert b"jobReplaced" in events[-1]


async def test_get_answers_200_with_the_job(handler: CommandHandler, import_body: Body) -> None:
    """get answers 200 with exactly what the service returns for the job."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    reply = await handler.handle("get", req(job="alpha"))
    assert reply.status == 200
    assert reply.result == to_builtins(await handler.service.get("alpha"))


async def test_list_honours_top_and_state(handler: CommandHandler, import_body: Body) -> None:
    """list answers jobs in creation order, at most top of them, only those in state if given."""
    for name in ("alpha", "bravo", "charlie"):
        await handler.handle("create", req(job=name, body=import_body()))
    await handler.handle("ship", req(job="bravo", deliveryPackage=PACKAGE))

    def names(reply: Reply) -> list[str]:
        assert reply.status == 200
        return [job["name"] for job in reply.result["value"]]

    assert names(await handler.handle("list", b"{}")) == ["alpha", "bravo", "charlie"]
    assert names(await handler.handle("list", req(top=2))) == ["alpha", "bravo"]
    assert names(await handler.handle("list", req(state="Shipping"))) == ["bravo"]
    assert names(await handler.handle("list", req(state="Creating", top=1))) == ["alpha"]
    assert names(await handler.handle("list", req(state="Completed"))) == []


async def test_update_answers_200_with_the_changed_job(
    handler: CommandHandler, import_body: Body
) -> None:
    """update applies the PATCH body and answers 200 with the job after the change."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    reply = await handler.handle(
        "update", req(job="alpha", body={"properties": {"logLevel": "Verbose"}, "tags": {"a": "b"}})
    )
    assert reply.status == 200
    assert reply.result["properties"]["logLevel"] == "Verbose"
    assert reply.result["tags"] == {"a": "b"}
    assert reply.result == to_builtins(await handler.service.get("alpha"))


async def test_ship_moves_the_job_to_shipping(handler: CommandHandler, import_body: Body) -> None:
    """ship answers 200 with the job in Shipping and its delivery package (and return address)."""
    await handler.handle("create", req(job="alpha", body=import_body(address=False)))
    reply = await handler.handle(
        "ship", req(job="alpha", deliveryPackage=PACKAGE, returnAddress=ADDRESS)
    )
    assert reply.status == 200
    props = reply.result["properties"]
    assert props["state"] == "Shipping"
    assert props["deliveryPackage"] == {**PACKAGE, "driveCount": 2}
    assert props["returnAddress"] == ADDRESS


async def test_cancel_answers_accepted_then_already_requested(
    handler: CommandHandler, import_body: Body
) -> None:
    """cancel answers accepted the first time, already-requested after, both 200 with the job."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await handler.handle("ship", req(job="alpha", deliveryPackage=PACKAGE))
    first = await handler.handle("cancel", req(job="alpha"))
    again = await handler.handle("cancel", req(job="alpha"))
    assert (first.status, first.result["answer"]) == (200, "accepted")
    assert (again.status, again.result["answer"]) == (200, "already-requested")
    assert first.result["job"]["properties"]["cancelRequested"] is True
    assert again.result["job"] == first.result["job"]


async def test_delete_answers_200_and_the_job_is_gone(
    handler: CommandHandler, import_body: Body
) -> None:
    """delete answers 200 with a null result; afterwards get answers ResourceNotFound."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    reply = await handler.handle("delete", req(job="alpha"))
    assert (reply.status, reply.result) == (200, None)
    assert body_of(reply) == {"ok": True, "status": 200, "result": None}
    assert (await handler.handle("get", req(job="alpha"))).status == 404


async def test_list_bitlocker_keys_answers_the_keys(
    handler: CommandHandler, import_body: Body
) -> None:
    """list-bitlocker-keys answers 200 with each drive's key: the one reply that carries them."""
    await handler.handle("create", req(job="alpha", body=import_body(2)))
    reply = await handler.handle("list-bitlocker-keys", req(job="alpha"))
    assert reply.status == 200
    assert reply.result == {
        "value": [
            {"driveId": "DRV0", "bitLockerKey": "BEK-SECRET-0000"},
            {"driveId": "DRV1", "bitLockerKey": "BEK-SECRET-0001"},
        ]
    }


async def test_reply_address_and_correlation_are_echoed(
    handler: CommandHandler, import_body: Body
) -> None:
    """replyTo and correlationId (MQTT 3.1.1) come back on the reply, success or error."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    ok = await handler.handle(
        "get", req(job="alpha", replyTo="importexport/v1/replies/r1", correlationId="c1")
    )
    missing = await handler.handle(
        "get", req(job="nope", replyTo="importexport/v1/replies/r2", correlationId="c2")
    )
    assert (ok.reply_to, ok.correlation_id) == ("importexport/v1/replies/r1", "c1")
    assert (missing.reply_to, missing.correlation_id, missing.status) == (
        "importexport/v1/replies/r2",
        "c2",
        404,
    )
    assert body_of(ok)["correlationId"] == "c1"
    assert body_of(missing) == {
        "ok": False,
        "status": 404,
        "error": missing.error,
        "correlationId": "c2",
    }


# -- bad input: the right error, and nothing changes -------------------------------------------


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b'{"job": "alpha",}', b"\xff\xfe"])
async def test_invalid_json_is_refused(
    op: str, payload: bytes, handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """A payload that is not JSON gets 400 InvalidRequestContent and changes nothing."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await refused(handler, contents, op, payload, status=400, code="InvalidRequestContent")


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("get", {"job": 5}),
        ("get", {"job": None}),
        ("delete", {"job": ["alpha"]}),
        ("cancel", {"job": True}),
        ("list-bitlocker-keys", {"job": {"name": "alpha"}}),
        ("list", {"top": "ten"}),
        ("list", {"top": 1.5}),
        ("list", {"top": True}),
        ("list", {"state": 3}),
        ("create", {"job": "beta", "body": "{}"}),
        ("create", {"job": "beta", "body": []}),
        ("create", {"job": 7, "body": {}}),
        ("update", {"job": "alpha", "body": None}),
        ("update", {"job": "alpha", "body": {"properties": {"logLevel": 3}}}),
        ("update", {"job": "alpha", "body": {"properties": {"cancelRequested": "yes"}}}),
        ("ship", {"job": "alpha", "deliveryPackage": "FedEx 1"}),
        ("ship", {"job": "alpha", "deliveryPackage": {"carrierName": 1, "trackingNumber": "1"}}),
        ("ship", {"job": "alpha", "deliveryPackage": PACKAGE, "returnAddress": []}),
        ("get", {"job": "alpha", "replyTo": 5}),
        ("get", {"job": "alpha", "correlationId": 5}),
    ],
)
async def test_wrong_types_are_refused(
    op: str,
    fields: dict[str, Any],
    handler: CommandHandler,
    contents: Contents,
    import_body: Body,
) -> None:
    """A field of the wrong type, in the request or its body, gets 400 and changes nothing."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await refused(handler, contents, op, req(**fields), status=400, code="InvalidRequestContent")


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("get", {}),
        ("create", {"job": "beta"}),
        ("update", {"job": "alpha"}),
        ("ship", {"job": "alpha"}),
        ("create", {"body": {}}),
    ],
)
async def test_missing_fields_are_refused(
    op: str,
    fields: dict[str, Any],
    handler: CommandHandler,
    contents: Contents,
    import_body: Body,
) -> None:
    """A request without a required field gets 400 and changes nothing."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await refused(handler, contents, op, req(**fields), status=400, code="InvalidRequestContent")


@pytest.mark.parametrize("op", ["explode", "", "GET", "list_bitlocker_keys", "get/x", "#"])
async def test_unknown_operation_is_refused(
    op: str, handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """An operation that does not exist gets 400 UnknownOperation targeting op."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    reply = await refused(
        handler, contents, op, req(job="alpha"), status=400, code="UnknownOperation"
    )
    assert reply.error is not None
    assert reply.error["target"] == "op"


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("get", {"job": "alpha", "force": True}),
        ("delete", {"job": "alpha", "reason": "customer"}),
        ("cancel", {"job": "alpha", "body": {}}),
        ("list", {"top": 1, "skip": 1}),
        ("list", {"job": "alpha"}),
        ("ship", {"job": "alpha", "deliveryPackage": PACKAGE, "state": "Shipping"}),
        ("ship", {"job": "alpha", "deliveryPackage": {**PACKAGE, "weight": 3}}),
        ("update", {"job": "alpha", "body": {"properties": {"color": "red"}}}),
        ("update", {"job": "alpha", "body": {"etag": "*"}}),
        ("create", {"job": "beta", "body": {"location": "West US", "bogus": 1, "properties": {}}}),
    ],
)
async def test_unknown_fields_are_refused(
    op: str,
    fields: dict[str, Any],
    handler: CommandHandler,
    contents: Contents,
    import_body: Body,
) -> None:
    """A field the operation does not know, in the request or its body, gets 400."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await refused(handler, contents, op, req(**fields), status=400, code="InvalidRequestContent")


@pytest.mark.parametrize("op", OPERATIONS)
async def test_oversized_payload_is_refused(
    op: str, service: JobService, contents: Contents, import_body: Body
) -> None:
    """A payload over max_bytes gets PayloadTooLarge before parsing; one at the limit is read."""
    handler = CommandHandler(service, max_bytes=1024)
    await handler.handle("create", req(job="alpha", body=import_body()))
    payload = req(job="alpha", body={"tags": {"pad": "x" * 1024}})
    reply = await refused(handler, contents, op, payload, status=413, code="PayloadTooLarge")
    assert reply.error is not None
    assert "1024" in reply.error["message"]
    # A well-formed request of exactly max_bytes is read (and answered on its merits).
    get = req(job="alpha")
    exact = get[:-1] + b" " * (1024 - len(get)) + b"}"
    assert len(exact) == 1024
    assert (await handler.handle("get", exact)).status == 200


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("get", {}),
        ("delete", {}),
        ("cancel", {}),
        ("list-bitlocker-keys", {}),
        ("update", {"body": {"properties": {"logLevel": "Verbose"}}}),
        ("ship", {"deliveryPackage": PACKAGE}),
    ],
)
async def test_unknown_job_is_not_found(
    op: str, fields: dict[str, Any], handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """A command on a job that does not exist (or was deleted) gets 404 ResourceNotFound."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    await handler.handle("create", req(job="gone", body=import_body()))
    await handler.handle("delete", req(job="gone"))
    for name in ("nope", "gone", "ALPHA"):
        reply = await refused(
            handler, contents, op, req(job=name, **fields), status=404, code="ResourceNotFound"
        )
        assert reply.error is not None
        assert name in reply.error["message"]


def _fields(**fields: Any) -> Callable[[Body], dict[str, Any]]:
    return lambda body: fields


def _body(properties: dict[str, Any]) -> Callable[[Body], dict[str, Any]]:
    return lambda body: {"body": {"properties": properties}}


@pytest.mark.parametrize(
    ("state", "op", "fields", "code"),
    [
        (J.SHIPPING, "create", lambda body: {"body": body(1)}, "InvalidJobState"),
        (J.SHIPPING, "delete", _fields(), "DeleteNotAllowed"),
        (
            J.SHIPPING,
            "update",
            lambda body: _body({"driveList": body(1)["properties"]["driveList"]})(body),
            "InvalidJobState",
        ),
        (J.TRANSFERRING, "delete", _fields(), "DeleteNotAllowed"),
        (J.TRANSFERRING, "ship", _fields(deliveryPackage=PACKAGE), "InvalidJobState"),
        (J.PACKAGING, "cancel", _fields(), "CancelTooLate"),
        (J.PACKAGING, "update", _body({"cancelRequested": True}), "CancelTooLate"),
        (J.PACKAGING, "update", _body({"logLevel": "Verbose"}), "InvalidJobState"),
        (J.PACKAGING, "delete", _fields(), "DeleteNotAllowed"),
        (J.COMPLETED, "ship", _fields(deliveryPackage=PACKAGE), "InvalidJobState"),
        (
            J.COMPLETED,
            "update",
            _body({"returnAddress": {**ADDRESS, "city": "Elsewhere"}}),
            "InvalidJobState",
        ),
        (J.COMPLETED, "create", lambda body: {"body": body(1)}, "InvalidJobState"),
    ],
)
async def test_command_in_the_wrong_state_is_a_conflict(
    state: JobState,
    op: str,
    fields: Callable[[Body], dict[str, Any]],
    code: str,
    handler: CommandHandler,
    contents: Contents,
    import_body: Body,
) -> None:
    """A well-formed command the job's state forbids gets 409 with its code and changes nothing."""
    await job_in(handler.service, "alpha", state, import_body(2))
    payload = req(job="alpha", **fields(import_body))
    reply = await refused(handler, contents, op, payload, status=409, code=code)
    assert reply.error is not None
    assert str(state) in reply.error["message"]


async def test_invalid_content_inside_a_valid_request_is_refused(
    handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """Service-level checks (name, location, drives, top, state) answer 400 with their code."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    mars = import_body()
    mars["location"] = "Mars"
    no_drives = import_body()
    no_drives["properties"]["driveList"] = []
    cases: list[tuple[str, bytes, str]] = [
        ("create", req(job="bad name", body=import_body()), "InvalidResourceName"),
        ("create", req(job="a/b", body=import_body()), "InvalidResourceName"),
        ("create", req(job="beta", body=mars), "InvalidLocation"),
        ("create", req(job="beta", body=import_body(11)), "TooManyDrives"),
        ("create", req(job="beta", body=no_drives), "InvalidRequestContent"),
        ("list", req(top=0), "InvalidRequestContent"),
        ("list", req(top=101), "InvalidRequestContent"),
        ("list", req(state="Lost"), "InvalidRequestContent"),
        ("ship", req(job="alpha", deliveryPackage={"carrierName": "x"}), "InvalidRequestContent"),
        (
            "update",
            req(job="alpha", body={"properties": {"state": "Completed"}}),
            "InvalidRequestContent",
        ),
    ]
    for op, payload, code in cases:
        await refused(handler, contents, op, payload, status=400, code=code)


async def test_ship_without_a_return_address_is_refused(
    handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """ship on a job without a return address, and none given, gets MissingShippingInformation."""
    await handler.handle("create", req(job="alpha", body=import_body(address=False)))
    await refused(
        handler,
        contents,
        "ship",
        req(job="alpha", deliveryPackage=PACKAGE),
        status=400,
        code="MissingShippingInformation",
    )


# -- hostile input -------------------------------------------------------------------------------


async def test_deeply_nested_body_gets_an_error_reply(
    handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """A 7 KB body nested 1200 levels deep gets a 400 reply instead of an exception."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    deep = b'{"job":"alpha","body":' + b'{"a":' * 1200 + b"1" + b"}" * 1200 + b"}"
    assert len(deep) < handler.max_bytes
    await refused(handler, contents, "update", deep, status=400, code="InvalidRequestContent")


async def test_out_of_range_integer_is_refused(
    handler: CommandHandler, contents: Contents, import_body: Body
) -> None:
    """A driveCount beyond 64 bits gets 400 instead of being stored (or raising OverflowError)."""
    await handler.handle("create", req(job="alpha", body=import_body()))
    package = {**PACKAGE, "driveCount": 2**64}
    await refused(
        handler,
        contents,
        "ship",
        req(job="alpha", deliveryPackage=package),
        status=400,
        code="InvalidRequestContent",
    )


@pytest.mark.parametrize(
    ("op", "fields"),
    [("explode", {"job": "alpha"}), ("get", {"job": "alpha", "force": True})],
)
async def test_refused_request_keeps_its_reply_address(
    op: str, fields: dict[str, Any], handler: CommandHandler
) -> None:
    """A 3.1.1 request refused while parsing still carries its replyTo and correlationId."""
    reply_to = "importexport/v1/replies/r1"
    reply = await handler.handle(op, req(**fields, replyTo=reply_to, correlationId="c1"))
    assert reply.status == 400
    assert (reply.reply_to, reply.correlation_id) == (reply_to, "c1")


@pytest.mark.parametrize(
    "reply_to",
    [
        "importexport/v1/jobs/alpha/events",
        "elsewhere",
        "importexport/v1/replies/#",
        "importexport/v1/replies/+",
        "importexport/v1/replies/",
    ],
)
@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("list", {}),
        ("cancel", {"job": "alpha"}),
        ("delete", {"job": "alpha"}),
        ("list-bitlocker-keys", {"job": "alpha"}),
    ],
)
async def test_a_reply_to_outside_the_reply_prefix_is_refused_before_the_command_runs(
    reply_to: str,
    op: str,
    fields: dict[str, Any],
    handler: CommandHandler,
    import_body: Body,
    contents: Contents,
) -> None:
    """replyTo must be a topic name under importexport/v1/replies/: the worker never publishes
    a reply onto a status topic (or anywhere else), and never runs a command whose answer
    would be dropped. The refusal names replyTo and carries no reply address of its own."""
    await handler.handle("create", req(job="alpha", body=import_body(1)))
    before = contents(handler.service)
    reply = await handler.handle(op, req(**fields, replyTo=reply_to, correlationId="c1"))
    assert reply.status == 400
    assert reply.error is not None
    assert (reply.error["code"], reply.error["target"]) == ("InvalidReplyTo", "replyTo")
    assert reply_to in reply.error["message"]
    assert (reply.reply_to, reply.correlation_id) == (None, "c1")
    assert contents(handler.service) == before


# -- fuzz: any payload gets a reply --------------------------------------------------------------

#: Integers a JSON request may carry here: the 64-bit range the store can encode (beyond it,
#: see test_out_of_range_integer_is_refused).
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(), st.text(max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``rare``."""
    return st.one_of(usual, usual, usual, rare)


#: The seeded jobs (see seeded_service) and a free name, then names of no job and names no
#: job can have.
NAMES = mostly(
    st.sampled_from(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]),
    st.sampled_from(["nope", "", "bad name", "a/b", "ALPHA"]),
)
STATES = mostly(st.sampled_from([str(s) for s in JobState]), st.sampled_from(["", "Lost"]))
ACCOUNT = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
PACKAGES = mostly(
    st.fixed_dictionaries(
        {"carrierName": st.just("FedEx"), "trackingNumber": st.just("1")},
        optional={"driveCount": st.integers(-1, 12), "shipDate": st.just("2026-01-05")},
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "carrierName": st.text(max_size=4) | VALUES,
            "trackingNumber": st.text(max_size=4) | VALUES,
            "driveCount": INTS | VALUES,
            "bogus": VALUES,
        },
    )
    | VALUES,
)
ADDRESSES = mostly(
    st.just(ADDRESS),
    st.sampled_from(list(ADDRESS)).map(lambda k: {a: v for a, v in ADDRESS.items() if a != k})
    | st.sampled_from(list(ADDRESS)).map(lambda k: {**ADDRESS, k: 1})
    | VALUES,
)
VALID_DRIVES = st.lists(
    st.fixed_dictionaries(
        {"driveId": st.sampled_from(["D1", "D2", "D3", "DRV0"]), "bitLockerKey": st.just("k-1")},
        optional={"manifestFile": st.just("m"), "state": STATES, "bytesSucceeded": INTS},
    ),
    min_size=1,
    max_size=3,
)
DRIVES = mostly(
    VALID_DRIVES,
    st.lists(
        st.fixed_dictionaries(
            {"driveId": st.sampled_from(["D1", "D 3", ""]) | VALUES},
            optional={"bitLockerKey": st.text(max_size=4) | VALUES, "bogus": VALUES},
        ),
        max_size=12,
    )
    | VALUES,
)
TAGS = mostly(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3), VALUES)
COMMON = {
    "state": STATES,
    "cancelRequested": mostly(st.booleans(), VALUES),
    "logLevel": mostly(st.sampled_from(["Error", "Verbose"]), st.just("Debug") | VALUES),
    "deliveryPackage": PACKAGES,
    "returnAddress": ADDRESSES,
    "returnShipping": mostly(
        st.just({"carrierName": "FedEx", "carrierAccountNumber": "1"}), VALUES
    ),
    "backupDriveManifest": mostly(st.booleans(), VALUES),
}
CREATE_BODIES = mostly(
    st.fixed_dictionaries(
        {
            "location": mostly(st.just("West US"), st.just("Mars")),
            "properties": st.fixed_dictionaries(
                {
                    "jobType": mostly(st.just("Import"), st.sampled_from(["Export", "import"])),
                    "storageAccountId": st.just(ACCOUNT),
                    "driveList": DRIVES,
                },
                optional={
                    **COMMON,
                    "export": mostly(st.just({"blobList": {"blobPathPrefix": ["/"]}}), VALUES),
                    "percentComplete": INTS,
                    "provisioningState": st.text(max_size=4),
                },
            ),
        },
        optional={"tags": TAGS},
    ),
    VALUES,
)
UPDATE_BODIES = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "properties": st.fixed_dictionaries({}, optional={**COMMON, "driveList": DRIVES}),
            "tags": TAGS,
        },
    ),
    VALUES,
)

ENVELOPE = {"replyTo": mostly(st.text(max_size=8), VALUES), "correlationId": st.text(max_size=8)}
SHAPES = {
    "create": st.fixed_dictionaries({"job": NAMES, "body": CREATE_BODIES}, optional=ENVELOPE),
    "update": st.fixed_dictionaries({"job": NAMES, "body": UPDATE_BODIES}, optional=ENVELOPE),
    "ship": st.fixed_dictionaries(
        {"job": NAMES, "deliveryPackage": PACKAGES},
        optional={"returnAddress": ADDRESSES, **ENVELOPE},
    ),
    "list": st.fixed_dictionaries(
        {}, optional={"top": st.integers(-1, 102) | VALUES, "state": STATES, **ENVELOPE}
    ),
}
#: Any field name an operation knows, with a value of any type.
ANY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "job": NAMES | VALUES,
        "body": CREATE_BODIES | UPDATE_BODIES,
        "top": VALUES,
        "state": STATES | VALUES,
        "deliveryPackage": PACKAGES,
        "returnAddress": ADDRESSES,
        "replyTo": VALUES,
        "correlationId": VALUES,
        "extra": VALUES,
    },
)
ANY_OP = st.sampled_from(OPERATIONS) | st.text(max_size=8)


def _request(op: str) -> st.SearchStrategy[tuple[str, bytes]]:
    shape = SHAPES.get(op, st.fixed_dictionaries({"job": NAMES}, optional=ENVELOPE))
    return st.tuples(st.just(op), shape.map(lambda v: json.dumps(v).encode()))


#: Mostly well-shaped requests of each operation (so the service's own checks run), then
#: any field names with any values, any JSON, and any bytes, to any operation name.
REQUESTS = st.one_of(
    *map(_request, OPERATIONS),
    st.tuples(ANY_OP, ANY_FIELDS.map(lambda v: json.dumps(v).encode())),
    st.tuples(ANY_OP, VALUES.map(lambda v: json.dumps(v).encode())),
    st.tuples(ANY_OP, st.binary(max_size=64)),
)


@pytest.fixture
def seeded_service(
    request: pytest.FixtureRequest, make_service: MakeService, import_body: Body, export_body: Body
) -> Callable[[Path], Any]:
    """``seeded_service(dir)``: a fresh service on the parametrized store kind with alpha
    (Creating), bravo (Shipping), charlie (Completed), delta (Packaging), echo (an export)."""

    async def build(directory: Path) -> JobService:
        store: JobStore = (
            MemoryStore() if request.param == "memory" else SQLiteStore(directory / "jobs.db")
        )
        service = make_service(store)
        await job_in(service, "alpha", J.CREATING, import_body(2))
        await job_in(service, "bravo", J.SHIPPING, import_body(1))
        await job_in(service, "charlie", J.COMPLETED, import_body(1))
        await job_in(service, "delta", J.PACKAGING, import_body(1))
        await service.create("echo", export_body())
        return service

    return build


@pytest.mark.parametrize("seeded_service", ["memory", "sqlite"], indirect=True)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=REQUESTS)
async def test_any_payload_gets_a_reply_and_refusals_change_nothing(
    request: tuple[str, bytes], seeded_service: Callable[[Path], Any], contents: Contents
) -> None:
    """Any op name and payload gets a Reply (never an exception); a refusal changes nothing."""
    op, payload = request
    with tempfile.TemporaryDirectory() as directory:
        service: JobService = await seeded_service(Path(directory))
        try:
            handler = CommandHandler(service, max_bytes=2048)
            before = contents(service)
            reply = await handler.handle(op, payload)
            assert isinstance(reply, Reply)
            event(f"{reply.status} {reply.error['code'] if reply.error else op}")
            assert reply.status in STATUSES
            assert json.loads(reply.to_json())["status"] == reply.status
            if reply.ok:
                assert reply.status in (200, 201)
                assert reply.error is None
            else:
                assert reply.error is not None
                assert isinstance(reply.error["code"], str)
                assert isinstance(reply.error["message"], str)
                assert reply.error["code"]
                assert reply.error["message"]
                assert reply.result is None
                assert contents(service) == before
        finally:
            service.ledger.store.close()


async def test_a_closed_handler_refuses_everything_with_503_and_changes_nothing(
    handler: CommandHandler, import_body: Body
) -> None:
    """Once the worker is shutting down, requests are refused so that nothing is changed
    after the last drain; clients send them again to the next worker."""
    await handler.handle("create", req(job="alpha", body=import_body(1)))
    history = list(handler.service.ledger.store.history())
    handler.close()
    for op, payload in (
        ("cancel", req(job="alpha")),
        ("create", req(job="bravo", body=import_body(1))),
        ("get", req(job="alpha")),
    ):
        reply = await handler.handle(op, payload)
        assert (reply.status, reply.error and reply.error["code"]) == (503, "ServiceUnavailable")
    assert list(handler.service.ledger.store.history()) == history
    assert not (await handler.service.get("alpha")).properties.cancel_requested
