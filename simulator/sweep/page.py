"""A sweep as one self-contained HTML page: the summary table, and for each metric its mean
and spread across seeds against each varied key.

Inline CSS and SVG only (the report page's stylesheet and SVG helpers), no script and no
external resource: the page opens offline, prints, and renders in headless Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.report.html.axis import duration
from simulator.report.html.plots import LOCATION_COLOURS, nice
from simulator.report.html.style import CSS
from simulator.report.html.svg import escape as _e
from simulator.report.html.svg import number as _f
from simulator.sweep.cells import METRICS, Metric
from simulator.sweep.grid import Grid

__all__ = ["format_value", "mean_text", "render_sweep", "write_sweep"]

# One chart, in user units: the plot area inside margins for the axis labels.
W, H = 380.0, 250.0
LEFT, RIGHT, TOP, BOTTOM = 70.0, 12.0, 30.0, 186.0
#: The width of a character of an axis label (11 px, generous), for where labels wrap.
CHAR = 6.4
#: Combinations the summary table shows side by side, one column each (more: one row each).
SIDE_BY_SIDE = 6

_PAGE_CSS = """
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px;
margin:14px 0}.plots section{margin:0}
.chart svg{min-width:0;width:100%}
.mean{stroke-width:1.8;fill:none}.whisker{stroke-width:1.4}
table.sum td,table.sum th{font-size:12.5px;white-space:nowrap}
"""


def format_value(unit: str, value: float | None) -> str:
    """A figure as it reads: bytes in TB/GB, seconds as a duration, a ratio in per cent."""
    if value is None:
        return "–"
    if unit == "bytes":
        for name, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
            if abs(value) >= size:
                return f"{value / size:.2f} {name}"
        return f"{value:g} B"
    if unit == "seconds":
        return duration(value)
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    return f"{value:,.1f}".removesuffix(".0")


def _ceiling(unit: str, top: float) -> float:
    """The top of a chart's y axis above ``top``: a round number, of days, hours or
    minutes for a time; 100 % for a ratio that reaches no higher."""
    if unit == "ratio" and top <= 1.0:
        return 1.0
    top *= 1.05
    if unit == "seconds":
        for size in (86_400.0, 3_600.0, 60.0):
            if top >= 2 * size:
                return nice(top / size) * size
    return nice(top)


def _wrap(label: str, width: float) -> list[str]:
    """``label`` in lines that fit ``width`` (user units), cut after a hyphen or a space."""
    room = max(4, int(width / CHAR))
    lines: list[str] = []
    for word in re.findall(r"[^ -]+-?|\s+", label):
        if lines and len(lines[-1]) + len(word) <= room:
            lines[-1] += word
        elif word.strip():
            lines.append(word)
    return [line.strip() for line in lines] or [label]


def _series(grid: Grid, key: int, summary: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The combinations of the other keys, each with its summary entry at each value of
    ``key`` (a label ``"all"`` when only one key varies)."""
    found: dict[str, list[Any]] = {}
    for choice, entry in zip(grid.choices, summary, strict=True):
        others = [
            f"{v.key}={v.labels[i]}"
            for k, (v, i) in enumerate(zip(grid.varies, choice, strict=True))
            if k != key
        ]
        found.setdefault(", ".join(others) or "all", [None] * len(grid.varies[key].values))[
            choice[key]
        ] = entry
    return found


def _chart(metric: Metric, grid: Grid, key: int, summary: Sequence[Mapping[str, Any]]) -> str:
    vary = grid.varies[key]
    series = _series(grid, key, summary)
    spreads = [
        entry["metrics"][metric.id] for entries in series.values() for entry in entries if entry
    ]
    top = max((s["max"] for s in spreads if s["max"] is not None), default=0.0)
    ymax = _ceiling(metric.unit, top)

    def y(value: float) -> float:
        return BOTTOM - value / ymax * (BOTTOM - TOP)

    step = (W - LEFT - RIGHT) / len(vary.values)
    parts = [
        f'<svg viewBox="0 0 {_f(W)} {_f(H)}" role="img" '
        f'aria-label="{_e(metric.label)} against {_e(vary.key)}">'
    ]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = y(ymax * frac)
        parts.append(
            f'<line class="gl" x1="{_f(LEFT)}" x2="{_f(W - RIGHT)}" y1="{_f(yy)}" y2="{_f(yy)}"/>'
        )
        if frac in (0.0, 0.5, 1.0):
            parts.append(
                f'<text class="axis" x="{_f(LEFT - 6)}" y="{_f(yy + 3.5)}" text-anchor="end">'
                f"{_e(format_value(metric.unit, ymax * frac))}</text>"
            )
    for i, label in enumerate(vary.labels):
        at = _f(LEFT + (i + 0.5) * step)
        lines = _wrap(label, step - 4)[:3]
        spans = "".join(
            f'<tspan x="{at}" dy="{0 if n == 0 else 12}">{_e(line)}</tspan>'
            for n, line in enumerate(lines)
        )
        parts.append(
            f'<text class="axis" x="{at}" y="{_f(BOTTOM + 15)}" text-anchor="middle">'
            f"<title>{_e(label)}</title>{spans}</text>"
        )
    parts.append(
        f'<text class="axis" x="{_f((LEFT + W - RIGHT) / 2)}" y="{_f(H - 6)}" '
        f'text-anchor="middle" font-weight="600">{_e(vary.key)}</text>'
    )
    width = min(10.0, step / (len(series) + 1))
    for s, (name, entries) in enumerate(series.items()):
        colour = LOCATION_COLOURS[s % len(LOCATION_COLOURS)]
        offset = (s - (len(series) - 1) / 2) * width
        means = []
        for i, entry in enumerate(entries):
            figure = entry["metrics"][metric.id] if entry else None
            if figure is None or figure["mean"] is None:
                continue
            x = LEFT + (i + 0.5) * step + offset
            means.append(f"{_f(x)},{_f(y(figure['mean']))}")
            tip = (
                f"{name} · {vary.key}={vary.labels[i]}: mean "
                f"{format_value(metric.unit, figure['mean'])}, from "
                f"{format_value(metric.unit, figure['min'])} to "
                f"{format_value(metric.unit, figure['max'])} over {figure['n']} seeds"
            )
            low, high = y(figure["min"]), y(figure["max"])
            parts.append(
                f'<g><title>{_e(tip)}</title><line class="whisker" stroke="{colour}" '
                f'x1="{_f(x)}" x2="{_f(x)}" y1="{_f(low)}" y2="{_f(high)}"/>'
                f'<line class="whisker" stroke="{colour}" x1="{_f(x - 4)}" x2="{_f(x + 4)}" '
                f'y1="{_f(low)}" y2="{_f(low)}"/><line class="whisker" stroke="{colour}" '
                f'x1="{_f(x - 4)}" x2="{_f(x + 4)}" y1="{_f(high)}" y2="{_f(high)}"/>'
                f'<circle cx="{_f(x)}" cy="{_f(y(figure["mean"]))}" r="4" fill="{colour}"/></g>'
            )
        if len(means) > 1:
            parts.append(
                f'<polyline class="mean" stroke="{colour}" points="{" ".join(means)}">'
                f"<title>{_e(name)}</title></polyline>"
            )
    parts.append(
        f'<text x="{_f(LEFT)}" y="{_f(TOP - 12)}" font-weight="600">{_e(metric.label)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(grid: Grid, key: int, summary: Sequence[Mapping[str, Any]]) -> str:
    names = list(_series(grid, key, summary))
    if len(names) < 2:
        return ""
    items = " ".join(
        f'<span><span class="sw" style="background:{LOCATION_COLOURS[i % len(LOCATION_COLOURS)]}">'
        f"</span>{_e(name)}</span>"
        for i, name in enumerate(names)
    )
    return (
        f'<div class="legend"><b>against {_e(grid.varies[key].key)}, one line each:</b> '
        f"{items}</div>"
    )


def mean_text(metric: Metric, figure: Mapping[str, Any]) -> str:
    """A mean ± its standard deviation across seeds (no ± for one seed or none)."""
    text = format_value(metric.unit, figure["mean"])
    if figure["n"] > 1 and figure["sd"]:
        text += f" ±{format_value(metric.unit, figure['sd'])}"
    return text


def _summary_table(grid: Grid, summary: Sequence[Mapping[str, Any]]) -> str:
    """The mean of each metric for each combination: a column each when they are few."""
    title = "<h2>Mean ± standard deviation across seeds</h2>"
    if len(summary) <= SIDE_BY_SIDE:
        heads = "".join(
            f"<th class=n>{_e(', '.join(v.labels[i] for v, i in zip(grid.varies, c, strict=True)))}"
            "</th>"
            for c in grid.choices
        )
        keys = ", ".join(v.key for v in grid.varies)
        lines = "".join(
            f"<tr><td>{_e(metric.label)}</td>"
            + "".join(
                f"<td class=n>{_e(mean_text(metric, e['metrics'][metric.id]))}</td>"
                for e in summary
            )
            + "</tr>"
            for metric in METRICS
        )
        held = "".join(
            f"<td class=n>{'yes' if e['invariantsOk'] else '<b class=red>no</b>'}</td>"
            for e in summary
        )
        return (
            f'<section>{title}<table class="sum"><thead><tr><th>{_e(keys)}</th>{heads}</tr>'
            f"</thead><tbody>{lines}<tr><td>every invariant held</td>{held}</tr></tbody>"
            "</table></section>"
        )
    head = "".join(f"<th>{_e(v.key)}</th>" for v in grid.varies) + "".join(
        f"<th class=n>{_e(m.label)}</th>" for m in METRICS
    )
    rows = []
    for choice, entry in zip(grid.choices, summary, strict=True):
        cells = "".join(
            f"<td>{_e(v.labels[i])}</td>" for v, i in zip(grid.varies, choice, strict=True)
        )
        for metric in METRICS:
            cells += f"<td class=n>{_e(mean_text(metric, entry['metrics'][metric.id]))}</td>"
        mark = "" if entry["invariantsOk"] else ' class="red"'
        rows.append(f"<tr{mark}>{cells}</tr>")
    return (
        f'<section style="overflow-x:auto">{title}<table class="sum"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def render_sweep(grid: Grid, table: Mapping[str, Any]) -> str:
    """The page of a sweep's table (:func:`~simulator.sweep.table.build_table`)."""
    summary = table["summary"]
    seeds = grid.seeds
    seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds ({seeds[0]}–{seeds[-1]})"
    failed = sum(1 for row in table["rows"] if not row["invariantsOk"])
    badge = (
        f'<span class="badge ok">invariants hold in all {len(table["rows"])} runs</span>'
        if not failed
        else f'<span class="badge bad">invariants violated in {failed} runs</span>'
    )
    incomplete = (
        f'<p class="sub red">{table["cellsDone"]} of {table["cells"]} cells done.</p>'
        if table["cellsDone"] < table["cells"]
        else ""
    )
    keys = ", ".join(f"{v.key} ∈ {{{', '.join(v.labels)}}}" for v in grid.varies)
    description = grid.document.get("description", "")
    plots = []
    for metric in METRICS:
        charts = "".join(
            f'<div class="chart">{_chart(metric, grid, k, summary)}</div>'
            for k in range(len(grid.varies))
        )
        plots.append(f"<section>{charts}</section>")
    legends = "".join(_legend(grid, k, summary) for k in range(len(grid.varies)))
    body = [
        "<main>",
        f"<header><h1>drivesim sweep · {_e(grid.name)} {badge}</h1>",
        f'<p class="sub">{_e(description)}</p>' if description else "",
        f'<p class="sub">{_e(keys)} · {len(seeds)} {_e(seeds_text)} each · '
        f"{grid.size} runs in virtual time · {_e(grid.where)}</p></header>",
        incomplete,
        _summary_table(grid, summary),
        '<p class="note">Each point: the mean across seeds; its bar: from the lowest to the '
        "highest seed. Figures from each run's JSON report (drivesim run --report).</p>",
        legends,
        f'<div class="plots">{"".join(plots)}</div>',
        "</main>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>drivesim sweep · {_e(grid.name)}</title>"
        f"<style>{CSS}{_PAGE_CSS}</style></head><body>\n"
        + "\n".join(p for p in body if p)
        + "\n</body></html>\n"
    )


def write_sweep(path: Path, grid: Grid, table: Mapping[str, Any]) -> None:
    path.write_text(render_sweep(grid, table), encoding="utf-8")
