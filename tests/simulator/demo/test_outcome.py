"""What became of the demo's story: each cancel window and each cancel moment give the
outcome the policy table predicts, and the figures agree with the JSON report's."""

from __future__ import annotations

import pytest

from simulator.demo.command import play_virtual
from simulator.demo.outcome import DemoOutcome
from simulator.demo.story import CANCEL_STATES, MAIN, OTHER, StoryOptions
from simulator.report.json_report import cancel_figures
from simulator.run.result import RunResult
from worker.model import JobState
from worker.states import CANCEL_WINDOWS, CancelWindow

DAY = 86_400.0


def test_the_default_story_cancels_mid_transfer(default: tuple[RunResult, DemoOutcome]) -> None:
    """Cancel accepted in Transferring: the drives copying finish (bytes after the request
    counted), the others are skipped; Fabrikam's cancel in Packaging is CancelTooLate;
    the delete in Packaging is DeleteNotAllowed; the job ends Completed with
    cancelRequested true and is deleted 90 days later."""
    result, outcome = default
    assert outcome.cancel.outcome == "accepted"
    assert outcome.cancel.state == "Transferring"
    in_flight = {d.drive for d in outcome.drives if d.at_cancel is not None}
    assert in_flight
    assert set(outcome.finished_after) == in_flight
    assert set(outcome.skipped) == {d.drive for d in outcome.drives} - in_flight
    assert all(d.copied == d.size for d in outcome.drives if d.drive in in_flight)
    assert all(d.copied == 0 for d in outcome.drives if d.skipped)
    assert outcome.bytes_after > 0
    assert outcome.history is not None
    figures = cancel_figures(result, outcome.history)
    assert figures["bytesAfterCancel"] == outcome.bytes_after
    assert figures["drivesSkipped"] == len(outcome.skipped)
    assert figures["drivesFinishedAfterCancel"] == len(outcome.finished_after)

    assert outcome.cancel_recorded is not None
    assert outcome.took_effect is not None
    assert outcome.took_effect > outcome.cancel_recorded
    assert outcome.effect == "Transferring → Packaging"

    late = outcome.late_cancel
    assert (late.job, late.state, late.outcome) == (OTHER, "Packaging", "rejected-too-late")
    assert "can no longer be cancelled" in late.detail
    delete = outcome.delete
    assert (delete.job, delete.state, delete.outcome) == (MAIN, "Packaging", "DeleteNotAllowed")

    assert (outcome.final_state, outcome.cancel_requested) == ("Completed", True)
    assert outcome.outcome == "cancelled"
    assert outcome.deleted_at is not None
    assert outcome.deleted_reason == "retention"
    sweep = result.scenario.policy.sweep_interval
    assert 90 * DAY <= outcome.deleted_at - outcome.ended_at <= 90 * DAY + sweep
    assert outcome.other_final == "Completed"
    assert outcome.other_deleted_at is not None
    assert outcome.ok, [c for c in outcome.invariants if not c.ok]
    assert result.starts == 2  # the fast-forward resumed the store


@pytest.mark.parametrize("cancel_at", CANCEL_STATES, ids=str)
@pytest.mark.parametrize("policy", list(CancelWindow), ids=str)
def test_cancel_at_each_state_follows_the_policy(policy: CancelWindow, cancel_at: JobState) -> None:
    """Accepted exactly when the window holds the state; what runs on depends on the state."""
    options = StoryOptions(policy, cancel_at)
    outcome = play_virtual(options)
    accepted = cancel_at in CANCEL_WINDOWS[policy]
    assert outcome.cancel.state == str(cancel_at)
    assert outcome.cancel.outcome == ("accepted" if accepted else "rejected-too-late")
    assert outcome.late_cancel.outcome == "rejected-too-late"
    assert outcome.final_state == "Completed"
    assert outcome.cancel_requested is accepted
    assert outcome.outcome == ("cancelled" if accepted else "succeeded")
    assert outcome.deleted_at is not None
    assert outcome.ok, [c for c in outcome.invariants if not c.ok]
    drives = {d.drive for d in outcome.drives}
    if not accepted:
        assert outcome.took_effect is None
        assert not outcome.skipped
        assert outcome.drives_copied == len(drives)
        assert outcome.delete.outcome == "DeleteNotAllowed"
    elif cancel_at is JobState.CREATING:
        assert outcome.effect == "Creating → Completed"
        assert outcome.ended_at == outcome.cancel.at
        assert outcome.copied == 0
        ship = next(a for a in outcome.requests if a.job == MAIN and a.do == "ship")
        assert ship.outcome == "InvalidJobState"
        assert outcome.delete.outcome == "not-triggered"
    elif cancel_at in (JobState.SHIPPING, JobState.RECEIVED):
        assert outcome.effect == "Received → Packaging"
        assert set(outcome.skipped) == drives
        assert outcome.copied == 0
        assert outcome.delete.outcome == "DeleteNotAllowed"
    else:
        assert outcome.finished_after
        assert outcome.skipped
        assert outcome.bytes_after > 0
        assert outcome.delete.outcome == "DeleteNotAllowed"
