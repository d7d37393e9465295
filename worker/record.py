"""A job as the worker keeps it: the ARM resource, its secrets, and the simulation's bookkeeping.

The three parts are kept apart on purpose. ``job`` is exactly what GET returns and what a
status snapshot carries; ``keys`` holds the BitLocker keys and leaves only through the
list-keys operation; ``sim`` holds what the simulation needs (each drive's seeded fate,
deadlines, cancel figures) and never appears in an ARM response.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import msgspec
from msgspec.structs import replace

from worker.model import DriveState, DriveStatus, JobResponse, JobState
from worker.states import Outcome

__all__ = ["DrivePlan", "DriveSim", "JobRecord", "JobSim", "clone", "copy_job"]


class DrivePlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True, gc=False):
    """A drive's fate, drawn from the seeded generator when the job is created."""

    size_bytes: int
    #: False: the drive is missing from the package and ends NeverReceived.
    arrives: bool = True
    #: Fraction of the copy after which the drive hits read errors (CompletedMoreInfo).
    fails_at: float | None = None
    #: Throughput relative to the bay's nominal rate (below 1: a slow drive).
    speed: float = 1.0
    #: Seconds after its package that the drive arrives on its own (0: with the package).
    late_by: float = 0.0


class DriveSim(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A drive's simulation state; a change replaces it (:meth:`JobRecord.set_drive_sim`)."""

    plan: DrivePlan
    started_at: float | None = None
    finished_at: float | None = None
    #: True when a cancel made the datacenter skip this drive.
    skipped: bool = False
    #: When a drive arriving after its package is due (set when the package arrives).
    arrives_at: float | None = None
    #: Bytes already copied when the cancel was accepted (None: no cancel while it ran).
    bytes_at_cancel: int | None = None


class JobSim(msgspec.Struct, kw_only=True, gc=False):
    """The simulation's bookkeeping for one job."""

    #: Rises by one with every committed change of this job.
    seq: int = 0
    created_at: float
    #: Last customer change while Creating: the 14-day expiry counts from here.
    touched_at: float
    state_entered_at: float
    #: When the last committed change happened (the snapshot's simTime).
    changed_at: float = 0.0
    #: When the current timed step ends (package arrival, return delivery).
    due_at: float | None = None
    ended_at: float | None = None
    cancel_requested_at: float | None = None
    cancel_state: JobState | None = None
    outcome: Outcome | None = None
    carrier_delay: float
    return_delay: float
    package_lost: bool = False
    #: Export jobs: the bytes the blob list selects.
    export_bytes: int = 0
    #: Export jobs: capacity of each empty drive the customer sends.
    export_drive_bytes: int = 0
    drives: dict[str, DriveSim] = msgspec.field(default_factory=dict)


class JobRecord(msgspec.Struct, kw_only=True, gc=False):
    job: JobResponse
    keys: dict[str, str] = msgspec.field(default_factory=dict)
    sim: JobSim

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def state(self) -> JobState:
        state = self.job.properties.state
        assert state is not None
        return state

    @property
    def cancel_requested(self) -> bool:
        return bool(self.job.properties.cancel_requested)

    @property
    def drives(self) -> list[DriveStatus]:
        return self.job.properties.drive_list or []

    def drive(self, drive_id: str) -> DriveStatus:
        for drive in self.drives:
            if drive.drive_id == drive_id:
                return drive
        raise KeyError(drive_id)

    def drives_in(self, states: Collection[DriveState]) -> list[DriveStatus]:
        """The drives in one of ``states``, in list order."""
        return [d for d in self.drives if d.state in states]

    def set_drive(self, drive: DriveStatus, **fields: Any) -> DriveStatus:
        """Replace ``drive``, one of this record's, with a copy whose ``fields`` are changed.

        Drive statuses are frozen values: a clone shares the unchanged ones with the
        committed record, and the status messages announce exactly the replaced ones.
        """
        drives = self.drives
        drives[drives.index(drive)] = changed = replace(drive, **fields)
        return changed

    def set_drive_sim(self, drive_id: str, **fields: Any) -> DriveSim:
        """Replace drive ``drive_id``'s simulation state with a copy, ``fields`` changed."""
        drives = self.sim.drives
        drives[drive_id] = changed = replace(drives[drive_id], **fields)
        return changed


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JobRecord)


def clone(record: JobRecord) -> JobRecord:
    """A copy to change without touching the committed original.

    What a change may modify in place is copied: the record, the job (:func:`copy_job`),
    the simulation state and its map of drives, the keys. The rest is shared: frozen
    structs (drive statuses and simulation states, addresses, packages, plans), strings
    and numbers, which a change replaces instead (:meth:`JobRecord.set_drive`). A tenth of
    a deep copy's cost, and a committed record and its successor share most of their memory.
    """
    sim = record.sim
    return JobRecord(
        job=copy_job(record.job),
        keys=dict(record.keys),
        sim=replace(sim, drives=dict(sim.drives)),
    )


def copy_job(job: JobResponse) -> JobResponse:
    """A copy of a job whose tags, properties and list of drives are its own: changing it
    does not change the committed one (the drive statuses in the list are frozen)."""
    props = job.properties
    drives = props.drive_list
    return replace(
        job,
        tags=None if job.tags is None else dict(job.tags),
        properties=replace(props, drive_list=None if drives is None else list(drives)),
    )


def encode(record: JobRecord) -> bytes:
    """The record's durable form."""
    return _encoder.encode(record)


def decode(data: bytes) -> JobRecord:
    return _decoder.decode(data)
