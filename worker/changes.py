"""Pure changes of a job record: each takes a clone and the simulated time, returns its events.

These functions carry out what :mod:`worker.states` decides. They do no I/O and read no
clock; :class:`~worker.ledger.Ledger` commits what they produce. Each moves the job's
state at most once, so every committed snapshot differs from the previous one by one
legal transition. A datacenter step asks the state module itself, once, and refuses
with :class:`~worker.errors.InvalidJobState` (then nothing happened); a customer's ship or
cancel was judged by the service before the change, and the change carries out that
verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from worker import states
from worker.errors import InvalidJobState
from worker.model import DriveState, DriveStatus, JobState, PackageInformation
from worker.record import DrivePlan, DriveSim, JobRecord
from worker.states import Command, Verdict
from worker.status import Event

__all__ = [
    "add_export_drives",
    "cancel",
    "checkpoint",
    "delete",
    "finish_drive",
    "late_drives",
    "lose_package",
    "receive",
    "receive_late_drive",
    "settle",
    "ship",
    "ship_back",
    "start_drive",
]

D = DriveState

#: What a deletion's event says of who deleted the job.
DELETE_REASONS: Mapping[Command, str] = {
    Command.DELETE: "customer",
    Command.EXPIRE: "expired",
    Command.RETIRE: "retention",
}


def set_state(record: JobRecord, new: JobState, now: float, events: list[Event]) -> None:
    """Move the job to ``new`` (a legal transition) and record the event."""
    old = record.state
    if not states.is_legal_job_transition(old, new):
        raise AssertionError(f"illegal job transition {old} -> {new} for {record.name}")
    record.job.properties.state = new
    record.sim.state_entered_at = now
    record.sim.due_at = None
    data: dict[str, object] = {"from": str(old), "to": str(new)}
    if new in states.TERMINAL:
        record.sim.ended_at = now
        record.sim.outcome = states.outcome(new, cancelled=record.cancel_requested)
        data["outcome"] = record.sim.outcome
    events.append(Event("stateChanged", data))


def set_drive_state(
    record: JobRecord, drive: DriveStatus, new: DriveState, events: list[Event], **fields: Any
) -> DriveStatus:
    """Move the drive to ``new`` (a legal transition), with ``fields`` changed too, and
    record the event; returns the drive's new status."""
    old = drive.state
    assert old is not None
    if not states.is_legal_drive_transition(old, new):
        raise AssertionError(f"illegal drive transition {old} -> {new} for {drive.drive_id}")
    events.append(
        Event("driveStateChanged", {"driveId": drive.drive_id, "from": str(old), "to": str(new)})
    )
    return record.set_drive(drive, state=new, **fields)


def late_drives(record: JobRecord) -> list[DriveStatus]:
    """The drives the package came without that are on their way on their own: NeverReceived
    to the service, due at ``arrives_at`` to the simulation."""
    sims = record.sim.drives
    return [d for d in record.drives_in(_NEVER) if sims[d.drive_id].arrives_at is not None]


_NEVER = frozenset({D.NEVER_RECEIVED})


def _refuse(record: JobRecord, command: Command, verdict: states.Verdict) -> InvalidJobState:
    return InvalidJobState(
        f"Job '{record.name}': {verdict.reason}.", state=str(record.state), target=str(command)
    )


def _require(record: JobRecord, command: Command, *, any_errors: bool = False) -> JobState:
    """The state a datacenter step leads the job to, or its refusal."""
    verdict = states.decide(
        record.state, command, cancel_requested=record.cancel_requested, any_errors=any_errors
    )
    if not verdict.allowed or verdict.next_state is None:
        raise _refuse(record, command, verdict)
    return verdict.next_state


def _move(record: JobRecord, new: JobState, now: float, events: list[Event]) -> None:
    """Move the job to ``new`` unless it is there already (the command let it stay)."""
    if new is not record.state:
        set_state(record, new, now, events)


def ship(
    record: JobRecord, now: float, verdict: Verdict, *, lost_package_after: float
) -> list[Event]:
    """Carry out an accepted ship: Creating → Shipping, the package is with the carrier and
    its arrival is scheduled. Already Shipping, the new tracking details are all there is
    (fields of the same PATCH)."""
    assert verdict.next_state is not None
    if verdict.next_state is record.state:
        return []
    events: list[Event] = []
    set_state(record, verdict.next_state, now, events)
    props = record.job.properties
    if props.delivery_package is not None and props.delivery_package.drive_count is None:
        props.delivery_package = msgspec.structs.replace(
            props.delivery_package, drive_count=len(record.drives)
        )
    sim = record.sim
    sim.due_at = now + (lost_package_after if sim.package_lost else sim.carrier_delay)
    return events


def cancel(record: JobRecord, now: float, verdict: Verdict) -> list[Event]:
    """Carry out a cancel verdict: record an accepted cancel (in Creating it also ends the
    job at once); one already requested changes nothing."""
    assert verdict.next_state is not None
    if verdict.cancel is not states.CancelAnswer.ACCEPTED:
        return []
    sim = record.sim
    state = record.state
    record.job.properties.cancel_requested = True
    sim.cancel_requested_at = now
    sim.cancel_state = state
    in_flight = record.drives_in(states.COPYING_DRIVES)
    late = late_drives(record)
    for drive in in_flight:
        record.set_drive_sim(drive.drive_id, bytes_at_cancel=drive.bytes_succeeded or 0)
    events = [
        Event(
            "cancelRequested",
            {
                "state": str(state),
                "drivesInFlight": [d.drive_id for d in in_flight],
                "drivesNotStarted": [
                    d.drive_id
                    for d in record.drives
                    if d.state in states.EXPECTED_DRIVES | states.WAITING_DRIVES or d in late
                ],
                "bytesAtCancel": {d.drive_id: d.bytes_succeeded or 0 for d in in_flight},
            },
        )
    ]
    _move(record, verdict.next_state, now, events)
    return events


def receive(record: JobRecord, now: float) -> list[Event]:
    """Shipping → Received: drives in the package are Received, the others NeverReceived,
    decided as the package is opened, as the service does. A drive that comes on its own
    later is NeverReceived too until it does (:func:`receive_late_drive`)."""
    received = _require(record, Command.RECEIVE)
    events: list[Event] = []
    for drive in record.drives_in(states.EXPECTED_DRIVES):
        sim = record.sim.drives[drive.drive_id]
        in_package = sim.plan.arrives and sim.plan.late_by <= 0
        if sim.plan.arrives and not in_package:
            record.set_drive_sim(drive.drive_id, arrives_at=now + sim.plan.late_by)
        set_drive_state(record, drive, D.RECEIVED if in_package else D.NEVER_RECEIVED, events)
    set_state(record, received, now, events)
    return events


def receive_late_drive(record: JobRecord, drive_id: str, now: float) -> list[Event]:
    """A drive that came after its package: NeverReceived → Received ("A NeverReceived
    drive that arrives later is moved to Received")."""
    after = _require(record, Command.RECEIVE_LATE_DRIVE)
    events: list[Event] = []
    set_drive_state(record, record.drive(drive_id), D.RECEIVED, events)
    record.set_drive_sim(drive_id, arrives_at=None)
    _move(record, after, now, events)
    return events


def add_export_drives(
    record: JobRecord, drives: list[tuple[str, str]], capacity: int
) -> list[Event]:
    """Export: register the customer's empty drives as Received and split the data over them."""
    remaining = record.sim.export_bytes
    record.job.properties.drive_list = []
    events: list[Event] = []
    for serial, key in drives:
        share = min(capacity, remaining)
        remaining -= share
        record.sim.drives[serial] = DriveSim(plan=DrivePlan(size_bytes=share))
        record.keys[serial] = key
        record.job.properties.drive_list.append(DriveStatus(drive_id=serial, state=D.RECEIVED))
        events.append(
            Event("driveStateChanged", {"driveId": serial, "from": None, "to": str(D.RECEIVED)})
        )
    if remaining > 0:
        path = record.job.properties.diagnostics_path or "waimportexport"
        record.job.properties.incomplete_blob_list_uri = (
            f"https://{_account(record)}.blob.core.windows.net/{path}/{record.name}_incomplete.xml"
        )
    return events


def lose_package(record: JobRecord, now: float) -> list[Event]:
    """Shipping → Closed: the package never arrived; every drive is NeverReceived."""
    closed = _require(record, Command.LOSE_PACKAGE)
    events: list[Event] = []
    for drive in record.drives:
        set_drive_state(record, drive, D.NEVER_RECEIVED, events)
    set_state(record, closed, now, events)
    return events


def start_drive(record: JobRecord, drive_id: str, now: float) -> list[Event]:
    """A bay takes a drive: Received → Transferring (and the job, if it was Received)."""
    after = _require(record, Command.START_TRANSFER)
    events: list[Event] = []
    set_drive_state(
        record,
        record.drive(drive_id),
        D.TRANSFERRING,
        events,
        copy_status="InProgress",
        bytes_succeeded=0,
        percent_complete=0,
    )
    record.set_drive_sim(drive_id, started_at=now)
    _move(record, after, now, events)
    return events


def checkpoint(record: JobRecord, drive_id: str, copied: int) -> list[Event]:
    """Persist a transfer's progress: bytes never go back."""
    drive = record.drive(drive_id)
    plan = record.sim.drives[drive_id].plan
    copied = max(copied, drive.bytes_succeeded or 0)
    percent = _percent(copied, plan.size_bytes)
    record.set_drive(drive, bytes_succeeded=copied, percent_complete=percent)
    _update_job_percent(record)
    return [
        Event(
            "driveProgress",
            {"driveId": drive_id, "bytesSucceeded": copied, "percentComplete": percent},
        )
    ]


def finish_drive(
    record: JobRecord, drive_id: str, now: float, *, copied: int, error: str | None
) -> list[Event]:
    """Transferring → Completed (or CompletedMoreInfo with ``error``); settles the job."""
    drive = record.drive(drive_id)
    sim = record.sim.drives[drive_id]
    events: list[Event] = []
    props = record.job.properties
    account = _account(record)
    path = props.diagnostics_path or "waimportexport"
    stamp = f"{int(now)}"
    log_base = f"https://{account}.blob.core.windows.net/{path}/waies/{record.name}_{drive_id}_"
    copied = max(copied, drive.bytes_succeeded or 0)
    fields: dict[str, Any] = {
        "bytes_succeeded": copied,
        "percent_complete": _percent(copied, sim.plan.size_bytes),
    }
    if props.log_level == "Verbose":
        fields["verbose_log_uri"] = f"{log_base}{stamp}_verbose.xml"
    if error is None:
        set_drive_state(record, drive, D.COMPLETED, events, copy_status="Completed", **fields)
    else:
        set_drive_state(
            record,
            drive,
            D.COMPLETED_MORE_INFO,
            events,
            copy_status="CompletedWithErrors",
            error_log_uri=f"{log_base}{stamp}_error.xml",
            **fields,
        )
        events[-1] = Event(events[-1].type, {**events[-1].data, "error": error})
    record.set_drive_sim(drive_id, finished_at=now)
    _update_job_percent(record)
    events.extend(settle(record, now))
    return events


def settle(record: JobRecord, now: float) -> list[Event]:
    """Leave the copy step once nothing runs and nothing may start: → Packaging.

    Drives still waiting when a cancel was accepted are skipped; they go back unread. The
    step waits for drives still on their way, cancel or not: they go back too.
    """
    verdict = states.decide(record.state, Command.FINISH_COPY)
    if not verdict.allowed or verdict.next_state is None:
        return []
    if not states.copy_step_over(
        (d.state for d in record.drives if d.state is not None),
        cancel_requested=record.cancel_requested,
        on_their_way=len(late_drives(record)),
    ):
        return []
    events: list[Event] = []
    for drive in record.drives_in(states.WAITING_DRIVES):
        record.set_drive_sim(drive.drive_id, skipped=True)
        events.append(Event("driveSkipped", {"driveId": drive.drive_id}))
    set_state(record, verdict.next_state, now, events)
    record.sim.due_at = now + record.sim.return_delay
    return events


def ship_back(
    record: JobRecord, now: float, *, tracking_number: str, ship_date: str
) -> list[Event]:
    """Packaging → Completed or Closed: the drives are delivered back."""
    ended = _require(
        record, Command.SHIP_BACK, any_errors=bool(record.drives_in(states.FAILED_DRIVES))
    )
    events: list[Event] = []
    returned = record.drives_in(states.RETURNED_DRIVES)
    for drive in returned:
        set_drive_state(record, drive, D.SHIPPED_BACK, events)
    props = record.job.properties
    carrier = props.return_shipping.carrier_name if props.return_shipping else "DHL"
    props.return_package = PackageInformation(
        carrier_name=carrier,
        tracking_number=tracking_number,
        drive_count=len(returned),
        ship_date=ship_date,
    )
    set_state(record, ended, now, events)
    return events


def delete(record: JobRecord, command: Command) -> list[Event]:
    """The event of deleting the job by ``command`` (a customer's delete, expiry or
    retention), or the refusal; :meth:`~worker.ledger.Ledger.delete` removes it."""
    verdict = states.decide(record.state, command)
    if not verdict.deletes:
        raise InvalidJobState(
            f"Job '{record.name}' cannot be deleted: {verdict.reason}.",
            state=str(record.state),
            code="DeleteNotAllowed",
        )
    return [Event("jobDeleted", {"reason": DELETE_REASONS[command], "state": str(record.state)})]


def _percent(done: int, total: int) -> int:
    return 100 if total <= 0 else min(100, done * 100 // total)


def _update_job_percent(record: JobRecord) -> None:
    total = done = 0
    for drive in record.drives:
        sim = record.sim.drives[drive.drive_id]
        if drive.state is D.NEVER_RECEIVED and sim.arrives_at is None:
            continue  # missing for good: nothing to copy (a late one is, as the job waits)
        total += sim.plan.size_bytes
        done += drive.bytes_succeeded or 0
    record.job.properties.percent_complete = _percent(done, total)


def _account(record: JobRecord) -> str:
    account_id = record.job.properties.storage_account_id or ""
    return account_id.rstrip("/").rsplit("/", 1)[-1] or "account"
