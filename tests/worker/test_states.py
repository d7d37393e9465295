"""The pure state machine, checked against tables written out by hand.

The expectations below are the domain rules of DESIGN.md and the reference, spelt out
per (state, command); nothing is derived from the tables in :mod:`worker.states`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from worker.errors import InvalidDefinition
from worker.model import DriveState, JobState
from worker.states import (
    CANCEL_WINDOWS,
    JOB_TRANSITIONS,
    RULES,
    STEPS,
    CancelAnswer,
    CancelWindow,
    Command,
    Step,
    Verdict,
    check_tables,
    copy_step_over,
    decide,
    decide_cancel,
    final_state,
    is_legal_drive_transition,
    is_legal_job_transition,
    outcome,
    restarts_expiry,
    self_deletion,
    step,
)

J = JobState
D = DriveState
C = Command
W = CancelWindow


@dataclass(frozen=True)
class Exp:
    """An expected verdict: allowed, next state, deletes, cancel answer."""

    allowed: bool
    next_state: JobState | None = None
    deletes: bool = False
    cancel: CancelAnswer | None = None


NO = Exp(False)
GONE = Exp(True, deletes=True)


def to(state: JobState) -> Exp:
    return Exp(True, next_state=state)


#: Every non-cancel command in every state, as (cancel not requested, cancel requested),
#: with no drive errors. The cancel window plays no part in these.
EXPECTED: dict[tuple[JobState, Command], tuple[Exp, Exp]] = {
    # Creating
    (J.CREATING, C.SHIP): (to(J.SHIPPING), to(J.SHIPPING)),
    (J.CREATING, C.REPLACE): (to(J.CREATING), to(J.CREATING)),
    (J.CREATING, C.RECEIVE_LATE_DRIVE): (NO, NO),
    (J.CREATING, C.DELETE): (GONE, GONE),
    (J.CREATING, C.RECEIVE): (NO, NO),
    (J.CREATING, C.LOSE_PACKAGE): (NO, NO),
    (J.CREATING, C.START_TRANSFER): (NO, NO),
    (J.CREATING, C.FINISH_COPY): (NO, NO),
    (J.CREATING, C.SHIP_BACK): (NO, NO),
    (J.CREATING, C.EXPIRE): (GONE, GONE),
    (J.CREATING, C.RETIRE): (NO, NO),
    # Shipping
    (J.SHIPPING, C.SHIP): (to(J.SHIPPING), to(J.SHIPPING)),  # new tracking details
    (J.SHIPPING, C.REPLACE): (NO, NO),
    (J.SHIPPING, C.RECEIVE_LATE_DRIVE): (NO, NO),
    (J.SHIPPING, C.DELETE): (NO, NO),
    (J.SHIPPING, C.RECEIVE): (to(J.RECEIVED), to(J.RECEIVED)),
    (J.SHIPPING, C.LOSE_PACKAGE): (to(J.CLOSED), to(J.CLOSED)),
    (J.SHIPPING, C.START_TRANSFER): (NO, NO),
    (J.SHIPPING, C.FINISH_COPY): (NO, NO),
    (J.SHIPPING, C.SHIP_BACK): (NO, NO),
    (J.SHIPPING, C.EXPIRE): (NO, NO),
    (J.SHIPPING, C.RETIRE): (NO, NO),
    # Received
    (J.RECEIVED, C.SHIP): (NO, NO),
    (J.RECEIVED, C.REPLACE): (NO, NO),
    (J.RECEIVED, C.RECEIVE_LATE_DRIVE): (to(J.RECEIVED), to(J.RECEIVED)),
    (J.RECEIVED, C.DELETE): (NO, NO),
    (J.RECEIVED, C.RECEIVE): (NO, NO),
    (J.RECEIVED, C.LOSE_PACKAGE): (NO, NO),
    (J.RECEIVED, C.START_TRANSFER): (to(J.TRANSFERRING), NO),
    (J.RECEIVED, C.FINISH_COPY): (to(J.PACKAGING), to(J.PACKAGING)),
    (J.RECEIVED, C.SHIP_BACK): (NO, NO),
    (J.RECEIVED, C.EXPIRE): (NO, NO),
    (J.RECEIVED, C.RETIRE): (NO, NO),
    # Transferring
    (J.TRANSFERRING, C.SHIP): (NO, NO),
    (J.TRANSFERRING, C.REPLACE): (NO, NO),
    (J.TRANSFERRING, C.RECEIVE_LATE_DRIVE): (to(J.TRANSFERRING), to(J.TRANSFERRING)),
    (J.TRANSFERRING, C.DELETE): (NO, NO),
    (J.TRANSFERRING, C.RECEIVE): (NO, NO),
    (J.TRANSFERRING, C.LOSE_PACKAGE): (NO, NO),
    (J.TRANSFERRING, C.START_TRANSFER): (to(J.TRANSFERRING), NO),
    (J.TRANSFERRING, C.FINISH_COPY): (to(J.PACKAGING), to(J.PACKAGING)),
    (J.TRANSFERRING, C.SHIP_BACK): (NO, NO),
    (J.TRANSFERRING, C.EXPIRE): (NO, NO),
    (J.TRANSFERRING, C.RETIRE): (NO, NO),
    # Packaging
    (J.PACKAGING, C.SHIP): (NO, NO),
    (J.PACKAGING, C.REPLACE): (NO, NO),
    (J.PACKAGING, C.RECEIVE_LATE_DRIVE): (NO, NO),
    (J.PACKAGING, C.DELETE): (NO, NO),
    (J.PACKAGING, C.RECEIVE): (NO, NO),
    (J.PACKAGING, C.LOSE_PACKAGE): (NO, NO),
    (J.PACKAGING, C.START_TRANSFER): (NO, NO),
    (J.PACKAGING, C.FINISH_COPY): (NO, NO),
    (J.PACKAGING, C.SHIP_BACK): (to(J.COMPLETED), to(J.COMPLETED)),
    (J.PACKAGING, C.EXPIRE): (NO, NO),
    (J.PACKAGING, C.RETIRE): (NO, NO),
    # Completed
    (J.COMPLETED, C.SHIP): (NO, NO),
    (J.COMPLETED, C.REPLACE): (NO, NO),
    (J.COMPLETED, C.RECEIVE_LATE_DRIVE): (NO, NO),
    (J.COMPLETED, C.DELETE): (GONE, GONE),
    (J.COMPLETED, C.RECEIVE): (NO, NO),
    (J.COMPLETED, C.LOSE_PACKAGE): (NO, NO),
    (J.COMPLETED, C.START_TRANSFER): (NO, NO),
    (J.COMPLETED, C.FINISH_COPY): (NO, NO),
    (J.COMPLETED, C.SHIP_BACK): (NO, NO),
    (J.COMPLETED, C.EXPIRE): (NO, NO),
    (J.COMPLETED, C.RETIRE): (GONE, GONE),
    # Closed: the customer cannot delete it; retention does
    (J.CLOSED, C.SHIP): (NO, NO),
    (J.CLOSED, C.REPLACE): (NO, NO),
    (J.CLOSED, C.RECEIVE_LATE_DRIVE): (NO, NO),
    (J.CLOSED, C.DELETE): (NO, NO),
    (J.CLOSED, C.RECEIVE): (NO, NO),
    (J.CLOSED, C.LOSE_PACKAGE): (NO, NO),
    (J.CLOSED, C.START_TRANSFER): (NO, NO),
    (J.CLOSED, C.FINISH_COPY): (NO, NO),
    (J.CLOSED, C.SHIP_BACK): (NO, NO),
    (J.CLOSED, C.EXPIRE): (NO, NO),
    (J.CLOSED, C.RETIRE): (GONE, GONE),
}

ACCEPT_DONE = Exp(True, next_state=J.COMPLETED, cancel=CancelAnswer.ACCEPTED)
LATE = Exp(False, cancel=CancelAnswer.TOO_LATE)


def accept(state: JobState) -> Exp:
    """A cancel accepted in ``state``: the job stays there until the cancel takes effect."""
    return Exp(True, next_state=state, cancel=CancelAnswer.ACCEPTED)


def again(state: JobState) -> Exp:
    """A cancel after an accepted one: already requested, and nothing moves."""
    return Exp(True, next_state=state, cancel=CancelAnswer.ALREADY_REQUESTED)


#: A first cancel request, by window and state. A cancel in Creating ends the job at once.
EXPECTED_CANCEL: dict[tuple[CancelWindow, JobState], Exp] = {
    (W.BEFORE_PACKAGING, J.CREATING): ACCEPT_DONE,
    (W.BEFORE_PACKAGING, J.SHIPPING): accept(J.SHIPPING),
    (W.BEFORE_PACKAGING, J.RECEIVED): accept(J.RECEIVED),
    (W.BEFORE_PACKAGING, J.TRANSFERRING): accept(J.TRANSFERRING),
    (W.BEFORE_PACKAGING, J.PACKAGING): LATE,
    (W.BEFORE_PACKAGING, J.COMPLETED): LATE,
    (W.BEFORE_PACKAGING, J.CLOSED): LATE,
    (W.CREATING_OR_SHIPPING, J.CREATING): ACCEPT_DONE,
    (W.CREATING_OR_SHIPPING, J.SHIPPING): accept(J.SHIPPING),
    (W.CREATING_OR_SHIPPING, J.RECEIVED): LATE,
    (W.CREATING_OR_SHIPPING, J.TRANSFERRING): LATE,
    (W.CREATING_OR_SHIPPING, J.PACKAGING): LATE,
    (W.CREATING_OR_SHIPPING, J.COMPLETED): LATE,
    (W.CREATING_OR_SHIPPING, J.CLOSED): LATE,
    (W.CREATING_ONLY, J.CREATING): ACCEPT_DONE,
    (W.CREATING_ONLY, J.SHIPPING): LATE,
    (W.CREATING_ONLY, J.RECEIVED): LATE,
    (W.CREATING_ONLY, J.TRANSFERRING): LATE,
    (W.CREATING_ONLY, J.PACKAGING): LATE,
    (W.CREATING_ONLY, J.COMPLETED): LATE,
    (W.CREATING_ONLY, J.CLOSED): LATE,
}

#: Legal job transitions (staying put is not one).
JOB_NEXT: dict[JobState, set[JobState]] = {
    J.CREATING: {J.SHIPPING, J.COMPLETED},
    J.SHIPPING: {J.RECEIVED, J.CLOSED},
    J.RECEIVED: {J.TRANSFERRING, J.PACKAGING},
    J.TRANSFERRING: {J.PACKAGING},
    J.PACKAGING: {J.COMPLETED, J.CLOSED},
    J.COMPLETED: set(),
    J.CLOSED: set(),
}

#: Legal drive transitions: a skipped drive goes back from Received; a drive that was
#: never received may still turn up.
DRIVE_NEXT: dict[DriveState, set[DriveState]] = {
    D.SPECIFIED: {D.RECEIVED, D.NEVER_RECEIVED},
    D.RECEIVED: {D.TRANSFERRING, D.SHIPPED_BACK},
    D.NEVER_RECEIVED: {D.RECEIVED},
    D.TRANSFERRING: {D.COMPLETED, D.COMPLETED_MORE_INFO},
    D.COMPLETED: {D.SHIPPED_BACK},
    D.COMPLETED_MORE_INFO: {D.SHIPPED_BACK},
    D.SHIPPED_BACK: set(),
}


def _check(verdict: Verdict, exp: Exp) -> None:
    got = Exp(verdict.allowed, verdict.next_state, verdict.deletes, verdict.cancel)
    assert got == exp
    if not verdict.allowed:
        assert verdict.reason, "a refusal says why"


def test_tables_cover_every_pair() -> None:
    """The hand-written tables list every (state, command) and (window, state) pair."""
    non_cancel = [c for c in Command if c is not C.CANCEL]
    assert set(EXPECTED) == set(itertools.product(JobState, non_cancel))
    assert set(EXPECTED_CANCEL) == set(itertools.product(CancelWindow, JobState))


@pytest.mark.parametrize("cancel_requested", [False, True])
@pytest.mark.parametrize("window", list(CancelWindow))
@pytest.mark.parametrize("command", list(Command))
@pytest.mark.parametrize("state", list(JobState))
def test_decide_every_state_command_window(
    state: JobState, command: Command, window: CancelWindow, cancel_requested: bool
) -> None:
    """decide() gives the expected verdict for every state, command, window and cancel flag."""
    if command is C.CANCEL:
        exp = again(state) if cancel_requested else EXPECTED_CANCEL[window, state]
    else:
        exp = EXPECTED[state, command][cancel_requested]
    _check(decide(state, command, window, cancel_requested=cancel_requested), exp)


@pytest.mark.parametrize("cancel_requested", [False, True])
@pytest.mark.parametrize("command", [c for c in Command if c is not C.CANCEL])
@pytest.mark.parametrize("state", list(JobState))
def test_drive_errors_only_change_ship_back_of_an_uncancelled_job(
    state: JobState, command: Command, cancel_requested: bool
) -> None:
    """any_errors turns ship-back of an uncancelled job into Closed and changes nothing else."""
    exp = EXPECTED[state, command][cancel_requested]
    if (state, command, cancel_requested) == (J.PACKAGING, C.SHIP_BACK, False):
        exp = to(J.CLOSED)
    _check(decide(state, command, cancel_requested=cancel_requested, any_errors=True), exp)


def test_decide_defaults_to_the_before_packaging_window() -> None:
    """Without a window argument a cancel in Transferring is accepted and in Packaging refused."""
    assert decide(J.TRANSFERRING, C.CANCEL).cancel is CancelAnswer.ACCEPTED
    assert decide(J.PACKAGING, C.CANCEL).cancel is CancelAnswer.TOO_LATE


@pytest.mark.parametrize("window", list(CancelWindow))
@pytest.mark.parametrize("state", list(JobState))
def test_decide_cancel_first_request(state: JobState, window: CancelWindow) -> None:
    """A first cancel is accepted inside the window and refused as too late outside it."""
    _check(decide_cancel(state, False, window), EXPECTED_CANCEL[window, state])


@pytest.mark.parametrize("window", list(CancelWindow))
@pytest.mark.parametrize("state", list(JobState))
def test_decide_cancel_repeat_is_already_requested(state: JobState, window: CancelWindow) -> None:
    """A cancel after an accepted one is answered already-requested and moves nothing."""
    _check(decide_cancel(state, True, window), again(state))


@pytest.mark.parametrize("window", list(CancelWindow))
@pytest.mark.parametrize("state", list(JobState))
def test_too_late_reason_names_the_state_and_window(state: JobState, window: CancelWindow) -> None:
    """A too-late answer names the state that made it too late and the window in force."""
    verdict = decide_cancel(state, False, window)
    if verdict.cancel is CancelAnswer.TOO_LATE:
        assert str(state) in verdict.reason
        assert str(window) in verdict.reason
    else:
        assert verdict.reason == ""


def test_cancel_answers_spell_the_three_outcomes() -> None:
    """The three cancel answers have the wire names of the contract."""
    assert [str(a) for a in CancelAnswer] == ["accepted", "already-requested", "rejected-too-late"]


@pytest.mark.parametrize(("old", "new"), list(itertools.product(JobState, JobState)))
def test_job_transitions(old: JobState, new: JobState) -> None:
    """Exactly the documented job transitions are legal."""
    assert is_legal_job_transition(old, new) is (new in JOB_NEXT[old])


@pytest.mark.parametrize(("old", "new"), list(itertools.product(DriveState, DriveState)))
def test_drive_transitions(old: DriveState, new: DriveState) -> None:
    """Exactly the documented drive transitions are legal."""
    assert is_legal_drive_transition(old, new) is (new in DRIVE_NEXT[old])


@pytest.mark.parametrize(
    ("cancelled", "any_errors", "expected"),
    [
        (False, False, J.COMPLETED),
        (False, True, J.CLOSED),
        (True, False, J.COMPLETED),
        (True, True, J.COMPLETED),
    ],
)
def test_final_state(cancelled: bool, any_errors: bool, expected: JobState) -> None:
    """Packaging ends Closed only for an uncancelled job with drive errors."""
    assert final_state(cancelled=cancelled, any_errors=any_errors) is expected


#: What the datacenter does with a job in each state.
EXPECTED_STEPS: dict[JobState, Step] = {
    J.CREATING: Step.CUSTOMER,
    J.SHIPPING: Step.ARRIVAL,
    J.RECEIVED: Step.COPY,
    J.TRANSFERRING: Step.COPY,
    J.PACKAGING: Step.RETURN,
    J.COMPLETED: Step.RETENTION,
    J.CLOSED: Step.RETENTION,
}


@pytest.mark.parametrize("state", list(JobState))
def test_every_state_has_its_step(state: JobState) -> None:
    """Each state's datacenter step is the documented one."""
    assert step(state) is EXPECTED_STEPS[state]


def test_a_state_without_a_step_fails_the_tables() -> None:
    """check_tables refuses a step table that leaves a state out, naming the state: a new
    job state cannot be added without saying what the datacenter does with it."""
    steps: dict[JobState, Step] = {s: v for s, v in STEPS.items() if s is not J.PACKAGING}
    with pytest.raises(InvalidDefinition, match="STEPS has no row for Packaging"):
        check_tables(steps=steps)


def test_a_command_along_an_undocumented_transition_fails_the_tables() -> None:
    """A rule that moves a job where the documented transitions do not go is refused."""
    rules = {**RULES, J.SHIPPING: {**RULES[J.SHIPPING], C.RECEIVE: J.PACKAGING}}
    with pytest.raises(InvalidDefinition, match=r"receive in Shipping: Shipping -> Packaging"):
        check_tables(rules=rules)


def test_a_documented_transition_no_command_makes_fails_the_tables() -> None:
    """A documented transition that no rule makes is refused: the two tables agree."""
    transitions = {
        **JOB_TRANSITIONS,
        J.RECEIVED: frozenset({J.TRANSFERRING, J.PACKAGING, J.CLOSED}),
    }
    with pytest.raises(InvalidDefinition, match="transitions no command makes"):
        check_tables(transitions=transitions)


def test_a_window_wider_than_the_rules_fails_the_tables() -> None:
    """A cancel window that accepts a cancel where the rules have none is refused."""
    windows = {**CANCEL_WINDOWS, W.CREATING_ONLY: frozenset({J.CREATING, J.PACKAGING})}
    with pytest.raises(InvalidDefinition, match="window creating-only"):
        check_tables(windows=windows)


def test_the_shipped_tables_agree() -> None:
    """The module's own tables pass the check it runs on import."""
    check_tables()


@pytest.mark.parametrize(
    ("drives", "cancel_requested", "over"),
    [
        ((D.COMPLETED, D.COMPLETED_MORE_INFO, D.NEVER_RECEIVED), False, True),
        ((D.COMPLETED, D.TRANSFERRING), False, False),
        ((D.COMPLETED, D.TRANSFERRING), True, False),  # in flight: it finishes
        ((D.COMPLETED, D.RECEIVED), False, False),  # waiting for a bay
        ((D.COMPLETED, D.RECEIVED), True, True),  # waiting, but cancelled: skipped
        ((D.COMPLETED, D.SPECIFIED), False, False),  # not received yet
        ((), False, True),
    ],
)
def test_copy_step_over(drives: tuple[DriveState, ...], cancel_requested: bool, over: bool) -> None:
    """The copy step ends once nothing copies, nothing is expected, and nothing waits
    unless a cancel means it never starts."""
    assert copy_step_over(drives, cancel_requested=cancel_requested) is over


@pytest.mark.parametrize("cancel_requested", [False, True])
def test_copy_step_waits_for_a_never_received_drive_on_its_way(cancel_requested: bool) -> None:
    """A drive its package came without is NeverReceived; one that is on its way is
    waited for, cancel or not (it must be received to go back); one that is not is not."""
    drives = (D.COMPLETED, D.NEVER_RECEIVED)
    assert not copy_step_over(drives, cancel_requested=cancel_requested, on_their_way=1)
    assert copy_step_over(drives, cancel_requested=cancel_requested, on_their_way=0)


@pytest.mark.parametrize("state", list(JobState))
def test_expiry_and_retention(state: JobState) -> None:
    """Creating jobs expire (and an update restarts the clock); Completed and Closed jobs
    are retired; jobs in the datacenter are neither."""
    expected = {J.CREATING: C.EXPIRE, J.COMPLETED: C.RETIRE, J.CLOSED: C.RETIRE}.get(state)
    assert self_deletion(state) is expected
    assert restarts_expiry(state) is (state is J.CREATING)


@pytest.mark.parametrize(
    ("state", "cancelled", "expected"),
    [
        (J.COMPLETED, False, "succeeded"),
        (J.COMPLETED, True, "cancelled"),
        (J.CLOSED, False, "failed"),
        (J.CLOSED, True, "failed"),  # a cancelled job whose package was lost
    ],
)
def test_outcome(state: JobState, cancelled: bool, expected: str) -> None:
    """Closed is a failure whatever the cancel; Completed is a success or a cancel."""
    assert outcome(state, cancelled=cancelled) == expected
