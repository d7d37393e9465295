"""Commands: JSON requests for the job service, answered with the job or an ARM-style error.

The handler knows nothing of MQTT: it takes an operation name and a payload and returns a
:class:`Reply`. Any payload gets an answer, whatever it holds: invalid JSON, wrong types,
unknown operations or fields, an oversized body, an unknown job, a request in the wrong
state. Nothing in a refused request changes anything.

Requests (``job`` names the job; ``replyTo`` and ``correlationId`` are for MQTT 3.1.1
clients, which have no response topic). Every reply address, a ``replyTo`` or an MQTT 5
response topic, must be a topic name under ``importexport/v1/replies/`` (no wildcards): the
worker never publishes a reply (which can hold BitLocker keys) into the status tree or
anywhere else. A request whose ``replyTo`` breaks the rule is refused before it runs
(``InvalidReplyTo``); see :func:`reply_address_error`::

    create               {"job": NAME, "body": PutJobParameters}
    get | delete | cancel | list-bitlocker-keys   {"job": NAME}
    list                 {"top": 1..100, "state": STATE}
    update               {"job": NAME, "body": UpdateJobParameters}
    ship                 {"job": NAME, "deliveryPackage": {...}, "returnAddress": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from worker.errors import PayloadTooLarge, ServiceError, ServiceUnavailable, ValidationError
from worker.model import to_builtins
from worker.requests import check_depth, decode
from worker.service import JobService
from worker.status import TOPIC_PREFIX

__all__ = ["OPERATIONS", "REPLY_PREFIX", "CommandHandler", "Reply", "reply_address_error"]

OPERATIONS = (
    "create",
    "get",
    "list",
    "update",
    "cancel",
    "ship",
    "delete",
    "list-bitlocker-keys",
)


class _Request(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    reply_to: str | None = None
    correlation_id: str | None = None


class JobRequest(_Request, kw_only=True):
    job: str


class BodyRequest(_Request, kw_only=True):
    job: str
    body: dict[str, Any]


class ListRequest(_Request, kw_only=True):
    top: int | None = None
    state: str | None = None


class ShipRequest(_Request, kw_only=True):
    job: str
    delivery_package: dict[str, Any]
    return_address: dict[str, Any] | None = None


#: Where replies go: a client's own level under this prefix, no wildcards.
REPLY_PREFIX = f"{TOPIC_PREFIX}/replies/"


def reply_address_error(topic: str) -> str | None:
    """Why ``topic`` cannot be a reply address (None when it can)."""
    if not topic.startswith(REPLY_PREFIX) or topic == REPLY_PREFIX:
        return f"'{topic}' is not under {REPLY_PREFIX}: replies go only to {REPLY_PREFIX}CLIENT."
    if "+" in topic or "#" in topic or "\0" in topic:
        return f"'{topic}' holds a wildcard: a reply address is a topic name."
    return None


class _Address(msgspec.Struct, rename="camel"):
    reply_to: Any = None
    correlation_id: Any = None


def _reply_address(payload: bytes, max_bytes: int) -> tuple[str | None, str | None]:
    """``replyTo`` and ``correlationId`` of a request as written, read leniently so that a
    request refused for its content still gets its answer (None where unreadable)."""
    try:
        if len(payload) > max_bytes:
            return None, None
        check_depth(payload)
        address = msgspec.json.decode(payload, type=_Address)
    except (msgspec.DecodeError, msgspec.ValidationError, ValidationError):
        return None, None
    reply_to = address.reply_to if isinstance(address.reply_to, str) else None
    correlation_id = address.correlation_id if isinstance(address.correlation_id, str) else None
    return reply_to, correlation_id


_SHAPES: dict[str, type[_Request]] = {
    "create": BodyRequest,
    "update": BodyRequest,
    "list": ListRequest,
    "ship": ShipRequest,
}


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: an HTTP-equivalent status and either a result or an ARM error."""

    status: int
    result: Any = None
    error: dict[str, Any] | None = None
    reply_to: str | None = None
    correlation_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"ok": self.ok, "status": self.status}
        if self.error is not None:
            body["error"] = self.error
        else:
            body["result"] = self.result
        if self.correlation_id is not None:
            body["correlationId"] = self.correlation_id
        return msgspec.json.encode(body)


class CommandHandler:
    """Runs a command against the job service and builds its reply."""

    def __init__(self, service: JobService, *, max_bytes: int = 64 * 1024) -> None:
        self.service = service
        self.max_bytes = max_bytes
        self.closed = False

    def close(self) -> None:
        """Refuse every request from now on (503): the worker is shutting down, and what
        it changes after its last drain would never be published."""
        self.closed = True

    def open(self) -> None:
        """Take requests again: the datacenter runs again."""
        self.closed = False

    async def handle(self, op: str, payload: bytes) -> Reply:
        """Run a request and build its answer. A request whose ``replyTo`` is no reply
        address is refused before anything runs, and its reply has no ``reply_to``: the
        transport answers it on an MQTT 5 response topic or says in the log that it cannot."""
        reply_to, correlation_id = _reply_address(payload, self.max_bytes)
        try:
            if reply_to is not None and (why := reply_address_error(reply_to)) is not None:
                reply_to = None
                raise ValidationError(
                    f"Invalid replyTo: {why} The request was not run.",
                    code="InvalidReplyTo",
                    target="replyTo",
                )
            if self.closed:
                raise ServiceUnavailable("The worker is shutting down; send the request again.")
            request = self._parse(op, payload)
            status, result = await self._run(op, request)
        except ServiceError as exc:
            error = exc.to_arm()["error"]
            return Reply(exc.status, error=error, reply_to=reply_to, correlation_id=correlation_id)
        return Reply(status, result=result, reply_to=reply_to, correlation_id=correlation_id)

    def _parse(self, op: str, payload: bytes) -> _Request:
        if op not in OPERATIONS:
            raise ValidationError(
                f"Unknown operation '{op}'; one of {', '.join(OPERATIONS)}.",
                code="UnknownOperation",
                target="op",
            )
        if len(payload) > self.max_bytes:
            raise PayloadTooLarge(
                f"The request is {len(payload)} bytes; the limit is {self.max_bytes}."
            )
        return decode(payload, _SHAPES.get(op, JobRequest))

    async def _run(self, op: str, request: _Request) -> tuple[int, Any]:
        service = self.service
        match request:
            case BodyRequest(job=job, body=body) if op == "create":
                created = await service.create(job, body)
                return (201 if created.created else 200), to_builtins(created.job)
            case BodyRequest(job=job, body=body):
                return 200, to_builtins(await service.update(job, body))
            case ShipRequest(job=job):
                props: dict[str, Any] = {
                    "state": "Shipping",
                    "deliveryPackage": request.delivery_package,
                }
                if request.return_address is not None:
                    props["returnAddress"] = request.return_address
                return 200, to_builtins(await service.update(job, {"properties": props}))
            case ListRequest(top=top, state=state):
                jobs = await service.list(top=top, state=state)
                return 200, {"value": [to_builtins(j) for j in jobs]}
            case JobRequest(job=job) if op == "get":
                return 200, to_builtins(await service.get(job))
            case JobRequest(job=job) if op == "cancel":
                answer = await service.cancel(job)
                return 200, {
                    "answer": str(answer.answer),
                    "state": str(answer.state),
                    "job": to_builtins(answer.job),
                }
            case JobRequest(job=job) if op == "delete":
                await service.delete(job)
                return 200, None
            case JobRequest(job=job):
                keys = await service.list_bitlocker_keys(job)
                return 200, {"value": [to_builtins(k) for k in keys]}
        raise AssertionError(f"no handler for {op}")  # pragma: no cover - _parse guards it
