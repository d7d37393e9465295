"""The teaching demo's story, as a scenario: one import job cancelled part-way, in a small
datacenter it shares with another customer's job.

``contoso-import`` (five drives) arrives while both bays copy ``fabrikam-backup`` (two
drives), so it waits in ``Received`` before its first drives start. Contoso asks to cancel
in a chosen state; Fabrikam asks to cancel once its job is in ``Packaging`` (too late under
every policy); Contoso tries to delete its job while it is in ``Packaging`` (not allowed: a
cancelled job is not a deleted one). Both jobs end, are kept 90 days, then deleted.

The datacenter is compressed so the copy step fills most of a one-minute demo: the carrier
and the return trip take three hours each (real ones take days). The rules are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulator.scenario.file import Scenario, parse_scenario
from worker import JobState
from worker.states import CANCEL_WINDOWS, CancelWindow

__all__ = [
    "CANCEL_AFTER",
    "CANCEL_STATES",
    "CARRIER",
    "DEFAULT_SPEED",
    "MAIN",
    "OTHER",
    "StoryOptions",
    "demo_scenario",
]

MAIN = "contoso-import"
OTHER = "fabrikam-backup"
#: Simulated seconds a second of the real-time demo: the story lasts about a minute.
DEFAULT_SPEED = 800.0
#: The states a cancel may be asked in, and how long after entering each it is asked.
CANCEL_AFTER: dict[JobState, str] = {
    JobState.CREATING: "15m",
    JobState.SHIPPING: "1h",
    JobState.RECEIVED: "30m",
    JobState.TRANSFERRING: "1h",
    JobState.PACKAGING: "30m",
}
CANCEL_STATES = tuple(CANCEL_AFTER)
#: Each drive copies in 2 to 5 hours at 100 MB/s a bay.
MAIN_DRIVES = (
    ("9CA995B1", "1.8TB"),
    ("9CA995B2", "1.08TB"),
    ("9CA995B3", "1.44TB"),
    ("9CA995B4", "1.08TB"),
    ("9CA995B5", "0.72TB"),
)
OTHER_DRIVES = (("WD0001", "0.72TB"), ("WD0002", "0.72TB"))
#: The carrier's and the return trip's duration in the compressed datacenter.
CARRIER = "3h"


@dataclass(frozen=True, slots=True)
class StoryOptions:
    """What a teacher can change: the cancel window and the state the cancel is asked in."""

    policy: CancelWindow = CancelWindow.BEFORE_PACKAGING
    cancel_at: JobState = JobState.TRANSFERRING

    @property
    def accepted(self) -> bool:
        """Whether the policy's window holds the state the cancel is asked in."""
        return self.cancel_at in CANCEL_WINDOWS[self.policy]

    @property
    def ends_in_creating(self) -> bool:
        """An accepted cancel in Creating ends the job at once: it never ships."""
        return self.accepted and self.cancel_at is JobState.CREATING


def _action(job: str, do: str, expect: str, **timing: str) -> dict[str, Any]:
    return {"job": job, "do": do, "expect": expect, **timing}


def demo_scenario(options: StoryOptions) -> Scenario:
    """The story under ``options``: the same seed, jobs and script otherwise.

    Every request carries the answer the rules predict, so the run's
    ``scripted-expectations`` invariant checks the story against the policy table.
    """
    cancel_at = options.cancel_at
    early = options.ends_in_creating
    raw: dict[str, Any] = {
        "name": "demo",
        "description": "Best-effort cancel: a cancel asked while drives copy, a late cancel, "
        "a delete in the wrong state, 90 days of retention.",
        "seed": 5,
        "epoch": datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        "until": "120d",
        "live_speed": DEFAULT_SPEED,
        "policy": {"cancel_window": str(options.policy), "retention": "90d"},
        "datacenter": {
            "locations": {"West US": 2},
            "throughput_mb_s": 100,
            "checkpoint_interval": "5m",
            "carrier_delay": CARRIER,
            "return_delay": CARRIER,
        },
        "jobs": [
            {"name": MAIN, "drives": [{"id": i, "size": s} for i, s in MAIN_DRIVES]},
            {"name": OTHER, "drives": [{"id": i, "size": s} for i, s in OTHER_DRIVES]},
        ],
        "actions": [
            _action(OTHER, "create", "created", at="0h"),
            _action(MAIN, "create", "created", at="0h"),
            _action(OTHER, "ship", "ok", at="0h"),
            # A job cancelled in Creating is Completed: there is nothing left to ship.
            _action(MAIN, "ship", "InvalidJobState" if early else "ok", at="30m"),
            _action(
                MAIN,
                "cancel",
                "accepted" if options.accepted else "rejected-too-late",
                when=str(cancel_at),
                after=CANCEL_AFTER[cancel_at],
            ),
            _action(OTHER, "cancel", "rejected-too-late", when="Packaging", after="90m"),
            _action(
                MAIN,
                "delete",
                "not-triggered" if early else "DeleteNotAllowed",
                when="Packaging",
                after="1h",
            ),
        ],
    }
    return parse_scenario(raw, "drivesim demo")
