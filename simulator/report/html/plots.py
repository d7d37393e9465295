"""The report's plots over simulated time: the bay queue, busy bays per location, the message
rate and the jobs in the datacenter, x aligned with the timeline's lanes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from simulator.report.html.axis import LABEL, RIGHT, WIDTH, Scale, duration, fault_marks
from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from simulator.report.metrics import Series
from simulator.run.result import RunResult

__all__ = ["BUCKETS", "LOCATION_COLOURS", "draw_plots", "nice"]

#: Buckets of simulated time the plots are drawn over.
BUCKETS = 200
LOCATION_COLOURS = ("#0e7490", "#7c3aed", "#c2410c", "#15803d", "#be185d", "#475569")
PLOT_H = 110.0


def nice(value: float) -> float:
    """The round number (1, 2, 2.5, 5 times a power of ten) at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(m * power) for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _plot(
    title: str,
    scale: Scale,
    data: Series,
    lines: Sequence[tuple[str, str, Sequence[float]]],
    caps: Sequence[tuple[str, float]] = (),
    faults: Sequence[dict[str, Any]] = (),
    peaks: Sequence[tuple[str, str, Sequence[float]]] = (),
) -> str:
    """A small line chart over the timeline's window, x aligned with the lanes: the mean
    per bucket as a line, and (``peaks``) the highest level within each bucket as a pale
    step line above it, so a short peak a mean would flatten still shows."""
    top, bottom = 12.0, 12.0 + PLOT_H
    peak = max(
        [max(values, default=0.0) for _, _, values in [*lines, *peaks]] + [c for _, c in caps]
    )
    ymax = nice(peak * 1.05)

    def y(v: float) -> float:
        return bottom - v / ymax * PLOT_H

    parts = [
        f'<svg viewBox="0 0 {_f(WIDTH)} {_f(bottom + 26)}" role="img" aria-label="{_e(title)}">',
        *fault_marks(scale, faults, top, bottom, labels=False),
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
            f'<text class="axis" x="{_f(scale.x(t))}" y="{_f(bottom + 19)}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    for colour, value in caps:
        parts.append(
            f'<line class="cap" stroke="{colour}" x1="{_f(LABEL)}" x2="{_f(WIDTH - RIGHT)}" '
            f'y1="{_f(y(value))}" y2="{_f(y(value))}"/>'
        )
    xs = [scale.x(data.start + (i + 0.5) * data.step) for i in range(data.buckets)]
    for name, colour, values in peaks:
        steps = []
        for i, v in enumerate(values):
            a = scale.x(data.start + i * data.step)
            b = scale.x(data.start + (i + 1) * data.step)
            steps += [f"{_f(a)},{_f(y(v))}", f"{_f(b)},{_f(y(v))}"]
        parts.append(
            f'<polyline class="peak" stroke="{colour}" points="{" ".join(steps)}">'
            f"<title>{_e(name)}</title></polyline>"
        )
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


def draw_plots(scale: Scale, run: RunResult, data: Series, faults: Sequence[dict[str, Any]]) -> str:
    """The four plots of ``data`` (the run's :func:`~simulator.report.metrics.series`), with
    the faults marked."""
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
            '<p class="note">Lines: the mean per bucket of '
            f"{_e(duration(data.step))}; pale steps: the highest level reached within each "
            "bucket (a short peak, such as every bay busy for a few minutes, shows there "
            "even where the mean stays low); x axis: days since the epoch.</p>",
            _plot(
                "drives waiting for a bay (queue length)",
                scale,
                data,
                [("waiting drives", "#d97706", data.queue)],
                faults=faults,
                peaks=[("most drives waiting at once", "#d97706", data.queue_peak)],
            ),
            f'<div class="legend">{legend}</div>',
            _plot(
                "bays busy (transfers in flight), per location",
                scale,
                data,
                [(name, colours[name], values) for name, values in data.busy.items()],
                caps=[(colours[n], float(locations[n])) for n in data.busy if n in locations],
                faults=faults,
                peaks=[
                    (f"{name}: most bays busy at once", colours[name], values)
                    for name, values in data.busy_peak.items()
                ],
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
                peaks=[("most jobs at once", "#0f766e", data.active_peak)],
            ),
        ]
    )
