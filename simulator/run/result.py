"""What a run produced: the status stream, the store at the end, every answer and what
became of each fault. The in-process runner and a live run both return one; the
invariants, the reports and the demo read it."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.faults.plan import FaultRecord
from simulator.run.answers import ActionResult
from simulator.run.split import ShardRun, Split
from simulator.scenario.file import Scenario
from worker import JobRecord, StatusMessage

__all__ = ["SCHEDULING_SLACK", "RunResult"]

#: Wall-clock seconds a timer of a scaled-real-time run may fire late without blame.
SCHEDULING_SLACK = 0.05


@dataclass(slots=True, repr=False)
class RunResult:
    scenario: Scenario
    seed: int
    clock_kind: str
    speed: float | None
    history: list[StatusMessage]
    jobs: dict[str, JobRecord]
    retained: dict[str, bytes]
    actions: list[ActionResult]
    secrets: set[str]
    sim_seconds: float
    wall_seconds: float
    finished: bool
    starts: int
    missing_after_delete: dict[str, str] = field(default_factory=dict)
    #: What became of each planned fault.
    faults: list[FaultRecord] = field(default_factory=list)
    #: Status messages an independent observer received (None: no observer in this run).
    observed: int | None = None
    #: Simulated seconds a scheduled step may run late: none in virtual time; in scaled
    #: real time, what :data:`SCHEDULING_SLACK` of wall-clock delay amounts to.
    slack: float = 0.0
    #: How the run was split between processes (None: not said, a run in one process).
    split: Split | None = None
    #: What each process of a sharded run did (empty: the run was not split).
    shards: list[ShardRun] = field(default_factory=list)

    def __repr__(self) -> str:
        # Counts, not contents (see Scenario.__repr__).
        return (
            f"RunResult(scenario={self.scenario.name!r}, seed={self.seed}, "
            f"clock_kind={self.clock_kind!r}, sim_seconds={self.sim_seconds}, "
            f"finished={self.finished}, starts={self.starts}, jobs={len(self.jobs)}, "
            f"actions={len(self.actions)}, history={len(self.history)})"
        )
