"""How a virtual-time run's work is split between processes, and why.

Locations share nothing: each has its own bays, and a job stays in its location. A run
over several locations can therefore run as one process per *shard* (a group of
locations), each driving only its own jobs, and the shards' results merged
(:mod:`simulator.run.shards`). Each job's history is then the one the run in one process
gives it. What would tie the locations together, a customers' fault that picks among the
jobs of every location, keeps a run in one process; :func:`plan_split` says which and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from simulator.scenario.file import Scenario

__all__ = [
    "SPLIT_FROM_DRIVES",
    "ShardProgress",
    "ShardRun",
    "Split",
    "cores",
    "coupling",
    "plan_split",
    "weights",
]

#: Unless ``--processes`` asks, a run of fewer drives stays in one process: it is over in
#: a few seconds, about what starting a shard costs (an interpreter, the imports, the
#: scenario read again).
SPLIT_FROM_DRIVES = 5_000

#: Why a customers' fault ties the locations together, by kind.
_COUPLED = {
    "cancel-storm": "picks the jobs it cancels among those of every location",
    "delete-storm": "picks the jobs it deletes among those of every location",
    "duplicate-commands": "sends the next scripted requests of any location twice",
    "garbage-commands": "numbers its requests in one sequence with every location's",
}


@dataclass(frozen=True, slots=True)
class Split:
    """The locations each process of a run drives (one group: one process), and why."""

    shards: tuple[tuple[str, ...], ...]
    reason: str

    @property
    def processes(self) -> int:
        return len(self.shards)

    def describe(self) -> str:
        """One line for the screen: ``"2 processes: West US | East US (2 locations)"``."""
        count = self.processes
        if count == 1:
            return f"1 process: {self.reason}"
        groups = " | ".join(", ".join(shard) for shard in self.shards)
        return f"{count} processes: {groups} ({self.reason})"


@dataclass(frozen=True, slots=True)
class ShardRun:
    """What one process of a sharded run did, and how long it took."""

    index: int
    locations: tuple[str, ...]
    jobs: int
    drives: int
    #: Committed job changes (one ``seq`` each) and the status messages they announced.
    changes: int
    messages: int
    sim_seconds: float
    #: The simulation alone, as a run in one process measures it.
    wall_seconds: float
    #: The whole process: start, reading the scenario, the run, handing its result back.
    process_seconds: float
    peak_rss_mib: float

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.index,
            "locations": list(self.locations),
            "jobs": self.jobs,
            "drives": self.drives,
            "changes": self.changes,
            "messages": self.messages,
            "simulatedSeconds": round(self.sim_seconds, 3),
            "wallSeconds": round(self.wall_seconds, 3),
            "processSeconds": round(self.process_seconds, 3),
            "peakRssMiB": round(self.peak_rss_mib, 1),
        }


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """How far a shard's process is, as it tells now and then while it runs: the status
    messages it announced, the jobs created, ended and deleted, the simulated time its
    latest event was stamped with (None before the first)."""

    index: int
    messages: int
    created: int
    ended: int
    deleted: int
    simulated: float | None
    #: The shard's last word: it has run to its end.
    finished: bool = False


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def coupling(scenario: Scenario) -> str | None:
    """What ties the scenario's locations together, so that it must run in one process;
    None when nothing does. Faults that need real processes are skipped by a virtual-time
    run, in each shard alike, and tie nothing."""
    for fault in scenario.faults:
        why = _COUPLED.get(fault.kind)
        if why is None and not fault.spec.needs_processes:
            why = "is a customers' fault over every location"
        if why is not None:
            return f"fault {fault.kind} (#{fault.index}) {why}"
    return None


def weights(scenario: Scenario) -> dict[str, tuple[int, int]]:
    """Per location with jobs: (jobs, drives), the drives standing for the work."""
    found: dict[str, tuple[int, int]] = {}
    for spec in scenario.jobs.values():
        drives = len(spec.drives) if spec.type == "Import" else spec.export_drives
        jobs, total = found.get(spec.location, (0, 0))
        found[spec.location] = (jobs + 1, total + drives)
    return found


def plan_split(scenario: Scenario, processes: int | None, *, why_one: str | None = None) -> Split:
    """How to split a virtual-time run of ``scenario`` into ``processes`` (None: one per
    core, :func:`cores`, from :data:`SPLIT_FROM_DRIVES` drives), capped by the locations
    that have jobs: the locations go, most drives first, to the shard with the fewest
    drives so far. ``why_one``: the run must be in one process (an option that keeps one
    store, say), this is why."""
    every = tuple(scenario.datacenter.locations)
    load = weights(scenario)
    if why_one is not None:
        return Split((every,), why_one)
    coupled = coupling(scenario)
    if coupled is not None:
        return Split((every,), coupled)
    asked = processes if processes is not None else cores()
    drives = sum(total for _, total in load.values())
    if processes is None and asked > 1 and drives < SPLIT_FROM_DRIVES:
        return Split(
            (every,), f"{drives:,} drives, fewer than the {SPLIT_FROM_DRIVES:,} worth a split"
        )
    busy = [name for name in every if name in load]
    count = min(asked, len(busy))
    if count <= 1:
        if asked <= 1:
            reason = "--processes 1" if processes is not None else "one core"
        else:
            reason = "one location with jobs" if busy else "no jobs"
        return Split((every,), reason)
    groups: list[list[str]] = [[] for _ in range(count)]
    totals = [0] * count
    for name in sorted(busy, key=lambda n: -load[n][1]):  # stable: file order among equals
        lightest = totals.index(min(totals))
        groups[lightest].append(name)
        totals[lightest] += load[name][1]
    # Locations without jobs go with the first shard: nothing runs there either way.
    groups[0] += [name for name in every if name not in load]
    ordered = [tuple(n for n in every if n in group) for group in groups]
    located = "one location" if len(busy) == 1 else f"{len(busy)} locations"
    source = f"--processes {processes}" if processes is not None else f"{asked} cores"
    reason = f"{located} with jobs, {source}"
    return Split(tuple(ordered), reason)
