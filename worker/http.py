"""The Azure REST API: Microsoft.ImportExport's ARM paths over HTTP, for the official SDKs.

An ASGI app on Starlette. Starlette rather than FastAPI: the msgspec models of
:mod:`worker.model` and :mod:`worker.requests` already decode and validate every body
(FastAPI would want pydantic models of the same shapes, a second source of truth), and a
thin routing layer on anyio is all this needs. Like the MQTT command transport
(:mod:`worker.commands`), it maps each request to one :class:`~worker.service.JobService`
call and renders refusals with :meth:`~worker.errors.ServiceError.to_arm`; a refused request
changes nothing.

Served, for ``api-version`` 2016-11-01, 2020-08-01 and 2021-01-01 (``{job}`` paths are
``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ImportExport/jobs/{name}``)::

    PUT    {job}                      Jobs_Create   201 created, 200 replaced
    GET    {job}                      Jobs_Get
    PATCH  {job}                      Jobs_Update
    DELETE {job}                      Jobs_Delete   200, empty body
    POST   {job}/listBitLockerKeys    BitLockerKeys_List
    GET    /subscriptions/{sub}[/resourceGroups/{rg}]/providers/Microsoft.ImportExport/jobs
           Jobs_ListBySubscription / Jobs_ListByResourceGroup: ``$top`` 1..100 caps the
           total; pages of at most 100 linked by ``nextLink`` (``$skiptoken``); ``$filter``
           understands ``state eq 'Shipping'`` (``properties/state`` too) and nothing else
    GET    /providers/Microsoft.ImportExport/locations[/{location}]   Locations_List/Get
    GET    /providers/Microsoft.ImportExport/operations               Operations_List
    GET    /openapi.json              this API's OpenAPI (Swagger 2.0) description, without
                                      ``api-version`` or token: ``worker/openapi.json``, derived
                                      from Microsoft's 2021-01-01 definition

Any subscription (a GUID, else 400 ``InvalidSubscriptionId``) and any resource group (ARM's
name rule, else 400 ``InvalidResourceGroup``) are served, as if each existed, so code
written for Azure runs unchanged. A job is created in the group of its PUT (its ``id`` says
so) and found only there: another group's GET, PATCH, DELETE or listBitLockerKeys is 404
``ResourceNotFound``, and a list by group or by subscription holds exactly its jobs
(compared case-insensitively, as ARM does). One deviation: job names are unique across
groups, since a job's name is its key on MQTT and in the store, so a PUT of a name that
another group holds is 409 ``JobNameInUse``. Jobs created over MQTT or by a scenario are
in the service's own group (``drivesim`` of subscription ``00000000-0000-0000-0000-
000000000000``). Any bearer token is accepted unless one is configured.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.errors import (
    AuthenticationFailed,
    PayloadTooLarge,
    ResourceNotFound,
    ServiceError,
    ServiceUnavailable,
    ValidationError,
)
from worker.logs import get_logger
from worker.model import ArmScope, JobState, to_builtins
from worker.requests import JOB_NAME
from worker.service import DATACENTER_ADDRESS, MAX_TOP, JobService

__all__ = ["API_VERSIONS", "ArmApi", "openapi_document"]

log = get_logger("drivesim.http")

API_VERSIONS = ("2016-11-01", "2020-08-01", "2021-01-01")
PROVIDER = "Microsoft.ImportExport"
_SUB = "/subscriptions/{subscription}"
_RG = _SUB + "/resourceGroups/{group}"
_JOBS = f"/providers/{PROVIDER}/jobs"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


#: What the server accepts, as patterns that ``worker/openapi.json`` states word for word
#: (``tests/worker/test_http_openapi.py`` holds them equal): plain regular expressions that
#: mean the same in Python and in JSON Schema, anchored, with no flags.
PATTERNS = {
    # Subscription ids are GUIDs.
    "subscriptionId": "^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$",
    # ARM's rule for resource group names: 1 to 90 letters, digits, '_', '-', '.', '(' or
    # ')' (letters and digits of any script), not ending in '.'.
    "resourceGroupName": r"^[-\w._()]{0,89}[-\w_()]$",
    "jobName": f"^{JOB_NAME.pattern}$",
    # Nothing (no filter), or one state, keywords in any case: "state eq 'Shipping'".
    "$filter": (
        rf"^\s*(?:(?:{_any_case('properties')}/)?{_any_case('state')}\s+{_any_case('eq')}\s+"
        rf"'({'|'.join(JobState)})'\s*)?$"
    ),
    "$top": "^[0-9]{1,9}$",
    "$skiptoken": "^[0-9]{1,9}$",
}
_FILTER = re.compile(PATTERNS["$filter"])
_DIGITS = re.compile(PATTERNS["$top"])
_GUID = re.compile(PATTERNS["subscriptionId"])
_GROUP = re.compile(PATTERNS["resourceGroupName"])
#: The largest ``$skiptoken``: nine digits.
MAX_SKIPTOKEN = 999_999_999
_CARRIERS = ["DHL", "FedEx", "UPS", "USPS"]

_OPERATIONS = [
    ("locations/read", "Locations", "Get or List Locations",
     "Gets the properties for the specified location or returns the list of locations."),
    ("jobs/write", "Jobs", "Create or Update Job",
     "Creates a job with the specified parameters or update the properties or tags for the "
     "specified job."),
    ("jobs/read", "Jobs", "Get or List Jobs",
     "Gets the properties for the specified job or returns the list of jobs."),
    ("jobs/listBitLockerKeys/action", "Jobs", "List BitLocker Keys",
     "Gets the BitLocker keys for the specified job."),
    ("jobs/delete", "Jobs", "Delete Job", "Deletes an existing job."),
    ("register/action", "Import/Export Resource Provider",
     "Registers the Import/Export Resource Provider",
     "Registers the subscription for the import/export resource provider and enables the "
     "creation of import/export jobs."),
]  # fmt: skip

Handler = Callable[[Request], Awaitable[Response]]


@cache
def openapi_document(*, token_required: bool = False) -> bytes:
    """The OpenAPI description of this API, as a worker with or without a configured token
    serves it.

    ``worker/openapi.json`` (package data, kept by hand) describes the default worker: no
    token, so no security requirement and no 401 answer. With ``token_required``, the
    bearer scheme becomes required of every operation but ``GET /openapi.json``, and each
    of them documents its 401. The patterns of the path and query parameters are
    :data:`PATTERNS`, word for word (a test holds them equal).
    """
    base = resources.files("worker").joinpath("openapi.json").read_bytes()
    if not token_required:
        return base
    document = json.loads(base)
    document["security"] = [{"bearer": []}]
    for path, item in document["paths"].items():
        for operation in item.values():
            if path != "/openapi.json":
                operation["responses"]["401"] = {
                    "description": "The Authorization header is missing (AuthenticationFailed) "
                    "or is not 'Bearer <the configured token>' (InvalidAuthenticationToken).",
                    "schema": {"$ref": "#/definitions/ErrorResponse"},
                }
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def _json(status: int, body: Any) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers={"x-ms-request-id": str(uuid.uuid4())},
    )


def _error(exc: ServiceError) -> Response:
    response = _json(exc.status, exc.to_arm())
    if isinstance(exc, AuthenticationFailed):
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


class ArmApi:
    """The ASGI app (:attr:`app`) over one job service."""

    def __init__(
        self,
        service: JobService,
        *,
        token: str | None = None,
        max_body: int = 64 * 1024,
        page_size: int = MAX_TOP,
    ) -> None:
        if not 1 <= page_size <= MAX_TOP:
            raise ValueError(f"page_size must be 1 to {MAX_TOP}")
        self.service = service
        self.token = token
        self.max_body = max_body
        self.page_size = page_size
        self.closed = False
        job = _RG + _JOBS + "/{name}"
        routes = [
            Route(job, self._endpoint(self.job), methods=["GET", "PUT", "PATCH", "DELETE"]),
            Route(job + "/listBitLockerKeys", self._endpoint(self.keys), methods=["POST"]),
            Route(_RG + _JOBS, self._endpoint(self.list_jobs), methods=["GET"]),
            Route(_SUB + _JOBS, self._endpoint(self.list_jobs), methods=["GET"]),
            Route(f"/providers/{PROVIDER}/locations", self._endpoint(self.locations)),
            Route(f"/providers/{PROVIDER}/locations/{{location}}", self._endpoint(self.location)),
            Route(f"/providers/{PROVIDER}/operations", self._endpoint(self.operations)),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})

    def close(self) -> None:
        """Refuse every request from now on (503): the worker is shutting down."""
        self.closed = True

    # -- the request pipeline ------------------------------------------------------------

    def _endpoint(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if self.closed:
                    raise ServiceUnavailable("The worker is shutting down; send the request again.")
                self._authenticate(request)
                _check_api_version(request)
                _check_scope(request)
                response = await handler(request)
            except ServiceError as exc:
                response = _error(exc)
            except Exception:
                log.exception("http request failed", method=request.method, path=request.url.path)
                response = _json(
                    500,
                    {"error": {"code": "InternalServerError", "message": "Internal error."}},
                )
            log.debug(
                "http request",
                method=request.method,
                path=request.url.path,
                status=response.status_code,
            )
            return response

        return endpoint

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
        message = (
            f"No route for {request.method} {request.url.path}."
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        response = _json(exc.status_code, {"error": {"code": code, "message": message}})
        response.headers.update(exc.headers or {})
        return response

    def _authenticate(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.headers.get("authorization")
        if header is None:
            raise AuthenticationFailed(
                "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.token:
            raise AuthenticationFailed(
                "The access token is invalid.", code="InvalidAuthenticationToken"
            )

    async def _body(self, request: Request) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise PayloadTooLarge(f"The request is {length} bytes; the limit is {self.max_body}.")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"The request is over the limit of {self.max_body} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- operations ----------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        """The description: public, no ``api-version`` (like ARM's own metadata)."""
        return Response(
            openapi_document(token_required=self.token is not None), media_type="application/json"
        )

    async def job(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        scope = _scope(request)
        service = self.service
        match request.method:
            case "PUT":
                body = await self._body(request)
                created = await service.create(name, body, scope=scope)
                return _json(201 if created.created else 200, to_builtins(created.job))
            case "PATCH":
                job = await service.update(name, await self._body(request), scope=scope)
                return _json(200, to_builtins(job))
            case "DELETE":
                await service.delete(name, scope=scope)
                return Response(status_code=200, headers={"x-ms-request-id": str(uuid.uuid4())})
            case _:
                return _json(200, to_builtins(await service.get(name, scope=scope)))

    async def keys(self, request: Request) -> Response:
        keys = await self.service.list_bitlocker_keys(
            request.path_params["name"], scope=_scope(request)
        )
        return _json(200, {"value": [to_builtins(k) for k in keys]})

    async def list_jobs(self, request: Request) -> Response:
        query = request.query_params
        top = _int_param(query.get("$top"), "$top", low=1, high=MAX_TOP)
        skip = _int_param(query.get("$skiptoken"), "$skiptoken", low=0, high=MAX_SKIPTOKEN) or 0
        state = _state_filter(query.get("$filter"))
        scope = _scope(request)
        want = self.page_size if top is None else min(self.page_size, top - skip)
        if want <= 0:
            return _json(200, {"value": []})
        jobs = await self.service.list(top=want, state=state, skip=skip, scope=scope)
        body: dict[str, Any] = {"value": [to_builtins(j) for j in jobs]}
        after = skip + len(jobs)
        if (
            len(jobs) == want
            and (top is None or after < top)
            and await self.service.list(top=1, state=state, skip=after, scope=scope)
        ):
            body["nextLink"] = str(request.url.include_query_params(**{"$skiptoken": after}))
        return _json(200, body)

    async def locations(self, request: Request) -> Response:
        return _json(200, {"value": [_location(n) for n in self.service.datacenter.locations]})

    async def location(self, request: Request) -> Response:
        wanted = request.path_params["location"]
        for name in self.service.datacenter.locations:
            if _location_id(name) == _location_id(wanted):
                return _json(200, _location(name))
        raise ResourceNotFound(
            f"The location '{wanted}' has no datacenter here.", code="LocationNotFound"
        )

    async def operations(self, request: Request) -> Response:
        return _json(
            200,
            {
                "value": [
                    {
                        "name": f"{PROVIDER}/{name}",
                        "display": {
                            "provider": "Microsoft Import/Export",
                            "resource": resource,
                            "operation": operation,
                            "description": description,
                        },
                    }
                    for name, resource, operation, description in _OPERATIONS
                ]
            },
        )


def _check_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if version is None:
        raise ValidationError(
            "The api-version query parameter (?api-version=) is required for all requests.",
            code="MissingApiVersionParameter",
        )
    if version not in API_VERSIONS:
        raise ValidationError(
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{','.join(API_VERSIONS)}'.",
            code="InvalidApiVersionParameter",
        )


def _check_scope(request: Request) -> None:
    """Refuse a malformed subscription id or resource group name (any well-formed one is
    served)."""
    params = request.path_params
    subscription = params.get("subscription")
    if subscription is not None and not _GUID.fullmatch(subscription):
        raise ValidationError(
            f"The provided subscription identifier '{subscription}' is malformed or invalid.",
            code="InvalidSubscriptionId",
            target="subscriptionId",
        )
    group = params.get("group")
    if group is not None and not _GROUP.fullmatch(group):
        bad = "".join(dict.fromkeys(c for c in group if not re.fullmatch(r"[-\w._()]", c)))
        why = f"has these invalid characters: '{bad}'" if bad else "is invalid"
        raise ValidationError(
            f"The provided resource group name '{group}' {why}. The name can only be a "
            "letter, digit, '-', '.', '(', ')' or '_', 1 to 90 of them, not ending in '.'.",
            code="InvalidResourceGroup",
            target="resourceGroupName",
        )


def _scope(request: Request) -> ArmScope:
    params = request.path_params
    return ArmScope(params["subscription"], params.get("group"))


def _int_param(value: str | None, name: str, *, low: int, high: int | None = None) -> int | None:
    if value is None:
        return None
    number = int(value) if _DIGITS.fullmatch(value) else None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ValidationError(
            f"{name} must be an integer, {bounds}; got '{value}'.",
            code="InvalidQueryParameterValue",
            target=name,
        )
    return number


def _state_filter(value: str | None) -> str | None:
    if value is None:
        return None
    match = _FILTER.fullmatch(value)
    if match is None:
        raise ValidationError(
            f"Unsupported $filter '{value}'; only \"state eq '<State>'\" is understood, "
            f"with a state of {', '.join(JobState)}.",
            code="InvalidFilter",
            target="$filter",
        )
    return match[1]


def _location_id(name: str) -> str:
    return name.replace(" ", "").lower()


def _location(name: str) -> dict[str, Any]:
    resource_id = f"/providers/{PROVIDER}/locations/{_location_id(name)}"
    address = to_builtins(DATACENTER_ADDRESS)
    address.pop("additionalInformation", None)
    return {
        "id": resource_id,
        "name": name,
        "type": f"{PROVIDER}/locations",
        "properties": {
            **address,
            "additionalShippingInformation": "",
            "supportedCarriers": list(_CARRIERS),
            "alternateLocations": [resource_id],
        },
    }
