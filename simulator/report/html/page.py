"""A run's report as one self-contained HTML page: figures, a timeline and plots.

Inline CSS and SVG only: no script, no external resource, so the file opens offline,
prints, and can be kept as a CI artifact. The page puts together the figures of the JSON
report, the timeline (:mod:`simulator.report.html.timeline`) and the plots
(:mod:`simulator.report.html.plots`); :mod:`simulator.report.html.chromium` renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulator.report.history import History
from simulator.report.html.axis import DAY, Scale, duration, moment
from simulator.report.html.plots import BUCKETS, draw_plots
from simulator.report.html.style import CSS
from simulator.report.html.svg import escape as _e
from simulator.report.html.timeline import (
    FIRST_LANES,
    active_part,
    copy_step,
    draw_timeline,
    legend,
    select_lanes,
    window,
)
from simulator.report.metrics import drive_stages, job_locations, series, time_span
from simulator.run.result import RunResult

__all__ = ["render_html", "write_html"]


def _bytes(n: int) -> str:
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


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
            *(duration(f[k]) for k in ("p50", "p90", "p99", "max")),
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
            duration(u["busyDriveSeconds"]),
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
        f"({_e(duration(bays.get('spanSeconds')))}), and over the span from the first "
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
            moment(f["planned"]),
            "–" if f["at"] is None else moment(f["at"]),
            "–" if f["until"] is None else moment(f["until"]),
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


# -- the page --------------------------------------------------------------------------------


def render_html(report: dict[str, Any], history: History, run: RunResult) -> str:
    """The report of a run as one self-contained HTML page."""
    faults: list[dict[str, Any]] = list(report.get("faults", []))
    scenario = run.scenario
    end = max(run.sim_seconds, time_span(history)[1])
    t0, t1 = window(history, run, faults)
    scale = Scale(t0, t1)
    stages = drive_stages(history, job_locations(run))
    lanes = select_lanes(history, report, run)
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
    split = report.get("processes")
    if split is not None and split["count"] > 1:
        shards = " | ".join(
            f"{', '.join(s['locations'])} in {s['wallSeconds']:.2f} s" for s in split["shards"]
        )
        meta += f" · {split['count']} processes: {_e(shards)}"
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
        f'<p class="note">One lane per job life, from {_e(moment(t0))} to {_e(moment(t1))} '
        "(days since the epoch); deletions after the window are noted at the right."
        f"{_e(left_out)}</p>",
        legend(lanes.drives),
        draw_timeline(lanes, scale, run, faults, end, "lane"),
        "</section>",
    ]
    zoom = copy_step(stages, (t0, t1)) if lanes.drives else None
    if zoom is not None:
        timeline += [
            "<section>",
            f"<h2>The copy step, zoomed: {_e(moment(zoom[0]))} → {_e(moment(zoom[1]))}</h2>",
            draw_timeline(lanes, Scale(*zoom), run, faults, end, "zlane"),
            "</section>",
        ]
    else:
        busy = active_part(lanes.lives, (t0, t1))
        if busy is not None:
            a, b, within = busy
            timeline += [
                "<section>",
                f"<h2>While the jobs are at work, zoomed: {_e(moment(a))} → {_e(moment(b))}</h2>",
                f'<p class="note">The same lanes from the first job\'s creation until '
                f"{within} of the {len(lanes.lives)} lanes had ended (Completed or Closed): "
                "above, most of each lane is the wait for retention.</p>",
                draw_timeline(lanes, Scale(a, b), run, faults, end, "zlane"),
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
        f"<section>{draw_plots(scale, run, data, faults)}</section>",
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
