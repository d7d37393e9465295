"""What became of the demo's story: the figures its summary, table and picture show.

Everything is read back from the run the way a consumer of the status stream would read
it (:class:`~simulator.report.history.History`), plus the answers the scripted requests got.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.demo.story import MAIN, OTHER, StoryOptions
from simulator.report.history import History, Incarnation
from simulator.report.invariants import CheckResult, check_run
from simulator.report.json_report import after_cancel
from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from worker import format_duration

__all__ = ["DemoOutcome", "DriveFate", "at", "outcome_of", "size"]


def at(seconds: float) -> str:
    """A moment of the story: ``"0d 06:00"`` (simulated days and hours since the start)."""
    return format_duration(seconds).strip()[:-3]


def size(n: int) -> str:
    """Bytes, short: ``"1.44 TB"``, ``"330 GB"``."""
    if n >= 10**12:
        return f"{n / 10**12:.2f} TB"
    if n >= 10**9:
        return f"{n / 10**9:.0f} GB"
    return f"{n:,} B"


@dataclass(frozen=True, slots=True)
class DriveFate:
    """One drive of the cancelled job: what it had copied when the cancel came, and after."""

    drive: str
    size: int
    copied: int
    #: Bytes at the accepted cancel (None: no accepted cancel, or the drive was not copying).
    at_cancel: int | None
    finished_after_cancel: bool
    skipped: bool

    @property
    def after_cancel(self) -> int:
        return 0 if self.at_cancel is None else max(0, self.copied - self.at_cancel)


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """The story's figures, for one policy and one cancel moment."""

    options: StoryOptions
    #: Contoso's cancel, Fabrikam's late cancel, Contoso's delete.
    cancel: ActionResult
    late_cancel: ActionResult
    delete: ActionResult
    requests: tuple[ActionResult, ...]
    drives: tuple[DriveFate, ...]
    #: When the accepted cancel was recorded and when it took effect, with the move it rode.
    cancel_recorded: float | None
    took_effect: float | None
    effect: str
    final_state: str
    outcome: str
    cancel_requested: bool
    ended_at: float
    deleted_at: float | None
    deleted_reason: str
    other_final: str
    other_deleted_at: float | None
    invariants: tuple[CheckResult, ...] = field(default=())
    #: The whole stream, read back (the picture draws its bands from it).
    history: History | None = field(default=None, repr=False, compare=False)
    #: The story's two jobs as read back: the cancelled one, then the other customer's.
    lives: tuple[Incarnation, ...] = field(default=(), repr=False, compare=False)

    @property
    def finished_after(self) -> list[str]:
        return [d.drive for d in self.drives if d.finished_after_cancel]

    @property
    def skipped(self) -> list[str]:
        return [d.drive for d in self.drives if d.skipped]

    @property
    def bytes_after(self) -> int:
        return sum(d.after_cancel for d in self.drives)

    @property
    def copied(self) -> int:
        return sum(d.copied for d in self.drives)

    @property
    def drives_copied(self) -> int:
        return sum(1 for d in self.drives if d.copied >= d.size)

    @property
    def ok(self) -> bool:
        """Every invariant held (and so every request got the answer the rules predict)."""
        return all(c.ok for c in self.invariants)


def _life(history: History, job: str) -> Incarnation:
    return next(life for life in history.incarnations if life.job == job)


def _request(run: RunResult, job: str, do: str) -> ActionResult:
    return next(a for a in run.actions if a.job == job and a.do == do)


def _drives(life: Incarnation, sizes: dict[str, int]) -> tuple[DriveFate, ...]:
    cancel = life.cancel
    at_cancel: dict[str, int] = {} if cancel is None else cancel.data.get("bytesAtCancel", {})
    copied, finished = after_cancel(life)
    skipped = {str(e.data["driveId"]) for e in life.events_of("driveSkipped")}
    return tuple(
        DriveFate(
            drive=drive,
            size=total,
            copied=copied.get(drive, 0),
            at_cancel=at_cancel.get(drive),
            finished_after_cancel=drive in finished,
            skipped=drive in skipped,
        )
        for drive, total in sizes.items()
    )


def outcome_of(run: RunResult, options: StoryOptions) -> DemoOutcome:
    """The figures of a finished demo run."""
    history = History(run.history, run.scenario.epoch)
    life, other = _life(history, MAIN), _life(history, OTHER)
    spec = run.scenario.jobs[MAIN]
    sizes = {d.id: spec.plans[d.id].size_bytes for d in spec.drives}
    cancel, effect = life.cancel, life.cancel_effect
    ended = next(e for e in life.events_of("stateChanged") if "outcome" in e.data)
    last = life.snapshots[-1]
    return DemoOutcome(
        options=options,
        cancel=_request(run, MAIN, "cancel"),
        late_cancel=_request(run, OTHER, "cancel"),
        delete=_request(run, MAIN, "delete"),
        requests=tuple(run.actions),
        drives=_drives(life, sizes),
        cancel_recorded=None if cancel is None else cancel.time,
        took_effect=None if effect is None else effect.time,
        effect="" if effect is None else f"{effect.data['from']} → {effect.data['to']}",
        final_state=last.state,
        outcome=str(ended.data["outcome"]),
        cancel_requested=last.cancel_requested,
        ended_at=ended.time,
        deleted_at=None if life.deleted is None else life.deleted.time,
        deleted_reason="" if life.deleted is None else str(life.deleted.data.get("reason")),
        other_final=other.final_state or "",
        other_deleted_at=None if other.deleted is None else other.deleted.time,
        invariants=tuple(check_run(run, history)),
        history=history,
        lives=(life, other),
    )
