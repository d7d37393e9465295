"""The job and drive state machine: every rule, as tables, and the verdicts read from them.

Everything that decides whether a job or a drive may move, what the datacenter does with
a job in each state and what a customer may still ask lives in this module, and only here
(h11's rule for its own state machine). No I/O, no clock, no logging: callers pass the
facts in and get a verdict out. The same tables are what the invariant checker replays a
status stream against. The tables are checked against each other when the module is
imported (:func:`check_tables`), so a state added to :class:`~worker.model.JobState`
without its rules fails at once.

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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from worker.errors import InvalidDefinition
from worker.model import DriveState, JobState

__all__ = [
    "ACTIVE",
    "AFTER_COPY",
    "ARRIVED",
    "CANCEL_WINDOWS",
    "COPYING_DRIVES",
    "DELETABLE",
    "DRIVE_TRANSITIONS",
    "EXPECTED_DRIVES",
    "FAILED_DRIVES",
    "GONE",
    "INITIAL",
    "JOB_TRANSITIONS",
    "REFUSED_AFTER_CANCEL",
    "RETURNED_DRIVES",
    "RULES",
    "STEPS",
    "TERMINAL",
    "UPDATABLE_FIELDS",
    "WAITING_DRIVES",
    "CancelAnswer",
    "CancelWindow",
    "Command",
    "Outcome",
    "Step",
    "Verdict",
    "allowed_in",
    "check_tables",
    "copy_step_over",
    "decide",
    "decide_cancel",
    "final_state",
    "is_legal_drive_transition",
    "is_legal_job_transition",
    "outcome",
    "restarts_expiry",
    "self_deletion",
    "step",
]

J = JobState
D = DriveState


class Command(enum.StrEnum):
    """Everything that can happen to a job, from the customer or the datacenter."""

    # the customer
    REPLACE = "replace"
    SHIP = "ship"
    CANCEL = "cancel"
    DELETE = "delete"
    # the datacenter
    RECEIVE = "receive"
    LOSE_PACKAGE = "lose-package"
    RECEIVE_LATE_DRIVE = "receive-late-drive"
    START_TRANSFER = "start-transfer"
    FINISH_COPY = "finish-copy"
    SHIP_BACK = "ship-back"
    EXPIRE = "expire"
    RETIRE = "retire"


class Step(enum.Enum):
    """What the datacenter does with a job in a state."""

    #: Nothing: the job waits for its customer (to ship it, or until it expires).
    CUSTOMER = "customer"
    #: The package is with the carrier: it arrives, or is lost, when it is due.
    ARRIVAL = "arrival"
    #: The drives are received, wait for a bay and are copied.
    COPY = "copy"
    #: The drives are packed and delivered back when they are due.
    RETURN = "return"
    #: Nothing: the job has ended and waits for retention to delete it.
    RETENTION = "retention"


class _Gone(enum.Enum):
    GONE = "gone"


#: Where a deleting command leads: the job is removed, with its retained status.
GONE: Literal[_Gone.GONE] = _Gone.GONE

C = Command
S = Step

# -- The tables: check them against Microsoft's state table (docs/lifecycle.md) ------------

#: The state Put Job creates a job in.
INITIAL: JobState = J.CREATING

#: The documented job transitions (staying put is not a transition).
JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    J.CREATING: frozenset({J.SHIPPING, J.COMPLETED}),
    J.SHIPPING: frozenset({J.RECEIVED, J.CLOSED}),
    J.RECEIVED: frozenset({J.TRANSFERRING, J.PACKAGING}),
    J.TRANSFERRING: frozenset({J.PACKAGING}),
    J.PACKAGING: frozenset({J.COMPLETED, J.CLOSED}),
    J.COMPLETED: frozenset(),
    J.CLOSED: frozenset(),
}

#: What the datacenter does with a job in each state.
STEPS: Mapping[JobState, Step] = {
    J.CREATING: S.CUSTOMER,
    J.SHIPPING: S.ARRIVAL,
    J.RECEIVED: S.COPY,
    J.TRANSFERRING: S.COPY,
    J.PACKAGING: S.RETURN,
    J.COMPLETED: S.RETENTION,
    J.CLOSED: S.RETENTION,
}

#: What each command does in each state: the state the job is in afterwards (its own
#: state if it stays), or :data:`GONE`. A command missing from a state's row is refused.
#: Ship-back ends ``Closed`` instead when a drive failed (:func:`final_state`); a cancel
#: is refused outside the policy's window (:data:`CANCEL_WINDOWS`).
RULES: Mapping[JobState, Mapping[Command, JobState | Literal[_Gone.GONE]]] = {
    J.CREATING: {
        C.REPLACE: J.CREATING,
        C.SHIP: J.SHIPPING,
        C.CANCEL: J.COMPLETED,  # nothing shipped: done at once
        C.DELETE: GONE,
        C.EXPIRE: GONE,
    },
    J.SHIPPING: {
        C.SHIP: J.SHIPPING,  # new tracking details
        C.CANCEL: J.SHIPPING,
        C.RECEIVE: J.RECEIVED,
        C.LOSE_PACKAGE: J.CLOSED,
    },
    J.RECEIVED: {
        C.CANCEL: J.RECEIVED,
        C.RECEIVE_LATE_DRIVE: J.RECEIVED,
        C.START_TRANSFER: J.TRANSFERRING,
        C.FINISH_COPY: J.PACKAGING,
    },
    J.TRANSFERRING: {
        C.CANCEL: J.TRANSFERRING,
        C.RECEIVE_LATE_DRIVE: J.TRANSFERRING,
        C.START_TRANSFER: J.TRANSFERRING,
        C.FINISH_COPY: J.PACKAGING,
    },
    J.PACKAGING: {C.SHIP_BACK: J.COMPLETED},
    J.COMPLETED: {C.DELETE: GONE, C.RETIRE: GONE},
    J.CLOSED: {C.RETIRE: GONE},
}

#: What an accepted cancel refuses from then on: best effort, so nothing new starts.
REFUSED_AFTER_CANCEL: frozenset[Command] = frozenset({C.START_TRANSFER})


class CancelWindow(enum.StrEnum):
    """When a cancel request is still honoured: the three documented generations."""

    #: Classic REST docs: "before it is in the Packaging state" (the default).
    BEFORE_PACKAGING = "before-packaging"
    #: Service FAQ: "when its status is Creating or Shipping".
    CREATING_OR_SHIPPING = "creating-or-shipping"
    #: Portal docs: "You can only cancel a job while it's in Creating state".
    CREATING_ONLY = "creating-only"


#: The states each window accepts a cancel in.
CANCEL_WINDOWS: Mapping[CancelWindow, frozenset[JobState]] = {
    CancelWindow.BEFORE_PACKAGING: frozenset({J.CREATING, J.SHIPPING, J.RECEIVED, J.TRANSFERRING}),
    CancelWindow.CREATING_OR_SHIPPING: frozenset({J.CREATING, J.SHIPPING}),
    CancelWindow.CREATING_ONLY: frozenset({J.CREATING}),
}

#: Fields a PATCH may change, by state. ``state`` and ``cancelRequested`` have rules of
#: their own (ship and cancel); ``tags`` may change in any state.
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

#: The documented drive transitions: a skipped drive goes back from Received; a drive
#: that was never received may still turn up.
DRIVE_TRANSITIONS: Mapping[DriveState, frozenset[DriveState]] = {
    D.SPECIFIED: frozenset({D.RECEIVED, D.NEVER_RECEIVED}),
    D.RECEIVED: frozenset({D.TRANSFERRING, D.SHIPPED_BACK}),
    D.NEVER_RECEIVED: frozenset({D.RECEIVED}),
    D.TRANSFERRING: frozenset({D.COMPLETED, D.COMPLETED_MORE_INFO}),
    D.COMPLETED: frozenset({D.SHIPPED_BACK}),
    D.COMPLETED_MORE_INFO: frozenset({D.SHIPPED_BACK}),
    D.SHIPPED_BACK: frozenset(),
}

#: Drives in a bay: a cancel lets them finish.
COPYING_DRIVES: frozenset[DriveState] = frozenset({D.TRANSFERRING})
#: Drives received and waiting for a bay: after a cancel they never start.
WAITING_DRIVES: frozenset[DriveState] = frozenset({D.RECEIVED})
#: Drives not received yet, before their package is opened. Once it is, a drive it came
#: without is NeverReceived, whether or not it turns up later (``changes.late_drives``).
EXPECTED_DRIVES: frozenset[DriveState] = frozenset({D.SPECIFIED})
#: Drives the datacenter holds at the end, and ships back.
RETURNED_DRIVES: frozenset[DriveState] = frozenset({D.RECEIVED, D.COMPLETED, D.COMPLETED_MORE_INFO})
#: Drives that close an uncancelled job instead of completing it.
FAILED_DRIVES: frozenset[DriveState] = frozenset({D.COMPLETED_MORE_INFO, D.NEVER_RECEIVED})

# -- Read from the tables --------------------------------------------------------------

#: States a job never leaves (it can only be deleted from them).
TERMINAL: frozenset[JobState] = frozenset(s for s, step in STEPS.items() if step is S.RETENTION)

#: States past the copy step: drives still waiting then never start, and an accepted
#: cancel has taken effect once the job enters one.
AFTER_COPY: frozenset[JobState] = frozenset(
    s for s, step in STEPS.items() if step in (S.RETURN, S.RETENTION)
)

#: States the datacenter works in: from the package on its way in to the drives on their way
#: back.
ACTIVE: frozenset[JobState] = frozenset(
    s for s, step in STEPS.items() if step in (S.ARRIVAL, S.COPY, S.RETURN)
)

#: States past the package's arrival (or the end of waiting for it).
ARRIVED: frozenset[JobState] = frozenset(
    s for s, step in STEPS.items() if step in (S.COPY, S.RETURN, S.RETENTION)
)


def allowed_in(command: Command) -> frozenset[JobState]:
    """The states in which ``command`` applies to a job."""
    return frozenset(s for s, row in RULES.items() if command in row)


#: States in which the customer may delete a job (Jobs_Delete: "Creating or Completed").
DELETABLE: frozenset[JobState] = allowed_in(C.DELETE)

Outcome = Literal["succeeded", "cancelled", "failed"]


class CancelAnswer(enum.StrEnum):
    """The definite answer every cancel request gets."""

    ACCEPTED = "accepted"
    ALREADY_REQUESTED = "already-requested"
    TOO_LATE = "rejected-too-late"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a command does in a state: allowed or not, the state the job is in afterwards
    (its own if it stays; None if refused or deleted), and why not."""

    allowed: bool
    next_state: JobState | None = None
    deletes: bool = False
    reason: str = ""
    cancel: CancelAnswer | None = None


def step(state: JobState) -> Step:
    """What the datacenter does with a job in ``state``."""
    return STEPS[state]


def is_legal_job_transition(old: JobState, new: JobState) -> bool:
    """Whether a job may move from ``old`` to ``new`` (staying put is not a transition)."""
    return new in JOB_TRANSITIONS[old]


def is_legal_drive_transition(old: DriveState, new: DriveState) -> bool:
    """Whether a drive may move from ``old`` to ``new``."""
    return new in DRIVE_TRANSITIONS[old]


def decide_cancel(state: JobState, cancel_requested: bool, window: CancelWindow) -> Verdict:
    """Answer a cancel request: accepted, already requested, or too late naming the state."""
    if cancel_requested:
        return Verdict(True, next_state=state, cancel=CancelAnswer.ALREADY_REQUESTED)
    if state in CANCEL_WINDOWS[window]:
        next_state = RULES[state][C.CANCEL]
        assert next_state is not GONE
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


def outcome(state: JobState, *, cancelled: bool) -> Outcome:
    """How a job that ended in ``state`` went. Closed wins: a cancelled job whose package
    was lost still ended with errors."""
    if state is J.CLOSED:
        return "failed"
    return "cancelled" if cancelled else "succeeded"


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
    if command is C.CANCEL:
        return decide_cancel(state, cancel_requested, window)
    next_state = RULES[state].get(command)
    if next_state is None:
        if command is C.DELETE:
            return Verdict(
                False, reason=f"only jobs in Creating or Completed can be deleted; it is {state}"
            )
        return Verdict(False, reason=f"cannot {_ACTIONS[command]} a job in state {state}")
    if cancel_requested and command in REFUSED_AFTER_CANCEL:
        return Verdict(False, reason="cancel requested: nothing new starts")
    if next_state is GONE:
        return Verdict(True, deletes=True)
    if command is C.SHIP_BACK:
        next_state = final_state(cancelled=cancel_requested, any_errors=any_errors)
    return Verdict(True, next_state=next_state)


#: How a refusal names each command.
_ACTIONS: Mapping[Command, str] = {
    C.REPLACE: "replace",
    C.SHIP: "ship",
    C.CANCEL: "cancel",
    C.DELETE: "delete",
    C.RECEIVE: "receive",
    C.LOSE_PACKAGE: "close for a lost package",
    C.RECEIVE_LATE_DRIVE: "receive a late drive of",
    C.START_TRANSFER: "start a transfer of",
    C.FINISH_COPY: "finish copying",
    C.SHIP_BACK: "ship back",
    C.EXPIRE: "expire",
    C.RETIRE: "retire",
}


def copy_step_over(
    drives: Iterable[DriveState], *, cancel_requested: bool, on_their_way: int = 0
) -> bool:
    """Whether the copy step is over: no drive copies or is still expected, none of the
    NeverReceived drives is on its way (``on_their_way``, drives that will arrive after
    their package), and none waits for a bay, unless a cancel means those never start. A
    late drive is waited for even after a cancel: it must be received to be shipped back."""
    states = set(drives)
    if on_their_way or states & (COPYING_DRIVES | EXPECTED_DRIVES):
        return False
    return cancel_requested or not states & WAITING_DRIVES


def restarts_expiry(state: JobState) -> bool:
    """Whether an accepted Update restarts the job's expiry, whatever it changes (nothing
    at all, too): in the states where a job expires. Creating: "Calling Update while
    Creating keeps it Creating and resets the 2-week timer" (Microsoft's docs, D-STATE in
    docs/lifecycle.md)."""
    return C.EXPIRE in RULES[state]


def self_deletion(state: JobState) -> Literal[Command.EXPIRE, Command.RETIRE] | None:
    """How the service deletes a job in ``state`` by itself: it expires (counted from its
    last update) or is retired (counted from its end); None while it is in the datacenter."""
    row = RULES[state]
    if C.EXPIRE in row:
        return C.EXPIRE
    if C.RETIRE in row:
        return C.RETIRE
    return None


def check_tables(
    *,
    transitions: Mapping[JobState, Collection[JobState]] = JOB_TRANSITIONS,
    steps: Mapping[JobState, Step] = STEPS,
    rules: Mapping[JobState, Mapping[Command, JobState | Literal[_Gone.GONE]]] = RULES,
    windows: Mapping[CancelWindow, Collection[JobState]] = CANCEL_WINDOWS,
    updatable: Mapping[JobState, Collection[str]] = UPDATABLE_FIELDS,
    drives: Mapping[DriveState, Collection[DriveState]] = DRIVE_TRANSITIONS,
) -> None:
    """Raise :class:`InvalidDefinition` unless the tables agree: every state has its row in
    each table, every state is reachable, a state is terminal iff it has no way out, every
    command leads along a documented transition, every documented transition is made by a
    command, and every cancel window lies inside the states a cancel is possible in."""

    def require(condition: bool, problem: str) -> None:
        if not condition:
            raise InvalidDefinition(problem)

    everyone = set(JobState)
    for name, table in (
        ("JOB_TRANSITIONS", transitions),
        ("STEPS", steps),
        ("RULES", rules),
        ("UPDATABLE_FIELDS", updatable),
    ):
        missing = everyone - set(table)
        require(not missing, f"{name} has no row for {', '.join(sorted(missing))}")
    require(set(drives) == set(DriveState), "DRIVE_TRANSITIONS has no row for every drive state")
    reachable, frontier = {INITIAL}, [INITIAL]
    while frontier:
        for nxt in transitions[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    require(reachable == everyone, f"unreachable job states: {everyone - reachable}")
    made: set[tuple[JobState, JobState]] = set()
    for state, row in rules.items():
        terminal = steps[state] is S.RETENTION
        require(terminal != bool(transitions[state]), f"{state}: terminal iff no way out")
        for command, target in row.items():
            if target is GONE:
                continue
            ends = {J.COMPLETED, J.CLOSED} if command is C.SHIP_BACK else {target}
            for end in ends - {state}:
                require(end in transitions[state], f"{command} in {state}: {state} -> {end}")
                made.add((state, end))
    documented = {(old, new) for old, targets in transitions.items() for new in targets}
    require(made == documented, f"transitions no command makes: {sorted(documented - made)}")
    cancellable = {s for s, row in rules.items() if C.CANCEL in row}
    for window, accepted in windows.items():
        require(set(accepted) <= cancellable, f"window {window} accepts a cancel RULES refuses")


check_tables()
