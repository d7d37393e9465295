"""How fast a sweep runs: cells a minute on 1 and 2 local processes and on a Dask cluster.

One grid (a scenario's ``[sweep]`` table, or ``--vary`` and ``--seeds``) runs three times
as ``drivesim sweep`` runs it, from tasks to results, with no files written: on a pool of
1 local process, of 2, and on a Dask ``LocalCluster`` of 2 worker processes (one thread
each) started before the clock starts, as a cluster already running would be. Each time:
the wall seconds from the first task handed out to the last result (a local pool's start
included: every sweep pays it) and **cells a minute**, as a ratio to one process. The three
must give the same figures cell by cell, or the bench fails.

``--smoke`` runs the tiny test grid (tests/simulator/sweep/tiny.toml, 4 cells) and writes
no docs: tests/bench/test_sweep_smoke.py runs it so that the bench never rots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import cli
from bench.docs import finish
from bench.machine import machine_line
from bench.tables import header, row
from simulator.sweep.cells import CellTask
from simulator.sweep.execute import run_dask, run_local
from simulator.sweep.grid import Grid, load_grid, split_vary

__all__ = ["main", "measure"]

ROOT = Path(__file__).parents[1]
DEFAULT = ROOT / "configs" / "study-cancel-windows.toml"
SMOKE = ROOT / "tests" / "simulator" / "sweep" / "tiny.toml"


def _tasks(grid: Grid) -> list[CellTask]:
    return [
        CellTask(
            index=cell.index,
            where=grid.where,
            document=grid.document_for(cell.choice, cell.seed),
            seed=cell.seed,
            log_level="error",
        )
        for cell in grid.cells()
    ]


def _timed(
    name: str, tasks: list[CellTask], run: Callable[[Callable[[dict[str, Any]], None]], Any]
) -> dict[str, Any]:
    rows: dict[int, dict[str, Any]] = {}

    def done(result: dict[str, Any]) -> None:
        rows[int(result["index"])] = result

    started = time.perf_counter()
    run(done)
    wall = time.perf_counter() - started
    assert len(rows) == len(tasks), f"{name}: {len(rows)} of {len(tasks)} cells"
    return {
        "setup": name,
        "cells": len(rows),
        "wall": round(wall, 3),
        "cellsPerMinute": round(len(rows) / wall * 60, 2),
        "cellSeconds": round(sum(r["wallSeconds"] for r in rows.values()), 3),
        "metrics": {i: rows[i]["metrics"] for i in sorted(rows)},
    }


def measure(grid: Grid) -> list[dict[str, Any]]:
    """The grid on 1 and 2 local processes and a 2-worker Dask LocalCluster."""
    from distributed import LocalCluster

    tasks = _tasks(grid)
    found = [
        _timed("1 local process", tasks, lambda done: run_local(tasks, 1, done)),
        _timed("2 local processes", tasks, lambda done: run_local(tasks, 2, done)),
    ]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        found.append(_timed("Dask, 2 workers", tasks, lambda done: run_dask(tasks, address, done)))
    reference = found[0]
    for result in found:
        if result["metrics"] != reference["metrics"]:
            raise AssertionError(f"{result['setup']} gave other figures than one process")
        result["ratio"] = round(result["cellsPerMinute"] / reference["cellsPerMinute"], 2)
    return found


def render(grid: Grid, results: Sequence[dict[str, Any]], command: str) -> str:
    keys = " × ".join(f"{v.key} ({len(v.values)})" for v in grid.varies)
    lines = [
        f"Command: `{command}`. Grid: {grid.name}, {keys} × {len(grid.seeds)} seeds = "
        f"{grid.size} cells. Machine: {machine_line()}.",
        "",
        header(
            "set-up | cells | wall s | cells a minute | ÷ 1 process | Σ cell wall s",
            "lrrrrr",
        ),
    ]
    for result in results:
        lines.append(
            row(
                result["setup"],
                result["cells"],
                f"{result['wall']:.1f}",
                f"{result['cellsPerMinute']:.1f}",
                f"{result['ratio']:.2f}",
                f"{result['cellSeconds']:.1f}",
            )
        )
    lines += ["", "Every set-up gave the same figures, cell by cell."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("bench.sweep", __doc__)
    parser.add_argument(
        "scenario",
        nargs="?",
        type=Path,
        default=None,
        help=f"the scenario to sweep (default: {DEFAULT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--vary", action="append", metavar="KEY=V1,V2,...", help="as drivesim sweep"
    )
    parser.add_argument("--seeds", type=int, metavar="K", help="as drivesim sweep")
    parser.add_argument("--smoke", action="store_true", help="the tiny test grid, no docs")
    cli.add_outputs(parser)
    argv = cli.arguments(argv)
    args = parser.parse_args(argv)
    path = SMOKE if args.smoke else (args.scenario or DEFAULT)
    vary = [split_vary(text) for text in args.vary or ()]
    grid = load_grid(path, vary, args.seeds)
    with cli.quiet_logging():
        results = measure(grid)
    text = render(grid, results, cli.command_line("bench.sweep", argv))
    report = {"grid": grid.identity(), "results": results}
    finish("sweep", text, report, json_path=args.json, docs=args.docs and not args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
