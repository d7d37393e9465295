"""Simulated time across the page: the x scale the timeline and the plots share, the fault
marks drawn over both, and how moments and lengths of simulated time read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from worker import format_duration

__all__ = [
    "DAY",
    "LABEL",
    "LABEL_ROWS",
    "RIGHT",
    "WIDTH",
    "Scale",
    "duration",
    "fault_marks",
    "moment",
]

# Layout of every SVG, in user units: a label column, the time axis, a right margin.
WIDTH, LABEL, RIGHT = 1240.0, 150.0, 72.0
DAY = 86_400.0


def moment(seconds: float) -> str:
    """A moment in simulated time since the epoch: ``"3d 04:05:06"``."""
    return format_duration(seconds).strip()


def duration(seconds: float | None) -> str:
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


@dataclass(frozen=True, slots=True)
class Scale:
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
                label = moment(t)[:-3] if not found else moment(t)[-8:-3]
            found.append((t, label))
            t += step
        return found


#: Rows of fault labels, and the width of a character of theirs (11 px bold, generous).
LABEL_ROWS = 3
LABEL_CHAR = 7.4


def fault_marks(
    scale: Scale, faults: Sequence[dict[str, Any]], top: float, bottom: float, labels: bool
) -> list[str]:
    """Each struck fault (the report's ``faults``) as a band from struck to healed over
    ``[top, bottom]``; with ``labels``, named by kind (by number where there is no room, and
    not at all where even that would overlap: the band's tooltip still names it)."""
    parts = []
    rows = [-1e9] * LABEL_ROWS  # where the last label of each row ends: labels never overlap
    for fault in faults:
        at = fault.get("at")
        if at is None or at > scale.t1:
            continue
        until = fault.get("until")
        end = at if until is None else until
        title = f"fault {fault['kind']}: {fault['description']} · {moment(at)}"
        if until is not None:
            title += f" → {moment(until)}"
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
            if row is None:  # no room for the name: the number, where it fits
                text = f"#{fault['index']}"
                row = next((i for i, end in enumerate(rows) if x0 + 3 >= end + 4), None)
            if row is not None:
                rows[row] = x0 + 3 + LABEL_CHAR * len(text)
                parts.append(
                    f'<text class="fault-label" x="{_f(x0 + 3)}" '
                    f'y="{_f(top + 12 + 14 * row)}">{_e(text)}</text>'
                )
        parts.append("</g>")
    return parts
