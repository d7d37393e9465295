"""Fuzzing drivesim's REST API with Microsoft's own 2021-01-01 definition of the service
(``tests/worker/data/azure-spec``), the one the azure-core SDK line is generated from: for
every operation Microsoft defines, in positive and negative mode, never a 5xx, and every
answer's status and body valid by Microsoft's schemas (an error is Microsoft's
``ErrorResponse``). Once as generated (any api-version, subscription, group), once pinned
to a served api-version and an existing job's group so requests reach the handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from simulator.live.processes import Mosquitto
from tests.worker.test_http import JOBS, RG, SUB, VERSION, _put_body, _raw, _run, _url
from tests.worker.test_http_definitions import microsoft_definition
from tests.worker.test_http_openapi import _fuzz
from worker.app import Worker


@schemathesis.check
def json_when_a_body(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """A body, if any, is JSON. (Microsoft's Jobs_Delete documents its 200 without a
    body, and the service sends none: no Content-Type to check then.)"""
    if response.content:
        assert response.headers["content-type"] == ["application/json"], response.headers
    return None


#: Never a 5xx; the status is one Microsoft documents (or its default); the body is valid
#: by Microsoft's schema of that status; a body is JSON.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    json_when_a_body,
]


def _without_external_refs(value: Any) -> Any:
    """Microsoft's definition, self-contained: its one reference outside the file
    (``systemData``, a common type drivesim never answers) becomes any object, and the
    examples (files it points to) are left out."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#/"):
            return {"type": "object"}
        return {k: _without_external_refs(v) for k, v in value.items() if k != "x-ms-examples"}
    if isinstance(value, list):
        return [_without_external_refs(v) for v in value]
    return value


def _microsoft_schema() -> schemathesis.BaseSchema:
    spec = _without_external_refs(microsoft_definition("2021-01-01"))
    spec.pop("host", None)
    spec["schemes"] = ["http"]
    return schemathesis.openapi.from_dict(spec)


def test_microsofts_definition_finds_no_server_error_and_no_invalid_answer(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    schema = _microsoft_schema()
    scope = {"subscriptionId": SUB, "resourceGroupName": RG, "jobName": "a"}
    tested = []
    runs = dict.fromkeys(GenerationMode, 0)

    def flow(worker: Worker) -> None:
        url = _url(worker)
        with _raw(worker) as http:  # a job to find, for GET/PATCH/keys on an existing name
            assert http.put(f"{JOBS}/a", params={"api-version": VERSION}, json=_put_body())
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            pinned = {p.name: scope[p.name] for p in operation.path_parameters if p.name in scope}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for strategy in (
                    operation.as_strategy(mode),
                    operation.as_strategy(
                        mode, path_parameters=pinned, query={"api-version": VERSION}
                    ),
                ):
                    try:
                        _fuzz(url, strategy, checks=CHECKS)
                    except Unsatisfiable:
                        # Microsoft types most parameters as free strings, and a query
                        # or path value is a string: nothing to negate.
                        assert mode is GenerationMode.NEGATIVE
                    else:
                        runs[mode] += 1
            tested.append(operation.label)

    _run(tmp_path, mosquitto, flow)
    # Every operation Microsoft defines (drivesim serves them all).
    assert len(tested) == 10, tested
    assert runs[GenerationMode.POSITIVE] == 20
    assert runs[GenerationMode.NEGATIVE] >= 6, runs  # the bodies, $top, the pinned group


@pytest.mark.parametrize("version", ["2016-11-01", "2020-08-01"])
def test_the_older_definitions_define_the_same_operations(version: str) -> None:
    """The fuzz above covers them too: same paths, methods and request shapes."""
    newest = microsoft_definition("2021-01-01")
    older = microsoft_definition(version)
    assert {(p, m) for p, i in older["paths"].items() for m in i} == {
        (p, m) for p, i in newest["paths"].items() for m in i
    }
