"""A run's status stream, read back the way a consumer would read it.

Parses every committed status message once into job snapshots, drive snapshots, events
and deletions, grouped by job *incarnation*: a job deleted and created again under the
same name is a new incarnation, with its own states and drives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker import TOPIC_PREFIX, StatusMessage, decode_payload
from worker.states import AFTER_COPY

__all__ = ["DriveSnapshot", "EventRecord", "History", "Incarnation", "JobSnapshot"]


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    seq: int
    time: float
    state: str
    cancel_requested: bool
    percent: int


@dataclass(frozen=True, slots=True)
class DriveSnapshot:
    seq: int
    drive: str
    state: str
    bytes: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    time: float
    type: str
    data: dict[str, Any]


@dataclass(slots=True)
class Incarnation:
    """One life of a job, from its creation to its deletion (or the end of the run)."""

    job: str
    number: int
    snapshots: list[JobSnapshot] = field(default_factory=list)
    drives: list[DriveSnapshot] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    deleted: EventRecord | None = None
    cleared: bool = False

    @property
    def label(self) -> str:
        return self.job if self.number == 1 else f"{self.job} (#{self.number})"

    @property
    def final_state(self) -> str | None:
        return self.snapshots[-1].state if self.snapshots else None

    def events_of(self, kind: str) -> list[EventRecord]:
        return [e for e in self.events if e.type == kind]

    @property
    def cancel(self) -> EventRecord | None:
        found = self.events_of("cancelRequested")
        return found[0] if found else None

    @property
    def cancel_effect(self) -> EventRecord | None:
        """The move that carried out the accepted cancel: the first into a state that ends
        the copy step (Packaging, Completed, Closed) from the cancel on; None without one."""
        cancel = self.cancel
        if cancel is None:
            return None
        return next(
            (
                e
                for e in self.events_of("stateChanged")
                if e.seq >= cancel.seq and e.data.get("to") in AFTER_COPY
            ),
            None,
        )


class History:
    """Every incarnation of every job in a run, plus the raw seq order per job."""

    def __init__(self, messages: Iterable[StatusMessage], epoch: datetime) -> None:
        self.epoch = epoch
        self.incarnations: list[Incarnation] = []
        #: Per job, the seq of each job snapshot and of each deletion, in the order they came.
        self.seqs: dict[str, list[int]] = {}
        self.messages = 0
        current: dict[str, Incarnation] = {}
        for message in messages:
            self.messages += 1
            self._add(message, current)

    def _time(self, iso: str) -> float:
        return (datetime.fromisoformat(iso) - self.epoch).total_seconds()

    def _add(self, message: StatusMessage, current: dict[str, Incarnation]) -> None:
        job = message.job
        leaf = message.topic.removeprefix(f"{TOPIC_PREFIX}/jobs/{job}/")
        body = decode_payload(message.payload)
        if leaf == "state" and body is not None:
            # Every change announces exactly one job snapshot (QoS 1): its seq is the change's.
            self.seqs.setdefault(job, []).append(message.seq)
        life = current.get(job)
        if life is None or (life.cleared and leaf == "state" and body is not None):
            number = life.number + 1 if life else 1
            life = current[job] = Incarnation(job, number)
            self.incarnations.append(life)
        if leaf == "state":
            if body is None:
                life.cleared = True
                return
            props = body["properties"]
            life.snapshots.append(
                JobSnapshot(
                    seq=message.seq,
                    time=self._time(body["simTime"]),
                    state=props["state"],
                    cancel_requested=bool(props.get("cancelRequested")),
                    percent=int(props.get("percentComplete") or 0),
                )
            )
        elif leaf.startswith("drives/"):
            if body is not None:
                life.drives.append(
                    DriveSnapshot(
                        seq=message.seq,
                        drive=body["driveId"],
                        state=body["state"],
                        bytes=int(body.get("bytesSucceeded") or 0),
                    )
                )
        elif leaf == "events":
            kind = body["type"].rsplit(".", 1)[-1]
            record = EventRecord(
                seq=message.seq, time=self._time(body["time"]), type=kind, data=body["data"]
            )
            life.events.append(record)
            if kind == "jobDeleted":
                life.deleted = record
                # A deletion publishes no snapshot but takes a seq: a job created again
                # under the same name goes on from there.
                self.seqs.setdefault(job, []).append(message.seq)
