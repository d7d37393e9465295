"""What the demo's live view knows: jobs, drives, bays and the last messages, read from the
status stream as it goes by (the same messages a consumer on the broker receives)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulator.demo.outcome import size
from simulator.scenario.file import Scenario
from worker import TOPIC_PREFIX, DriveState, StatusMessage, decode_payload

__all__ = ["Board", "DriveView", "JobView", "Wire", "describe_message"]

#: How many published messages the view keeps.
WIRE_LINES = 6


@dataclass(slots=True)
class DriveView:
    drive: str
    size: int
    state: str = "Specified"
    copied: int = 0
    #: Bytes when an accepted cancel was recorded, for a drive that was copying then.
    at_cancel: int | None = None
    skipped: bool = False


@dataclass(slots=True)
class JobView:
    name: str
    location: str
    drives: dict[str, DriveView]
    state: str = "(not created)"
    cancel_requested: bool = False
    outcome: str | None = None
    ended_at: float | None = None
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class Wire:
    """One published message, as the view lists it: topic, seq, what it says."""

    topic: str
    seq: int
    qos: int
    retain: bool
    summary: str


def _short(topic: str) -> str:
    return topic.removeprefix(f"{TOPIC_PREFIX}/jobs/")


def describe_message(message: StatusMessage) -> str:
    """A few words on what a status message says (its payload, shortened)."""
    body: Any = decode_payload(message.payload)
    leaf = message.topic.rsplit("/", 1)[-1]
    if body is None:
        return "(empty: retained snapshot cleared)"
    if "/drives/" in message.topic:
        return f"{body['state']} · {size(int(body.get('bytesSucceeded') or 0))}"
    if leaf == "state":
        props = body["properties"]
        text = f"{props['state']} · cancelRequested {str(props['cancelRequested']).lower()}"
        return text + (f" · outcome {body['outcome']}" if "outcome" in body else "")
    if leaf == "progress":
        return f"{body['driveId']} {body['percentComplete']}% · {size(int(body['bytesSucceeded']))}"
    kind = str(body["type"]).rsplit(".", 1)[-1]
    data = {k: v for k, v in body["data"].items() if k != "seq"}
    brief = ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, dict | list))
    return f"{kind} {brief}".strip()


@dataclass(slots=True)
class Board:
    """The story's jobs as the stream describes them, plus the clock it last showed."""

    scenario: Scenario
    jobs: dict[str, JobView] = field(init=False)
    now: float = 0.0
    wire: deque[Wire] = field(default_factory=lambda: deque(maxlen=WIRE_LINES))
    published: int = 0

    def __post_init__(self) -> None:
        self.jobs = {
            name: JobView(
                name,
                spec.location,
                {d.id: DriveView(d.id, spec.plans[d.id].size_bytes) for d in spec.drives},
            )
            for name, spec in self.scenario.jobs.items()
        }

    def time(self, iso: str) -> float:
        """Simulated seconds since the story's start, of an ISO timestamp in a message."""
        return (datetime.fromisoformat(iso) - self.scenario.epoch).total_seconds()

    def bays(self) -> dict[str, list[str]]:
        """Per location, the drives in its bays (``job/drive``), busy bays first."""
        busy: dict[str, list[str]] = {name: [] for name in self.scenario.datacenter.locations}
        for job in self.jobs.values():
            for drive in job.drives.values():
                if drive.state == DriveState.TRANSFERRING:
                    busy[job.location].append(f"{job.name}/{drive.drive}")
        return busy

    def free_bays(self, location: str) -> int:
        return self.scenario.datacenter.locations[location] - len(self.bays()[location])

    def on_published(self, message: StatusMessage) -> None:
        """A message reached the broker (or the in-memory bus): list it."""
        self.published += 1
        self.wire.append(
            Wire(
                _short(message.topic),
                message.seq,
                message.qos,
                message.retain,
                describe_message(message),
            )
        )

    def apply(self, message: StatusMessage) -> None:
        """Update the jobs from one status message."""
        job = self.jobs.get(message.job)
        body: Any = decode_payload(message.payload)
        if job is None or body is None:
            return
        leaf = message.topic.rsplit("/", 1)[-1]
        if "/drives/" in message.topic:
            drive = job.drives[body["driveId"]]
            drive.state = body["state"]
            drive.copied = max(drive.copied, int(body.get("bytesSucceeded") or 0))
            self.now = max(self.now, self.time(body["simTime"]))
        elif leaf == "state":
            props = body["properties"]
            job.state = props["state"]
            job.cancel_requested = bool(props.get("cancelRequested"))
            job.outcome = body.get("outcome")
            self.now = max(self.now, self.time(body["simTime"]))
        elif leaf == "progress":
            drive = job.drives[body["driveId"]]
            drive.copied = max(drive.copied, int(body["bytesSucceeded"]))
            self.now = max(self.now, self.time(body["simTime"]))
        else:
            self._event(job, str(body["type"]).rsplit(".", 1)[-1], body)

    def _event(self, job: JobView, kind: str, body: dict[str, Any]) -> None:
        data, when = body["data"], self.time(body["time"])
        self.now = max(self.now, when)
        if kind == "cancelRequested":
            for drive_id, copied in data.get("bytesAtCancel", {}).items():
                job.drives[drive_id].at_cancel = int(copied)
        elif kind == "driveSkipped":
            job.drives[data["driveId"]].skipped = True
        elif kind == "stateChanged" and "outcome" in data:
            job.ended_at = when
        elif kind == "jobDeleted":
            job.deleted_at = when
            job.state = "(deleted)"
