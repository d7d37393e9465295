"""The Azure Import/Export resource shapes (ARM JSON, camelCase), as the public specs give them.

These structs are the wire format and the snapshot format: what a GET returns and what a
status message carries. They never hold a BitLocker key after validation: keys live in
:class:`worker.record.JobRecord` apart from the snapshot and leave only through the
list-keys operation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ArmScope",
    "ArmStruct",
    "ArmValue",
    "BlobList",
    "DeliveryPackage",
    "DriveBitLockerKey",
    "DriveState",
    "DriveStatus",
    "EncryptionKey",
    "Export",
    "Identity",
    "JobDetails",
    "JobResponse",
    "JobState",
    "JobType",
    "PackageInformation",
    "PutJobParameters",
    "ReturnAddress",
    "ReturnShipping",
    "ShippingInformation",
    "UpdateJobParameters",
    "UpdateJobProperties",
]

RESOURCE_TYPE = "Microsoft.ImportExport/jobs"


@dataclass(frozen=True, slots=True)
class ArmScope:
    """Where ARM resources live: a subscription, and a resource group in it (``group``
    None: the whole subscription, as a list by subscription asks).

    A job keeps the scope it was created in as the start of its ``id``; ARM compares
    subscription ids and group names case-insensitively, and so does :meth:`holds`.
    """

    subscription: str
    group: str | None = None

    @property
    def path(self) -> str:
        """``/subscriptions/{subscription}[/resourceGroups/{group}]``."""
        path = f"/subscriptions/{self.subscription}"
        return path if self.group is None else f"{path}/resourceGroups/{self.group}"

    def job_id(self, name: str) -> str:
        """The ARM ``id`` of job ``name`` in this resource group."""
        if self.group is None:
            raise ValueError("a job lives in a resource group, not in a whole subscription")
        return f"{self.path}/providers/{RESOURCE_TYPE}/{name}"

    def holds(self, resource_id: str) -> bool:
        """Whether the resource of ARM ``id`` ``resource_id`` is in this scope."""
        return resource_id.lower().startswith(self.path.lower() + "/")

    @classmethod
    def of(cls, resource_id: str) -> ArmScope:
        """The resource group that the resource of ARM ``id`` ``resource_id`` is in."""
        parts = resource_id.split("/")
        return cls(parts[2], parts[4])


class JobState(enum.StrEnum):
    """``properties.state`` of a job (D-STATE)."""

    #: Created by Put Job; the service assumes the drives are not shipped yet.
    CREATING = "Creating"
    #: The customer reported the package as shipped (PATCH ``state=Shipping``).
    SHIPPING = "Shipping"
    #: The package arrived at the datacenter.
    RECEIVED = "Received"
    #: At least one drive is being copied.
    TRANSFERRING = "Transferring"
    #: Every drive is done; the drives wait to be shipped back.
    PACKAGING = "Packaging"
    #: Drives shipped back without errors (or the job was cancelled).
    COMPLETED = "Completed"
    #: Drives shipped back with errors, or the package never arrived.
    CLOSED = "Closed"


class DriveState(enum.StrEnum):
    """``driveList[].state`` of a drive (the spec's ``DriveState`` enum)."""

    SPECIFIED = "Specified"
    RECEIVED = "Received"
    NEVER_RECEIVED = "NeverReceived"
    TRANSFERRING = "Transferring"
    COMPLETED = "Completed"
    COMPLETED_MORE_INFO = "CompletedMoreInfo"
    SHIPPED_BACK = "ShippedBack"


class JobType(enum.StrEnum):
    """``properties.jobType``."""

    IMPORT = "Import"
    EXPORT = "Export"


class ArmStruct(
    msgspec.Struct,
    rename="camel",
    omit_defaults=True,
    forbid_unknown_fields=True,
    kw_only=True,
    gc=False,
):
    """Base of the ARM shapes: camelCase on the wire, unknown fields rejected.

    They hold no reference cycles, so the garbage collector need not track them (a
    simulation holds tens of thousands of jobs).
    """


# Not a subclass of ArmStruct: mypy refuses a frozen struct under a mutable one, so the
# options are spelt out again.
class ArmValue(
    msgspec.Struct,
    rename="camel",
    omit_defaults=True,
    forbid_unknown_fields=True,
    kw_only=True,
    gc=False,
    frozen=True,
):
    """An ARM shape no change modifies in place (an address, a package, a drive's status):
    frozen, so a changed record can share it with the committed one
    (:func:`worker.record.clone`); a change replaces it instead."""


class ReturnAddress(ArmValue, kw_only=True, frozen=True):
    recipient_name: str
    street_address1: str
    street_address2: str | None = None
    city: str
    state_or_province: str | None = None
    postal_code: str
    country_or_region: str
    phone: str
    email: str


class ReturnShipping(ArmValue, kw_only=True, frozen=True):
    carrier_name: str
    carrier_account_number: str


class ShippingInformation(ArmValue, kw_only=True, frozen=True):
    recipient_name: str | None = None
    street_address1: str | None = None
    street_address2: str | None = None
    city: str | None = None
    state_or_province: str | None = None
    postal_code: str | None = None
    country_or_region: str | None = None
    phone: str | None = None
    additional_information: str | None = None


#: The spec's int64 fields.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: A count of drives: never negative, never beyond what a package can hold.
DriveCount = Annotated[int, msgspec.Meta(ge=0, le=1000)]


class DeliveryPackage(ArmValue, kw_only=True, frozen=True):
    """The package the customer ships to the datacenter (``deliveryPackage``)."""

    carrier_name: str
    tracking_number: str
    drive_count: DriveCount | None = None
    ship_date: str | None = None


class PackageInformation(ArmValue, kw_only=True, frozen=True):
    """The package the datacenter ships back (``returnPackage``)."""

    carrier_name: str
    tracking_number: str
    drive_count: DriveCount
    ship_date: str


class DriveStatus(ArmValue, kw_only=True, frozen=True):
    drive_id: str
    bit_locker_key: str | None = None
    manifest_file: str | None = None
    manifest_hash: str | None = None
    drive_header_hash: str | None = None
    state: DriveState | None = None
    copy_status: str | None = None
    percent_complete: Int64 | None = None
    verbose_log_uri: str | None = None
    error_log_uri: str | None = None
    manifest_uri: str | None = None
    bytes_succeeded: Int64 | None = None


class BlobList(ArmValue, kw_only=True, frozen=True):
    blob_path: list[str] | None = None
    blob_path_prefix: list[str] | None = None


class Export(ArmValue, kw_only=True, frozen=True):
    blob_list: BlobList | None = None
    blob_list_blob_path: str | None = None
    #: ``blobListblobPath``: the same field as spelt by the 2016-11-01 definition's first
    #: revision, which the SDK 0.1.0 line sends. Accepted on input and folded into
    #: ``blobListBlobPath`` (:func:`worker.requests.parse_put`), so never stored or answered.
    blob_list_blob_path_2016: str | None = msgspec.field(default=None, name="blobListblobPath")


class EncryptionKey(ArmValue, kw_only=True, frozen=True):
    #: None on input means MicrosoftManaged; the service always sets it.
    kek_type: Literal["MicrosoftManaged", "CustomerManaged"] | None = None
    kek_url: str | None = None
    kek_vault_resource_id: str | None = msgspec.field(default=None, name="kekVaultResourceID")


class Identity(ArmValue, kw_only=True, frozen=True):
    type: Literal["None", "SystemAssigned", "UserAssigned"]
    principal_id: str | None = None
    tenant_id: str | None = None


class JobDetails(ArmStruct, kw_only=True):
    storage_account_id: str | None = None
    job_type: JobType | None = None
    return_address: ReturnAddress | None = None
    return_shipping: ReturnShipping | None = None
    shipping_information: ShippingInformation | None = None
    delivery_package: DeliveryPackage | None = None
    return_package: PackageInformation | None = None
    diagnostics_path: str | None = None
    log_level: str | None = None
    backup_drive_manifest: bool | None = None
    state: JobState | None = None
    cancel_requested: bool | None = None
    percent_complete: Int64 | None = None
    incomplete_blob_list_uri: str | None = None
    drive_list: list[DriveStatus] | None = None
    export: Export | None = None
    provisioning_state: str | None = None
    encryption_key: EncryptionKey | None = None


class JobResponse(ArmStruct, kw_only=True):
    """A job as GET returns it, and as its status snapshot carries it."""

    id: str
    name: str
    type: str
    location: str
    tags: dict[str, str] | None = None
    properties: JobDetails
    identity: Identity | None = None


class PutJobParameters(ArmStruct, kw_only=True):
    """The body of Jobs_Create (PUT)."""

    location: str
    tags: dict[str, str] | None = None
    properties: JobDetails


class UpdateJobProperties(ArmStruct, kw_only=True):
    cancel_requested: bool | None = None
    state: str | None = None
    return_address: ReturnAddress | None = None
    return_shipping: ReturnShipping | None = None
    delivery_package: DeliveryPackage | None = None
    log_level: str | None = None
    backup_drive_manifest: bool | None = None
    drive_list: list[DriveStatus] | None = None


class UpdateJobParameters(ArmStruct, kw_only=True):
    """The body of Jobs_Update (PATCH)."""

    tags: dict[str, str] | None = None
    properties: UpdateJobProperties | None = None


class DriveBitLockerKey(ArmStruct, kw_only=True):
    drive_id: str
    bit_locker_key: str


def to_builtins(value: Any) -> Any:
    """ARM JSON (dicts, lists, strings) of any struct here."""
    return msgspec.to_builtins(value)
