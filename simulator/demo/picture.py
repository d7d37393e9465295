"""The demo as one picture: a self-contained HTML page with an SVG timeline per policy.

A lane per drive with its states along simulated time; the moment the cancel was asked and
the boundary where it took effect; the bytes copied after the request in a darker shade;
skipped drives grey; the late cancel and the refused delete marked; and the 90 days of
retention on a compressed stretch at the right. Numbered notes under each timeline say in
words what the marks show. Inline CSS and SVG only (no script, no link, no network), drawn
with the report's palette (:mod:`simulator.report.html.style`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.demo.narration import window_text
from simulator.demo.outcome import DemoOutcome, at, size
from simulator.demo.story import MAIN
from simulator.report.history import Incarnation
from simulator.report.html.style import CSS
from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from simulator.report.html.timeline import drive_bands, job_bands

__all__ = ["render_picture", "write_picture"]

WIDTH, LABEL, RIGHT = 1200.0, 132.0, 16.0
#: The retention stretch at the right, and the gap with its break mark before it.
RETENTION_W, BREAK_W = 190.0, 26.0
TOP = 64.0
JOB_H, DRIVE_H, GAP = 20.0, 15.0, 4.0
HOUR, DAY = 3600.0, 86_400.0

EXTRA_CSS = """
.demo h2{margin-bottom:2px}.demo .sub{margin-bottom:6px}
svg .band-label{fill:#0f172a;font-size:10.5px}svg .band-label.light{fill:#fff}
svg .lane-name{font-weight:600}svg .drive-name{fill:#475569;font-size:10.5px}
.after{fill:#0e4a5c;background:#0e4a5c}.skip{fill:#d1d5db;background:#d1d5db}
svg .skip-back{fill:#e5e7eb}.keep{fill:#dcfce7;background:#dcfce7}
svg .keep-other{fill:#f1f5f9}
svg .ask{stroke:#1e3a8a;stroke-width:2;stroke-dasharray:5 3}
svg .ask-late{stroke:#b91c1c;stroke-width:2;stroke-dasharray:5 3}
svg .effect{stroke:#a16207;stroke-width:2.5}
svg .mark-text{font-size:11.5px;font-weight:600}svg .ask-t{fill:#1e3a8a}
svg .late-t{fill:#b91c1c}svg .effect-t{fill:#a16207}svg .del-t{fill:#111827}
svg .no{fill:#b91c1c;stroke:#fff;stroke-width:1}svg .del{fill:#111827}
svg .brk{stroke:#94a3b8;stroke-width:1.5;fill:none}
ul.notes{margin:6px 0 0 0;padding-left:4px;list-style:none}ul.notes li{margin:2px 0}
"""


@dataclass(frozen=True, slots=True)
class _Axis:
    """The story's hours on the left, the retention months squeezed on the right."""

    story_end: float
    end: float

    @property
    def split(self) -> float:
        return WIDTH - RIGHT - RETENTION_W

    def x(self, t: float) -> float:
        story_w = self.split - BREAK_W - LABEL
        if t <= self.story_end:
            return LABEL + max(0.0, t) / self.story_end * story_w
        span = max(self.end - self.story_end, 1.0)
        return self.split + min(t - self.story_end, span) / span * RETENTION_W


def _rect(axis: _Axis, cls: str, a: float, b: float, y: float, h: float, title: str) -> str:
    x0, x1 = axis.x(a), axis.x(b)
    return (
        f'<rect class="{cls}" x="{_f(x0)}" y="{_f(y)}" width="{_f(max(x1 - x0, 1.0))}" '
        f'height="{_f(h)}"><title>{_e(title)}</title></rect>'
    )


def _label(
    axis: _Axis,
    text: str,
    a: float,
    b: float,
    y: float,
    light: bool = False,
    avoid: Sequence[float] = (),
) -> str:
    """A band's name inside it, where it fits; moved past a mark (at x in ``avoid``, 7
    units either side) rather than drawn under it."""
    x0, x1 = axis.x(a), axis.x(b)
    width = 6.4 * len(text)
    start = x0 + 4
    for x in sorted(avoid):
        if start - 9 < x < start + width + 9:
            start = x + 10
    if start + width + 2 > x1:
        return ""
    cls = "band-label light" if light else "band-label"
    return f'<text class="{cls}" x="{_f(start)}" y="{_f(y)}">{_e(text)}</text>'


def _split_stretch(
    axis: _Axis, bands: list[tuple[str, float, float]]
) -> list[tuple[str, float, float]]:
    """Bands cut at the end of the story stretch, so each half is drawn on its own scale."""
    out = []
    for state, a, b in bands:
        if a < axis.story_end < b:
            out += [(state, a, axis.story_end), (state, axis.story_end, b)]
        else:
            out.append((state, a, b))
    return out


def _job_lane(
    axis: _Axis, life: Incarnation, y: float, end: float, marks: Sequence[float] = ()
) -> list[str]:
    parts = [
        f'<text class="lane-name" x="{_f(LABEL - 8)}" y="{_f(y + JOB_H - 6)}" '
        f'text-anchor="end">{_e(life.job)}</text>'
    ]
    for state, a, b in _split_stretch(axis, job_bands(life, end)):
        title = f"{life.job}: {state} · {at(a)} → {at(b)}"
        if state in ("Completed", "Closed") and a >= axis.story_end:
            parts.append(_rect(axis, "keep", a, b, y, JOB_H, title))
            parts.append(_label(axis, "kept 90 days", a, b, y + JOB_H - 6))
            continue
        parts.append(_rect(axis, f"s-{state}", a, b, y, JOB_H, title))
        parts.append(_label(axis, state, a, b, y + JOB_H - 6, avoid=marks))
    return parts


def _drive_lane(
    axis: _Axis,
    outcome: DemoOutcome,
    life: Incarnation,
    drive: str,
    bands: list[tuple[str, float, float]],
    y: float,
) -> list[str]:
    fate = next((d for d in outcome.drives if d.drive == drive), None) if life.job == MAIN else None
    asked = outcome.cancel_recorded if life.job == MAIN else None
    parts = [
        f'<text class="drive-name" x="{_f(LABEL - 8)}" y="{_f(y + DRIVE_H - 4)}" '
        f'text-anchor="end">{_e(drive)}</text>'
    ]
    for state, a, b in bands:
        if a >= axis.story_end:
            continue  # drives are back with the customer: the job lane shows the rest
        b = min(b, axis.story_end)
        title = f"drive {drive}: {state} · {at(a)} → {at(b)}"
        if fate is not None and fate.skipped and state in ("Received", "ShippedBack"):
            skipped_from = a if asked is None or state == "ShippedBack" else max(a, asked)
            if state == "Received" and asked is not None and a < asked:
                parts.append(_rect(axis, "d-Received", a, asked, y, DRIVE_H, title))
                parts.append(_label(axis, state, a, asked, y + DRIVE_H - 4))
            cls = "skip" if state == "Received" else "skip-back"
            text = "④ skipped: never started" if state == "Received" else "returned unread"
            parts.append(_rect(axis, cls, skipped_from, b, y, DRIVE_H, f"{title} (skipped)"))
            parts.append(_label(axis, text, skipped_from, b, y + DRIVE_H - 4))
            continue
        if state == "Transferring" and asked is not None and a < asked < b:
            after = size(fate.after_cancel) if fate is not None else ""
            parts.append(_rect(axis, "d-Transferring", a, asked, y, DRIVE_H, title))
            parts.append(
                _rect(axis, "after", asked, b, y, DRIVE_H, f"copied after the request: {after}")
            )
            text = f"③ +{after} after the request"
            parts.append(_label(axis, text, asked, b, y + DRIVE_H - 4, light=True))
            continue
        parts.append(_rect(axis, f"d-{state}", a, b, y, DRIVE_H, title))
        light = state in ("Transferring", "NeverReceived")
        parts.append(_label(axis, state, a, b, y + DRIVE_H - 4, light))
    return parts


def _vline(axis: _Axis, t: float, cls: str, top: float, bottom: float) -> str:
    x = _f(axis.x(t))
    return f'<line class="{cls}" x1="{x}" x2="{x}" y1="{_f(top)}" y2="{_f(bottom)}"/>'


def _caption(axis: _Axis, t: float, y: float, cls: str, text: str) -> str:
    x = axis.x(t)
    anchor = "end" if x + 6.6 * len(text) > WIDTH - RIGHT else "start"
    dx = -5 if anchor == "end" else 5
    return (
        f'<text class="mark-text {cls}" x="{_f(x + dx)}" y="{_f(y)}" '
        f'text-anchor="{anchor}">{_e(text)}</text>'
    )


def _axis_marks(axis: _Axis, bottom: float) -> list[str]:
    step = 1 if axis.story_end <= 14 * HOUR else 2
    parts = []
    for hour in range(0, math.floor(axis.story_end / HOUR) + 1, step):
        x = _f(axis.x(hour * HOUR))
        parts.append(f'<line class="gl" x1="{x}" x2="{x}" y1="{_f(TOP - 4)}" y2="{_f(bottom)}"/>')
        parts.append(
            f'<text class="axis" x="{x}" y="{_f(bottom + 13)}" text-anchor="middle">{hour}h</text>'
        )
    # The break between the story's hours and the retention months.
    bx = axis.split - BREAK_W / 2
    for dx in (-4, 4):
        parts.append(
            f'<path class="brk" d="M{_f(bx + dx - 4)} {_f(bottom + 4)}l8 -12"/>'
            f'<path class="brk" d="M{_f(bx + dx - 4)} {_f(TOP + 8)}l8 -12"/>'
        )
    parts.append(
        f'<text class="axis" x="{_f(axis.split + RETENTION_W / 2)}" y="{_f(bottom + 13)}" '
        f'text-anchor="middle">… {_e(at(axis.end).split()[0])} (retention, compressed)</text>'
    )
    return parts


def _axis(outcomes: Sequence[DemoOutcome]) -> _Axis:
    """One scale for every timeline of the page, so side by side they compare."""
    assert all(o.lives for o in outcomes), "outcomes read from a run"
    lives = [life for outcome in outcomes for life in outcome.lives]
    ended = [
        e.time for life in lives for e in life.events_of("stateChanged") if "outcome" in e.data
    ]
    deleted = [life.deleted.time for life in lives if life.deleted is not None]
    story_end = (math.floor(max(ended) / HOUR) + 1) * HOUR
    return _Axis(story_end, max(deleted or [story_end + 90 * DAY]) + 6 * HOUR)


def _svg(outcome: DemoOutcome, axis: _Axis) -> str:
    lives = outcome.lives
    end = axis.end
    y = TOP
    rows: list[str] = []
    lanes: dict[str, tuple[float, float]] = {}
    for life in lives:
        top = y
        refused = [
            axis.x(r.at)
            for r in (outcome.late_cancel, outcome.delete)
            if r.job == life.job and r.state is not None
        ]
        rows += _job_lane(axis, life, y, end, refused)
        y += JOB_H + 3
        for drive, bands in drive_bands(life, end).items():
            rows += _drive_lane(axis, outcome, life, drive, bands, y)
            y += DRIVE_H + 2
        lanes[life.job] = (top, y)
        if life.deleted is not None:
            when = life.deleted.time
            rows.append(_rect(axis, "del", when, when, top - 1, JOB_H + 2, f"deleted {at(when)}"))
            mark = "⑦ " if life.job == MAIN else ""
            rows.append(_caption(axis, when, top - 3, "del-t", f"{mark}deleted {at(when)}"))
        y += GAP * 4
    bottom = y - GAP * 3
    _, main_bottom = lanes[MAIN]
    marks: list[str] = []
    cancel = outcome.cancel
    ok = cancel.outcome == "accepted"
    marks.append(_vline(axis, cancel.at, "ask" if ok else "ask-late", TOP - 34, main_bottom))
    verdict = "accepted" if ok else "rejected: CancelTooLate"
    marks.append(
        _caption(
            axis,
            cancel.at,
            TOP - 38,
            "ask-t" if ok else "late-t",
            f"① cancel asked {at(cancel.at)} in {cancel.state}: {verdict}",
        )
    )
    if outcome.took_effect is not None:
        marks.append(_vline(axis, outcome.took_effect, "effect", TOP - 18, main_bottom))
        marks.append(
            _caption(
                axis,
                outcome.took_effect,
                TOP - 22,
                "effect-t",
                f"② took effect {at(outcome.took_effect)}: {outcome.effect}",
            )
        )
    for result, number in ((outcome.late_cancel, "⑤"), (outcome.delete, "⑥")):
        if result.state is None:
            continue
        top, _ = lanes[result.job]
        x, mid = axis.x(result.at), top + JOB_H / 2
        marks.append(
            f'<path class="no" data-mark="refused" d="M{_f(x)} {_f(mid - 7)}l7 7-7 7-7-7z"><title>'
            f"{_e(result.job)} {_e(result.do)} in {_e(result.state)}: {_e(result.outcome)}"
            f"</title></path>"
        )
        what = "cancel: too late" if result.do == "cancel" else "delete refused"
        marks.append(_caption(axis, result.at, top - 3, "late-t", f"{number} {what}"))
    height = bottom + 22
    return "\n".join(
        [
            f'<svg viewBox="0 0 {_f(WIDTH)} {_f(height)}" role="img" '
            f'aria-label="best-effort cancel under {_e(outcome.options.policy)}">',
            *_axis_marks(axis, bottom),
            *rows,
            *marks,
            "</svg>",
        ]
    )


def _notes(outcome: DemoOutcome) -> str:
    options, cancel = outcome.options, outcome.cancel
    window = window_text(options.policy)
    items = []
    if cancel.outcome == "accepted":
        items.append(
            f"① The cancel was asked at {at(cancel.at)} in {cancel.state} and accepted: "
            f"{options.policy} accepts it in {window}."
        )
    else:
        items.append(
            f"① The cancel was asked at {at(cancel.at)} in {cancel.state} and rejected "
            f"(CancelTooLate, HTTP 409): {options.policy} accepts it only in {window}. Nothing "
            "changed: the job ran its normal course."
        )
    if outcome.took_effect is not None:
        items.append(
            f"② It took effect at {at(outcome.took_effect)} ({outcome.effect}), the next state "
            "boundary: nothing new starts after the request, and the job leaves the copy step "
            "once the drives in the bays are done."
        )
    if outcome.finished_after:
        items.append(
            f"③ Drives copying at the request ran on (dark): {', '.join(outcome.finished_after)} "
            f"copied {size(outcome.bytes_after)} after it. Best effort: a transfer in flight "
            "is never interrupted."
        )
    if outcome.skipped:
        items.append(
            f"④ Drives not started were skipped (grey) and went back unread: "
            f"{', '.join(outcome.skipped)}."
        )
    late = outcome.late_cancel
    items.append(
        f"⑤ {late.job} asked to cancel in {late.state}: too late under every policy "
        "(CancelTooLate); a refused request changes and publishes nothing."
    )
    if outcome.delete.state is not None:
        items.append(
            f"⑥ {outcome.delete.job} asked to delete its job in {outcome.delete.state}: refused "
            "(DeleteNotAllowed). Only Creating or Completed jobs can be deleted: a cancel is "
            "not a delete."
        )
    deleted = "" if outcome.deleted_at is None else f", and deleted at {at(outcome.deleted_at)}"
    items.append(
        f"⑦ The job ended {outcome.final_state} at {at(outcome.ended_at)} with cancelRequested "
        f"{str(outcome.cancel_requested).lower()} (outcome {outcome.outcome}), was kept 90 "
        f"days{deleted}."
    )
    return '<ul class="notes">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _legend() -> str:
    keys = [
        ("d-Received", "received, waiting for a bay"),
        ("d-Transferring", "copying"),
        ("after", "copied after the cancel request"),
        ("d-Completed", "copied"),
        ("skip", "skipped after the cancel"),
        ("d-ShippedBack", "shipped back"),
        ("keep", "kept 90 days (retention)"),
    ]
    spans = [f'<span><span class="sw {cls}"></span>{_e(text)}</span>' for cls, text in keys]
    return f'<div class="legend">{"".join(spans)}</div>'


def render_picture(outcomes: Sequence[DemoOutcome]) -> str:
    """The page: one timeline per outcome (one story, or the three policies)."""
    sections = []
    axis = _axis(outcomes)
    for outcome in outcomes:
        options, cancel = outcome.options, outcome.cancel
        answer = "accepted" if cancel.outcome == "accepted" else "rejected"
        sections.append(
            f'<section class="demo" data-policy="{_e(options.policy)}">'
            f"<h2>policy {_e(options.policy)} · cancel asked in {_e(options.cancel_at)}: "
            f"{answer}</h2>"
            f'<p class="sub">cancel accepted in: {_e(window_text(options.policy))}</p>'
            f"{_svg(outcome, axis)}{_notes(outcome)}</section>"
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>drivesim demo: best-effort cancel</title>",
            f"<style>{CSS}{EXTRA_CSS}</style></head><body><main>",
            "<h1>Best-effort cancel, drawn</h1>",
            '<p class="sub">One import job of five drives shares two bays with another '
            "customer's job. Its customer asks to cancel; what happens next depends on the "
            "state the job is in and on the cancel window. Time runs left to right in "
            "simulated hours; the 90 days of retention are squeezed at the right.</p>",
            _legend(),
            *sections,
            "</main></body></html>",
        ]
    )


def write_picture(path: Path, outcomes: Sequence[DemoOutcome]) -> None:
    """Write the page to ``path``."""
    path.write_text(render_picture(outcomes), encoding="utf-8")
