"""The fault plan of a chaos run: what goes wrong, when, and for how long.

A scenario lists faults by hand (``[[faults]]``) or asks for random ones (``[chaos]``),
drawn from the run's seed: the same seed gives the same plan. Times are simulated.

Kinds, by what they hit:

* the broker: ``broker-kill`` (SIGKILL, restarted after ``lasts``), ``broker-pause``
  (SIGSTOP, SIGCONT after ``lasts``);
* the network between worker and broker, through the fault proxy: ``net-latency``,
  ``net-bandwidth``, ``net-blackhole`` (for ``lasts``) and ``net-reset`` (every
  connection reset at once);
* the worker: ``worker-kill`` (SIGKILL, restarted after ``lasts``; with
  ``after_cancel`` it waits for the next accepted cancel and strikes right after it,
  between the request and its effect);
* the customers: ``cancel-storm`` (``count`` jobs cancelled at once, each twice),
  ``delete-storm`` (``count`` jobs deleted whatever their state), ``garbage-commands``
  (``count`` malformed, mistyped, unknown and oversized requests), ``duplicate-commands``
  (the next ``count`` scripted requests sent twice, the copy first).

Drive faults (read errors, slow, missing and late drives) are the datacenter's rates
(``[datacenter]``), drawn per drive when a job is created.

Broker, network and worker faults need real processes: a virtual-time run logs them as
skipped.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from simulator.report.history import History

__all__ = [
    "CLIENT_FAULTS",
    "PROCESS_FAULTS",
    "Fault",
    "FaultKind",
    "FaultRecord",
    "draw_faults",
    "suspects",
]

FaultKind = Literal[
    "broker-kill",
    "broker-pause",
    "net-latency",
    "net-bandwidth",
    "net-reset",
    "net-blackhole",
    "worker-kill",
    "cancel-storm",
    "delete-storm",
    "garbage-commands",
    "duplicate-commands",
]
ALL_FAULTS: tuple[FaultKind, ...] = get_args(FaultKind)
CLIENT_FAULTS: frozenset[FaultKind] = frozenset(
    {"cancel-storm", "delete-storm", "garbage-commands", "duplicate-commands"}
)
PROCESS_FAULTS: frozenset[FaultKind] = frozenset(ALL_FAULTS) - CLIENT_FAULTS
#: Faults that strike once and have nothing to heal.
INSTANT: frozenset[FaultKind] = CLIENT_FAULTS | {"net-reset"}


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault (times in simulated seconds)."""

    index: int
    kind: FaultKind
    at: float
    lasts: float = 0.0
    count: int = 10
    latency: float = 0.2
    bandwidth: int = 64_000
    after_cancel: bool = False

    def describe(self) -> str:
        match self.kind:
            case "net-latency":
                what = f"{self.latency * 1000:g} ms latency"
            case "net-bandwidth":
                what = f"bandwidth {self.bandwidth / 1000:g} kB/s"
            case "cancel-storm" | "delete-storm" | "garbage-commands" | "duplicate-commands":
                what = f"{self.count} requests"
            case "worker-kill" if self.after_cancel:
                what = "right after the next accepted cancel"
            case _:
                what = ""
        span = f" for {_short(self.lasts)}" if self.lasts and self.kind not in INSTANT else ""
        return f"{self.kind}{' (' + what + ')' if what else ''}{span}"


def _short(seconds: float) -> str:
    """``"1h 19m"``, ``"10m"``, ``"45s"``."""
    minutes = round(seconds / 60)
    if minutes == 0:
        return f"{seconds:.0f}s"
    hours, minutes = divmod(minutes, 60)
    return " ".join(
        part for part in (f"{hours}h" if hours else "", f"{minutes}m" if minutes else "") if part
    )


@dataclass(slots=True)
class FaultRecord:
    """What became of a planned fault: when it struck and healed, and what it did."""

    fault: Fault
    struck: float | None = None
    healed: float | None = None
    detail: str = ""
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.fault.index,
            "kind": self.fault.kind,
            "planned": self.fault.at,
            "at": self.struck,
            "until": self.healed,
            "description": self.fault.describe(),
            "detail": self.detail,
            "skipped": self.skipped,
        }


def draw_faults(
    seed: int,
    count: int,
    kinds: tuple[FaultKind, ...],
    between: tuple[float, float],
    lasts: tuple[float, float],
    *,
    first_index: int = 0,
    requests: int = 10,
) -> list[Fault]:
    """``count`` random faults of ``kinds`` struck within ``between``, each from a generator
    of its own (seeded by the run seed and its number)."""
    faults = []
    for i in range(count):
        rng = random.Random(hashlib.sha256(f"{seed}/chaos/{i}".encode()).digest())
        kind = kinds[rng.randrange(len(kinds))]
        faults.append(
            Fault(
                index=first_index + i,
                kind=kind,
                at=rng.uniform(*between),
                lasts=0.0 if kind in INSTANT else rng.uniform(*lasts),
                count=requests,
                latency=rng.choice((0.05, 0.2, 0.5)),
                bandwidth=rng.choice((16_000, 64_000, 256_000)),
                after_cancel=kind == "worker-kill" and rng.random() < 0.5,
            )
        )
    return faults


def suspects(
    violations: Iterable[str], history: History, records: Iterable[FaultRecord]
) -> dict[str, list[str]]:
    """For each job named in a violation, the faults that struck during its life: where to
    look first when replaying the run with its seed."""
    struck = [r for r in records if r.struck is not None]
    lives: dict[str, tuple[float, float]] = {}
    for life in history.incarnations:
        times = [s.time for s in life.snapshots] + [e.time for e in life.events]
        if times:
            start, end = lives.get(life.job, (min(times), max(times)))
            lives[life.job] = (min(start, *times), max(end, *times))
    found: dict[str, list[str]] = {}
    for violation in violations:
        job = violation.split(":", 1)[0].split(" ", 1)[0]
        if job not in lives or job in found:
            continue
        start, end = lives[job]
        found[job] = [
            f"#{r.fault.index} {r.fault.describe()} at {r.struck:.0f} s"
            for r in struck
            if r.struck is not None
            and r.struck <= end
            and (r.healed if r.healed is not None else r.struck) >= start
        ]
    return found
