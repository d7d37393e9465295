"""The job and drive state machine: tables and small pure functions.

Everything that decides whether a job or drive may move lives here. No I/O, no clock,
no logging: callers pass the facts in and get a verdict out. The same tables are what the
invariant checker replays a status stream against.

Choices where the public sources are silent (see ``docs/lifecycle.md``):

* A cancel accepted in ``Creating`` ends the job at once in ``Completed``: nothing was
  shipped, so there is nothing to copy or return ("a canceled job is moved to the
  Completed state").
* ``Received → Packaging`` skips the copy step when the cancel landed before any drive
  started, or when no drive arrived ("a cancelled job skips the data copy step").
* A cancelled job ends ``Completed`` even if a drive that ran on after the request ended
  with errors; otherwise any drive in ``CompletedMoreInfo`` or ``NeverReceived`` closes it.
* ``Shipping → Closed`` when the package never arrives.
* Delete is allowed in ``Creating`` and ``Completed`` only, as the spec says. ``Closed``
  jobs cannot be deleted by the customer; retention removes them after 90 days.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from worker.model import DriveState, JobState

__all__ = [
    "AFTER_COPY",
    "CANCEL_WINDOWS",
    "DELETABLE",
    "DRIVE_TRANSITIONS",
    "JOB_TRANSITIONS",
    "TERMINAL",
    "UPDATABLE_FIELDS",
    "CancelAnswer",
    "CancelWindow",
    "Command",
    "Verdict",
    "decide",
    "decide_cancel",
    "final_state",
    "is_legal_drive_transition",
    "is_legal_job_transition",
]

J = JobState
D = DriveState

JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    J.CREATING: frozenset({J.SHIPPING, J.COMPLETED}),
    J.SHIPPING: frozenset({J.RECEIVED, J.CLOSED}),
    J.RECEIVED: frozenset({J.TRANSFERRING, J.PACKAGING}),
    J.TRANSFERRING: frozenset({J.PACKAGING}),
    J.PACKAGING: frozenset({J.COMPLETED, J.CLOSED}),
    J.COMPLETED: frozenset(),
    J.CLOSED: frozenset(),
}

DRIVE_TRANSITIONS: Mapping[DriveState, frozenset[DriveState]] = {
    D.SPECIFIED: frozenset({D.RECEIVED, D.NEVER_RECEIVED}),
    D.RECEIVED: frozenset({D.TRANSFERRING, D.SHIPPED_BACK}),
    D.NEVER_RECEIVED: frozenset({D.RECEIVED}),
    D.TRANSFERRING: frozenset({D.COMPLETED, D.COMPLETED_MORE_INFO}),
    D.COMPLETED: frozenset({D.SHIPPED_BACK}),
    D.COMPLETED_MORE_INFO: frozenset({D.SHIPPED_BACK}),
    D.SHIPPED_BACK: frozenset(),
}

#: States a job never leaves (it can only be deleted from them).
TERMINAL: frozenset[JobState] = frozenset({J.COMPLETED, J.CLOSED})

#: States that end the copy step: drives still waiting then never start, and an accepted
#: cancel has taken effect once the job enters one.
AFTER_COPY: frozenset[JobState] = frozenset({J.PACKAGING, *TERMINAL})

#: States in which the customer may delete a job (Jobs_Delete: "Creating or Completed").
DELETABLE: frozenset[JobState] = frozenset({J.CREATING, J.COMPLETED})

#: Fields a PATCH may change, by state. ``state`` and ``cancelRequested`` have rules of
#: their own; ``tags`` may change in any state.
UPDATABLE_FIELDS: Mapping[JobState, frozenset[str]] = {
    J.CREATING: frozenset(
        {
            "returnAddress",
            "returnShipping",
            "deliveryPackage",
            "logLevel",
            "backupDriveManifest",
            "driveList",
        }
    ),
    J.SHIPPING: frozenset(
        {"returnAddress", "returnShipping", "deliveryPackage", "logLevel", "backupDriveManifest"}
    ),
    J.RECEIVED: frozenset({"returnAddress", "returnShipping", "logLevel"}),
    J.TRANSFERRING: frozenset({"returnAddress", "returnShipping", "logLevel"}),
    J.PACKAGING: frozenset(),
    J.COMPLETED: frozenset(),
    J.CLOSED: frozenset(),
}


class CancelWindow(enum.StrEnum):
    """When a cancel request is still honoured: the three documented generations."""

    #: Classic REST docs: "before it is in the Packaging state" (the default).
    BEFORE_PACKAGING = "before-packaging"
    #: Service FAQ: "when its status is Creating or Shipping".
    CREATING_OR_SHIPPING = "creating-or-shipping"
    #: Portal docs: "You can only cancel a job while it's in Creating state".
    CREATING_ONLY = "creating-only"


CANCEL_WINDOWS: Mapping[CancelWindow, frozenset[JobState]] = {
    CancelWindow.BEFORE_PACKAGING: frozenset({J.CREATING, J.SHIPPING, J.RECEIVED, J.TRANSFERRING}),
    CancelWindow.CREATING_OR_SHIPPING: frozenset({J.CREATING, J.SHIPPING}),
    CancelWindow.CREATING_ONLY: frozenset({J.CREATING}),
}


class CancelAnswer(enum.StrEnum):
    """The definite answer every cancel request gets."""

    ACCEPTED = "accepted"
    ALREADY_REQUESTED = "already-requested"
    TOO_LATE = "rejected-too-late"


class Command(enum.StrEnum):
    """Everything that can happen to a job, from the customer or the datacenter."""

    # customer
    SHIP = "ship"
    CANCEL = "cancel"
    DELETE = "delete"
    # datacenter
    RECEIVE = "receive"
    LOSE_PACKAGE = "lose-package"
    START_TRANSFER = "start-transfer"
    FINISH_COPY = "finish-copy"
    SHIP_BACK = "ship-back"
    EXPIRE = "expire"
    RETIRE = "retire"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a command does in a state: allowed or not, the next state, and why not."""

    allowed: bool
    next_state: JobState | None = None
    deletes: bool = False
    reason: str = ""
    cancel: CancelAnswer | None = None


def is_legal_job_transition(old: JobState, new: JobState) -> bool:
    """Whether a job may move from ``old`` to ``new`` (staying put is not a transition)."""
    return new in JOB_TRANSITIONS[old]


def is_legal_drive_transition(old: DriveState, new: DriveState) -> bool:
    """Whether a drive may move from ``old`` to ``new``."""
    return new in DRIVE_TRANSITIONS[old]


def decide_cancel(state: JobState, cancel_requested: bool, window: CancelWindow) -> Verdict:
    """Answer a cancel request: accepted, already requested, or too late naming the state."""
    if cancel_requested:
        return Verdict(True, cancel=CancelAnswer.ALREADY_REQUESTED)
    if state in CANCEL_WINDOWS[window]:
        # Nothing has shipped yet: the job is done at once.
        next_state = J.COMPLETED if state is J.CREATING else None
        return Verdict(True, next_state=next_state, cancel=CancelAnswer.ACCEPTED)
    return Verdict(
        False,
        cancel=CancelAnswer.TOO_LATE,
        reason=f"a job in state {state} can no longer be cancelled (cancel window: {window})",
    )


def final_state(*, cancelled: bool, any_errors: bool) -> JobState:
    """Where a job in Packaging ends once its drives are shipped back."""
    if cancelled:
        return J.COMPLETED
    return J.CLOSED if any_errors else J.COMPLETED


def _refuse(state: JobState, what: str) -> Verdict:
    return Verdict(False, reason=f"cannot {what} a job in state {state}")


def decide(
    state: JobState,
    command: Command,
    window: CancelWindow = CancelWindow.BEFORE_PACKAGING,
    *,
    cancel_requested: bool = False,
    any_errors: bool = False,
) -> Verdict:
    """The verdict for ``command`` on a job in ``state``.

    ``cancel_requested`` and ``any_errors`` are the two facts beyond the state that
    change an answer: a requested cancel stops new transfers and decides the final state.
    """
    match command:
        case Command.CANCEL:
            return decide_cancel(state, cancel_requested, window)
        case Command.SHIP:
            if state is J.SHIPPING:
                return Verdict(True)  # already shipping: tracking details may change
            if state is J.CREATING:
                return Verdict(True, next_state=J.SHIPPING)
            return _refuse(state, "ship")
        case Command.DELETE:
            if state in DELETABLE:
                return Verdict(True, deletes=True)
            return Verdict(
                False, reason=f"only jobs in Creating or Completed can be deleted; it is {state}"
            )
        case Command.RECEIVE:
            if state is J.SHIPPING:
                return Verdict(True, next_state=J.RECEIVED)
            return _refuse(state, "receive")
        case Command.LOSE_PACKAGE:
            if state is J.SHIPPING:
                return Verdict(True, next_state=J.CLOSED)
            return _refuse(state, "close for a lost package")
        case Command.START_TRANSFER:
            if cancel_requested:
                return Verdict(False, reason="cancel requested: no new drive starts")
            if state in (J.RECEIVED, J.TRANSFERRING):
                return Verdict(True, next_state=J.TRANSFERRING)
            return _refuse(state, "start a transfer of")
        case Command.FINISH_COPY:
            if state in (J.RECEIVED, J.TRANSFERRING):
                return Verdict(True, next_state=J.PACKAGING)
            return _refuse(state, "finish copying")
        case Command.SHIP_BACK:
            if state is J.PACKAGING:
                nxt = final_state(cancelled=cancel_requested, any_errors=any_errors)
                return Verdict(True, next_state=nxt)
            return _refuse(state, "ship back")
        case Command.EXPIRE:
            if state is J.CREATING:
                return Verdict(True, deletes=True)
            return _refuse(state, "expire")
        case Command.RETIRE:
            if state in TERMINAL:
                return Verdict(True, deletes=True)
            return _refuse(state, "retire")


def _check_tables() -> None:
    """Every state is reachable from the start and every non-terminal state can move on."""
    reachable = {J.CREATING}
    frontier = [J.CREATING]
    while frontier:
        for nxt in JOB_TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(JobState), f"unreachable job states: {set(JobState) - reachable}"
    for state, targets in JOB_TRANSITIONS.items():
        assert bool(targets) != (state in TERMINAL), f"{state}: terminal iff no way out"
    assert set(DRIVE_TRANSITIONS) == set(DriveState)


_check_tables()
