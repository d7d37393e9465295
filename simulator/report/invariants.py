"""What must hold after every run, checked from the status stream and the final store.

Each check reads the run's :class:`~simulator.report.history.History` (what a consumer saw),
the jobs left in the store, and the scripted actions' answers; none trusts the pipeline
that produced them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.report.history import History
from simulator.report.metrics import Span, drive_stages, job_locations, peak_of
from simulator.run.result import RunResult
from worker import TOPIC_PREFIX, DriveState, JobState, to_builtins
from worker.states import (
    CANCEL_WINDOWS,
    DELETABLE,
    TERMINAL,
    Command,
    allowed_in,
    is_legal_drive_transition,
    is_legal_job_transition,
)

__all__ = [
    "CHECKS",
    "STREAM_CHECKS",
    "CheckResult",
    "check_observed",
    "check_owners",
    "check_run",
    "check_stream",
]


@dataclass(slots=True)
class CheckResult:
    name: str
    description: str
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


Check = Callable[[RunResult, History], list[str]]
StreamCheck = Callable[[History], list[str]]
CHECKS: dict[str, tuple[str, Check]] = {}
#: The checks that need nothing but the status stream (any observer can run them).
STREAM_CHECKS: dict[str, tuple[str, StreamCheck]] = {}


def check(name: str, description: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = (description, fn)
        return fn

    return register


def stream_check(name: str, description: str) -> Callable[[StreamCheck], StreamCheck]:
    def register(fn: StreamCheck) -> StreamCheck:
        STREAM_CHECKS[name] = (description, fn)
        CHECKS[name] = (description, lambda run, history: fn(history))
        return fn

    return register


@stream_check("legal-transitions", "jobs and drives move only along the state machine's edges")
def _legal_transitions(history: History) -> list[str]:
    found = []
    for life in history.incarnations:
        last: str | None = None
        for snap in life.snapshots:
            if last is None:
                if snap.state != JobState.CREATING:
                    found.append(f"{life.label}: first state {snap.state} (seq {snap.seq})")
            elif snap.state != last and not is_legal_job_transition(
                JobState(last), JobState(snap.state)
            ):
                found.append(f"{life.label}: {last} -> {snap.state} (seq {snap.seq})")
            last = snap.state
        drives: dict[str, str] = {}
        for drive in life.drives:
            before = drives.get(drive.drive)
            if before is None:
                if drive.state not in (DriveState.SPECIFIED, DriveState.RECEIVED):
                    found.append(f"{life.label} drive {drive.drive}: first state {drive.state}")
            elif drive.state != before and not is_legal_drive_transition(
                DriveState(before), DriveState(drive.state)
            ):
                found.append(
                    f"{life.label} drive {drive.drive}: {before} -> {drive.state} (seq {drive.seq})"
                )
            drives[drive.drive] = drive.state
    return found


@stream_check("seq-without-gaps", "each job's seq rises by exactly one per change")
def _seq(history: History) -> list[str]:
    found = []
    for job, seqs in history.seqs.items():
        for a, b in itertools.pairwise(seqs):
            if b != a + 1:
                found.append(f"{job}: seq {a} followed by {b}")
    return found


@stream_check("one-terminal-state", "each job enters a terminal state at most once")
def _one_terminal(history: History) -> list[str]:
    found = []
    for life in history.incarnations:
        previous: list[str | None] = [None, *(s.state for s in life.snapshots)]
        entered = [
            snap.seq
            for before, snap in zip(previous, life.snapshots, strict=False)
            if snap.state in TERMINAL and before != snap.state
        ]
        if len(entered) > 1:
            found.append(f"{life.label}: entered a terminal state {len(entered)} times {entered}")
    return found


@check("terminal-or-deleted", "every job ends Completed or Closed, or is deleted")
def _terminal(run: RunResult, history: History) -> list[str]:
    found = []
    for life in history.incarnations:
        if not life.cleared and life.final_state not in TERMINAL:
            found.append(f"{life.label}: still {life.final_state} when the run ended")
    if not run.finished:
        found.append(
            f"the run reached its time limit ({run.scenario.until:g} s) before every job was done"
        )
    return found


@stream_check("progress-monotonic", "bytes copied and percent complete never go back")
def _progress(history: History) -> list[str]:
    found = []
    for life in history.incarnations:
        percent = 0
        for snap in life.snapshots:
            if snap.percent < percent:
                found.append(f"{life.label}: percentComplete {percent} -> {snap.percent}")
            percent = snap.percent
        copied: dict[str, int] = {}
        for drive in life.drives:
            if drive.bytes < copied.get(drive.drive, 0):
                found.append(
                    f"{life.label} drive {drive.drive}: bytes {copied[drive.drive]} -> "
                    f"{drive.bytes} (seq {drive.seq})"
                )
            copied[drive.drive] = max(drive.bytes, copied.get(drive.drive, 0))
    return found


@stream_check("no-start-after-cancel", "after an accepted cancel no drive starts transferring")
def _no_start(history: History) -> list[str]:
    found = []
    for life in history.incarnations:
        cancel = life.cancel
        if cancel is None:
            continue
        for event in life.events_of("driveStateChanged"):
            if event.seq > cancel.seq and event.data.get("to") == DriveState.TRANSFERRING:
                found.append(
                    f"{life.label}: drive {event.data['driveId']} started (seq {event.seq}) "
                    f"after the cancel (seq {cancel.seq})"
                )
    return found


@check("bays-never-exceeded", "no more drives copying at a location than it has bays")
def _bays(run: RunResult, history: History) -> list[str]:
    bays = run.scenario.datacenter.locations
    by_location: dict[str, list[Span]] = {}
    for span in drive_stages(history, job_locations(run)).transfers:
        by_location.setdefault(span.location, []).append(span)
    return [
        f"{location}: {peak} drives copying at once in {bays.get(location, 0)} bays"
        for location, spans in sorted(by_location.items())
        if (peak := peak_of(spans)) > bays.get(location, 0)
    ]


@check("deletes-allowed-and-final", "deletes only from allowed states; deleted jobs are gone")
def _deletes(run: RunResult, history: History) -> list[str]:
    found = []
    allowed = {
        "customer": DELETABLE,
        "retention": allowed_in(Command.RETIRE),
        "expired": allowed_in(Command.EXPIRE),
    }
    for life in history.incarnations:
        deleted = life.deleted
        if deleted is None:
            continue
        reason, state = deleted.data.get("reason"), deleted.data.get("state")
        if state not in allowed.get(str(reason), set()):
            found.append(f"{life.label}: deleted ({reason}) in state {state}")
        if not life.cleared:
            found.append(f"{life.label}: deleted but its retained state was not cleared")
    lives = {life.job: life for life in history.incarnations}  # the latest of each name
    for job, life in lives.items():
        if life.cleared and job in run.jobs:
            found.append(f"{job}: deleted but still in the store")
    for job, answer in run.missing_after_delete.items():
        if answer != "ResourceNotFound" and lives[job].cleared:
            found.append(f"{job}: get after delete answered {answer}")
    return found


@check("retention-window", "deletion by retention or expiry within one sweep of its due time")
def _retention(run: RunResult, history: History) -> list[str]:
    policy = run.scenario.policy
    found = []
    for life in history.incarnations:
        deleted = life.deleted
        if deleted is None or deleted.data.get("reason") == "customer":
            continue
        if deleted.data.get("reason") == "retention":
            ended = [e for e in life.events_of("stateChanged") if e.data.get("to") in TERMINAL]
            start, period = ended[-1].time, policy.retention
        else:
            touched = [
                e for e in life.events if e.type in ("jobCreated", "jobReplaced", "jobUpdated")
            ]
            start, period = touched[-1].time, policy.creating_expiry
        due = start + period
        late = deleted.time - due
        allowed = policy.sweep_interval + run.slack + _worker_down(run, due, deleted.time)
        if not -1e-6 <= late <= allowed + 1e-6:
            found.append(
                f"{life.label}: deleted {late:+.0f} s from its due time "
                f"(allowed 0 to {allowed:g} s)"
            )
    return found


def _worker_down(run: RunResult, start: float, end: float) -> float:
    """Simulated seconds within [start, end] that a killed worker (or its database) was
    down."""
    down = 0.0
    for record in run.faults:
        if record.fault.spec.target in ("worker", "database") and record.struck is not None:
            healed = end if record.healed is None else record.healed
            down += max(0.0, min(end, healed) - max(start, record.struck))
    return down


@check("cancel-window-respected", "cancels accepted inside the window, refused outside it")
def _cancel_window(run: RunResult, history: History) -> list[str]:
    window = CANCEL_WINDOWS[run.scenario.policy.cancel_window]
    found = []
    for action in run.actions:
        if action.do != "cancel" or action.state is None:
            continue
        inside = JobState(action.state) in window
        if action.outcome == "accepted" and not inside:
            found.append(f"{action.job}: cancel accepted in {action.state}, outside the window")
        elif action.outcome == "rejected-too-late" and inside:
            found.append(f"{action.job}: cancel refused as too late in {action.state}")
    return found


@check("retained-equals-store", "the retained snapshots at the end are the store's jobs")
def _retained(run: RunResult, history: History) -> list[str]:
    found = []
    states = {t: p for t, p in run.retained.items() if t.endswith("/state") and "/drives/" not in t}
    for name, record in run.jobs.items():
        payload = states.pop(f"{TOPIC_PREFIX}/jobs/{name}/state", None)
        if payload is None:
            found.append(f"{name}: in the store but no retained snapshot")
            continue
        snapshot = json.loads(payload)
        if snapshot.get("seq") != record.sim.seq:
            found.append(f"{name}: retained seq {snapshot.get('seq')}, store seq {record.sim.seq}")
        for extra in ("seq", "epoch", "simTime", "outcome"):
            snapshot.pop(extra, None)
        if snapshot != to_builtins(record.job):
            found.append(f"{name}: the retained snapshot differs from the store")
    found += [f"{topic}: retained for a job not in the store" for topic in sorted(states)]
    return found


@check("no-secret-published", "no BitLocker key in any status message")
def _secrets(run: RunResult, history: History) -> list[str]:
    keys = {k.encode() for k in run.secrets if k}
    found = []
    for message in run.history:
        # A key is a token: cut the JSON at its delimiters (and a URL's) and look each piece
        # up, instead of searching every payload for every key.
        if not keys.isdisjoint(_TOKENS.split(message.payload)):
            found.append(f"a BitLocker key appears in {message.topic} (seq {message.seq})")
    return found


_TOKENS = re.compile(rb'[\s"{}\[\],:/?&=\\]+')


@check("scripted-expectations", "every scripted action ran and got the answer expected")
def _expectations(run: RunResult, history: History) -> list[str]:
    found = [
        f"action {a.index} ({a.do} {a.job}): expected {a.expect}, got {a.outcome} ({a.detail})"
        for a in run.actions
        if not a.ok
    ]
    done = {a.index for a in run.actions}
    found += [
        f"action {a.index} ({a.describe()}) never ran"
        for a in run.scenario.actions
        if a.index not in done
    ]
    return found


def check_stream(history: History) -> list[CheckResult]:
    """The stream-only invariants: what an independent observer can check by itself."""
    return [CheckResult(name, desc, fn(history)) for name, (desc, fn) in STREAM_CHECKS.items()]


def check_run(run: RunResult, history: History | None = None) -> list[CheckResult]:
    """Every invariant, in a fixed order."""
    history = history or History(run.history, run.scenario.epoch)
    return [
        CheckResult(name, description, fn(run, history))
        for name, (description, fn) in CHECKS.items()
    ]


def check_observed(stored: History, observed: History) -> list[CheckResult]:
    """What an independent observer received: the stream checks on its own copy, and every
    change the store committed seen by it (no job lost on the way to a consumer)."""
    results = [
        CheckResult(f"observed/{c.name}", f"(observer) {c.description}", c.violations)
        for c in check_stream(observed)
    ]
    missing = []
    for job, seqs in stored.seqs.items():
        unseen = sorted(set(seqs) - set(observed.seqs.get(job, ())))
        if unseen:
            shown = ", ".join(map(str, unseen[:5])) + (" ..." if len(unseen) > 5 else "")
            missing.append(f"{job}: the observer never received seq {shown}")
    results.append(
        CheckResult(
            "observed/every-change",
            "(observer) every change the store committed reached the observer",
            missing,
        )
    )
    return results


def check_owners(owners: list[tuple[int, str, str | None, int | None]]) -> CheckResult:
    """Several workers on one store: every datacenter step of a location was committed by
    the holder of its lease then, one holder at a time. ``owners`` is who committed each
    outbox entry, ``(id, location, worker, lease epoch)`` in commit order: per location,
    the epochs never go back, and one epoch is one worker's."""
    found = []
    newest: dict[str, tuple[int, str | None]] = {}
    for entry, location, worker, epoch in owners:
        if epoch is None:
            continue  # a customer's request: judged against the job, fenced by no lease
        seen = newest.get(location)
        if seen is not None and epoch < seen[0]:
            found.append(
                f"{location}: entry {entry} committed by {worker} under lease epoch {epoch} "
                f"after epoch {seen[0]} ({seen[1]}) had committed"
            )
            continue
        if seen is not None and epoch == seen[0] and worker != seen[1]:
            found.append(f"{location}: lease epoch {epoch} used by {seen[1]} and {worker}")
        newest[location] = (epoch, worker)
    return CheckResult(
        "one-holder-per-location",
        "each location's steps were committed by one lease holder at a time",
        found,
    )
