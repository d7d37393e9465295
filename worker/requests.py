"""Reading customer requests: decode, type-check and validate, with ARM-style errors.

Nothing here touches a job. A request that fails any check raises
:class:`~worker.errors.ValidationError` naming the field at fault, so the service can
refuse it before anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from worker.errors import ValidationError
from worker.model import (
    DriveStatus,
    JobType,
    PutJobParameters,
    UpdateJobParameters,
)

__all__ = [
    "DRIVE_ID",
    "JOB_NAME",
    "check_depth",
    "check_drive_list",
    "check_name",
    "decode",
    "parse_put",
    "parse_update",
]

#: Job names: a letter or digit, then letters, digits, '-' or '_'; at most 64 characters.
#: They are one MQTT topic level and one ARM path segment, so nothing else is allowed.
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Drive ids are hardware serial numbers "without spaces".
DRIVE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
LOG_LEVELS = ("Error", "Verbose")

T = TypeVar("T")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise ValidationError(
            f"The job name {name!r} is invalid: use 1 to 64 letters, digits, '-' or '_', "
            "starting with a letter or digit.",
            code="InvalidResourceName",
            target="jobName",
        )
    return name


#: JSON requests nest no deeper than this; deeper ones are refused before decoding.
MAX_DEPTH = 32


def check_depth(data: bytes | str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` before any parser recurses into it.

    (Decoders stop runaway nesting with RecursionError, and on CPython 3.11 a caught
    RecursionError can leave the interpreter unable to compile code afterwards.)
    """
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > limit:
                raise ValidationError(f"The request is nested deeper than {limit} levels.")
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1


def decode(body: bytes | str | Mapping[str, Any], kind: type[T]) -> T:
    """``body`` (JSON text or already-parsed) as ``kind``, or a ValidationError naming the
    field at fault."""
    try:
        if isinstance(body, bytes | str):
            check_depth(body)
            return msgspec.json.decode(body, type=kind)
        if not isinstance(body, Mapping):
            raise ValidationError(
                f"The request body must be a JSON object, got {type(body).__name__}."
            )
        return msgspec.convert(dict(body), kind)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        target = where.rstrip("`").removeprefix("$.") or None
        raise ValidationError(f"Invalid request content: {message}.", target=target) from None
    except msgspec.DecodeError as exc:
        raise ValidationError(f"The request body is not valid JSON: {exc}.") from None


def parse_put(
    body: bytes | str | Mapping[str, Any], *, locations: Mapping[str, int], max_drives: int
) -> PutJobParameters:
    """A validated Jobs_Create body."""
    params = _fold_spellings(decode(body, PutJobParameters))
    props = params.properties
    if params.location not in locations:
        known = ", ".join(sorted(locations))
        raise ValidationError(
            f"The location '{params.location}' has no datacenter here; known: {known}.",
            code="InvalidLocation",
            target="location",
        )
    if props.job_type is None:
        raise ValidationError("jobType is required: Import or Export.", target="properties.jobType")
    if not props.storage_account_id:
        raise ValidationError("storageAccountId is required.", target="properties.storageAccountId")
    if props.state is not None and props.state != "Creating":
        raise ValidationError(
            f"A new job starts in Creating; state '{props.state}' cannot be set on create.",
            target="properties.state",
        )
    if props.cancel_requested:
        raise ValidationError(
            "cancelRequested cannot be true on create.", target="properties.cancelRequested"
        )
    _check_log_level(props.log_level, "properties.logLevel")
    if props.job_type is JobType.IMPORT:
        if props.export is not None:
            raise ValidationError("An import job takes no export.", target="properties.export")
        check_drive_list(props.drive_list, max_drives=max_drives, required=True)
    else:
        if props.drive_list:
            raise ValidationError(
                "An export job takes no driveList: the service registers the drives it receives.",
                target="properties.driveList",
            )
        export = props.export
        selects = export is not None and (
            export.blob_list_blob_path
            or (
                export.blob_list
                and (export.blob_list.blob_path or export.blob_list.blob_path_prefix)
            )
        )
        if not selects:
            raise ValidationError(
                "An export job needs export.blobList (blobPath or blobPathPrefix) "
                "or export.blobListBlobPath.",
                target="properties.export",
            )
    return params


def _fold_spellings(params: PutJobParameters) -> PutJobParameters:
    """The job with every older spelling of a field folded into the current one
    (``export.blobListblobPath`` into ``export.blobListBlobPath``)."""
    export = params.properties.export
    if export is None or export.blob_list_blob_path_2016 is None:
        return params
    old, new = export.blob_list_blob_path_2016, export.blob_list_blob_path
    if new is not None and new != old:
        raise ValidationError(
            "export.blobListBlobPath and export.blobListblobPath (its 2016-11-01 spelling) "
            "are the same field and disagree; send one.",
            target="properties.export.blobListblobPath",
        )
    params.properties.export = msgspec.structs.replace(
        export, blob_list_blob_path=old, blob_list_blob_path_2016=None
    )
    return params


def parse_update(body: bytes | str | Mapping[str, Any], *, max_drives: int) -> UpdateJobParameters:
    """A validated Jobs_Update body (state rules are checked by the service)."""
    params = decode(body, UpdateJobParameters)
    props = params.properties
    if props is not None:
        if props.state not in (None, "", "Shipping"):
            raise ValidationError(
                f"state must be 'Shipping' if given (or '' for no change), got '{props.state}'.",
                target="properties.state",
            )
        _check_log_level(props.log_level, "properties.logLevel")
        if props.drive_list is not None:
            check_drive_list(props.drive_list, max_drives=max_drives, required=True)
    return params


def check_drive_list(
    drives: list[DriveStatus] | None, *, max_drives: int, required: bool
) -> list[DriveStatus]:
    """An import job's drives: 1 to ``max_drives``, unique valid ids, each with its key."""
    target = "properties.driveList"
    if not drives:
        if required:
            raise ValidationError("An import job needs at least one drive.", target=target)
        return []
    if len(drives) > max_drives:
        raise ValidationError(
            f"A job takes at most {max_drives} drives, got {len(drives)}.",
            code="TooManyDrives",
            target=target,
        )
    seen: set[str] = set()
    for i, drive in enumerate(drives):
        where = f"{target}[{i}]"
        if not DRIVE_ID.fullmatch(drive.drive_id):
            raise ValidationError(
                f"driveId {drive.drive_id!r} is invalid: a hardware serial number without "
                "spaces (letters, digits, '-', '_').",
                target=f"{where}.driveId",
            )
        if drive.drive_id in seen:
            raise ValidationError(
                f"driveId '{drive.drive_id}' appears twice.",
                code="DuplicateDriveId",
                target=f"{where}.driveId",
            )
        seen.add(drive.drive_id)
        if not drive.bit_locker_key:
            raise ValidationError(
                f"Drive '{drive.drive_id}' needs its bitLockerKey.",
                target=f"{where}.bitLockerKey",
            )
    return drives


def _check_log_level(level: str | None, target: str) -> None:
    if level is not None and level not in LOG_LEVELS:
        raise ValidationError(
            f"logLevel must be one of {', '.join(LOG_LEVELS)}, got '{level}'.", target=target
        )
