"""The fault plan of a chaos run: what goes wrong, when, and for how long; and what became
of each fault.

A scenario lists faults by hand (``[[faults]]``) or asks for random ones (``[chaos]``),
drawn from the run's seed: the same seed gives the same plan. Times are simulated. The
kinds, what each strikes and how, are :data:`~simulator.faults.kinds.FAULTS`.

Drive faults (read errors, slow, missing and late drives) are the datacenter's rates
(``[datacenter]``), drawn per drive when a job is created.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from simulator.faults.kinds import FAULTS, Fault

__all__ = ["FaultRecord", "draw_faults"]


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
    kinds: tuple[str, ...],
    between: tuple[float, float],
    lasts: tuple[float, float],
    *,
    first_index: int = 0,
    requests: int = 10,
) -> list[Fault]:
    """``count`` random faults of ``kinds`` (names in :data:`~simulator.faults.kinds.FAULTS`)
    struck within ``between``, each from a generator of its own (seeded by the run seed and
    its number). Instant kinds last 0; a kind that may strike after a cancel does so half
    of the time."""
    faults = []
    for i in range(count):
        rng = random.Random(hashlib.sha256(f"{seed}/chaos/{i}".encode()).digest())
        kind = kinds[rng.randrange(len(kinds))]
        spec = FAULTS[kind]
        faults.append(
            Fault(
                index=first_index + i,
                kind=kind,
                at=rng.uniform(*between),
                lasts=0.0 if spec.instant else rng.uniform(*lasts),
                count=requests,
                latency=rng.choice((0.05, 0.2, 0.5)),
                bandwidth=rng.choice((16_000, 64_000, 256_000)),
                after_cancel=spec.after_cancel and rng.random() < 0.5,
            )
        )
    return faults
