"""The job service: the Azure Import/Export operations, with their rules and errors.

Every transport (scenario runner, MQTT commands, HTTP) calls this and nothing below it.
A refused request raises a :class:`~worker.errors.ServiceError` and changes nothing; an
accepted one is committed (and so announced) before the call returns.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec

from worker import changes, states
from worker.config import DatacenterConfig, Policy
from worker.errors import (
    Conflict,
    InvalidJobState,
    RecordChanged,
    ResourceNotFound,
    ValidationError,
)
from worker.ledger import ATTEMPTS, Ledger
from worker.logs import get_logger
from worker.model import (
    RESOURCE_TYPE,
    ArmScope,
    DriveBitLockerKey,
    DriveState,
    DriveStatus,
    EncryptionKey,
    Identity,
    JobDetails,
    JobResponse,
    JobState,
    JobType,
    ShippingInformation,
    UpdateJobParameters,
    UpdateJobProperties,
)
from worker.plan import PlanHints, Planner
from worker.record import DriveSim, JobRecord, JobSim, copy_job
from worker.requests import check_name, parse_put, parse_update
from worker.states import CancelAnswer, Command, Verdict
from worker.status import Event

__all__ = ["CancelResult", "CreateResult", "JobService"]

log = get_logger("drivesim.service")

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _judged_again(
    method: Callable[Concatenate[JobService, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[JobService, _P], Coroutine[Any, Any, _T]]:
    """A request judged against a job that another worker changed before the commit is
    judged again against the job as it now is (which the ledger has taken in)."""

    async def judged(self: JobService, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        for _ in range(ATTEMPTS - 1):
            try:
                return await method(self, *args, **kwargs)
            except RecordChanged:
                log.info("job changed by another worker: request judged again")
        return await method(self, *args, **kwargs)

    judged.__name__, judged.__doc__ = method.__name__, method.__doc__
    return judged


MAX_TOP = 100
DATACENTER_ADDRESS = ShippingInformation(
    recipient_name="Microsoft Azure Import/Export Service",
    street_address1="2045 Lafayette Street",
    city="Santa Clara",
    state_or_province="CA",
    postal_code="95050",
    country_or_region="USA",
    phone="408 352 7600",
    additional_information="",
)


@dataclass(frozen=True, slots=True)
class CreateResult:
    job: JobResponse
    created: bool  # False: an existing job was replaced (ARM answers 200 instead of 201)


@dataclass(frozen=True, slots=True)
class CancelResult:
    answer: CancelAnswer
    job: JobResponse
    #: The job's state when the request was judged (the job may have moved on since).
    state: JobState


#: The PATCH a cancel request is.
_CANCEL = UpdateJobParameters(properties=UpdateJobProperties(cancel_requested=True))


class JobService:
    """Create, get, list, update, delete and list keys, as Microsoft.ImportExport does.

    Every operation takes an optional ``scope`` (:class:`~worker.model.ArmScope`), the
    subscription and resource group of an ARM request: a job is created in it (its ``id``
    says so), found only in it (another group's job is 404 ResourceNotFound, as in ARM), and
    a list holds only its jobs. Without one (MQTT commands, scenarios), jobs are created in
    the service's own ``subscription_id`` and ``resource_group`` and found by name in any.
    Job names are unique across groups: a create of a name that another group holds is
    409 JobNameInUse (ARM would make it a second job).
    """

    def __init__(
        self,
        ledger: Ledger,
        planner: Planner,
        *,
        policy: Policy | None = None,
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        resource_group: str = "drivesim",
    ) -> None:
        self.ledger = ledger
        self.planner = planner
        self.policy = policy or Policy()
        self.datacenter: DatacenterConfig = planner.datacenter
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.scope = ArmScope(subscription_id, resource_group)

    # -- queries -------------------------------------------------------------------------

    async def get(self, name: str, *, scope: ArmScope | None = None) -> JobResponse:
        return copy_job(self._record(name, scope).job)

    async def list(
        self,
        *,
        top: int | None = None,
        state: str | None = None,
        skip: int = 0,
        scope: ArmScope | None = None,
    ) -> builtins.list[JobResponse]:
        """Jobs in creation order; ``top`` at most 100, optionally only those in ``state``
        and in ``scope``, after the first ``skip`` of them (for paging)."""
        if top is not None and (isinstance(top, bool) or not isinstance(top, int)):
            raise ValidationError("$top must be an integer.", target="$top")
        if top is not None and not 1 <= top <= MAX_TOP:
            raise ValidationError(
                f"$top must be between 1 and {MAX_TOP}, got {top}.", target="$top"
            )
        wanted: JobState | None = None
        if state is not None:
            try:
                wanted = JobState(state)
            except ValueError:
                raise ValidationError(
                    f"Unknown state '{state}'; one of {', '.join(JobState)}.", target="$filter"
                ) from None
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ValidationError("$skiptoken is invalid.", target="$skiptoken")
        # Stops at the page's last job: a page (or a probe with top=1) does not copy them all.
        matching = (
            r.job
            for r in self.ledger.jobs()
            if (wanted is None or r.state is wanted) and (scope is None or scope.holds(r.job.id))
        )
        return [copy_job(job) for job in itertools.islice(matching, skip, skip + (top or MAX_TOP))]

    async def list_bitlocker_keys(
        self, name: str, *, scope: ArmScope | None = None
    ) -> builtins.list[DriveBitLockerKey]:
        """The only way BitLocker keys leave the worker."""
        record = self._record(name, scope)
        return [
            DriveBitLockerKey(drive_id=drive_id, bit_locker_key=key)
            for drive_id, key in record.keys.items()
        ]

    # -- commands ------------------------------------------------------------------------

    @_judged_again
    async def create(
        self,
        name: str,
        body: bytes | str | Mapping[str, Any],
        *,
        hints: PlanHints | None = None,
        meta: Mapping[str, bytes] | None = None,
        scope: ArmScope | None = None,
    ) -> CreateResult:
        """Jobs_Create: a new job in Creating, or a replacement of one still in Creating
        (in the same resource group)."""
        check_name(name)
        params = parse_put(
            body, locations=self.datacenter.locations, max_drives=self.policy.max_drives
        )
        existing = self.ledger.committed(name)
        if existing is not None:
            if scope is not None and not scope.holds(existing.job.id):
                held = ArmScope.of(existing.job.id)
                raise Conflict(
                    f"The job name '{name}' is in use in resource group '{held.group}' of "
                    f"subscription '{held.subscription}': drivesim keeps job names unique "
                    "across resource groups. Choose another name, or delete that job first.",
                    code="JobNameInUse",
                    target="jobName",
                )
            _judge(existing, Command.REPLACE, target="jobName")
        now = self.ledger.clock.now()
        props = params.properties
        assert props.job_type is not None
        drives = props.drive_list or []
        plan = self.planner.plan(name, props.job_type, [d.drive_id for d in drives], now, hints)
        details = msgspec.structs.replace(
            props,
            state=states.INITIAL,
            cancel_requested=False,
            provisioning_state="Succeeded",
            shipping_information=DATACENTER_ADDRESS,
            return_package=None,
            percent_complete=None,
            incomplete_blob_list_uri=None,
            encryption_key=msgspec.structs.replace(
                props.encryption_key or EncryptionKey(),
                kek_type=(props.encryption_key and props.encryption_key.kek_type)
                or "MicrosoftManaged",
            ),
            drive_list=[_public_drive(d) for d in drives],
            log_level=props.log_level or "Error",
            backup_drive_manifest=bool(props.backup_drive_manifest),
        )
        record = JobRecord(
            job=JobResponse(
                # A replacement keeps its id (its group, spelt as when first created).
                id=existing.job.id if existing else (scope or self.scope).job_id(name),
                name=name,
                type=RESOURCE_TYPE,
                location=params.location,
                tags=params.tags,
                properties=details,
                identity=Identity(type="None"),
            ),
            keys={d.drive_id: d.bit_locker_key for d in drives if d.bit_locker_key},
            sim=JobSim(
                created_at=now,
                touched_at=now,
                state_entered_at=now,
                carrier_delay=plan.carrier_delay,
                return_delay=plan.return_delay,
                package_lost=plan.package_lost,
                export_bytes=plan.export_bytes if props.job_type is JobType.EXPORT else 0,
                export_drive_bytes=int(self.datacenter.export_drive_size),
                drives={d: DriveSim(plan=p) for d, p in plan.drives.items()},
            ),
        )
        event = "jobReplaced" if existing else "jobCreated"
        self.ledger.create(
            record,
            [Event(event, {"jobType": str(props.job_type), "drives": len(drives)})],
            meta,
        )
        return CreateResult(job=copy_job(record.job), created=existing is None)

    @_judged_again
    async def update(
        self,
        name: str,
        body: bytes | str | Mapping[str, Any],
        *,
        meta: Mapping[str, bytes] | None = None,
        scope: ArmScope | None = None,
    ) -> JobResponse:
        """Jobs_Update (PATCH): change fields, ship (``state=Shipping``), or cancel."""
        record = self._record(name, scope)
        params = parse_update(body, max_drives=self.policy.max_drives)
        updated, _ = self._update(record, params, meta)
        return copy_job(updated.job)

    @_judged_again
    async def cancel(self, name: str, *, meta: Mapping[str, bytes] | None = None) -> CancelResult:
        """PATCH ``cancelRequested=true``, with the answer spelt out."""
        record = self._record(name)
        updated, verdict = self._update(record, _CANCEL, meta)
        assert verdict is not None
        assert verdict.cancel is not None
        return CancelResult(answer=verdict.cancel, job=copy_job(updated.job), state=record.state)

    @_judged_again
    async def delete(
        self,
        name: str,
        *,
        meta: Mapping[str, bytes] | None = None,
        scope: ArmScope | None = None,
    ) -> None:
        """Jobs_Delete: only a job in Creating or Completed."""
        record = self._record(name, scope)
        self.ledger.delete(name, changes.delete(record, Command.DELETE), meta)

    # -- helpers -------------------------------------------------------------------------

    def _update(
        self, record: JobRecord, params: UpdateJobParameters, meta: Mapping[str, bytes] | None
    ) -> tuple[JobRecord, Verdict | None]:
        """Judge a PATCH against the committed ``record``, then commit it; returns the
        record as committed and the cancel verdict, if the PATCH asked to cancel."""
        name = record.name
        props = params.properties
        # A field given with the value it has is no change (newer SDKs send
        # ``backupDriveManifest: false`` in every PATCH): neither refused nor announced.
        fields = _fields_changed(props, record.job.properties)
        state = record.state
        refused = sorted(f for f in fields if f not in states.UPDATABLE_FIELDS[state])
        if refused:
            raise InvalidJobState(
                f"Job '{name}' is in state {state}: {', '.join(refused)} can no longer change.",
                state=str(state),
                target=f"properties.{refused[0]}",
            )
        if "driveList" in fields and record.job.properties.job_type is JobType.EXPORT:
            raise ValidationError(
                "An export job takes no driveList.", target="properties.driveList"
            )
        ship = None
        if props is not None and props.state == "Shipping":
            ship = self._judge_ship(record, props)
        cancel = None
        if props is not None and props.cancel_requested is True:
            # Shipping first, so a PATCH that ships and cancels is judged in Shipping.
            judged = state if ship is None or ship.next_state is None else ship.next_state
            cancel = states.decide_cancel(
                judged, record.cancel_requested, self.policy.cancel_window
            )
            if not cancel.allowed:
                raise InvalidJobState(
                    f"Job '{name}' cannot be cancelled: {cancel.reason}.",
                    state=str(judged),
                    code="CancelTooLate",
                    target="properties.cancelRequested",
                )
        now = self.ledger.clock.now()
        new_plans = {}
        if props is not None and props.drive_list is not None:
            rng = self.planner.rng("drives", name, repr(now))
            new_plans = {
                d.drive_id: record.sim.drives[d.drive_id].plan
                if d.drive_id in record.sim.drives
                else self.planner.drive_plan(rng)
                for d in props.drive_list
            }

        def change(rec: JobRecord) -> list[Event]:
            events: list[Event] = []
            if params.tags is not None:
                rec.job.tags = params.tags
            if fields:
                _apply_fields(rec, props, new_plans)
                events.append(Event("jobUpdated", {"fields": sorted(fields)}))
            if states.restarts_expiry(rec.state):
                # Any accepted Update in Creating restarts the expiry, one that changes
                # nothing too (``state: ""``, ``cancelRequested: false``): "Calling Update
                # while Creating keeps it Creating and resets the 2-week timer" (D-STATE).
                rec.sim.touched_at = now
            if ship is not None:
                events += changes.ship(
                    rec, now, ship, lost_package_after=self.datacenter.lost_package_after
                )
            if cancel is not None:
                events += changes.cancel(rec, now, cancel)
            if cancel is not None or ship is not None:
                events += changes.settle(rec, now)
            return events

        return self.ledger.update(name, change, meta), cancel

    def _record(self, name: str, scope: ArmScope | None = None) -> JobRecord:
        """The job as committed: a request is judged, and answered, on nothing else."""
        record = self.ledger.committed(name) if isinstance(name, str) else None
        if record is None or (scope is not None and not scope.holds(record.job.id)):
            group = (scope or self.scope).group
            raise ResourceNotFound(
                f"The Resource 'Microsoft.ImportExport/jobs/{name}' under resource group "
                f"'{group}' was not found.",
                target=str(name),
            )
        return record

    def _judge_ship(self, record: JobRecord, props: UpdateJobProperties) -> Verdict:
        """The verdict on moving the job to Shipping, with what shipping needs given now or
        earlier; raises the refusal."""
        verdict = _judge(record, Command.SHIP, target="properties.state")
        current = record.job.properties
        missing = [
            field
            for field, given, have in (
                ("returnAddress", props.return_address, current.return_address),
                ("deliveryPackage", props.delivery_package, current.delivery_package),
            )
            if given is None and have is None
        ]
        if missing:
            raise ValidationError(
                f"Job '{record.name}' cannot move to Shipping without "
                f"{' and '.join(missing)}, in this request or an earlier one.",
                code="MissingShippingInformation",
                target=f"properties.{missing[0]}",
            )
        package = props.delivery_package or current.delivery_package
        if package is not None and (
            package.drive_count is not None or current.job_type is JobType.EXPORT
        ):
            count = 1 if package.drive_count is None else package.drive_count
            if not 1 <= count <= self.policy.max_drives:
                raise ValidationError(
                    f"deliveryPackage.driveCount must be 1 to {self.policy.max_drives}.",
                    target="properties.deliveryPackage.driveCount",
                )
        return verdict


def _judge(record: JobRecord, command: Command, *, target: str) -> Verdict:
    """The verdict on a customer's ``command``, or its refusal naming ``target``."""
    verdict = states.decide(record.state, command)
    if not verdict.allowed:
        raise InvalidJobState(
            f"Job '{record.name}': {verdict.reason}.", state=str(record.state), target=target
        )
    return verdict


_UPDATE_FIELDS = {
    "return_address": "returnAddress",
    "return_shipping": "returnShipping",
    "delivery_package": "deliveryPackage",
    "log_level": "logLevel",
    "backup_drive_manifest": "backupDriveManifest",
    "drive_list": "driveList",
}


def _fields_changed(props: Any, current: JobDetails) -> set[str]:
    """The fields a PATCH gives with a value other than the job's. A drive list always
    counts: it carries keys and replaces the drives' plans."""
    if props is None:
        return set()
    return {
        wire
        for attr, wire in _UPDATE_FIELDS.items()
        if (value := getattr(props, attr)) is not None
        and (attr == "drive_list" or value != getattr(current, attr))
    }


def _apply_fields(rec: JobRecord, props: Any, plans: Mapping[str, Any]) -> None:
    details: JobDetails = rec.job.properties
    for attr in _UPDATE_FIELDS:
        value = getattr(props, attr)
        if value is None:
            continue
        if attr == "drive_list":
            rec.keys = {d.drive_id: d.bit_locker_key for d in value if d.bit_locker_key}
            rec.sim.drives = {d.drive_id: DriveSim(plan=plans[d.drive_id]) for d in value}
            details.drive_list = [_public_drive(d) for d in value]
        else:
            setattr(details, attr, value)


def _public_drive(drive: DriveStatus) -> DriveStatus:
    """The drive as the service shows it: no key, no client-set progress, state Specified."""
    return DriveStatus(
        drive_id=drive.drive_id,
        manifest_file=drive.manifest_file,
        manifest_hash=drive.manifest_hash,
        drive_header_hash=drive.drive_header_hash,
        state=DriveState.SPECIFIED,
    )
