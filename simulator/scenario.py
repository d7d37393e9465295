"""Scenario files: a datacenter, its rules, a seed, jobs, and scripted customer actions.

A scenario is TOML (see ``configs/``). It is validated on load; every error names the
file, the key and what was expected, and nothing runs until the whole file is valid.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from worker.clock import DEFAULT_EPOCH, parse_duration
from worker.config import DatacenterConfig, Policy, Range
from worker.errors import ScenarioError
from worker.model import JobState
from worker.record import DrivePlan
from worker.requests import DRIVE_ID, NAME
from worker.states import CancelWindow

__all__ = ["Action", "ActionKind", "JobSpec", "Scenario", "load_scenario", "parse_size"]

ActionKind = Literal["create", "ship", "cancel", "delete", "get", "keys"]

Duration = str | float
Size = str | int
Durations = Duration | list[Duration]
Sizes = Size | list[Size]


def _durations(*values: Duration) -> list[Duration]:
    return list(values)


def _sizes(*values: Size) -> list[Size]:
    return list(values)


class _File(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of the file shapes: unknown keys are errors, keys are snake_case."""


class PolicyFile(_File):
    cancel_window: CancelWindow = CancelWindow.BEFORE_PACKAGING
    retention: Duration = "90d"
    creating_expiry: Duration = "14d"
    sweep_interval: Duration = "1h"


class DatacenterFile(_File):
    locations: dict[str, int] = msgspec.field(default_factory=lambda: {"West US": 2})
    throughput_mb_s: float = 200.0
    checkpoint_interval: Duration = "15m"
    carrier_delay: Durations = msgspec.field(default_factory=lambda: _durations("1d", "3d"))
    return_delay: Durations = msgspec.field(default_factory=lambda: _durations("2d", "3d"))
    lost_package_after: Duration = "44d"
    transfer_deadline_factor: float = 3.0
    drive_size: Sizes = msgspec.field(default_factory=lambda: _sizes("1TB", "4TB"))
    export_drive_size: Size = "4TB"
    export_size: Sizes = msgspec.field(default_factory=lambda: _sizes("1TB", "8TB"))
    drive_error_rate: float = 0.0
    drive_missing_rate: float = 0.0
    package_lost_rate: float = 0.0


class DriveFile(_File):
    id: str
    size: Size | None = None
    fails_at: float | None = None
    missing: bool = False
    speed: float = 1.0


class JobFile(_File):
    name: str
    type: Literal["Import", "Export"] = "Import"
    location: str | None = None
    drives: list[DriveFile] = msgspec.field(default_factory=list)
    export_size: Size | None = None
    export_drives: int = 1
    carrier_delay: Duration | None = None
    return_delay: Duration | None = None
    package_lost: bool | None = None
    log_level: Literal["Error", "Verbose"] = "Error"


class ActionFile(_File):
    job: str
    do: ActionKind
    at: Duration | None = None
    when: JobState | None = None
    after: Duration = 0.0
    expect: str | None = None


class ScenarioFile(_File):
    name: str
    description: str = ""
    seed: int = 0
    epoch: datetime = DEFAULT_EPOCH
    until: Duration = "400d"
    policy: PolicyFile = msgspec.field(default_factory=PolicyFile)
    datacenter: DatacenterFile = msgspec.field(default_factory=DatacenterFile)
    jobs: list[JobFile] = msgspec.field(default_factory=list)
    actions: list[ActionFile] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    type: Literal["Import", "Export"]
    location: str
    drives: tuple[DriveFile, ...]
    plans: dict[str, DrivePlan]
    export_size: int | None
    export_drives: int
    carrier_delay: float | None
    return_delay: float | None
    package_lost: bool | None
    log_level: str


@dataclass(frozen=True, slots=True)
class Action:
    """A scripted customer request: at a simulated time, or when a job enters a state."""

    index: int
    job: str
    do: ActionKind
    at: float | None
    when: JobState | None
    after: float
    expect: str | None

    @property
    def key(self) -> str:
        return f"action/{self.index:05d}"

    def describe(self) -> str:
        if self.when is not None:
            delay = f" + {self.after:g}s" if self.after else ""
            return f"{self.do} {self.job} when {self.when}{delay}"
        return f"{self.do} {self.job} at {self.at:g}s"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    path: str
    seed: int
    epoch: datetime
    until: float
    policy: Policy
    datacenter: DatacenterConfig
    jobs: dict[str, JobSpec]
    actions: tuple[Action, ...] = field(default=())


_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(B|KB|MB|GB|TB|PB)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}


def parse_size(value: str | int) -> int:
    """Bytes in ``"1TB"``, ``"500 GB"`` or a plain integer (decimal units, as drives are sold)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a size such as '1TB' or '500GB', got {value!r}")
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(where, "(file)", "an existing scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(where, "(file)", f"a readable UTF-8 file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(where, "(file)", f"valid TOML ({exc})") from None
    return parse_scenario(raw, where)


def parse_scenario(raw: dict[str, Any], where: str = "<scenario>") -> Scenario:
    """Validate a scenario already read into builtins."""
    try:
        data = msgspec.convert(raw, ScenarioFile)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `")
        key = at.rstrip("`").removeprefix("$.") or "(top level)"
        raise ScenarioError(where, key, message) from None
    return _Builder(where).build(data)


class _Builder:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, expected: str) -> ScenarioError:
        return ScenarioError(self.where, key, expected)

    def duration(self, key: str, value: Duration) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def size(self, key: str, value: Size) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def range(self, key: str, value: Any, parse: Any) -> Range:
        values = value if isinstance(value, list) else [value, value]
        if len(values) != 2:
            raise self.fail(key, "a single value or a [low, high] pair")
        low, high = (parse(f"{key}[{i}]", v) for i, v in enumerate(values))
        if low > high:
            raise self.fail(key, f"low <= high, got [{values[0]}, {values[1]}]")
        return Range(float(low), float(high))

    def build(self, data: ScenarioFile) -> Scenario:
        if not data.name.strip():
            raise self.fail("name", "a non-empty scenario name")
        epoch = data.epoch if data.epoch.tzinfo else data.epoch.replace(tzinfo=UTC)
        policy_file = data.policy
        try:
            policy = Policy(
                cancel_window=policy_file.cancel_window,
                retention=self.duration("policy.retention", policy_file.retention),
                creating_expiry=self.duration(
                    "policy.creating_expiry", policy_file.creating_expiry
                ),
                sweep_interval=self.duration("policy.sweep_interval", policy_file.sweep_interval),
            )
        except ValueError as exc:
            raise self.fail("policy", str(exc)) from None
        datacenter = self.datacenter(data.datacenter)
        jobs: dict[str, JobSpec] = {}
        for i, job in enumerate(data.jobs):
            spec = self.job(f"jobs[{i}]", job, datacenter, policy)
            if spec.name in jobs:
                raise self.fail(f"jobs[{i}].name", f"a unique job name; '{spec.name}' repeats")
            jobs[spec.name] = spec
        actions = tuple(self.action(i, a, jobs) for i, a in enumerate(data.actions))
        return Scenario(
            name=data.name,
            description=data.description,
            path=self.where,
            seed=data.seed,
            epoch=epoch,
            until=self.duration("until", data.until),
            policy=policy,
            datacenter=datacenter,
            jobs=jobs,
            actions=actions,
        )

    def datacenter(self, dc: DatacenterFile) -> DatacenterConfig:
        key = "datacenter"
        if not dc.locations:
            raise self.fail(f"{key}.locations", "at least one location with its number of bays")
        for name, bays in dc.locations.items():
            if bays < 1:
                raise self.fail(f"{key}.locations.{name}", f"at least one bay, got {bays}")
        if dc.throughput_mb_s <= 0:
            raise self.fail(f"{key}.throughput_mb_s", "a positive rate in MB/s")
        for rate in ("drive_error_rate", "drive_missing_rate", "package_lost_rate"):
            if not 0.0 <= getattr(dc, rate) <= 1.0:
                raise self.fail(f"{key}.{rate}", "a probability between 0 and 1")
        if dc.transfer_deadline_factor < 1:
            raise self.fail(f"{key}.transfer_deadline_factor", "a factor of at least 1")
        checkpoint = self.duration(f"{key}.checkpoint_interval", dc.checkpoint_interval)
        if checkpoint <= 0:
            raise self.fail(f"{key}.checkpoint_interval", "a positive duration")
        return DatacenterConfig(
            locations=dict(dc.locations),
            throughput=dc.throughput_mb_s * 1e6,
            checkpoint_interval=checkpoint,
            carrier_delay=self.range(f"{key}.carrier_delay", dc.carrier_delay, self.duration),
            return_delay=self.range(f"{key}.return_delay", dc.return_delay, self.duration),
            lost_package_after=self.duration(f"{key}.lost_package_after", dc.lost_package_after),
            transfer_deadline_factor=dc.transfer_deadline_factor,
            drive_size=self.range(f"{key}.drive_size", dc.drive_size, self.size),
            export_drive_size=float(self.size(f"{key}.export_drive_size", dc.export_drive_size)),
            export_size=self.range(f"{key}.export_size", dc.export_size, self.size),
            drive_error_rate=dc.drive_error_rate,
            drive_missing_rate=dc.drive_missing_rate,
            package_lost_rate=dc.package_lost_rate,
        )

    def job(self, key: str, job: JobFile, dc: DatacenterConfig, policy: Policy) -> JobSpec:
        if not NAME.fullmatch(job.name):
            raise self.fail(f"{key}.name", "1 to 64 letters, digits, '-' or '_'")
        location = job.location or next(iter(dc.locations))
        if location not in dc.locations:
            raise self.fail(f"{key}.location", f"one of {', '.join(dc.locations)}")
        plans: dict[str, DrivePlan] = {}
        seen: set[str] = set()
        if job.type == "Import":
            if not 1 <= len(job.drives) <= policy.max_drives:
                raise self.fail(
                    f"{key}.drives", f"1 to {policy.max_drives} drives for an import job"
                )
        elif job.drives:
            raise self.fail(f"{key}.drives", "no drives for an export job (use export_drives)")
        if not 1 <= job.export_drives <= policy.max_drives:
            raise self.fail(f"{key}.export_drives", f"1 to {policy.max_drives}")
        for i, drive in enumerate(job.drives):
            where = f"{key}.drives[{i}]"
            if not DRIVE_ID.fullmatch(drive.id):
                raise self.fail(f"{where}.id", "a serial number without spaces")
            if drive.id in seen:
                raise self.fail(f"{where}.id", f"a unique drive id; '{drive.id}' repeats")
            seen.add(drive.id)
            if drive.fails_at is not None and not 0.0 <= drive.fails_at <= 1.0:
                raise self.fail(f"{where}.fails_at", "a fraction between 0 and 1")
            if drive.speed <= 0:
                raise self.fail(f"{where}.speed", "a positive factor")
            if drive.size is not None:
                plans[drive.id] = DrivePlan(
                    size_bytes=self.size(f"{where}.size", drive.size),
                    arrives=not drive.missing,
                    fails_at=drive.fails_at,
                    speed=drive.speed,
                )
            elif drive.missing or drive.fails_at is not None or drive.speed != 1.0:
                raise self.fail(f"{where}.size", "a size when the drive's fate is pinned")
        return JobSpec(
            name=job.name,
            type=job.type,
            location=location,
            drives=tuple(job.drives),
            plans=plans,
            export_size=None
            if job.export_size is None
            else self.size(f"{key}.export_size", job.export_size),
            export_drives=job.export_drives,
            carrier_delay=None
            if job.carrier_delay is None
            else self.duration(f"{key}.carrier_delay", job.carrier_delay),
            return_delay=None
            if job.return_delay is None
            else self.duration(f"{key}.return_delay", job.return_delay),
            package_lost=job.package_lost,
            log_level=job.log_level,
        )

    def action(self, index: int, action: ActionFile, jobs: dict[str, JobSpec]) -> Action:
        key = f"actions[{index}]"
        if action.job not in jobs:
            known = ", ".join(jobs) or "none declared"
            raise self.fail(f"{key}.job", f"a job declared under [[jobs]] ({known})")
        if (action.at is None) == (action.when is None):
            raise self.fail(key, "exactly one of 'at' (a time) or 'when' (a job state)")
        return Action(
            index=index,
            job=action.job,
            do=action.do,
            at=None if action.at is None else self.duration(f"{key}.at", action.at),
            when=action.when,
            after=self.duration(f"{key}.after", action.after),
            expect=action.expect,
        )
