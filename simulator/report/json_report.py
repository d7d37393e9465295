"""The JSON report of a run: what a user's CI reads to decide whether a run was good."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from simulator.faults.plan import FaultRecord
from simulator.report.history import History, Incarnation
from simulator.report.invariants import CheckResult
from simulator.report.metrics import (
    WALL_CLOCK_FIELDS,
    DriveStages,
    drive_stages,
    job_locations,
    measure,
)
from simulator.run.result import RunResult
from worker import DriveState, JobState
from worker.states import ARRIVED

__all__ = [
    "FINISHED",
    "SHARD_WALL_CLOCK_FIELDS",
    "after_cancel",
    "build_report",
    "cancel_figures",
    "processes",
    "suspects",
    "without_wall_clock",
]

FINISHED = (DriveState.COMPLETED, DriveState.COMPLETED_MORE_INFO)


def after_cancel(life: Incarnation) -> tuple[dict[str, int], list[str]]:
    """What ran on after ``life``'s accepted cancel: the bytes each drive had copied in the
    end (its largest count), and the drive of each move into Completed or CompletedMoreInfo
    after the cancel (none without a cancel)."""
    cancel = life.cancel
    copied: dict[str, int] = {}
    for drive in life.drives:
        copied[drive.drive] = max(copied.get(drive.drive, 0), drive.bytes)
    finished = [
        str(e.data["driveId"])
        for e in life.events_of("driveStateChanged")
        if cancel is not None and e.seq > cancel.seq and e.data.get("to") in FINISHED
    ]
    return copied, finished


def cancel_figures(run: RunResult, history: History) -> dict[str, int]:
    """What was asked, what was answered, and what ran on after an accepted cancel."""
    answers = Counter(a.outcome for a in run.actions if a.do == "cancel")
    after_drives = after_bytes = skipped = accepted = 0
    for life in history.incarnations:
        cancel = life.cancel
        if cancel is None:
            continue
        accepted += 1
        skipped += len(life.events_of("driveSkipped"))
        at_cancel: dict[str, int] = cancel.data.get("bytesAtCancel", {})
        final, finished = after_cancel(life)
        after_drives += len(finished)
        for drive_id, copied in at_cancel.items():
            after_bytes += max(0, final.get(drive_id, copied) - copied)
    return {
        "requested": sum(answers.values()),
        "accepted": accepted,
        "alreadyRequested": answers["already-requested"],
        "rejectedTooLate": answers["rejected-too-late"],
        "drivesFinishedAfterCancel": after_drives,
        "bytesAfterCancel": after_bytes,
        "drivesSkipped": skipped,
    }


def sometimes(
    run: RunResult, history: History, stages: DriveStages | None = None
) -> dict[str, int]:
    """How often each interesting path ran: proof that a run exercised what it should.

    Not invariants: zero is allowed, but a chaos or teaching scenario that never took a
    path it was written for says so here.
    """
    counts: Counter[str] = Counter()
    for life in history.incarnations:
        cancel = life.cancel
        if cancel is not None:
            flying = bool(cancel.data.get("drivesInFlight"))
            counts[
                "cancel landed mid-transfer" if flying else "cancel landed before a transfer"
            ] += 1
        final = life.final_state
        if final == JobState.CLOSED:
            counts["job closed with errors"] += 1
        if life.deleted is not None:
            counts[f"job deleted ({life.deleted.data.get('reason')})"] += 1
        # The first snapshot past the package's arrival.
        package_in = min(
            (s.seq for s in life.snapshots if s.state in ARRIVED),
            default=None,
        )
        never: set[str] = set()  # drives NeverReceived, until one turns up
        for event in life.events_of("driveStateChanged"):
            drive, to = str(event.data.get("driveId")), event.data.get("to")
            if (
                event.data.get("from") == DriveState.NEVER_RECEIVED
                and to == DriveState.RECEIVED
                and package_in is not None
                and package_in < event.seq
            ):
                counts["drive arrived after its package"] += 1
                never.discard(drive)
            if to == DriveState.NEVER_RECEIVED:
                never.add(drive)
            elif to == DriveState.COMPLETED_MORE_INFO:
                counts["drive finished with errors"] += 1
        if never:
            counts["drive never received"] += len(never)
    for action in run.actions:
        if action.outcome == "rejected-too-late":
            counts["cancel rejected as too late"] += 1
    counts.update(_fault_paths(run, history, stages))
    return dict(sorted(counts.items()))


def _fault_paths(
    run: RunResult, history: History, stages: DriveStages | None = None
) -> Counter[str]:
    """Which faults hit what they were meant to: transfers under way, a cancel not yet
    carried out."""
    counts: Counter[str] = Counter()
    if stages is None:
        stages = drive_stages(history, job_locations(run))
    transfers = stages.transfers
    # When each accepted cancel was asked and when it took effect (the job left the copy
    # step: nothing more will start).
    effects = [
        (cancel.time, effect.time)
        for life in history.incarnations
        if (cancel := life.cancel) is not None and (effect := life.cancel_effect) is not None
    ]
    for record in run.faults:
        kind = record.fault.spec
        if record.struck is None or not kind.needs_processes:
            continue
        start = record.struck
        end = start if record.healed is None else record.healed
        if any(t.start <= end and (t.end is None or t.end >= start) for t in transfers):
            target = {"worker": "worker crash", "database": "database fault"}.get(
                kind.target, "broker or network fault"
            )
            counts[f"{target} during a transfer"] += 1
        if kind.target == "worker" and any(asked <= start < effect for asked, effect in effects):
            counts["worker crash between a cancel and its effect"] += 1
    return counts


def build_report(run: RunResult, history: History, checks: list[CheckResult]) -> dict[str, Any]:
    final_states = Counter(
        life.final_state for life in history.incarnations if life.final_state is not None
    )
    deleted = Counter(
        str(life.deleted.data.get("reason")) for life in history.incarnations if life.deleted
    )
    topics = Counter(m.topic.rsplit("/", 1)[-1] for m in run.history)
    stages = drive_stages(history, job_locations(run))
    return {
        "scenario": run.scenario.name,
        "file": run.scenario.path,
        "seed": run.seed,
        "clock": {
            "kind": run.clock_kind,
            "speed": run.speed,
            "epoch": run.scenario.epoch.isoformat().replace("+00:00", "Z"),
        },
        "wallSeconds": round(run.wall_seconds, 3),
        "simulatedSeconds": round(run.sim_seconds, 3),
        "starts": run.starts,
        "finished": run.finished,
        "jobs": {
            "created": len(history.incarnations),
            "finalStates": dict(sorted(final_states.items())),
            "deleted": dict(sorted(deleted.items())),
            "remaining": len(run.jobs),
        },
        "cancel": cancel_figures(run, history),
        "messages": {
            "published": len(run.history),
            "byKind": dict(sorted(topics.items())),
            "observed": run.observed,
        },
        **measure(run, history, stages),
        "faults": [f.to_json() for f in run.faults],
        "actions": [a.to_json() for a in run.actions],
        "invariants": [
            {"name": c.name, "description": c.description, "ok": c.ok, "violations": c.violations}
            for c in checks
        ],
        "sometimes": sometimes(run, history, stages),
        **processes(run),
        "ok": all(c.ok for c in checks),
    }


#: Per shard, the figures of the machine rather than of the run.
SHARD_WALL_CLOCK_FIELDS = ("wallSeconds", "processSeconds", "peakRssMiB")


def processes(run: RunResult) -> dict[str, Any]:
    """How the run was split between processes and what each did (nothing when the run
    does not say: a run of the library, or a live run)."""
    if run.split is None:
        return {}
    return {
        "processes": {
            "count": run.split.processes,
            "reason": run.split.reason,
            "shards": [shard.to_json() for shard in run.shards],
        }
    }


def without_wall_clock(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``report`` without its wall-clock figures: what two runs of a seed share."""
    kept = {k: v for k, v in report.items() if k != "wallSeconds"}
    if "processes" in kept:
        split = kept["processes"]
        kept["processes"] = {
            **split,
            "shards": [
                {k: v for k, v in shard.items() if k not in SHARD_WALL_CLOCK_FIELDS}
                for shard in split["shards"]
            ],
        }
    if "throughput" in kept:
        kept["throughput"] = {
            k: v for k, v in kept["throughput"].items() if k not in WALL_CLOCK_FIELDS
        }
    return kept


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
