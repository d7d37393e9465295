"""Measured figures of a run: stage latencies, throughput, bay use, and series for plots.

Pure functions over a :class:`~simulator.report.history.History` and its
:class:`~simulator.run.result.RunResult`. Times are simulated seconds since the scenario's
epoch, read from the status stream, so a virtual run gives the same figures every time;
only the ``...PerWallSecond`` throughput figures depend on the wall clock.

Stages of a drive, from its events:

* **bay queue**: from the drive's ``Received`` (or, if unknown, the job's) until a bay
  takes it (``Transferring``) or the wait ends otherwise (the cancel, the job leaving the
  copy step): a drive that waited and was then skipped waited all the same, and counts in
  the latency figures as in the queue series. Only a wait still open when the run ended
  is left out of the figures (it has no length yet).
* **transfer**: from ``Transferring`` until the drive leaves it (``Completed``,
  ``CompletedMoreInfo``...). A transfer still running when the run ended keeps its bay
  busy to the end of the span and is left out of the latency figures.
* **end to end** (a job): from its first snapshot until it enters ``Completed`` or ``Closed``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.report.history import History, Incarnation
from simulator.run.result import RunResult
from worker import DriveState, JobState
from worker.states import ACTIVE, AFTER_COPY, TERMINAL

__all__ = [
    "WALL_CLOCK_FIELDS",
    "DriveStages",
    "Series",
    "Span",
    "bay_use",
    "drive_stages",
    "job_locations",
    "latency",
    "measure",
    "message_times",
    "peak_of",
    "percentiles",
    "series",
    "throughput",
    "time_span",
]

#: Throughput figures that depend on the wall clock (drop them to compare two runs).
WALL_CLOCK_FIELDS = ("changesPerWallSecond", "messagesPerWallSecond")

UNKNOWN_LOCATION = "(unknown)"
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Span:
    """A drive's stay in one stage; ``end`` None: still there when the run ended."""

    job: str
    drive: str
    location: str
    start: float
    end: float | None

    def clipped(self, start: float, end: float) -> tuple[float, float]:
        """The part of the span within ``[start, end]`` (an open span runs to ``end``)."""
        stop = end if self.end is None else min(self.end, end)
        return max(self.start, start), max(stop, max(self.start, start))


@dataclass(slots=True)
class DriveStages:
    """Every drive's waits for a bay and transfers, and the waits that ended in a start."""

    waits: list[Span] = field(default_factory=list)
    transfers: list[Span] = field(default_factory=list)
    #: Seconds each drive waited for its bay, whether a bay then took it or it was skipped.
    queued: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Series:
    """Values per bucket of simulated time, from ``start`` in steps of ``step`` seconds.

    Levels (``queue``, ``busy``, ``active``) are time-weighted means over the bucket, and
    their ``..._peak`` the highest level reached within it (a mean hides a short peak: 60
    of 60 bays busy for ten minutes of a six-hour bucket); ``messages`` are counts.
    """

    start: float
    step: float
    queue: list[float]
    busy: dict[str, list[float]]
    messages: list[int]
    active: list[float]
    queue_peak: list[float] = field(default_factory=list)
    busy_peak: dict[str, list[float]] = field(default_factory=dict)
    active_peak: list[float] = field(default_factory=list)

    @property
    def buckets(self) -> int:
        return len(self.messages)


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    """Count, nearest-rank p50/p90/p95/p99 and max (None for each when there are no values)."""
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float | None:
        return round(ordered[max(1, math.ceil(p / 100 * n)) - 1], 3) if n else None

    return {
        "count": n,
        "p50": rank(50),
        "p90": rank(90),
        "p95": rank(95),
        "p99": rank(99),
        "max": round(ordered[-1], 3) if n else None,
    }


def job_locations(run: RunResult) -> dict[str, str]:
    """Each scenario job's datacenter location."""
    return {name: spec.location for name, spec in run.scenario.jobs.items()}


def time_span(history: History) -> tuple[float, float]:
    """The simulated times of the first and the last snapshot or event ((0, 0) if none)."""
    first, last = math.inf, -math.inf
    for life in history.incarnations:
        for snap in life.snapshots[:1] + life.snapshots[-1:]:
            first, last = min(first, snap.time), max(last, snap.time)
        for event in life.events[:1] + life.events[-1:]:
            first, last = min(first, event.time), max(last, event.time)
    return (0.0, 0.0) if first > last else (first, last)


def drive_stages(history: History, locations: Mapping[str, str]) -> DriveStages:
    """Walk every incarnation's events once and cut each drive's life into stages."""
    stages = DriveStages()
    for life in history.incarnations:
        _cut(life, locations.get(life.job, UNKNOWN_LOCATION), stages)
    return stages


def _cut(life: Incarnation, location: str, stages: DriveStages) -> None:
    received: dict[str, float] = {}
    started: dict[str, float] = {}
    copy_since: float | None = None

    def stop_waiting(when: float | None) -> None:
        for drive, since in received.items():
            stages.waits.append(Span(life.job, drive, location, since, when))
            if when is not None:
                stages.queued.append(when - since)
        received.clear()

    for event in life.events:
        data = event.data
        if event.type == "driveStateChanged":
            drive, to = str(data["driveId"]), data.get("to")
            if to == DriveState.RECEIVED:
                received[drive] = event.time
            elif to == DriveState.TRANSFERRING:
                since = received.pop(drive, copy_since if copy_since is not None else event.time)
                stages.waits.append(Span(life.job, drive, location, since, event.time))
                stages.queued.append(event.time - since)
                started[drive] = event.time
            elif drive in started:
                begun = started.pop(drive)
                stages.transfers.append(Span(life.job, drive, location, begun, event.time))
        elif event.type == "stateChanged":
            to = data.get("to")
            if to == JobState.RECEIVED:
                copy_since = event.time
            elif to in AFTER_COPY:
                stop_waiting(event.time)
        elif event.type in ("cancelRequested", "jobDeleted"):
            stop_waiting(event.time)
    stop_waiting(None)
    for drive, begun in started.items():
        stages.transfers.append(Span(life.job, drive, location, begun, None))


def _end_to_end(history: History) -> list[float]:
    found = []
    for life in history.incarnations:
        if not life.snapshots:
            continue
        created = life.snapshots[0].time
        ended = next((s.time for s in life.snapshots if s.state in TERMINAL), None)
        if ended is not None:
            found.append(ended - created)
    return found


def latency(history: History, stages: DriveStages) -> dict[str, dict[str, Any]]:
    """Percentiles of the bay queue, the transfer and the job's whole life, in seconds."""
    return {
        "bayQueue": percentiles(stages.queued),
        "transfer": percentiles(s.end - s.start for s in stages.transfers if s.end is not None),
        "endToEnd": percentiles(_end_to_end(history)),
    }


def _per(amount: float, seconds: float, digits: int = 1) -> float | None:
    return round(amount / seconds, digits) if seconds > 0 else None


def throughput(run: RunResult, history: History) -> dict[str, Any]:
    """Changes committed, jobs ended per simulated day, and the pace on the wall clock."""
    changes = sum(len(seqs) for seqs in history.seqs.values())  # deletions count too
    ended = sum(
        1 for life in history.incarnations if any(s.state in TERMINAL for s in life.snapshots)
    )
    first, last = time_span(history)
    return {
        "changes": changes,
        "changesPerWallSecond": _per(changes, run.wall_seconds),
        "jobsEndedPerSimDay": _per(ended * DAY, last - first, 3),
        "messagesPerWallSecond": _per(len(run.history), run.wall_seconds),
    }


def peak_of(spans: Iterable[Span]) -> int:
    """The most spans open at one moment (one that ends as another starts: not both)."""
    edges = sorted(
        edge
        for s in spans
        for edge in ((s.start, 1),) + (((s.end, -1),) if s.end is not None else ())
    )
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def _use(bays: int, spans: Sequence[Span], start: float, end: float) -> dict[str, Any]:
    busy = sum((b - a for a, b in (s.clipped(start, end) for s in spans)), 0.0)
    copy_start = min((s.start for s in spans), default=start)
    copy_end = max((end if s.end is None else s.end for s in spans), default=start)
    return {
        "bays": bays,
        "busyDriveSeconds": round(busy, 3),
        "utilisation": _per(busy, bays * (end - start), 4),
        "utilisationWhileCopying": _per(busy, bays * (copy_end - copy_start), 4),
        "peakConcurrent": peak_of(spans),
    }


def bay_use(run: RunResult, history: History, stages: DriveStages) -> dict[str, Any]:
    """Per location and overall: busy drive-seconds over bays times the run's span, and peaks.

    ``utilisation`` divides by the span from the first to the last event;
    ``utilisationWhileCopying`` by the span from the first transfer start to the last end.
    """
    start, end = time_span(history)
    locations = run.scenario.datacenter.locations
    by_location: dict[str, list[Span]] = {name: [] for name in locations}
    for span in stages.transfers:
        by_location.setdefault(span.location, []).append(span)
    return {
        "spanSeconds": round(end - start, 3),
        "locations": {
            name: _use(locations.get(name, 0), spans, start, end)
            for name, spans in by_location.items()
        },
        "overall": _use(sum(locations.values()), stages.transfers, start, end),
    }


def measure(run: RunResult, history: History, stages: DriveStages | None = None) -> dict[str, Any]:
    """The report's measured sections: ``latency``, ``throughput`` and ``bays``.

    ``stages``: the run's :func:`drive_stages`, if the caller has them already.
    """
    if stages is None:
        stages = drive_stages(history, job_locations(run))
    return {
        "latency": latency(history, stages),
        "throughput": throughput(run, history),
        "bays": bay_use(run, history, stages),
    }


# -- series ----------------------------------------------------------------------------


def message_times(history: History) -> dict[tuple[str, int], float]:
    """The simulated time of each change, by job and seq (every message carries both)."""
    times: dict[tuple[str, int], float] = {}
    for life in history.incarnations:
        for snap in life.snapshots:
            times[(life.job, snap.seq)] = snap.time
        for event in life.events:
            times.setdefault((life.job, event.seq), event.time)
    return times


def _levels(
    intervals: Iterable[tuple[float, float]], start: float, step: float, buckets: int
) -> list[float]:
    """The time-weighted mean count of open intervals in each bucket."""
    area = [0.0] * buckets
    end = start + step * buckets
    for a, b in intervals:
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        first = min(int((a - start) / step), buckets - 1)
        last = min(int((b - start) / step), buckets - 1)
        for i in range(first, last + 1):
            lo = max(a, start + i * step)
            hi = min(b, start + (i + 1) * step)
            if hi > lo:
                area[i] += hi - lo
    return [x / step for x in area]


def _peaks(
    intervals: Iterable[tuple[float, float]], start: float, step: float, buckets: int
) -> list[float]:
    """The highest number of ``intervals`` open at once within each bucket."""
    changes: dict[float, int] = {}
    for a, b in intervals:
        if b > a:
            changes[a] = changes.get(a, 0) + 1
            changes[b] = changes.get(b, 0) - 1
    peaks = [0.0] * buckets
    end = start + step * buckets
    level = 0
    times = sorted(changes)
    for i, t in enumerate(times):
        level += changes[t]
        following = times[i + 1] if i + 1 < len(times) else end
        lo, hi = max(t, start), min(following, end)
        if level <= 0 or hi <= lo:
            continue
        first = min(int((lo - start) / step), buckets - 1)
        last = min(max(first, math.ceil((hi - start) / step) - 1), buckets - 1)
        for k in range(first, last + 1):
            peaks[k] = max(peaks[k], float(level))
    return peaks


def _active(history: History, end: float) -> Iterable[tuple[float, float]]:
    for life in history.incarnations:
        since: float | None = None
        for snap in life.snapshots:
            if snap.state in ACTIVE and since is None:
                since = snap.time
            elif snap.state not in ACTIVE and since is not None:
                yield since, snap.time
                since = None
        if since is not None:
            yield since, life.deleted.time if life.deleted else end


def series(
    run: RunResult,
    history: History,
    stages: DriveStages,
    *,
    start: float,
    end: float,
    buckets: int = 200,
) -> Series:
    """Queue length, busy bays per location, messages and active jobs over ``[start, end]``."""
    buckets = max(1, buckets)
    step = max(end - start, 1.0) / buckets
    stop = start + step * buckets
    _, last = time_span(history)
    horizon = max(last, stop)

    def closed(spans: Iterable[Span]) -> Iterable[tuple[float, float]]:
        return ((s.start, horizon if s.end is None else s.end) for s in spans)

    busy: dict[str, list[Span]] = {name: [] for name in run.scenario.datacenter.locations}
    for span in stages.transfers:
        busy.setdefault(span.location, []).append(span)
    times = message_times(history)
    messages = [0] * buckets
    for message in run.history:
        when = times.get((message.job, message.seq))
        if when is not None and start <= when <= stop:
            messages[min(int((when - start) / step), buckets - 1)] += 1
    waits = list(closed(stages.waits))
    active = list(_active(history, horizon))
    in_flight = {name: list(closed(spans)) for name, spans in busy.items()}
    return Series(
        start=start,
        step=step,
        queue=_levels(waits, start, step, buckets),
        busy={name: _levels(spans, start, step, buckets) for name, spans in in_flight.items()},
        messages=messages,
        active=_levels(active, start, step, buckets),
        queue_peak=_peaks(waits, start, step, buckets),
        busy_peak={name: _peaks(spans, start, step, buckets) for name, spans in in_flight.items()},
        active_peak=_peaks(active, start, step, buckets),
    )
