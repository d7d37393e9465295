"""The HTTP API's OpenAPI description (``GET /openapi.json``), and property-based testing of
the live API against it with schemathesis."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
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
from worker.http import API_VERSIONS, openapi_document


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(openapi_document())
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


#: Checks of every generated request: never a 5xx, the status code, content type and body
#: are those the description documents for the operation.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


def _fuzz(url: str, case_strategy: SearchStrategy[Case[Any]]) -> None:
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
            case.call_and_validate(base_url=url, session=session, checks=CHECKS, timeout=10)

        run()


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Every documented operation, in positive (schema-conforming) and negative mode, with
    the worker's own subscription and resource group so requests reach the handlers."""
    schema = schemathesis.openapi.from_dict(_document())
    scope = {"subscriptionId": SUB, "resourceGroupName": RG}
    tested = []

    def flow(worker: Worker) -> None:
        url = _url(worker)
        with _raw(worker) as http:  # a job to find, for GET/PATCH/keys on an existing name
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
                _fuzz(url, operation.as_strategy(mode, path_parameters=params))
            tested.append(operation.label)

    _run(tmp_path, mosquitto, flow)
    assert len(tested) == 11, tested


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
