"""``drivesim sweep``: a scenario over a grid of keys and seeds, in virtual time, on local
processes or a Dask cluster; a table (CSV, JSON) and a page of plots of the results.

The grid (:mod:`simulator.sweep.grid`) is validated before any cell runs. Each cell's result
is kept in the output folder as it comes (:mod:`simulator.sweep.results`), so a sweep
interrupted goes on from where it stopped when run again with the same grid.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.console import arguments
from simulator.sweep.grid import MAX_SEEDS, Grid, load_grid

# The runs, the reports and the page are imported by run_sweep: ``drivesim worker`` builds
# this parser too and needs none of them.

__all__ = ["add_sweep_parser", "default_out", "print_summary", "run_sweep"]

EXIT_OK, EXIT_INVARIANT = 0, 1
#: Output files in the sweep's folder.
CSV_FILE, JSON_FILE, HTML_FILE = "sweep.csv", "sweep.json", "sweep.html"
#: Combinations the terminal's summary shows side by side (more: see the files).
SHOWN_COMBINATIONS = 6


def add_sweep_parser(commands: Any) -> None:
    """The ``sweep`` subcommand and its options."""
    sweep = commands.add_parser(
        "sweep",
        help="run a scenario over a grid of changed keys and seeds; a table and plots",
        description="Run a scenario in virtual time for every combination of the values "
        "given to its keys, with several seeds each, on all local cores or a Dask cluster; "
        "write a table (CSV and JSON) and an HTML page of each metric's mean and spread "
        "across seeds. An interrupted sweep goes on from its cells done when run again.",
    )
    sweep.add_argument(
        "scenario",
        type=arguments.existing_file,
        help="a scenario file; its [sweep] table (vary, seeds) is the default grid, e.g. "
        "configs/study-cancel-windows.toml",
    )
    sweep.add_argument(
        "--vary",
        type=arguments.vary,
        action="append",
        metavar="KEY=V1,V2,...",
        help="a dotted scenario key and its values, e.g. "
        "policy.cancel_window=before-packaging,creating-only or "
        "'datacenter.locations.West US=2,4'; repeat for more keys (every combination "
        "runs); replaces the file's [sweep] vary",
    )
    sweep.add_argument(
        "--seeds",
        type=arguments.count(1, MAX_SEEDS),
        metavar="K",
        help="seeds per combination, from the scenario's seed on (default: the [sweep] "
        "table's, else 1)",
    )
    sweep.add_argument(
        "--out",
        type=arguments.output_dir,
        metavar="DIR",
        help="the folder of the results, kept to resume (default: sweep-<scenario file name>)",
    )
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--processes",
        type=arguments.count(1, 1024),
        metavar="N",
        help=f"local processes running cells (default: every core, {os.cpu_count() or 1} here)",
    )
    where.add_argument(
        "--dask",
        type=arguments.dask_address,
        metavar="tcp://HOST:PORT",
        help="run each cell as a task on this Dask distributed scheduler (the workers need "
        "drivesim installed; pip install 'drivesim[dask]')",
    )


def default_out(scenario: Path) -> Path:
    """Where a sweep of ``scenario`` writes unless --out says: ``sweep-<its name>``."""
    return Path(f"sweep-{scenario.stem}")


def _tell(text: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(text)


def run_sweep(args: argparse.Namespace, console: Console) -> int:
    from simulator.sweep.cells import CellTask
    from simulator.sweep.execute import run_dask, run_local
    from simulator.sweep.page import write_sweep
    from simulator.sweep.progress import SweepProgress
    from simulator.sweep.results import CELLS_FILE, Results
    from simulator.sweep.table import build_table, write_csv, write_json

    grid = load_grid(args.scenario, args.vary or (), args.seeds)
    out: Path = args.out or default_out(args.scenario)
    processes = args.processes or os.cpu_count() or 1
    where = f"Dask at {args.dask}" if args.dask else f"{processes} local processes"
    with Results(out, grid) as results:
        cells = grid.cells()
        todo = [cell for cell in cells if cell.index not in results.done]
        keys = " × ".join(f"{v.key} ({len(v.values)})" for v in grid.varies)
        console.print(
            f"sweep of [bold]{escape(grid.name)}[/bold]: {escape(keys)} × {len(grid.seeds)} "
            f"seeds = {grid.size} cells, on {escape(where)}, into {escape(str(out))}",
            soft_wrap=True,
        )
        if results.done:
            _tell(
                f"resuming: {len(results.done)} of {grid.size} cells already done in "
                f"{out / CELLS_FILE}"
            )
        tasks = [
            CellTask(
                index=cell.index,
                where=grid.where,
                document=grid.document_for(cell.choice, cell.seed),
                seed=cell.seed,
                log_level=args.log_level,
            )
            for cell in todo
        ]
        progress = SweepProgress(
            Console(stderr=True, highlight=False),
            total=grid.size,
            done=len(results.done),
            where=where,
        )

        def done(row: dict[str, Any]) -> None:
            row["values"] = grid.values(cells[int(row["index"])].choice)
            results.add(row)
            progress.advance()

        try:
            with progress:
                if args.dask:
                    run_dask(tasks, args.dask, done)
                else:
                    run_local(tasks, processes, done)
        except KeyboardInterrupt:
            if results.done:
                _tell(
                    f"{len(results.done)} of {grid.size} cells kept in {out / CELLS_FILE}; "
                    "run the same command again to go on from there"
                )
            else:
                _tell("no cell was done yet: nothing kept")
            raise
        table = build_table(grid, results.done)
    out.mkdir(parents=True, exist_ok=True)  # a grid whose cells were all done before
    write_csv(out / CSV_FILE, table)
    write_json(out / JSON_FILE, table)
    write_sweep(out / HTML_FILE, grid, table)
    print_summary(console, grid, table)
    for name in (CSV_FILE, JSON_FILE, HTML_FILE):
        console.print(f"{name.rsplit('.', 1)[1]}: {escape(str(out / name))}", soft_wrap=True)
    failed = [row for row in table["rows"] if not row["invariantsOk"]]
    if failed:
        console.print(
            f"[bold red]{len(failed)} runs violated an invariant[/bold red]: "
            + ", ".join(f"cell {row['cell']} (seed {row['seed']})" for row in failed[:10])
        )
        return EXIT_INVARIANT
    return EXIT_OK


def print_summary(console: Console, grid: Grid, table: dict[str, Any]) -> None:
    """Each metric's mean (± sd) for each combination, side by side, when few enough (the
    table's ``summary``, as :func:`~simulator.sweep.table.build_table` made it)."""
    from simulator.sweep.cells import METRICS
    from simulator.sweep.page import mean_text

    summary = table["summary"]
    if len(summary) > SHOWN_COMBINATIONS:
        return
    view = Table(box=None, pad_edge=False)
    view.add_column(f"mean across {len(grid.seeds)} seeds", style="dim", no_wrap=True)
    for choice in grid.choices:
        view.add_column(
            escape(", ".join(v.labels[i] for v, i in zip(grid.varies, choice, strict=True))),
            justify="right",
        )
    for metric in METRICS:
        view.add_row(metric.label, *(mean_text(metric, e["metrics"][metric.id]) for e in summary))
    console.print(view)
