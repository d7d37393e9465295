"""Workloads: a population of customers instead of a script, drawn from the run's seed.

A ``[workload]`` table in a scenario file describes arrivals (Poisson, uniform, bursts or
a daily cycle), the job mix and what customers do: ship after a delay or never, cancel
with some probability at some point, delete finished jobs. :func:`expand` turns it into
ordinary jobs and scripted actions, so a workload runs, resumes and is checked exactly
like a hand-written scenario. The same seed gives the same workload; each job's draws come
from a generator of its own, so changing one knob does not reshuffle every other job.

Drive sizes, errors and missing drives are the datacenter's draws (``[datacenter]``), made
by the planner when each job is created.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

from simulator.scenario.spec import Action, ActionKind, DriveFile, JobSpec
from worker import DAY, JobState, Range

__all__ = ["Workload", "expand"]

Arrivals = Literal["poisson", "uniform", "burst", "daily"]


@dataclass(frozen=True, slots=True)
class Workload:
    """A population of jobs (durations in simulated seconds, shares as probabilities); the
    defaults are those of the file's ``[workload]`` table."""

    jobs: int
    over: float
    arrivals: Arrivals
    burst_size: int
    export_share: float
    drives: tuple[int, int]
    ship_after: Range
    never_ship: float
    cancel: float
    cancel_after: Range
    delete_finished: float
    delete_after: Range


def _rng(seed: int, *parts: object) -> random.Random:
    key = "/".join(str(p) for p in (seed, "workload", *parts))
    return random.Random(hashlib.sha256(key.encode()).digest())


def arrival_times(workload: Workload, seed: int) -> list[float]:
    """When each job is created, sorted, within ``[0, over)``."""
    rng = _rng(seed, "arrivals")
    n, over = workload.jobs, workload.over
    match workload.arrivals:
        case "uniform":
            times = [rng.uniform(0, over) for _ in range(n)]
        case "poisson":
            rate = n / over
            times, t = [], 0.0
            while len(times) < n:
                t += rng.expovariate(rate)
                times.append(t % over)  # keep the count exact; wrap the rare overshoot
        case "burst":
            bursts = math.ceil(n / workload.burst_size)
            starts = sorted(rng.uniform(0, over) for _ in range(bursts))
            times = [starts[i // workload.burst_size] for i in range(n)]
        case "daily":
            # Thinning: a day-night cycle, busiest at midday, a fifth as busy at midnight.
            times = []
            while len(times) < n:
                t = rng.uniform(0, over)
                hour = (t % DAY) / DAY
                if rng.random() < 0.6 - 0.4 * math.cos(2 * math.pi * hour):
                    times.append(t)
    return sorted(times)


def expand(
    workload: Workload, seed: int, locations: list[str], *, first_index: int = 0
) -> tuple[list[JobSpec], list[Action]]:
    """The jobs and the customers' actions of a workload (actions numbered from
    ``first_index``, after any the scenario scripts by hand)."""
    jobs: list[JobSpec] = []
    actions: list[Action] = []

    def act(
        job: str,
        do: ActionKind,
        *,
        at: float | None = None,
        when: JobState | None = None,
        after: float = 0.0,
    ) -> None:
        index = first_index + len(actions)
        actions.append(
            Action(index=index, job=job, do=do, at=at, when=when, after=after, expect=None)
        )

    for i, created in enumerate(arrival_times(workload, seed)):
        rng = _rng(seed, "job", i)
        name = f"job-{i:06d}"
        export = rng.random() < workload.export_share
        count = rng.randint(*workload.drives)
        drives = _Drives(i, 0 if export else count)
        jobs.append(
            JobSpec(
                name=name,
                type="Export" if export else "Import",
                location=locations[rng.randrange(len(locations))],
                drives=drives,
                plans={},
                export_size=None,
                export_drives=count if export else 1,
                carrier_delay=None,
                return_delay=None,
                package_lost=None,
                log_level="Error",
            )
        )
        act(name, "create", at=created)
        if rng.random() < workload.never_ship:
            continue  # the job waits in Creating until it expires
        shipped = created + _draw(rng, workload.ship_after)
        act(name, "ship", at=shipped)
        if rng.random() < workload.cancel:
            act(name, "cancel", at=shipped + _draw(rng, workload.cancel_after))
        if rng.random() < workload.delete_finished:
            act(name, "delete", when=JobState.COMPLETED, after=_draw(rng, workload.delete_after))
    return jobs, actions


class _Drives(Sequence[DriveFile]):
    """A workload job's drive files, made when asked for: held for every job of a large
    workload, they would be half of its memory (64 MiB for load-100k)."""

    __slots__ = ("_count", "_job")

    def __init__(self, job: int, count: int) -> None:
        self._job = job
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> DriveFile: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[DriveFile, ...]: ...

    def __getitem__(self, index: int | slice) -> DriveFile | tuple[DriveFile, ...]:
        if isinstance(index, slice):
            return tuple(self[k] for k in range(self._count)[index])
        k = range(self._count)[index]  # IndexError out of range, negative indices count back
        return DriveFile(id=f"J{self._job:06d}D{k}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def _draw(rng: random.Random, span: Range) -> float:
    return span.low if span.low == span.high else rng.uniform(span.low, span.high)
