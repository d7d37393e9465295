"""The whole benchmark suite: ``python -m bench [--docs] [--smoke] [--only NAME ...]``.

Runs the five benchmarks of the performance targets one after the other, each in its own
process with its own references measured in the same invocation, and prints (with
``--docs``, writes at the top of docs/benchmarks.md) one table: each target, the figure
measured, and whether it is met. With ``--docs`` every benchmark also rewrites its own
section of docs/benchmarks.md.

============  =========================================================================
``load``      virtual-time speed of load-10k and load-100k against the SimPy reference
``mqtt``      status throughput, durable outbox, against plain aiomqtt and raw paho
``schedule``  how late timers fire in scaled real time at 5,000 status messages a second
``recovery``  restart to all jobs resumed after SIGKILL with 10,000 jobs in flight
``commands``  cancel latency over MQTT while the worker runs load-10k
============  =========================================================================

``--smoke`` runs every benchmark at tiny sizes and writes no docs: the test suite runs it
so that none of them rots. Missed targets are reported, not failed: the exit status is 1
only when a benchmark itself fails (an error, a lost message).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cli
from bench.docs import write_section
from bench.harness import ROOT, python
from bench.load import TARGET_RSS_MIB, TARGET_SIMPY_RATIO, TARGET_WALL_S
from bench.tables import row as cells

__all__ = ["BENCHES", "Target", "main", "targets"]


@dataclass(frozen=True, slots=True)
class Bench:
    module: str
    full: tuple[str, ...]
    smoke: tuple[str, ...]
    docs: tuple[str, ...] = ("--docs",)
    no_docs: tuple[str, ...] = ()


BENCHES: dict[str, Bench] = {
    "load": Bench("bench.load", ("configs/load-10k.toml", "configs/load-100k.toml"), ("--smoke",)),
    "mqtt": Bench("bench.mqtt_throughput", ("--reps", "5"), ("--smoke",), (), ("--no-docs",)),
    "schedule": Bench("bench.schedule", (), ("--smoke",)),
    "recovery": Bench("bench.recovery", (), ("--smoke",)),
    "commands": Bench("bench.commands", (), ("--smoke",)),
}


@dataclass(frozen=True, slots=True)
class Target:
    bench: str
    name: str
    figure: str
    met: bool | None  # None: not measured


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("bench", __doc__)
    parser.add_argument("--docs", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no docs")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    parser.add_argument("--json", type=Path, help="write every benchmark's figures here")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHES)
    reports: dict[str, Any] = {}
    failed: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-") as scratch:
        for name in names:
            bench = BENCHES[name]
            out = Path(scratch) / f"{name}.json"
            command = python(bench.module, "--json", str(out))
            if args.smoke:
                command += bench.smoke
            else:
                command += [*bench.full, *(bench.docs if args.docs else bench.no_docs)]
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            code = subprocess.run(command, cwd=ROOT, check=False).returncode
            if code != 0 or not out.exists():
                failed.append(f"{name} (exit status {code})")
                continue
            reports[name] = json.loads(out.read_text())
    rows = targets(reports)
    table = summary(rows, time.monotonic() - started, smoke=args.smoke)
    print("\n" + table, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"reports": reports, "failed": failed}, indent=1))
    if args.docs and not args.smoke and not args.only:
        write_section("suite", table)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def targets(reports: dict[str, Any]) -> list[Target]:
    """Each target of the issue with what the reports say of it."""
    rows: list[Target] = []
    for name, read in READERS:
        report = reports.get(name)
        rows += read(report) if report is not None else []
    return rows


def _load(report: dict[str, Any]) -> list[Target]:
    """The targets are load-100k's: they are read from the last (largest) scenario run."""
    if not report["runs"]:
        return []
    run = report["runs"][-1]
    label = Path(run["scenario"]).stem
    d = run["drivesim"]
    wall, rss = d["wall"], d["peak_rss_mib"]
    rows = [
        Target(
            "load", f"{label}: wall ≤ {TARGET_WALL_S:g} s", f"{wall:,.1f} s", wall <= TARGET_WALL_S
        ),
        Target(
            "load",
            f"{label}: peak RSS ≤ {TARGET_RSS_MIB / 1024:g} GiB",
            f"{rss:,.0f} MiB",
            rss <= TARGET_RSS_MIB,
        ),
    ]
    if "ratio" in run:
        ratio = run["ratio"]
        rows.append(
            Target(
                "load",
                f"{label}: ≤ {TARGET_SIMPY_RATIO:g}x SimPy",
                f"{ratio:.1f}x ({wall:,.1f} s / {run['simpy']['wall']:,.2f} s)",
                ratio <= TARGET_SIMPY_RATIO,
            )
        )
    return rows


def _mqtt(runs: list[dict[str, Any]]) -> list[Target]:
    by = {(r["case"], r["rep"]): r for r in runs}
    lost = sum(r["lost"] for r in runs if r["case"] == "drivesim")
    rows = []
    for ref, floor in (("aiomqtt", 1.0), ("paho", 0.8)):
        ratios = [
            r["rate"] / by[ref, r["rep"]]["rate"]
            for r in runs
            if r["case"] == "drivesim" and (ref, r["rep"]) in by and by[ref, r["rep"]]["rate"]
        ]
        if ratios:
            ratio = statistics.median(ratios)
            rows.append(
                Target(
                    "mqtt",
                    f"status throughput ≥ {floor:.1f}x {ref}, nothing lost",
                    f"{ratio:.2f}x, {lost} lost",
                    ratio >= floor and lost == 0,
                )
            )
    return rows


def _schedule(report: dict[str, Any]) -> list[Target]:
    r = report["run"]
    figure = (
        f"wake {r['wake']['p99_ms']:.1f} ms, commit {r['commit']['p99_ms']:.1f} ms "
        f"at {r['rate_achieved']:,.0f} msg/s"
    )
    name = f"lateness p99 < {r['target_p99_ms']:g} ms at 5,000 msg/s"
    return [Target("schedule", name, figure, r["target_met"])]


def _recovery(report: dict[str, Any]) -> list[Target]:
    median, worst = report["resumed_median"], report["resumed_max"]
    if median is None:
        return [Target("recovery", "10,000 jobs resumed < 2 s", "no trial resumed", False)]
    figure = f"median {median:.2f} s, worst {worst:.2f} s ({report['jobs']:,} jobs)"
    return [Target("recovery", "10,000 jobs resumed < 2 s", figure, report["target_met"])]


def _commands(report: dict[str, Any]) -> list[Target]:
    probe = report["load"]["probe"]
    figure = f"p50 {probe['p50_s'] * 1000:.1f} ms, p99 {probe['p99_s'] * 1000:.1f} ms"
    return [Target("commands", "cancel p99 < 50 ms under load", figure, report["target_met"])]


READERS: list[tuple[str, Callable[[Any], list[Target]]]] = [
    ("load", _load),
    ("mqtt", _mqtt),
    ("schedule", _schedule),
    ("recovery", _recovery),
    ("commands", _commands),
]


def summary(rows: list[Target], elapsed: float, *, smoke: bool) -> str:
    verdicts = {True: "**met**", False: "missed", None: "not measured"}
    lines = [
        "## The targets (`python -m bench`)",
        "",
        "Command: `.venv/bin/python -m bench --docs` "
        f"({elapsed / 60:,.0f} min{', smoke sizes' if smoke else ''}). Each benchmark runs in "
        "its own process with its references in the same invocation; its section below "
        "has the details.",
        "",
        "| benchmark | target | measured | |",  # the last column, the verdict, has no title
        "|---|---|---|---|",
        *(cells(r.bench, r.name, r.figure, verdicts[r.met]) for r in rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
