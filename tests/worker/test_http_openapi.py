"""The HTTP API's OpenAPI description (``GET /openapi.json``), and property-based testing of
the live API against it with schemathesis."""

from __future__ import annotations

import copy
import json
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.routing import Route

from simulator.live.processes import Mosquitto
from tests.worker.test_http import JOBS, RG, SUB, VERSION, _put_body, _raw, _run, _url
from worker.app import Worker
from worker.http import API_VERSIONS, MAX_SKIPTOKEN, PATTERNS, openapi_document
from worker.model import DeliveryPackage, JobState, JobType
from worker.requests import LOG_LEVELS
from worker.service import MAX_TOP

TOKEN = "s3cret"


def _document(*, token_required: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_document(token_required=token_required))
    return document


def _validate(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Validate ``body`` against the documented response schema (Swagger 2.0 ``$ref``s)."""
    responses = document["paths"][path][method]["responses"]
    schema = responses.get(str(status), responses.get("default"))["schema"]
    root = {**schema, "definitions": document["definitions"]}
    jsonschema.Draft4Validator(root).validate(body)


def test_the_description_lists_every_route_and_version() -> None:
    document = _document()
    assert document["swagger"] == "2.0"
    assert document["parameters"]["api-version"]["enum"] == list(API_VERSIONS)
    operation_ids = {
        item[m]["operationId"] for item in document["paths"].values() for m in item
    } - {"OpenApi_Get"}
    assert operation_ids == {
        "Jobs_Create",
        "Jobs_Get",
        "Jobs_Update",
        "Jobs_Delete",
        "Jobs_ListBySubscription",
        "Jobs_ListByResourceGroup",
        "BitLockerKeys_List",
        "Locations_List",
        "Locations_Get",
        "Operations_List",
    }
    # Self-contained: no external references (Microsoft's systemData was one), no examples.
    assert "../" not in openapi_document().decode()
    # The package ships it (pyproject package-data), and nothing else is a second copy.
    assert (Path(__file__).parents[2] / "worker" / "openapi.json").read_bytes() == (
        openapi_document()
    )


def test_the_description_states_what_the_server_accepts() -> None:
    """Each value the server checks is stated as the server checks it: the patterns are the
    server's own, word for word, and the bounds and enumerations its constants."""
    document = _document()
    params = document["parameters"]
    for name, pattern in PATTERNS.items():
        if name in ("$top", "$skiptoken"):  # integers: stated as bounds
            continue
        assert params[name]["pattern"] == pattern, name
    assert (params["$top"]["minimum"], params["$top"]["maximum"]) == (1, MAX_TOP)
    assert (params["$skiptoken"]["minimum"], params["$skiptoken"]["maximum"]) == (0, MAX_SKIPTOKEN)
    details = document["definitions"]["JobDetails"]["properties"]
    assert details["jobType"]["enum"] == list(JobType)
    assert details["logLevel"]["enum"] == list(LOG_LEVELS)
    assert details["state"]["enum"] == list(JobState)
    update = document["definitions"]["UpdateJobParameters"]["properties"]["properties"]
    assert update["properties"]["state"]["enum"] == ["", "Shipping"]
    assert update["properties"]["logLevel"]["enum"] == list(LOG_LEVELS)
    # The bounds of the model's constrained numbers.
    package = msgspec.inspect.type_info(DeliveryPackage)
    assert isinstance(package, msgspec.inspect.StructType)
    drive_count_type = next(f.type for f in package.fields if f.name == "drive_count")
    assert isinstance(drive_count_type, msgspec.inspect.UnionType)
    bounds = drive_count_type.types[0]
    assert isinstance(bounds, msgspec.inspect.IntType)
    for name in ("DeliveryPackageInformation", "PackageInformation"):
        drive_count = document["definitions"][name]["properties"]["driveCount"]
        assert (drive_count["minimum"], drive_count["maximum"]) == (bounds.ge, bounds.le)
    # Unknown fields are refused, and none is answered: every object says so.
    for name, definition in document["definitions"].items():
        assert definition.get("additionalProperties") is False, name


def test_the_readme_quotes_the_servers_bounds() -> None:
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert f"`$top` 1..{MAX_TOP}, `$skiptoken` 0..{MAX_SKIPTOKEN}," in readme
    assert "(ARM's name rule: 1 to 90 letters" in readme
    assert PATTERNS["resourceGroupName"] == r"^[-\w._()]{0,89}[-\w_()]$"  # 1 to 90


def test_the_token_decides_the_security_requirement() -> None:
    """Without a token (the default worker) nothing is required and nothing answers 401;
    with one, the bearer scheme is required of every operation but the description's."""
    for token_required in (False, True):
        document = _document(token_required=token_required)
        assert document["security"] == ([{"bearer": []}] if token_required else [])
        for path, item in document["paths"].items():
            for operation in item.values():
                expected = token_required and path != "/openapi.json"
                assert ("401" in operation["responses"]) is expected, path
                if path == "/openapi.json":
                    assert operation["security"] == []


def _served_routes(worker: Worker) -> set[tuple[str, str]]:
    assert worker.http is not None
    app = worker.http.server.config.app
    assert isinstance(app, Starlette)
    names = {
        "{subscription}": "{subscriptionId}",
        "{group}": "{resourceGroupName}",
        "{name}": "{jobName}",
        "{location}": "{locationName}",
    }
    served = set()
    for route in app.routes:
        assert isinstance(route, Route)
        path = route.path
        for ours, theirs in names.items():
            path = path.replace(ours, theirs)
        served |= {(path, method.lower()) for method in route.methods or () if method != "HEAD"}
    return served


def test_the_live_server_serves_it_and_answers_by_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    def flow(worker: Worker) -> None:
        document = _document()
        documented = {(path, method) for path, item in document["paths"].items() for method in item}
        assert documented == _served_routes(worker)
        list_path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}" + (
            "/providers/Microsoft.ImportExport/jobs"
        )
        job_path = list_path + "/{jobName}"
        v = {"api-version": VERSION}
        # No api-version, no token: still served.
        with httpx.Client(base_url=_url(worker), timeout=10) as http:
            served = http.get("/openapi.json")
            assert served.status_code == 200
            assert served.headers["content-type"] == "application/json"
            assert served.json() == document
        with _raw(worker) as http:
            created = http.put(f"{JOBS}/o1", params=v, json=_put_body())
            assert created.status_code == 201
            _validate(document, job_path, "put", 201, created.json())
            got = http.get(f"{JOBS}/o1", params=v)
            _validate(document, job_path, "get", 200, got.json())
            listed = http.get(JOBS, params={**v, "$top": 1})
            _validate(document, list_path, "get", 200, listed.json())
            missing = http.get(f"{JOBS}/nope", params=v)
            assert missing.status_code == 404
            _validate(document, job_path, "get", 404, missing.json())
            # The schema is not vacuous: a wrong shape fails it.
            broken = copy.deepcopy(got.json())
            broken["properties"]["driveList"] = "DRV0"
            with pytest.raises(jsonschema.ValidationError):
                _validate(document, job_path, "get", 200, broken)

    _run(tmp_path, mosquitto, flow)


def test_a_worker_with_a_token_serves_the_description_with_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    def flow(worker: Worker) -> None:
        with httpx.Client(base_url=_url(worker), timeout=10) as http:
            assert http.get("/openapi.json").json() == _document(token_required=True)

    _run(tmp_path, mosquitto, flow, token=TOKEN)


#: Checks of every generated request: never a 5xx, the status code, content type and body
#: are those the description documents for the operation.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


def _fuzz(
    url: str,
    case_strategy: SearchStrategy[Case[Any]],
    headers: dict[str, str] | None = None,
    checks: list[Any] = CHECKS,
    statuses: Counter[int] | None = None,
) -> None:
    """Run generated requests through ``checks``; count their statuses in ``statuses``."""
    with requests.Session() as session:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(case=case_strategy)
        def run(case: Case[Any]) -> None:
            response = case.call_and_validate(
                base_url=url, session=session, checks=checks, timeout=10, headers=headers
            )
            if statuses is not None:
                statuses[response.status_code] += 1

        run()


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no-token", "token"])
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    tmp_path: Path, mosquitto: Mosquitto, token: str | None
) -> None:
    """Every documented operation, as the worker describes itself (with or without a
    token), in positive (schema-conforming) and negative mode: once with any subscription
    and group the description allows, once with the group of an existing job so requests
    reach it. With a token, requests carry it (negative mode also sends broken ones)."""
    schema = schemathesis.openapi.from_dict(_document(token_required=token is not None))
    scope = {"subscriptionId": SUB, "resourceGroupName": RG}
    headers = {"Authorization": f"Bearer {token}"} if token else None
    tested = []
    statuses: Counter[int] = Counter()

    def flow(worker: Worker) -> None:
        url = _url(worker)
        with _raw(worker, token=token) as http:  # a job to find, for GET/PATCH/keys
            assert http.put(f"{JOBS}/a", params={"api-version": VERSION}, json=_put_body())
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            params = {p.name: scope[p.name] for p in operation.path_parameters if p.name in scope}
            # Negative data needs something to negate (GET /openapi.json takes nothing).
            modes = [GenerationMode.POSITIVE]
            if operation.query or operation.body or operation.path_parameters:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                _fuzz(url, operation.as_strategy(mode), headers, statuses=statuses)
                if params:
                    strategy = operation.as_strategy(mode, path_parameters=params)
                    _fuzz(url, strategy, headers, statuses=statuses)
            tested.append(operation.label)

    _run(tmp_path, mosquitto, flow, token=token)
    assert len(tested) == 11, tested
    # Requests reached the handlers (the token was sent), and were refused too.
    assert statuses[200] > 50, statuses
    assert statuses[400] > 50, statuses
    # Without a token nothing is 401; with one, negative mode sends broken ones.
    assert (statuses[401] > 0) is (token is not None), statuses


def _answers(
    url: str, session: requests.Session, strategy: SearchStrategy[Case[Any]], expect: range
) -> set[int]:
    """The statuses of generated requests, each asserted to be in ``expect``."""
    statuses: set[int] = set()

    @settings(
        max_examples=MAX_EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        # Query parameters no operation defines are ignored, as ARM ignores them.
        documented = {p.name for p in case.operation.query}
        assume(set(case.query or {}) <= documented)
        # A path parameter goes out as generated: one that holds "%C2%B9" (not a group
        # name) reaches the server as "¹" (one), so it says nothing of either.
        assume(not any("%" in str(v) for v in (case.path_parameters or {}).values()))
        response = case.call(base_url=url, session=session, timeout=10)
        statuses.add(response.status_code)
        assert response.status_code in expect, (case.path_parameters, case.query, response.text)

    run()
    return statuses


def test_what_the_description_allows_a_list_accepts(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The lists take only query and path parameters, all described exactly: every value
    the description allows (any subscription, group, $top, $skiptoken, $filter) is answered
    200, and every value it excludes is refused with a 4xx. (A description wider than the
    server, as $skiptoken and $filter once were, fails the first half.)"""
    schema = schemathesis.openapi.from_dict(_document())
    lists = {"Jobs_ListBySubscription", "Jobs_ListByResourceGroup"}
    seen: dict[GenerationMode, set[int]] = {m: set() for m in GenerationMode}

    def flow(worker: Worker) -> None:
        with requests.Session() as session:
            for result in schema.get_all_operations():
                assert isinstance(result, Ok), result.err()
                operation = result.ok()
                if operation.definition.raw["operationId"] not in lists:
                    continue
                for mode, expect in (
                    (GenerationMode.POSITIVE, range(200, 201)),
                    (GenerationMode.NEGATIVE, range(400, 500)),
                ):
                    strategy = operation.as_strategy(mode)
                    seen[mode] |= _answers(_url(worker), session, strategy, expect)

    _run(tmp_path, mosquitto, flow)
    assert seen[GenerationMode.POSITIVE] == {200}
    assert seen[GenerationMode.NEGATIVE]
    assert seen[GenerationMode.NEGATIVE] <= {400, 404}


def test_responses_are_not_held_back_by_nagle(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Regression, found by the fuzzing above taking ~45 ms a request: the worker binds the
    socket itself, asyncio then left TCP_NODELAY off, and every response body (written after
    its headers) waited for the client's delayed ACK."""

    def flow(worker: Worker) -> None:
        assert worker.http is not None
        with _raw(worker) as http:
            assert http.get("/openapi.json").status_code == 200
            connections = worker.http.server.server_state.connections
            assert connections
            for protocol in connections:
                sock = protocol.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    _run(tmp_path, mosquitto, flow)
