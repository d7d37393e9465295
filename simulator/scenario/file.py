"""Scenario files: a datacenter, its rules, a seed, jobs, and scripted customer actions.

A scenario is TOML (see ``configs/``). It is validated on load; every error names the
file, the key and what was expected, and nothing runs until the whole file is valid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from simulator.faults.kinds import DEFAULT_KINDS, FAULTS, Fault
from simulator.faults.plan import draw_faults
from simulator.scenario.spec import EXPECTATIONS, Action, ActionKind, DriveFile, JobSpec
from simulator.scenario.workload import Workload, expand
from worker import (
    DEFAULT_EPOCH,
    DRIVE_ID,
    JOB_NAME,
    MAX_SPEED,
    MIN_SPEED,
    DatacenterConfig,
    DatacenterFile,
    DrivePlan,
    Duration,
    Durations,
    FileReader,
    JobState,
    Policy,
    PolicyFile,
    SettingsFile,
    Size,
    WorkerSettings,
    convert,
    durations,
    parse_size,
    read_toml,
)

__all__ = [
    "MAX_FAULTS",
    "MAX_JOBS",
    "MAX_REQUESTS",
    "MAX_SEED",
    "Scenario",
    "load_scenario",
    "parse_scenario",
    "parse_size",
]


#: Bounds of a scenario's counts: jobs (a workload's, a burst's), faults, the requests of
#: one fault, and the seed (a signed 64-bit integer, as the store keeps it).
MAX_JOBS = 1_000_000
MAX_FAULTS = 10_000
MAX_REQUESTS = 10_000
MAX_SEED = 2**63 - 1


class JobFile(SettingsFile):
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


class ActionFile(SettingsFile):
    job: str
    do: ActionKind
    at: Duration | None = None
    when: JobState | None = None
    after: Duration = "0s"
    expect: str | None = None


class WorkloadFile(SettingsFile):
    jobs: int
    over: Duration
    arrivals: Literal["poisson", "uniform", "burst", "daily"] = "poisson"
    burst_size: int = 20
    export_share: float = 0.2
    drives: list[int] = msgspec.field(default_factory=lambda: [1, 10])
    ship_after: Durations = msgspec.field(default_factory=lambda: durations("1h", "2d"))
    never_ship: float = 0.0
    cancel: float = 0.0
    cancel_after: Durations = msgspec.field(default_factory=lambda: durations("1h", "5d"))
    delete_finished: float = 0.0
    delete_after: Durations = msgspec.field(default_factory=lambda: durations("1d", "30d"))


class FaultFile(SettingsFile):
    kind: str
    at: Duration
    lasts: Duration = "0s"
    count: int = 10
    latency_ms: float = 200.0
    bandwidth_kb_s: float = 64.0
    after_cancel: bool = False


class ChaosFile(SettingsFile):
    faults: int
    kinds: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_KINDS))
    between: list[Duration] = msgspec.field(default_factory=lambda: durations("1d", "10d"))
    lasts: Durations = msgspec.field(default_factory=lambda: durations("10m", "2h"))
    requests: int = 10


class ScenarioFile(SettingsFile):
    name: str
    description: str = ""
    seed: int = 0
    epoch: datetime = DEFAULT_EPOCH
    until: Duration = "400d"
    #: Simulated seconds a second of a live run (``drivesim run --live``) unless --speed says.
    live_speed: float = 3600.0
    policy: PolicyFile = msgspec.field(default_factory=PolicyFile)
    datacenter: DatacenterFile = msgspec.field(default_factory=DatacenterFile)
    jobs: list[JobFile] = msgspec.field(default_factory=list)
    actions: list[ActionFile] = msgspec.field(default_factory=list)
    workload: WorkloadFile | None = None
    faults: list[FaultFile] = msgspec.field(default_factory=list)
    chaos: ChaosFile | None = None
    #: A study's grid: read and validated by ``drivesim sweep`` (simulator.sweep.grid),
    #: left alone by a single run of the scenario.
    sweep: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Scenario:
    name: str
    description: str
    path: str
    seed: int
    epoch: datetime
    until: float
    live_speed: float
    policy: Policy
    datacenter: DatacenterConfig
    jobs: dict[str, JobSpec]
    actions: tuple[Action, ...] = field(default=())
    #: The fault plan, sorted by time.
    faults: tuple[Fault, ...] = field(default=())

    def __repr__(self) -> str:
        # Counts, not contents: the repr of 100,000 jobs and their actions is hundreds of
        # megabytes (asyncio builds one of a finished run's result as it closes the loop).
        return (
            f"Scenario(name={self.name!r}, path={self.path!r}, seed={self.seed}, "
            f"jobs={len(self.jobs)}, actions={len(self.actions)}, faults={len(self.faults)})"
        )

    def for_worker(self, settings: WorkerSettings, *, seed: int | None = None) -> WorkerSettings:
        """``settings`` with this scenario's datacenter, rules, epoch, seed and pinned fates."""
        return dataclasses.replace(
            settings,
            seed=self.seed if seed is None else seed,
            epoch=self.epoch,
            policy=self.policy,
            datacenter=self.datacenter,
            pinned={name: spec.hints() for name, spec in self.jobs.items()},
        )

    @property
    def needs_processes(self) -> bool:
        """Whether the plan has faults only a run with real processes can inject."""
        return any(f.spec.needs_processes for f in self.faults)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    return parse_scenario(read_toml(path), str(path))


def parse_scenario(raw: dict[str, Any], where: str = "<scenario>") -> Scenario:
    """Validate a scenario already read into builtins."""
    return _Builder(where).build(convert(raw, ScenarioFile, where))


class _Builder(FileReader):
    def build(self, data: ScenarioFile) -> Scenario:
        if not data.name.strip():
            raise self.fail("name", "a non-empty scenario name")
        self.integer("seed", data.seed, 0, MAX_SEED, "a seed")
        live_speed = self.number(
            "live_speed", data.live_speed, 0.0, MAX_SPEED, "simulated seconds a second", above=True
        )
        epoch = self.epoch("epoch", data.epoch)
        until = self.duration("until", data.until, low=1.0)
        policy = self.policy(data.policy)
        datacenter = self.datacenter(data.datacenter)
        jobs: dict[str, JobSpec] = {}
        for i, job in enumerate(data.jobs):
            spec = self.job(f"jobs[{i}]", job, datacenter, policy)
            if spec.name in jobs:
                raise self.fail(f"jobs[{i}].name", f"a unique job name; '{spec.name}' repeats")
            jobs[spec.name] = spec
        actions = [self.action(i, a, jobs) for i, a in enumerate(data.actions)]
        if data.workload is not None:
            drawn_jobs, drawn_actions = expand(
                self.workload(data.workload),
                data.seed,
                list(datacenter.locations),
                first_index=len(actions),
            )
            for spec in drawn_jobs:
                if spec.name in jobs:
                    raise self.fail("workload", f"job names of its own; '{spec.name}' is taken")
                jobs[spec.name] = spec
            actions += drawn_actions
        faults = [self.fault(i, f) for i, f in enumerate(data.faults)]
        if data.chaos is not None:
            faults += self.chaos(data.chaos, data.seed, first_index=len(faults))
        return Scenario(
            name=data.name,
            description=data.description,
            path=self.where,
            seed=data.seed,
            epoch=epoch,
            until=until,
            live_speed=live_speed,
            policy=policy,
            datacenter=datacenter,
            jobs=jobs,
            actions=tuple(actions),
            faults=tuple(sorted(faults, key=lambda f: (f.at, f.index))),
        )

    def fault(self, index: int, fault: FaultFile) -> Fault:
        key = f"faults[{index}]"
        self.kind(f"{key}.kind", fault.kind)
        self.integer(f"{key}.count", fault.count, 1, MAX_REQUESTS, "a number of requests")
        latency = self.number(
            f"{key}.latency_ms", fault.latency_ms, 0.0, 600_000.0, "a latency in ms"
        )
        bandwidth = self.number(
            f"{key}.bandwidth_kb_s", fault.bandwidth_kb_s, 1.0, 10_000_000.0, "a rate in kB/s"
        )
        if fault.after_cancel and not FAULTS[fault.kind].after_cancel:
            kinds = " or ".join(kind.name for kind in FAULTS.values() if kind.after_cancel)
            raise self.fail(f"{key}.after_cancel", f"only on a {kinds} fault")
        return Fault(
            index=index,
            kind=fault.kind,
            at=self.duration(f"{key}.at", fault.at),
            lasts=self.duration(f"{key}.lasts", fault.lasts),
            count=fault.count,
            latency=latency / 1000,
            bandwidth=int(bandwidth * 1000),
            after_cancel=fault.after_cancel,
        )

    def chaos(self, chaos: ChaosFile, seed: int, *, first_index: int) -> list[Fault]:
        key = "chaos"
        for i, kind in enumerate(chaos.kinds):
            self.kind(f"{key}.kinds[{i}]", kind)
        self.integer(f"{key}.faults", chaos.faults, 0, MAX_FAULTS, "a number of faults")
        if not chaos.kinds:
            raise self.fail(f"{key}.kinds", f"at least one of {', '.join(FAULTS)}")
        self.integer(f"{key}.requests", chaos.requests, 1, MAX_REQUESTS, "a number of requests")
        between = self.range(f"{key}.between", chaos.between, self.duration)
        lasts = self.range(f"{key}.lasts", chaos.lasts, self.duration)
        return draw_faults(
            seed,
            chaos.faults,
            tuple(chaos.kinds),
            (between.low, between.high),
            (lasts.low, lasts.high),
            first_index=first_index,
            requests=chaos.requests,
        )

    def kind(self, key: str, kind: str) -> None:
        if kind not in FAULTS:
            raise self.fail(key, f"a fault kind, one of {', '.join(FAULTS)}; not {kind!r}")

    def workload(self, data: WorkloadFile) -> Workload:
        key = "workload"
        self.integer(f"{key}.jobs", data.jobs, 0, MAX_JOBS, "a number of jobs")
        over = self.duration(f"{key}.over", data.over, low=1.0)
        if len(data.drives) != 2 or not 1 <= data.drives[0] <= data.drives[1] <= 10:
            raise self.fail(f"{key}.drives", "[low, high] drives per job, within 1 to 10")
        self.integer(f"{key}.burst_size", data.burst_size, 1, MAX_JOBS, "jobs per burst")
        for share in ("export_share", "never_ship", "cancel", "delete_finished"):
            self.probability(f"{key}.{share}", getattr(data, share))
        return Workload(
            jobs=data.jobs,
            over=over,
            arrivals=data.arrivals,
            burst_size=data.burst_size,
            export_share=data.export_share,
            drives=(data.drives[0], data.drives[1]),
            ship_after=self.range(f"{key}.ship_after", data.ship_after, self.duration),
            never_ship=data.never_ship,
            cancel=data.cancel,
            cancel_after=self.range(f"{key}.cancel_after", data.cancel_after, self.duration),
            delete_finished=data.delete_finished,
            delete_after=self.range(f"{key}.delete_after", data.delete_after, self.duration),
        )

    def job(self, key: str, job: JobFile, dc: DatacenterConfig, policy: Policy) -> JobSpec:
        if not JOB_NAME.fullmatch(job.name):
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
            if drive.fails_at is not None:
                self.number(f"{where}.fails_at", drive.fails_at, 0.0, 1.0, "a fraction")
            self.number(f"{where}.speed", drive.speed, MIN_SPEED, 10.0, "a factor of a bay's rate")
            late_by = self.duration(f"{where}.late_by", drive.late_by)
            if drive.size is not None:
                plans[drive.id] = DrivePlan(
                    size_bytes=self.size(f"{where}.size", drive.size),
                    arrives=not drive.missing,
                    fails_at=drive.fails_at,
                    speed=drive.speed,
                    late_by=late_by,
                )
            elif drive.missing or drive.fails_at is not None or drive.speed != 1.0 or late_by:
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
        if action.expect is not None and action.expect not in EXPECTATIONS:
            raise self.fail(
                f"{key}.expect",
                f"one of {', '.join(map(repr, EXPECTATIONS))}; not {action.expect!r}",
            )
        return Action(
            index=index,
            job=action.job,
            do=action.do,
            at=None if action.at is None else self.duration(f"{key}.at", action.at),
            when=action.when,
            after=self.duration(f"{key}.after", action.after),
            expect=action.expect,
        )
