"""What a scenario is made of, shared by the file reader and the workload: jobs and the
customers' scripted actions.

Both :mod:`simulator.scenario.file` (jobs and actions written by hand) and
:mod:`simulator.scenario.workload` (jobs and actions drawn from a seed) build these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from worker import CancelAnswer, DrivePlan, Duration, JobState, PlanHints, SettingsFile, Size

__all__ = ["EXPECTATIONS", "Action", "ActionKind", "DriveFile", "JobSpec"]

ActionKind = Literal["create", "ship", "cancel", "delete", "get", "keys"]

#: What an action's ``expect`` may name: an answer a run records (a cancel's answer, or
#: ``not-triggered`` for a ``when`` action whose job was deleted first) or the code of an
#: error the service answers (``CancelTooLate`` is recorded as ``rejected-too-late``).
#: ``tests/simulator/scenario/test_file.py`` holds the codes to those the worker raises.
EXPECTATIONS: tuple[str, ...] = (
    "created",
    "replaced",
    "ok",
    *(str(answer) for answer in CancelAnswer),
    "not-triggered",
    "AuthenticationFailed",
    "Conflict",
    "DeleteNotAllowed",
    "DuplicateDriveId",
    "InvalidJobState",
    "InvalidLocation",
    "InvalidReplyTo",
    "InvalidRequestContent",
    "InvalidResourceName",
    "JobNameInUse",
    "MissingShippingInformation",
    "PayloadTooLarge",
    "ResourceNotFound",
    "ServiceUnavailable",
    "TooManyDrives",
    "UnknownOperation",
)


class DriveFile(SettingsFile):
    """A drive of an import job, as the file writes it; with a ``size`` its fate is pinned."""

    id: str
    size: Size | None = None
    fails_at: float | None = None
    missing: bool = False
    speed: float = 1.0
    late_by: Duration = "0s"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job of the scenario: what its customer sends, and what it pins down for the planner."""

    name: str
    type: Literal["Import", "Export"]
    location: str
    drives: Sequence[DriveFile]
    plans: dict[str, DrivePlan]
    export_size: int | None
    export_drives: int
    carrier_delay: float | None
    return_delay: float | None
    package_lost: bool | None
    log_level: str

    def hints(self) -> PlanHints:
        """What this job pins down for the planner."""
        return PlanHints(
            drives=self.plans,
            carrier_delay=self.carrier_delay,
            return_delay=self.return_delay,
            package_lost=self.package_lost,
            export_bytes=self.export_size,
        )


@dataclass(frozen=True, slots=True)
class Action:
    """A scripted customer request: at a simulated time, or when a job enters a state."""

    index: int
    job: str
    do: ActionKind
    at: float | None
    when: JobState | None
    after: float
    expect: str | None

    @property
    def key(self) -> str:
        return f"action/{self.index:05d}"

    def describe(self) -> str:
        if self.when is not None:
            delay = f" + {self.after:g}s" if self.after else ""
            return f"{self.do} {self.job} when {self.when}{delay}"
        return f"{self.do} {self.job} at {self.at:g}s"
