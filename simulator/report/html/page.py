"""A run's report as one self-contained HTML page: figures, a timeline and plots.

Inline CSS and SVG only: no script, no external resource, so the file opens offline,
prints, and can be kept as a CI artifact. The timeline shows one lane per job life with
its states along simulated time (and, for small runs, one sub-lane per drive), cancel
requests, deletions and faults; the plots show the bay queue, busy bays, the message rate
and the jobs in the datacenter. Big runs show a capped set of lanes and say how many were
left out. :func:`screenshot` renders a page with headless Chromium.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.report.history import History, Incarnation
from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from simulator.report.metrics import (
    DriveStages,
    Series,
    drive_stages,
    job_locations,
    series,
    time_span,
)
from simulator.run.customer import ActionResult
from simulator.run.runner import RunResult
from worker.clock import format_duration
from worker.errors import ChromiumMissing

__all__ = [
    "CSS",
    "chromium",
    "drive_bands",
    "dump_dom",
    "job_bands",
    "render_html",
    "screenshot",
    "write_html",
]

#: Above this many job lives the timeline shows a selection.
LANE_LIMIT = 200
#: In a selection: the first lives by creation; the rest of the limit goes to lives
#: with a cancel request or an invariant violation.
FIRST_LANES = 120
#: Up to this many job lives the timeline has a sub-lane per drive, and a zoom on the copy step.
DRIVE_LANES_UP_TO = 40
BUCKETS = 200

JOB_STATES = (
    "Creating",
    "Shipping",
    "Received",
    "Transferring",
    "Packaging",
    "Completed",
    "Closed",
)
DRIVE_STATES = (
    "Specified",
    "Received",
    "NeverReceived",
    "Transferring",
    "Completed",
    "CompletedMoreInfo",
    "ShippedBack",
)
LOCATION_COLOURS = ("#0e7490", "#7c3aed", "#c2410c", "#15803d", "#be185d", "#475569")

# Layout of every SVG, in user units: a label column, the time axis, a right margin.
WIDTH, LABEL, RIGHT = 1240.0, 150.0, 60.0
AXIS = 34.0
JOB_H, DRIVE_H, GAP = 14.0, 9.0, 4.0
PLOT_H = 110.0
DAY = 86_400.0

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bad:#b91c1c;--good:#15803d}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:#f8fafc}
main{max-width:1320px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 8px}
.sub{color:var(--muted);margin:0 0 12px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;color:#fff}
.ok{background:var(--good)}.bad{background:var(--bad)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;
margin:14px 0;break-inside:avoid}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:14px;
margin:14px 0}
.grid section{margin:0}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td.n,th.n{text-align:right}
.violations{border-color:#fecaca;background:#fef2f2}.violations li,.red{color:var(--bad)}
.note{color:var(--muted);font-size:12.5px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12.5px;margin:4px 0 8px}
.sw{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
svg{display:block;width:100%;height:auto;font-size:11px}
svg text{fill:#374151}svg .axis{fill:var(--muted)}svg .gl{stroke:#eef0f3}
.s-Creating{fill:#cbd5e1;background:#cbd5e1}.s-Shipping{fill:#93c5fd;background:#93c5fd}
.s-Received{fill:#fcd34d;background:#fcd34d}.s-Transferring{fill:#06b6d4;background:#06b6d4}
.s-Packaging{fill:#c084fc;background:#c084fc}.s-Completed{fill:#86efac;background:#86efac}
.s-Closed{fill:#fca5a5;background:#fca5a5}.s-other{fill:#e5e7eb;background:#e5e7eb}
.d-Specified{fill:#e2e8f0;background:#e2e8f0}.d-Received{fill:#fbbf24;background:#fbbf24}
.d-NeverReceived{fill:#6b7280;background:#6b7280}
.d-Transferring{fill:#0891b2;background:#0891b2}.d-Completed{fill:#22c55e;background:#22c55e}
.d-CompletedMoreInfo{fill:#f97316;background:#f97316}
.d-ShippedBack{fill:#bbf7d0;background:#bbf7d0}.d-other{fill:#e5e7eb;background:#e5e7eb}
.mk-cancel{fill:#1e3a8a;stroke:#fff;background:#1e3a8a}
.mk-again{fill:#fff;stroke:#1e3a8a;stroke-width:1.5;background:#fff;border:1.5px solid #1e3a8a}
.mk-late{fill:#dc2626;stroke:#fff;background:#dc2626}
.mk-other{fill:#9ca3af;stroke:#fff;background:#9ca3af}
.mk-del{fill:#111827;background:#111827}.mk-skip{fill:#92400e;background:#92400e}
.fault{fill:#ef4444;fill-opacity:.12;background:#fee2e2}
.fault-line{stroke:#dc2626;stroke-dasharray:3 2}.fault-label{fill:#b91c1c;font-weight:600}
.area{fill-opacity:.18}.line{fill:none;stroke-width:1.6}.cap{stroke-dasharray:5 3;fill:none}
@media print{body{background:#fff;font-size:11px}main{padding:0;max-width:none}
section{border-color:#ccc}}
@page{size:A4 landscape;margin:10mm}
"""


def _when(seconds: float) -> str:
    """A moment in simulated time since the epoch: ``"3d 04:05:06"``."""
    return format_duration(seconds).strip()


def _duration(seconds: float | None) -> str:
    """A length of simulated time, short: ``"42 s"``, ``"1 h 06 m"``, ``"3 d 04 h"``."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02} s"
    if s < DAY:
        return f"{s // 3600} h {s % 3600 // 60:02} m"
    return f"{s // 86400} d {s % 86400 // 3600:02} h"


def _bytes(n: int) -> str:
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


@dataclass(frozen=True, slots=True)
class _Scale:
    """Simulated seconds ``[t0, t1]`` onto the x range of the plot area."""

    t0: float
    t1: float

    def x(self, t: float) -> float:
        t = min(max(t, self.t0), self.t1)
        return LABEL + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - LABEL - RIGHT)

    def ticks(self) -> list[tuple[float, str]]:
        steps = (60, 300, 600, 1800, 3600, 7200, 10800, 21600, 43200)
        days = (1, 2, 5, 7, 10, 14, 30, 60, 90, 180, 365, 730)
        length = self.t1 - self.t0
        step = next(
            (s for s in (*steps, *(d * DAY for d in days)) if length / s <= 10), length / 10
        )
        first = math.ceil(self.t0 / step) * step
        found: list[tuple[float, str]] = []
        t = first
        while t <= self.t1 + 1e-6:
            if step >= DAY or t % DAY == 0:
                label = f"{round(t / DAY)}d"
            else:
                label = _when(t)[:-3] if not found else _when(t)[-8:-3]
            found.append((t, label))
            t += step
        return found


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
class _Lanes:
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


def _select(history: History, report: dict[str, Any], run: RunResult) -> _Lanes:
    lives = sorted(
        history.incarnations,
        key=lambda life: (life.snapshots[0].time if life.snapshots else math.inf, life.label),
    )
    if len(lives) <= LANE_LIMIT:
        return _Lanes(lives, 0, len(lives) <= DRIVE_LANES_UP_TO)
    bad = _violating_labels(report)
    cancelled = {a.job for a in run.actions if a.do == "cancel"}
    chosen = set(range(FIRST_LANES))
    for i, life in enumerate(lives):
        if len(chosen) >= LANE_LIMIT:
            break
        if life.label in bad or life.job in bad or life.cancel or life.job in cancelled:
            chosen.add(i)
    return _Lanes([lives[i] for i in sorted(chosen)], len(lives) - len(chosen), False)


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


def _rect(scale: _Scale, cls: str, a: float, b: float, y: float, h: float, title: str) -> str:
    if b < scale.t0 or a > scale.t1:
        return ""
    x0, x1 = scale.x(a), scale.x(b)
    width = max(x1 - x0, 0.8)
    return (
        f'<rect class="{cls}" x="{_f(x0)}" y="{_f(y)}" width="{_f(width)}" height="{_f(h)}">'
        f"<title>{_e(title)}</title></rect>"
    )


def _band_title(name: str, state: str, a: float, b: float) -> str:
    return f"{name}: {state} · {_when(a)} → {_when(b)} ({_duration(b - a)})"


def _axis(scale: _Scale, top: float, bottom: float) -> list[str]:
    parts = []
    for t, label in scale.ticks():
        x = _f(scale.x(t))
        parts.append(f'<line class="gl" x1="{x}" x2="{x}" y1="{_f(top)}" y2="{_f(bottom)}"/>')
        parts.append(f'<text class="axis" x="{x}" y="{_f(top - 6)}" text-anchor="middle">')
        parts.append(f"{_e(label)}</text>")
    return parts


def _fault_marks(
    scale: _Scale, faults: Sequence[dict[str, Any]], top: float, bottom: float, labels: bool
) -> list[str]:
    parts = []
    rows = [-1e9, -1e9]  # where the last label of each row ends: labels never overlap
    for fault in faults:
        at = fault.get("at")
        if at is None or at > scale.t1:
            continue
        until = fault.get("until")
        end = at if until is None else until
        title = f"fault {fault['kind']}: {fault['description']} · {_when(at)}"
        if until is not None:
            title += f" → {_when(until)}"
        if fault.get("detail"):
            title += f" · {fault['detail']}"
        x0, x1 = scale.x(at), scale.x(end)
        parts.append(
            f'<g class="fault-mark"><rect class="fault" x="{_f(x0)}" y="{_f(top)}" '
            f'width="{_f(max(x1 - x0, 2))}" height="{_f(bottom - top)}"/>'
            f'<line class="fault-line" x1="{_f(x0)}" x2="{_f(x0)}" y1="{_f(top)}" '
            f'y2="{_f(bottom)}"/><title>{_e(title)}</title>'
        )
        if labels:
            text = str(fault["kind"])
            row = next((i for i, end in enumerate(rows) if x0 + 3 >= end + 4), None)
            if row is None:  # no room: the number, on the row that frees up first
                text = f"#{fault['index']}"
                row = min(range(len(rows)), key=lambda i: rows[i])
            rows[row] = x0 + 3 + 6.2 * len(text)
            parts.append(
                f'<text class="fault-label" x="{_f(x0 + 3)}" y="{_f(top + 10 + 11 * row)}">'
                f"{_e(text)}</text>"
            )
        parts.append("</g>")
    return parts


def _timeline(
    lanes: _Lanes,
    scale: _Scale,
    run: RunResult,
    faults: Sequence[dict[str, Any]],
    end: float,
    lane_class: str,
) -> str:
    """The SVG of job lanes (and drive sub-lanes) over ``scale``'s window."""
    rows: list[str] = []
    y = AXIS + 4
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
                    f'text-anchor="end" font-size="9">{_e(drive)}</text>'
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
                        f"{_when(skipped[drive])}</title></circle>"
                    )
                y += DRIVE_H
        if life.deleted is not None:
            when, data = life.deleted.time, life.deleted.data
            title = f"deleted ({data.get('reason')}, was {data.get('state')}) · {_when(when)}"
            if when <= scale.t1:
                parts.append(_rect(scale, "mk-del", when, when, top - 1, y - top + 2, title))
            else:
                parts.append(
                    f'<text class="axis" x="{_f(WIDTH - RIGHT + 4)}" y="{_f(mid + 3.5)}" '
                    f'font-size="9.5">→ del. {round(when / DAY)}d<title>{_e(title)}</title></text>'
                )
        for cancel in life.events_of("cancelRequested"):
            title = f"cancel accepted in {cancel.data.get('state')} · {_when(cancel.time)}"
            if scale.t0 <= cancel.time <= scale.t1:
                parts.append(_diamond(scale.x(cancel.time), mid, "mk-cancel", title))
        for action in answers.get(i, []):
            cls = {"rejected-too-late": "mk-late", "already-requested": "mk-again"}.get(
                action.outcome, "mk-other"
            )
            title = f"cancel {action.outcome} in {action.state} · {_when(action.at)}"
            if scale.t0 <= action.at <= scale.t1:
                parts.append(_diamond(scale.x(action.at), mid, cls, title))
        parts.append("</g>")
        rows.append("".join(parts))
        y += GAP
    bottom = y + 2
    head = [
        f'<svg viewBox="0 0 {_f(WIDTH)} {_f(bottom + 18)}" role="img" '
        f'aria-label="timeline of jobs over simulated time">',
        *_axis(scale, AXIS, bottom),
        *_fault_marks(scale, faults, AXIS - 26, bottom, labels=True),
        *(
            f'<text class="axis" x="{_f(scale.x(t))}" y="{_f(bottom + 13)}" '
            f'text-anchor="middle">{_e(label)}</text>'
            for t, label in scale.ticks()
        ),
    ]
    return "\n".join([*head, *rows, "</svg>"])


# -- plots -----------------------------------------------------------------------------------


def _nice(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(m * power) for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _plot(
    title: str,
    scale: _Scale,
    data: Series,
    lines: Sequence[tuple[str, str, Sequence[float]]],
    caps: Sequence[tuple[str, float]] = (),
    faults: Sequence[dict[str, Any]] = (),
) -> str:
    """A small line chart over the timeline's window, x aligned with the lanes."""
    top, bottom = 12.0, 12.0 + PLOT_H
    peak = max([max(values, default=0.0) for _, _, values in lines] + [c for _, c in caps])
    ymax = _nice(peak * 1.05)

    def y(v: float) -> float:
        return bottom - v / ymax * PLOT_H

    parts = [
        f'<svg viewBox="0 0 {_f(WIDTH)} {_f(bottom + 22)}" role="img" aria-label="{_e(title)}">',
        *_fault_marks(scale, faults, top, bottom, labels=False),
    ]
    for frac in (0.0, 0.5, 1.0):
        yy = _f(y(ymax * frac))
        parts.append(
            f'<line class="gl" x1="{_f(LABEL)}" x2="{_f(WIDTH - RIGHT)}" y1="{yy}" y2="{yy}"/>'
            f'<text class="axis" x="{_f(LABEL - 6)}" y="{_f(float(yy) + 3.5)}" '
            f'text-anchor="end">{_e(f"{ymax * frac:g}")}</text>'
        )
    for t, label in scale.ticks():
        parts.append(
            f'<text class="axis" x="{_f(scale.x(t))}" y="{_f(bottom + 15)}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    for colour, value in caps:
        parts.append(
            f'<line class="cap" stroke="{colour}" x1="{_f(LABEL)}" x2="{_f(WIDTH - RIGHT)}" '
            f'y1="{_f(y(value))}" y2="{_f(y(value))}"/>'
        )
    xs = [scale.x(data.start + (i + 0.5) * data.step) for i in range(data.buckets)]
    for n, (name, colour, values) in enumerate(lines):
        points = " ".join(f"{_f(x)},{_f(y(v))}" for x, v in zip(xs, values, strict=True))
        if n == 0 and len(lines) == 1:
            parts.append(
                f'<polygon class="area" fill="{colour}" points="{_f(xs[0])},{_f(bottom)} '
                f'{points} {_f(xs[-1])},{_f(bottom)}"/>'
            )
        parts.append(
            f'<polyline class="line" stroke="{colour}" points="{points}">'
            f"<title>{_e(name)}</title></polyline>"
        )
    parts.append(
        f'<text x="{_f(LABEL + 6)}" y="{_f(top + 2)}" font-weight="600">{_e(title)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _plots(scale: _Scale, run: RunResult, data: Series, faults: Sequence[dict[str, Any]]) -> str:
    locations = run.scenario.datacenter.locations
    colours = {
        name: LOCATION_COLOURS[i % len(LOCATION_COLOURS)] for i, name in enumerate(data.busy)
    }
    per_hour = 3600 / data.step
    legend = " ".join(
        f'<span><span class="sw" style="background:{c}"></span>{_e(name)} '
        f"({locations.get(name, 0)} bays, dashed)</span>"
        for name, c in colours.items()
    )
    return "\n".join(
        [
            "<h2>Over simulated time</h2>",
            '<p class="note">Means per bucket of '
            f"{_e(_duration(data.step))}; x axis: days since the epoch.</p>",
            _plot(
                "drives waiting for a bay (queue length)",
                scale,
                data,
                [("waiting drives", "#d97706", data.queue)],
                faults=faults,
            ),
            f'<div class="legend">{legend}</div>',
            _plot(
                "bays busy (transfers in flight), per location",
                scale,
                data,
                [(name, colours[name], values) for name, values in data.busy.items()],
                caps=[(colours[n], float(locations[n])) for n in data.busy if n in locations],
                faults=faults,
            ),
            _plot(
                "status messages per simulated hour",
                scale,
                data,
                [("messages / hour", "#4f46e5", [m * per_hour for m in data.messages])],
                faults=faults,
            ),
            _plot(
                "jobs in the datacenter (Shipping to Packaging)",
                scale,
                data,
                [("active jobs", "#0f766e", data.active)],
                faults=faults,
            ),
        ]
    )


# -- figures ---------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], numeric: int = 1) -> str:
    """A table; columns from ``numeric`` on are right-aligned."""

    def cells(tag: str, values: Sequence[object]) -> str:
        return "".join(
            f"<{tag}{' class=n' if i >= numeric else ''}>{_e(v)}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody></table>"


def _card(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _figures(report: dict[str, Any]) -> str:
    jobs, cancel, messages = report["jobs"], report["cancel"], report["messages"]
    job_rows = [
        ("created", jobs["created"]),
        *((f"final: {k}", v) for k, v in jobs["finalStates"].items()),
        *((f"deleted: {k}", v) for k, v in jobs["deleted"].items()),
        ("left in the store", jobs["remaining"]),
    ]
    cancel_rows = [
        ("requested", cancel["requested"]),
        ("accepted", cancel["accepted"]),
        ("already requested", cancel["alreadyRequested"]),
        ("rejected, too late", cancel["rejectedTooLate"]),
        ("drives finished after the request", cancel["drivesFinishedAfterCancel"]),
        ("bytes copied after the request", _bytes(cancel["bytesAfterCancel"])),
        ("drives skipped", cancel["drivesSkipped"]),
    ]
    observed = messages.get("observed")
    throughput = report.get("throughput", {})
    message_rows = [
        ("published", messages["published"]),
        *((f"· {k}", v) for k, v in messages["byKind"].items()),
        ("observed", "no observer" if observed is None else observed),
        ("changes (seq)", throughput.get("changes", "–")),
        ("jobs ended per simulated day", throughput.get("jobsEndedPerSimDay", "–")),
        ("changes per wall second", throughput.get("changesPerWallSecond", "–")),
    ]
    cards = [
        _card("Jobs", _table(("figure", "value"), job_rows)),
        _card("Best-effort cancel", _table(("figure", "value"), cancel_rows)),
        _card("Messages", _table(("figure", "value"), message_rows)),
    ]
    return f'<div class="grid">{"".join(cards)}</div>'


def _measures(report: dict[str, Any]) -> str:
    names = {"bayQueue": "bay queue", "transfer": "transfer", "endToEnd": "created → ended"}
    latency = report.get("latency", {})
    rows = [
        (
            names.get(stage, stage),
            f["count"],
            *(_duration(f[k]) for k in ("p50", "p90", "p99", "max")),
        )
        for stage, f in latency.items()
    ]
    lat = _card(
        "Latency (simulated time)", _table(("stage", "count", "p50", "p90", "p99", "max"), rows)
    )
    bays = report.get("bays", {})

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value * 100:.1f} %"

    use_rows = [
        (
            name,
            u["bays"],
            _duration(u["busyDriveSeconds"]),
            pct(u["utilisation"]),
            pct(u["utilisationWhileCopying"]),
            u["peakConcurrent"],
        )
        for name, u in [*bays.get("locations", {}).items(), ("all", bays.get("overall"))]
        if u is not None
    ]
    use = _card(
        "Bay utilisation",
        _table(("location", "bays", "busy", "of the run", "while copying", "peak"), use_rows)
        + f'<p class="note">Busy drive-time over bays × the run\'s span '
        f"({_e(_duration(bays.get('spanSeconds')))}), and over the span from the first "
        "transfer to the last.</p>",
    )
    return f'<div class="grid">{lat}{use}</div>'


def _faults(faults: Sequence[dict[str, Any]]) -> str:
    if not faults:
        return _card("Faults", '<p class="note">None planned.</p>')
    rows = [
        (
            f["index"],
            f["kind"],
            _when(f["planned"]),
            "–" if f["at"] is None else _when(f["at"]),
            "–" if f["until"] is None else _when(f["until"]),
            f["skipped"] or f["detail"] or f["description"],
        )
        for f in faults
    ]
    table = _table(("#", "kind", "planned", "struck", "healed", "what happened"), rows, 9)
    return _card(f"Faults ({len(faults)})", table)


def _invariants(report: dict[str, Any]) -> tuple[str, str]:
    """The red box of violations (empty when none) and the table of every check."""
    checks = report.get("invariants", [])
    failed = [c for c in checks if not c["ok"]]
    box = ""
    if failed:
        items = []
        for check in failed:
            shown = check["violations"][:10]
            more = len(check["violations"]) - len(shown)
            lines = "".join(f"<li>{_e(v)}</li>" for v in shown)
            if more > 0:
                lines += f"<li>… and {more} more</li>"
            items.append(f"<h2 class=red>{_e(check['name'])}</h2><ul>{lines}</ul>")
        box = f'<section class="violations">{"".join(items)}</section>'
    rows = [
        (c["name"], c["description"], "ok" if c["ok"] else f"{len(c['violations'])} violations")
        for c in checks
    ]
    return box, _card("Invariants", _table(("check", "what it checks", "result"), rows, 9))


def _legend(drives: bool) -> str:
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


# -- the page --------------------------------------------------------------------------------


def _window(
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


def _zoom(stages: DriveStages, window: tuple[float, float]) -> tuple[float, float] | None:
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


def render_html(report: dict[str, Any], history: History, run: RunResult) -> str:
    """The report of a run as one self-contained HTML page."""
    faults: list[dict[str, Any]] = list(report.get("faults", []))
    scenario = run.scenario
    end = max(run.sim_seconds, time_span(history)[1])
    t0, t1 = _window(history, run, faults)
    scale = _Scale(t0, t1)
    stages = drive_stages(history, job_locations(run))
    lanes = _select(history, report, run)
    checks = report.get("invariants", [])
    failed = sum(1 for c in checks if not c["ok"])
    badge = (
        f'<span class="badge ok">all {len(checks)} invariants hold</span>'
        if report.get("ok")
        else f'<span class="badge bad">{failed} of {len(checks)} invariants violated</span>'
    )
    violations, invariant_table = _invariants(report)
    clock = report["clock"]
    pace = "virtual time" if clock["kind"] == "virtual" else f"{clock['speed']:g}× real time"
    meta = (
        f"seed {_e(report['seed'])} · {_e(pace)} · epoch {_e(clock['epoch'])} · "
        f"{report['simulatedSeconds'] / DAY:.1f} simulated days in "
        f"{report['wallSeconds']:.2f} s · {_e(report.get('file') or '')}"
    )
    left_out = (
        f" Showing {len(lanes.lives)} of {len(lanes.lives) + lanes.left_out} job lives: "
        f"the first {FIRST_LANES} by creation, then those with a cancel or a violation; "
        f"{lanes.left_out} left out."
        if lanes.left_out
        else ""
    )
    timeline = [
        "<section>",
        "<h2>Timeline</h2>",
        f'<p class="note">One lane per job life, from {_e(_when(t0))} to {_e(_when(t1))} '
        "(days since the epoch); deletions after the window are noted at the right."
        f"{_e(left_out)}</p>",
        _legend(lanes.drives),
        _timeline(lanes, scale, run, faults, end, "lane"),
        "</section>",
    ]
    zoom = _zoom(stages, (t0, t1)) if lanes.drives else None
    if zoom is not None:
        timeline += [
            "<section>",
            f"<h2>The copy step, zoomed: {_e(_when(zoom[0]))} → {_e(_when(zoom[1]))}</h2>",
            _timeline(lanes, _Scale(*zoom), run, faults, end, "zlane"),
            "</section>",
        ]
    data = series(run, history, stages, start=t0, end=t1, buckets=BUCKETS)
    states = Counter(life.final_state for life in history.incarnations)
    description = f'<p class="sub">{_e(scenario.description)}</p>' if scenario.description else ""
    body = [
        "<main>",
        f"<header><h1>drivesim · {_e(report['scenario'])} {badge}</h1>",
        description,
        f'<p class="sub">{meta}</p></header>',
        violations,
        _figures(report),
        _measures(report),
        _faults(faults),
        *timeline,
        f"<section>{_plots(scale, run, data, faults)}</section>",
        invariant_table,
        f'<p class="note">{len(history.incarnations)} job lives, final states '
        f"{_e(', '.join(f'{k} {v}' for k, v in sorted(states.items(), key=str)))}. "
        "Generated by drivesim from the run's status stream.</p>",
        "</main>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>drivesim report · {_e(report['scenario'])}</title>"
        f"<style>{CSS}</style></head><body>\n"
        + "\n".join(p for p in body if p)
        + "\n</body></html>\n"
    )


def write_html(path: Path, report: dict[str, Any], history: History, run: RunResult) -> None:
    """Write :func:`render_html`'s page to ``path`` (UTF-8)."""
    path.write_text(render_html(report, history, run), encoding="utf-8")


# -- headless Chromium -----------------------------------------------------------------------


def chromium() -> str:
    """The Chromium binary, or :class:`~worker.errors.ChromiumMissing` saying how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        raise ChromiumMissing(
            "headless Chromium is needed to render the HTML report: run `make test`, which "
            "installs it (or `apt-get install chromium`)"
        )
    return found


def _run_chromium(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="drivesim-chromium-") as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            timeout=timeout,
            check=True,
        )


def screenshot(
    html_path: Path, png_path: Path, width: int = 1400, height: int = 1000, timeout: float = 120
) -> None:
    """Render ``html_path`` with headless Chromium into a ``width`` by ``height`` PNG."""
    _run_chromium(
        [
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png_path.resolve()}",
            html_path.resolve().as_uri(),
        ],
        timeout,
    )


def dump_dom(html_path: Path, timeout: float = 120) -> str:
    """The DOM of ``html_path`` as headless Chromium built it."""
    done = _run_chromium(["--dump-dom", html_path.resolve().as_uri()], timeout)
    return done.stdout.decode("utf-8")
