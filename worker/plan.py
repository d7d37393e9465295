"""Seeded fates: each job's delays and each drive's size, errors and absence.

A job's plan is drawn once, when it is created, from a generator seeded by the run seed,
the job name and the simulated creation time, and stored with the job. Whatever order
jobs are processed in, and however often the worker restarts, the same seed gives the
same plan.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from worker.config import DatacenterConfig
from worker.model import JobType
from worker.record import DrivePlan

__all__ = ["JobPlan", "PlanHints", "Planner", "bitlocker_key"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlanHints:
    """What a scenario pins down instead of drawing it: any field left None is drawn."""

    drives: Mapping[str, DrivePlan] = field(default_factory=dict)
    carrier_delay: float | None = None
    return_delay: float | None = None
    package_lost: bool | None = None
    export_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class JobPlan:
    carrier_delay: float
    return_delay: float
    package_lost: bool
    drives: dict[str, DrivePlan]
    export_bytes: int


class Planner:
    """Draws job plans from the datacenter's distributions with a per-job seeded generator."""

    def __init__(
        self,
        datacenter: DatacenterConfig,
        seed: int,
        pinned: Mapping[str, PlanHints] | None = None,
    ) -> None:
        self.datacenter = datacenter
        self.seed = seed
        #: Per job name, what a scenario pins down (used when a create brings no hints).
        self.pinned: Mapping[str, PlanHints] = pinned or {}

    def rng(self, *parts: object) -> random.Random:
        """A generator for one purpose, independent of every other draw."""
        key = "/".join(str(p) for p in (self.seed, *parts))
        return random.Random(hashlib.sha256(key.encode()).digest())

    def plan(
        self,
        name: str,
        job_type: JobType,
        drive_ids: Sequence[str],
        created_at: float,
        hints: PlanHints | None = None,
    ) -> JobPlan:
        hints = hints or self.pinned.get(name) or PlanHints()
        dc = self.datacenter
        # To the millisecond, as ARM times go: a plan must not hang on float noise in the
        # creation time (virtual-time loops may sum the same moment differently).
        rng = self.rng("job", name, f"{created_at:.3f}")
        carrier_delay = _draw(rng, dc.carrier_delay.low, dc.carrier_delay.high)
        return_delay = _draw(rng, dc.return_delay.low, dc.return_delay.high)
        package_lost = rng.random() < dc.package_lost_rate
        export_bytes = int(_draw(rng, dc.export_size.low, dc.export_size.high))
        drives = {}
        for drive_id in drive_ids:
            drives[drive_id] = hints.drives.get(drive_id) or self.drive_plan(rng)
        return JobPlan(
            carrier_delay=_pick(hints.carrier_delay, carrier_delay),
            return_delay=_pick(hints.return_delay, return_delay),
            package_lost=_pick(hints.package_lost, package_lost),
            drives=drives,
            export_bytes=_pick(hints.export_bytes, export_bytes),
        )

    def drive_plan(self, rng: random.Random, size_bytes: int | None = None) -> DrivePlan:
        dc = self.datacenter
        size = int(_draw(rng, dc.drive_size.low, dc.drive_size.high))
        missing = rng.random() < dc.drive_missing_rate
        fails = rng.random() < dc.drive_error_rate
        fails_at = rng.uniform(0.05, 0.95)
        speed, late_by = 1.0, 0.0
        # Drawn only when slow or late drives are asked for, so other runs keep their draws.
        if dc.slow_drive_rate and rng.random() < dc.slow_drive_rate:
            speed = _draw(rng, dc.slow_drive_speed.low, dc.slow_drive_speed.high)
        if dc.late_drive_rate and rng.random() < dc.late_drive_rate:
            late_by = _draw(rng, dc.late_drive_delay.low, dc.late_drive_delay.high)
        return DrivePlan(
            size_bytes=size if size_bytes is None else size_bytes,
            arrives=not missing,
            fails_at=fails_at if fails else None,
            speed=speed,
            late_by=late_by,
        )

    def export_drives(self, name: str, count: int) -> list[tuple[str, str]]:
        """Serial numbers and BitLocker keys for the empty drives of an export job."""
        rng = self.rng("export", name)
        drives = []
        for _ in range(count):
            serial = f"{rng.getrandbits(32):08X}"
            key = bitlocker_key(rng)
            drives.append((serial, key))
        return drives


def bitlocker_key(rng: random.Random) -> str:
    """A BitLocker recovery key as the service shows them: eight groups of six digits."""
    digits = f"{rng.randrange(10**48):048d}"
    return "-".join([digits[i : i + 6] for i in range(0, 48, 6)])


def _draw(rng: random.Random, low: float, high: float) -> float:
    return low if low == high else rng.uniform(low, high)


def _pick(hint: T | None, drawn: T) -> T:
    return drawn if hint is None else hint
