"""The report's timeline: one lane per job life with its states along simulated time (and,
for small runs, one sub-lane per drive), cancel requests, deletions and faults. Big runs
show a capped selection of lanes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.report.history import History, Incarnation
from simulator.report.html.axis import (
    DAY,
    LABEL,
    LABEL_ROWS,
    RIGHT,
    WIDTH,
    Scale,
    duration,
    fault_marks,
    moment,
)
from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from simulator.report.metrics import DriveStages, time_span
from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from worker import DriveState, JobState
from worker.states import TERMINAL

__all__ = [
    "DRIVE_STATES",
    "FIRST_LANES",
    "JOB_STATES",
    "Lanes",
    "active_part",
    "copy_step",
    "draw_timeline",
    "drive_bands",
    "job_bands",
    "legend",
    "select_lanes",
    "window",
]

#: Above this many job lives the timeline shows a selection.
LANE_LIMIT = 200
#: In a selection: the first lives by creation; the rest of the limit goes to lives
#: with a cancel request or an invariant violation.
FIRST_LANES = 120
#: Up to this many job lives the timeline has a sub-lane per drive, and a zoom on the copy step.
DRIVE_LANES_UP_TO = 40

#: The states in the legend, in the order a job or a drive passes them (each has a colour in
#: :mod:`~simulator.report.html.style`).
JOB_STATES = tuple(str(state) for state in JobState)
DRIVE_STATES = tuple(str(state) for state in DriveState)

AXIS = 34.0
JOB_H, DRIVE_H, GAP = 14.0, 11.0, 4.0

# -- bands ---------------------------------------------------------------------------------


def job_bands(life: Incarnation, end: float) -> list[tuple[str, float, float]]:
    """The job's states as (state, from, to), consecutive snapshots of a state merged."""
    bands: list[tuple[str, float, float]] = []
    stop = life.deleted.time if life.deleted else end
    for snap in life.snapshots:
        if bands and bands[-1][0] == snap.state:
            continue
        if bands:
            bands[-1] = (bands[-1][0], bands[-1][1], snap.time)
        bands.append((snap.state, snap.time, stop))
    return bands


def drive_bands(life: Incarnation, end: float) -> dict[str, list[tuple[str, float, float]]]:
    """Each drive's states as (state, from, to), timed by the snapshot of the same change."""
    times = {snap.seq: snap.time for snap in life.snapshots}
    stop = life.deleted.time if life.deleted else end
    drives: dict[str, list[tuple[str, float, float]]] = {}
    for snap in life.drives:
        when = times.get(snap.seq)
        if when is None:
            continue
        bands = drives.setdefault(snap.drive, [])
        if bands and bands[-1][0] == snap.state:
            continue
        if bands:
            bands[-1] = (bands[-1][0], bands[-1][1], when)
        bands.append((snap.state, when, stop))
    return drives


def _cls(prefix: str, state: str, known: Sequence[str]) -> str:
    return f"{prefix}-{state if state in known else 'other'}"


# -- lanes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lanes:
    """The job lives the timeline shows, how many it leaves out, and whether drives get lanes."""

    lives: list[Incarnation]
    left_out: int
    drives: bool


def _violating_labels(report: dict[str, Any]) -> set[str]:
    labels = set()
    for check in report.get("invariants", []):
        for violation in check.get("violations", []):
            head = str(violation).split(":", 1)[0].split(" drive ", 1)[0]
            labels.add(head)
    return labels


def select_lanes(history: History, report: dict[str, Any], run: RunResult) -> Lanes:
    """Every life of a small run; of a big one, the first by creation, then those with a
    cancel or a violation, up to :data:`LANE_LIMIT`."""
    lives = sorted(
        history.incarnations,
        key=lambda life: (life.snapshots[0].time if life.snapshots else math.inf, life.label),
    )
    if len(lives) <= LANE_LIMIT:
        return Lanes(lives, 0, len(lives) <= DRIVE_LANES_UP_TO)
    bad = _violating_labels(report)
    cancelled = {a.job for a in run.actions if a.do == "cancel"}
    chosen = set(range(FIRST_LANES))
    for i, life in enumerate(lives):
        if len(chosen) >= LANE_LIMIT:
            break
        if life.label in bad or life.job in bad or life.cancel or life.job in cancelled:
            chosen.add(i)
    return Lanes([lives[i] for i in sorted(chosen)], len(lives) - len(chosen), False)


def _actions_by_life(
    lives: Sequence[Incarnation], actions: Iterable[ActionResult], end: float
) -> dict[int, list[ActionResult]]:
    """Cancel answers other than "accepted", by the index of the life they were asked of."""
    spans: dict[str, list[tuple[float, float, int]]] = {}
    for i, life in enumerate(lives):
        start = life.snapshots[0].time if life.snapshots else 0.0
        spans.setdefault(life.job, []).append(
            (start, life.deleted.time if life.deleted else end, i)
        )
    found: dict[int, list[ActionResult]] = {}
    for action in actions:
        if action.do != "cancel" or action.outcome == "accepted" or action.job not in spans:
            continue
        candidates = spans[action.job]
        index = next((i for a, b, i in candidates if a <= action.at <= b), candidates[-1][2])
        found.setdefault(index, []).append(action)
    return found


def _diamond(x: float, y: float, cls: str, title: str, r: float = 5.0) -> str:
    return (
        f'<path class="{cls}" d="M{_f(x)} {_f(y - r)}l{_f(r)} {_f(r)}-{_f(r)} {_f(r)}'
        f'-{_f(r)}-{_f(r)}z"><title>{_e(title)}</title></path>'
    )


def _rect(scale: Scale, cls: str, a: float, b: float, y: float, h: float, title: str) -> str:
    if b < scale.t0 or a > scale.t1:
        return ""
    x0, x1 = scale.x(a), scale.x(b)
    width = max(x1 - x0, 0.8)
    return (
        f'<rect class="{cls}" x="{_f(x0)}" y="{_f(y)}" width="{_f(width)}" height="{_f(h)}">'
        f"<title>{_e(title)}</title></rect>"
    )


def _band_title(name: str, state: str, a: float, b: float) -> str:
    return f"{name}: {state} · {moment(a)} → {moment(b)} ({duration(b - a)})"


def _axis(scale: Scale, top: float, bottom: float) -> list[str]:
    parts = []
    for t, label in scale.ticks():
        x = _f(scale.x(t))
        parts.append(f'<line class="gl" x1="{x}" x2="{x}" y1="{_f(top)}" y2="{_f(bottom)}"/>')
        parts.append(f'<text class="axis" x="{x}" y="{_f(top - 6)}" text-anchor="middle">')
        parts.append(f"{_e(label)}</text>")
    return parts


def draw_timeline(
    lanes: Lanes,
    scale: Scale,
    run: RunResult,
    faults: Sequence[dict[str, Any]],
    end: float,
    lane_class: str,
) -> str:
    """The SVG of job lanes (and drive sub-lanes) over ``scale``'s window."""
    rows: list[str] = []
    # Fault labels get rows of their own above the time axis's labels, never on them.
    axis = AXIS + (LABEL_ROWS * 14.0 if any(f.get("at") is not None for f in faults) else 0.0)
    y = axis + 4
    answers = _actions_by_life(lanes.lives, run.actions, end)
    for i, life in enumerate(lanes.lives):
        top = y
        parts = [f'<g class="{lane_class}" data-job="{_e(life.label)}">']
        outcome = next(
            (e.data["outcome"] for e in reversed(life.events) if "outcome" in e.data), None
        )
        name = life.label if len(life.label) <= 22 else life.label[:21] + "…"
        final = f"{life.final_state}" + (f", {outcome}" if outcome else "")
        parts.append(
            f'<text x="{_f(LABEL - 8)}" y="{_f(y + JOB_H - 3)}" text-anchor="end">{_e(name)}'
            f"<title>{_e(life.label)} · final state {_e(final)}</title></text>"
        )
        for state, a, b in job_bands(life, end):
            title = _band_title(life.label, state, a, b)
            parts.append(_rect(scale, _cls("s", state, JOB_STATES), a, b, y, JOB_H, title))
        mid = y + JOB_H / 2
        y += JOB_H
        if lanes.drives:
            skipped = {str(e.data.get("driveId")): e.time for e in life.events_of("driveSkipped")}
            for drive, bands in drive_bands(life, end).items():
                y += 2
                parts.append(
                    f'<text class="axis" x="{_f(LABEL - 8)}" y="{_f(y + DRIVE_H - 0.5)}" '
                    f'text-anchor="end">{_e(drive)}</text>'
                )
                for state, a, b in bands:
                    title = _band_title(f"drive {drive}", state, a, b)
                    cls = _cls("d", state, DRIVE_STATES)
                    parts.append(_rect(scale, cls, a, b, y, DRIVE_H, title))
                if drive in skipped and scale.t0 <= skipped[drive] <= scale.t1:
                    parts.append(
                        f'<circle class="mk-skip" cx="{_f(scale.x(skipped[drive]))}" '
                        f'cy="{_f(y + DRIVE_H / 2)}" r="3"><title>drive {_e(drive)} skipped '
                        f"(cancel requested before it started) · "
                        f"{moment(skipped[drive])}</title></circle>"
                    )
                y += DRIVE_H
        if life.deleted is not None:
            when, data = life.deleted.time, life.deleted.data
            title = f"deleted ({data.get('reason')}, was {data.get('state')}) · {moment(when)}"
            if when <= scale.t1:
                parts.append(_rect(scale, "mk-del", when, when, top - 1, y - top + 2, title))
            else:
                parts.append(
                    f'<text class="axis" x="{_f(WIDTH - RIGHT + 4)}" y="{_f(mid + 3.5)}" '
                    f'font-size="11">→ del. {round(when / DAY)}d<title>{_e(title)}</title></text>'
                )
        for cancel in life.events_of("cancelRequested"):
            title = f"cancel accepted in {cancel.data.get('state')} · {moment(cancel.time)}"
            if scale.t0 <= cancel.time <= scale.t1:
                parts.append(_diamond(scale.x(cancel.time), mid, "mk-cancel", title))
        for action in answers.get(i, []):
            cls = {"rejected-too-late": "mk-late", "already-requested": "mk-again"}.get(
                action.outcome, "mk-other"
            )
            title = f"cancel {action.outcome} in {action.state} · {moment(action.at)}"
            if scale.t0 <= action.at <= scale.t1:
                parts.append(_diamond(scale.x(action.at), mid, cls, title))
        parts.append("</g>")
        rows.append("".join(parts))
        y += GAP
    bottom = y + 2
    head = [
        f'<svg viewBox="0 0 {_f(WIDTH)} {_f(bottom + 18)}" role="img" '
        f'aria-label="timeline of jobs over simulated time">',
        *_axis(scale, axis, bottom),
        *fault_marks(scale, faults, 2.0, bottom, labels=True),
        *(
            f'<text class="axis" x="{_f(scale.x(t))}" y="{_f(bottom + 13)}" '
            f'text-anchor="middle">{_e(label)}</text>'
            for t, label in scale.ticks()
        ),
    ]
    return "\n".join([*head, *rows, "</svg>"])


def legend(drives: bool) -> str:
    """What the timeline's colours and marks mean (drive states only when drives have lanes)."""

    def swatch(cls: str, label: str) -> str:
        return f'<span><span class="sw {cls}"></span>{_e(label)}</span>'

    items = [swatch(f"s-{s}", s) for s in JOB_STATES]
    if drives:
        items += [swatch(f"d-{s}", f"drive {s}") for s in DRIVE_STATES]
        items.append(swatch("mk-skip", "drive skipped"))
    items += [
        swatch("mk-cancel", "cancel accepted"),
        swatch("mk-again", "cancel already requested"),
        swatch("mk-late", "cancel too late"),
        swatch("mk-del", "deleted"),
        swatch("fault", "fault (struck → healed)"),
    ]
    return f'<div class="legend">{"".join(items)}</div>'


# -- the window ------------------------------------------------------------------------------


def window(
    history: History, run: RunResult, faults: Sequence[dict[str, Any]]
) -> tuple[float, float]:
    """The timeline's window: from the first event to the last one that is not a retention
    deletion (those come months later and would squeeze everything else)."""
    start, end = time_span(history)
    last = start
    for life in history.incarnations:
        for event in life.events:
            if not (event.type == "jobDeleted" and event.data.get("reason") == "retention"):
                last = max(last, event.time)
    for fault in faults:
        for key in ("at", "until"):
            if fault.get(key) is not None:
                last = max(last, float(fault[key]))
    answered = (a.at for a in run.actions if a.outcome != "not-triggered")
    last = max([last, *(at for at in answered if math.isfinite(at))])
    if last < end:
        last = min(end, last + 0.03 * (last - start))
    return start, max(last, start + 3600.0)


def copy_step(stages: DriveStages, window: tuple[float, float]) -> tuple[float, float] | None:
    """The copy step of a small run, if it is a small part of the timeline's window."""
    spans = stages.waits + stages.transfers
    if not spans:
        return None
    a = min(s.start for s in spans)
    b = max(s.start if s.end is None else s.end for s in spans)
    if b - a > 0.4 * (window[1] - window[0]):
        return None
    pad = max(0.05 * (b - a), 600.0)
    return a - pad, b + pad


def active_part(
    lives: Sequence[Incarnation], window: tuple[float, float]
) -> tuple[float, float, int] | None:
    """Where most of the lanes shown are at work, if that is a small part of the window.

    A job's lane is mostly a long ``Completed`` band waiting for retention: a load's
    timeline spent its width on those, with the states that matter crowded into its first
    days. This is the span from the first lane's start to the moment 80 % of the lanes
    have ended (entered ``Completed`` or ``Closed``), with the number of lanes that ended
    within it; None when it is 40 % of the window or more (the window reads as it is).
    """
    starts, ends = [], []
    for life in lives:
        if not life.snapshots:
            continue
        starts.append(life.snapshots[0].time)
        ended = next((s.time for s in life.snapshots if s.state in TERMINAL), None)
        ends.append(window[1] if ended is None else ended)
    if len(ends) < 5:
        return None
    ends.sort()
    a, b = min(starts), ends[math.ceil(0.8 * len(ends)) - 1]
    if b - a >= 0.4 * (window[1] - window[0]) or b <= a:
        return None
    pad = 0.04 * (b - a)
    within = sum(1 for e in ends if e <= b)
    return max(window[0], a - pad), b + pad, within
