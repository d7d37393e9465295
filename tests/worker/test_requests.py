"""Reading customer requests: names, PUT and PATCH bodies, and the ARM errors they raise."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from worker.errors import ValidationError
from worker.model import DriveStatus, JobType
from worker.requests import check_depth, check_drive_list, check_name, parse_put, parse_update

LOCATIONS = {"West US": 2}

Body = Callable[..., dict[str, Any]]


def put(body: object, *, max_drives: int = 10) -> Any:
    return parse_put(body, locations=LOCATIONS, max_drives=max_drives)  # type: ignore[arg-type]


def refused(call: Callable[[], object]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.status == 400
    return info.value


# -- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Job-1", "9_lives", "x" * 64, "A-b_C-9"])
def test_check_name_accepts_valid_names(name: str) -> None:
    """Names of 1 to 64 letters, digits, '-' and '_' starting with a letter or digit pass."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x" * 65, "-job", "_job", "job/1", "job 1", "job+", "jöb", "job\n", 7, None, b"job"],
)
def test_check_name_rejects_invalid_names(name: object) -> None:
    """Anything else is InvalidResourceName targeting jobName."""
    error = refused(lambda: check_name(name))
    assert (error.code, error.target) == ("InvalidResourceName", "jobName")


# -- PUT -------------------------------------------------------------------------------


def test_parse_put_accepts_mapping_str_and_bytes(import_body: Body) -> None:
    """The same body as a mapping, a JSON string and JSON bytes parses to the same value."""
    body = import_body(2)
    parsed = [put(body), put(json.dumps(body)), put(json.dumps(body).encode())]
    assert parsed[0] == parsed[1] == parsed[2]
    props = parsed[0].properties
    assert props.job_type is JobType.IMPORT
    assert [d.drive_id for d in props.drive_list] == ["DRV0", "DRV1"]


def test_parse_put_accepts_sdk_defaults(import_body: Body) -> None:
    """The track-2 SDK's state=Creating and cancelRequested=false on create are accepted."""
    body = import_body(1)
    body["properties"] |= {"state": "Creating", "cancelRequested": False}
    assert put(body).properties.state == "Creating"


def test_parse_put_accepts_export(export_body: Body) -> None:
    """An export job with a blob list and no drives is accepted."""
    assert put(export_body()).properties.job_type is JobType.EXPORT


@pytest.mark.parametrize(
    ("body", "target"),
    [
        (b"{", None),
        (b"", None),
        (b"\xff\xfe", None),
        (b"[1, 2]", None),
        ("null", None),
        ("42", None),
        ([1, 2], None),
        (None, None),
        (42, None),
    ],
)
def test_parse_put_rejects_non_objects(body: object, target: str | None) -> None:
    """Invalid JSON and JSON that is not an object are InvalidRequestContent."""
    error = refused(lambda: put(body))
    assert (error.code, error.target) == ("InvalidRequestContent", target)


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = body
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "code", "target"),
    [
        ("location", 5, "InvalidRequestContent", "location"),
        ("location", "Mars", "InvalidLocation", "location"),
        ("unknown", 1, "InvalidRequestContent", None),
        ("properties.unknown", 1, "InvalidRequestContent", "properties"),
        ("properties.jobType", "Copy", "InvalidRequestContent", "properties.jobType"),
        ("properties.jobType", None, "InvalidRequestContent", "properties.jobType"),
        ("properties.storageAccountId", "", "InvalidRequestContent", "properties.storageAccountId"),
        ("properties.storageAccountId", 3, "InvalidRequestContent", "properties.storageAccountId"),
        ("properties.state", "Shipping", "InvalidRequestContent", "properties.state"),
        ("properties.cancelRequested", True, "InvalidRequestContent", "properties.cancelRequested"),
        (
            "properties.cancelRequested",
            "yes",
            "InvalidRequestContent",
            "properties.cancelRequested",
        ),
        ("properties.logLevel", "Debug", "InvalidRequestContent", "properties.logLevel"),
        ("properties.driveList", "DRV0", "InvalidRequestContent", "properties.driveList"),
        ("properties.driveList", [], "InvalidRequestContent", "properties.driveList"),
        (
            "properties.export",
            {"blobListBlobPath": "list.xml"},
            "InvalidRequestContent",
            "properties.export",
        ),
        ("properties.returnAddress", {"city": "x"}, "InvalidRequestContent", None),
        ("tags", {"a": 1}, "InvalidRequestContent", "tags[...]"),
    ],
)
def test_parse_put_rejects_bad_fields(
    import_body: Body, path: str, value: Any, code: str, target: str | None
) -> None:
    """Each bad field of a PUT raises with its ARM code and, where known, the field's path."""
    error = refused(lambda: put(_with(import_body(1), path, value)))
    assert error.code == code
    if target is not None:
        assert error.target == target


@pytest.mark.parametrize(
    ("drive", "code", "target"),
    [
        ({"driveId": "A B", "bitLockerKey": "k"}, "InvalidRequestContent", "driveId"),
        ({"driveId": "", "bitLockerKey": "k"}, "InvalidRequestContent", "driveId"),
        ({"driveId": "-A", "bitLockerKey": "k"}, "InvalidRequestContent", "driveId"),
        ({"driveId": 12, "bitLockerKey": "k"}, "InvalidRequestContent", "driveId"),
        ({"driveId": "A"}, "InvalidRequestContent", "bitLockerKey"),
        ({"driveId": "A", "bitLockerKey": ""}, "InvalidRequestContent", "bitLockerKey"),
        ({"driveId": "A", "bitLockerKey": "k", "color": "red"}, "InvalidRequestContent", None),
    ],
)
def test_parse_put_rejects_bad_drives(
    import_body: Body, drive: dict[str, Any], code: str, target: str | None
) -> None:
    """A bad drive entry names the drive's index and field."""
    body = import_body(1)
    body["properties"]["driveList"].append(drive)
    error = refused(lambda: put(body))
    assert error.code == code
    assert error.target is not None
    assert error.target.startswith("properties.driveList[1]")
    if target is not None:
        assert error.target == f"properties.driveList[1].{target}"


def test_parse_put_rejects_eleven_drives(import_body: Body) -> None:
    """Eleven drives are TooManyDrives; ten are fine."""
    assert len(put(import_body(10)).properties.drive_list) == 10
    error = refused(lambda: put(import_body(11)))
    assert (error.code, error.target) == ("TooManyDrives", "properties.driveList")


def test_parse_put_honours_max_drives(import_body: Body) -> None:
    """The drive limit comes from the caller's policy."""
    error = refused(lambda: put(import_body(3), max_drives=2))
    assert error.code == "TooManyDrives"


def test_parse_put_rejects_duplicate_drive_ids(import_body: Body) -> None:
    """The same driveId twice is DuplicateDriveId naming the second occurrence."""
    body = import_body(2)
    body["properties"]["driveList"].append({"driveId": "DRV0", "bitLockerKey": "other"})
    error = refused(lambda: put(body))
    assert (error.code, error.target) == ("DuplicateDriveId", "properties.driveList[2].driveId")


def test_parse_put_rejects_import_without_drives(import_body: Body) -> None:
    """An import job needs at least one drive."""
    body = import_body(1)
    del body["properties"]["driveList"]
    error = refused(lambda: put(body))
    assert error.target == "properties.driveList"


def test_parse_put_rejects_export_with_drives(export_body: Body) -> None:
    """An export job takes no driveList."""
    body = export_body()
    body["properties"]["driveList"] = [{"driveId": "A", "bitLockerKey": "k"}]
    assert refused(lambda: put(body)).target == "properties.driveList"


@pytest.mark.parametrize(
    "export",
    [None, {}, {"blobList": {}}, {"blobList": {"blobPath": [], "blobPathPrefix": []}}],
)
def test_parse_put_rejects_export_without_selection(
    export_body: Body, export: dict[str, Any] | None
) -> None:
    """An export job must select blobs by path, prefix or list blob."""
    body = export_body()
    if export is None:
        del body["properties"]["export"]
    else:
        body["properties"]["export"] = export
    assert refused(lambda: put(body)).target == "properties.export"


@pytest.mark.parametrize(
    "export",
    [
        {"blobList": {"blobPath": ["/c/a.txt"]}},
        {"blobList": {"blobPathPrefix": ["/c/"]}},
        {"blobListBlobPath": "lists/export.xml"},
    ],
)
def test_parse_put_accepts_each_export_selection(export_body: Body, export: dict[str, Any]) -> None:
    """Blob paths, prefixes or a list blob each select blobs for export."""
    body = export_body()
    body["properties"]["export"] = export
    assert put(body).properties.export is not None


def test_parse_put_does_not_touch_the_callers_mapping(import_body: Body) -> None:
    """Parsing a mapping leaves it as it was."""
    body = import_body(2)
    before = json.dumps(body, sort_keys=True)
    put(body)
    assert json.dumps(body, sort_keys=True) == before


# -- PATCH -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"properties": {}},
        {"properties": {"state": ""}},
        {"properties": {"cancelRequested": False}},
        {"properties": {"state": "Shipping"}},
        {"properties": {"cancelRequested": True}},
        {"tags": {"team": "ops"}},
        {"properties": {"logLevel": "Verbose", "backupDriveManifest": True}},
    ],
)
def test_parse_update_accepts(body: dict[str, Any]) -> None:
    """Well-formed PATCH bodies parse, including the SDK's no-op values."""
    params = parse_update(body, max_drives=10)
    assert params.tags == body.get("tags")


@pytest.mark.parametrize("state", ["Creating", "Received", "Completed", "shipping", "Cancelled"])
def test_parse_update_rejects_other_states(state: str) -> None:
    """A PATCH state other than Shipping or '' is InvalidRequestContent on properties.state."""
    error = refused(lambda: parse_update({"properties": {"state": state}}, max_drives=10))
    assert (error.code, error.target) == ("InvalidRequestContent", "properties.state")


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ({"properties": {"cancelRequested": "true"}}, "InvalidRequestContent", None),
        ({"properties": {"state": 1}}, "InvalidRequestContent", "properties.state"),
        ({"properties": {"logLevel": "Loud"}}, "InvalidRequestContent", "properties.logLevel"),
        ({"properties": {"storageAccountId": "x"}}, "InvalidRequestContent", "properties"),
        ({"properties": {"driveList": []}}, "InvalidRequestContent", "properties.driveList"),
        ({"location": "West US"}, "InvalidRequestContent", None),
        ({"properties": []}, "InvalidRequestContent", "properties"),
    ],
)
def test_parse_update_rejects_bad_bodies(
    body: dict[str, Any], code: str, target: str | None
) -> None:
    """Wrong types, unknown fields and bad values in a PATCH are refused with their target."""
    error = refused(lambda: parse_update(body, max_drives=10))
    assert error.code == code
    if target is not None:
        assert error.target == target


def test_parse_update_checks_drive_lists() -> None:
    """A PATCH driveList gets the same checks as on create: too many, duplicates."""
    many = [{"driveId": f"D{i}", "bitLockerKey": "k"} for i in range(11)]
    assert refused(
        lambda: parse_update({"properties": {"driveList": many}}, max_drives=10)
    ).code == ("TooManyDrives")
    twice = [{"driveId": "D", "bitLockerKey": "k"}, {"driveId": "D", "bitLockerKey": "k"}]
    assert refused(
        lambda: parse_update({"properties": {"driveList": twice}}, max_drives=10)
    ).code == ("DuplicateDriveId")


@pytest.mark.parametrize("body", [b"{", b"[]", "true", [1], None])
def test_parse_update_rejects_non_objects(body: object) -> None:
    """A PATCH body that is not a JSON object is InvalidRequestContent."""
    error = refused(lambda: parse_update(body, max_drives=10))  # type: ignore[arg-type]
    assert error.code == "InvalidRequestContent"


# -- drive lists -----------------------------------------------------------------------


def test_check_drive_list_optional_when_not_required() -> None:
    """No drives is fine when they are not required and an error when they are."""
    assert check_drive_list(None, max_drives=10, required=False) == []
    assert check_drive_list([], max_drives=10, required=False) == []
    with pytest.raises(ValidationError):
        check_drive_list([], max_drives=10, required=True)


def test_check_drive_list_returns_valid_drives() -> None:
    """A valid list comes back as given."""
    drives = [
        DriveStatus(drive_id="A-1", bit_locker_key="k"),
        DriveStatus(drive_id="B_2", bit_locker_key="k"),
    ]
    assert check_drive_list(drives, max_drives=2, required=True) is drives


# -- nesting ---------------------------------------------------------------------------


def test_check_depth_allows_the_limit_and_refuses_one_more() -> None:
    """JSON nested exactly to the limit passes; one level deeper is InvalidRequestContent."""
    check_depth("[" * 32 + "]" * 32)
    check_depth(b"{" + b'"a":{' * 31 + b"}" * 32)
    error = refused(lambda: check_depth("[" * 33 + "]" * 33))
    assert error.code == "InvalidRequestContent"


def test_check_depth_ignores_brackets_inside_strings() -> None:
    """Brackets inside strings, escaped quotes included, do not count as nesting."""
    check_depth('{"a": "' + "{[" * 100 + '"}')
    check_depth('{"a": "\\"' + "[" * 100 + '"}')
    check_depth(b'["\\\\", "' + b"{" * 100 + b'"]')


def test_check_depth_counts_siblings_once() -> None:
    """Many sibling objects are not deep nesting."""
    check_depth("[" + ",".join(["{}"] * 500) + "]")


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_bodies_are_refused_before_decoding(depth: int) -> None:
    """A PUT or PATCH body nested absurdly deep is a ValidationError, not a RecursionError."""
    body = '{"location": ' + "[" * depth + "]" * depth + "}"
    assert refused(lambda: put(body)).code == "InvalidRequestContent"
    assert refused(lambda: put(body.encode())).code == "InvalidRequestContent"
    patch = '{"tags": ' + "{" * depth + "}" * depth + "}"
    assert refused(lambda: parse_update(patch, max_drives=10)).code == "InvalidRequestContent"
