"""Every field spelling that a served api-version defines is accepted: walked from
Microsoft's three definitions (``tests/worker/data/azure-spec``) and from the SDK 0.1.0
line's request models (generated from the 2016-11-01 definition's first revision, whose
``blobListblobPath`` the current one spells ``blobListBlobPath``).

Each walk builds a request body holding every property the definition (or the SDK) has, at
every depth, and decodes it as the service does: a property drivesim does not know is an
"unknown field" and fails the test with its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from azure.mgmt.storageimportexport import models as sdk_models
from msrest import Serializer

from worker.http import API_VERSIONS
from worker.model import PutJobParameters, UpdateJobParameters
from worker.requests import decode, parse_put

#: Microsoft's definitions, copied unchanged (``data/azure-spec/README.md`` says from where).
SPECS = Path(__file__).parent / "data" / "azure-spec"

#: Values for the properties whose type is an enumeration in drivesim (the definitions
#: type them as free strings).
ENUMS = {"jobType": "Export", "state": "Creating", "kekType": "MicrosoftManaged", "type": "None"}
#: The request bodies of the served operations, by definition name.
REQUESTS: dict[str, type[msgspec.Struct]] = {
    "PutJobParameters": PutJobParameters,
    "UpdateJobParameters": UpdateJobParameters,
}


def microsoft_definition(version: str) -> dict[str, Any]:
    """Microsoft's definition of ``version``."""
    spec: dict[str, Any] = json.loads((SPECS / version / "storageimportexport.json").read_text())
    return spec


def _sample(schema: dict[str, Any], spec: dict[str, Any], name: str, seen: list[str]) -> Any:
    """A value for ``schema`` with every property filled in (``seen``: the path, for
    cycles)."""
    ref = schema.get("$ref")
    if ref is not None:
        if not ref.startswith("#/definitions/"):
            return None  # systemData: a common type, read-only, never in a request
        target = ref.removeprefix("#/definitions/")
        if target in seen:
            return None
        return _sample(spec["definitions"][target], spec, name, [*seen, target])
    if "enum" in schema:
        return schema["enum"][0]
    if name in ENUMS:
        return ENUMS[name]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "array":
        return [_sample(schema["items"], spec, name, seen)]
    if kind == "object" or "properties" in schema:
        if "properties" not in schema:
            return {"key": "value"}  # tags: a map of strings
        values = {p: _sample(s, spec, p, seen) for p, s in schema["properties"].items()}
        return {p: v for p, v in values.items() if v is not None}
    scalars: dict[str, Any] = {"string": "x", "integer": 1, "boolean": True}
    return scalars[str(kind)]


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Every property path in ``value`` (``a.b[].c``)."""
    if isinstance(value, dict):
        return {
            p
            for key, item in value.items()
            for p in {f"{prefix}{key}", *_paths(item, f"{prefix}{key}.")}
        }
    if isinstance(value, list):
        return {p for item in value for p in _paths(item, prefix.removesuffix(".") + "[].")}
    return set()


@pytest.mark.parametrize("version", API_VERSIONS)
@pytest.mark.parametrize("definition", sorted(REQUESTS))
def test_every_property_of_the_definition_is_accepted(version: str, definition: str) -> None:
    spec = microsoft_definition(version)
    body = _sample(spec["definitions"][definition], spec, definition, [definition])
    if definition == "PutJobParameters":
        body["properties"]["driveList"][0]["bitLockerKey"] = "KEY"
    # The walk reaches every level (it is not vacuous), the export's file among them.
    paths = _paths(body)
    assert len(paths) > 20, paths
    if definition == "PutJobParameters":
        assert "properties.export.blobListBlobPath" in paths
        assert "properties.driveList[].manifestHash" in paths
    decoded: msgspec.Struct = decode(msgspec.json.encode(body), REQUESTS[definition])
    # Decoding keeps every value: encoded again, it holds the same paths.
    assert _paths(msgspec.to_builtins(decoded)) == paths


def _fill(model: type[Any]) -> Any:
    """An SDK 0.1.0 model with every attribute it serializes set."""
    values = {}
    readonly = {a for a, rule in getattr(model, "_validation", {}).items() if rule.get("readonly")}
    for attr, info in model._attribute_map.items():
        if attr in readonly:
            continue
        kind, key = info["type"], info["key"].rsplit(".", 1)[-1]
        item = kind.strip("[]")
        if (model.__name__, key) == ("DriveStatus", "state"):
            value: Any = "Specified"
        elif key in ENUMS:
            value = ENUMS[key]
        elif item in ("str", "int", "long", "bool", "iso-8601"):
            value = {"str": "x", "int": 1, "long": 1, "bool": True, "iso-8601": "x"}[item]
        elif kind in ("{str}", "object"):
            value = {"key": "value"}
        else:
            value = _fill(getattr(sdk_models, item))
        values[attr] = [value] if kind.startswith("[") else value
    return model(**values)


@pytest.mark.parametrize("definition", sorted(REQUESTS))
def test_every_field_sdk_0_1_0_sends_is_accepted(definition: str) -> None:
    classes = {k: v for k, v in vars(sdk_models).items() if isinstance(v, type)}
    serializer = Serializer(classes)  # type: ignore[no-untyped-call]
    body = serializer.body(_fill(classes[definition]), definition)  # type: ignore[no-untyped-call]
    paths = _paths(body)
    assert len(paths) > 10, paths
    assert isinstance(decode(json.dumps(body), REQUESTS[definition]), REQUESTS[definition])
    if definition == "PutJobParameters":
        assert "properties.export.blobListblobPath" in paths  # the 2016 spelling, sent


def test_the_2016_spelling_is_folded_into_the_current_one() -> None:
    def export(fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "location": "West US",
            "properties": {"storageAccountId": "a", "jobType": "Export", "export": fields},
        }

    locations = {"West US": 1}
    parsed = parse_put(export({"blobListblobPath": "/c/list"}), locations=locations, max_drives=10)
    assert msgspec.to_builtins(parsed.properties.export) == {"blobListBlobPath": "/c/list"}
    same = {"blobListblobPath": "/c/list", "blobListBlobPath": "/c/list"}
    assert parse_put(export(same), locations=locations, max_drives=10) == parsed
    with pytest.raises(Exception, match="disagree") as info:
        parse_put(
            export({"blobListblobPath": "/c/a", "blobListBlobPath": "/c/b"}),
            locations=locations,
            max_drives=10,
        )
    assert getattr(info.value, "target", None) == "properties.export.blobListblobPath"
