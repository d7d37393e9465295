"""One cell of a sweep: a scenario document run with one seed in virtual time, and the
figures the sweep compares, read from the run's JSON report (the same computations as
``drivesim run --report``).

:func:`run_cell` is what a local process or a Dask worker runs: it takes and returns plain
data, so it pickles, and it depends on nothing but its task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from simulator.report.history import History
from simulator.report.invariants import check_run
from simulator.report.json_report import build_report
from simulator.run.runner import run_scenario
from simulator.scenario.file import parse_scenario
from worker import MemoryStore, configure_logging

__all__ = ["METRICS", "CellTask", "Metric", "metrics_of", "run_cell"]

Unit = Literal["bytes", "count", "ratio", "seconds"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure of a cell: its name in the table, its label, its unit, where the report has it."""

    id: str
    label: str
    unit: Unit
    read: Callable[[dict[str, Any]], float | None]


#: What a sweep compares, each read from the run's JSON report.
METRICS: tuple[Metric, ...] = (
    Metric(
        "bytesAfterCancel",
        "bytes copied after the cancel",
        "bytes",
        lambda r: r["cancel"]["bytesAfterCancel"],
    ),
    Metric("drivesSkipped", "drives skipped", "count", lambda r: r["cancel"]["drivesSkipped"]),
    Metric(
        "cancelledJobs",
        "cancelled jobs (cancel accepted)",
        "count",
        lambda r: r["cancel"]["accepted"],
    ),
    Metric(
        "cancelsRejectedTooLate",
        "cancels rejected as too late",
        "count",
        lambda r: r["cancel"]["rejectedTooLate"],
    ),
    # While copying: over the whole run, weeks of retention after the last copy dilute it.
    Metric(
        "bayUtilisation",
        "bay utilisation while copying",
        "ratio",
        lambda r: r["bays"]["overall"]["utilisationWhileCopying"],
    ),
    Metric(
        "queueWaitP50", "bay queue wait p50", "seconds", lambda r: r["latency"]["bayQueue"]["p50"]
    ),
    Metric(
        "queueWaitP95", "bay queue wait p95", "seconds", lambda r: r["latency"]["bayQueue"]["p95"]
    ),
    Metric(
        "turnaroundP50",
        "job turnaround p50 (created → ended)",
        "seconds",
        lambda r: r["latency"]["endToEnd"]["p50"],
    ),
    Metric(
        "turnaroundP95",
        "job turnaround p95 (created → ended)",
        "seconds",
        lambda r: r["latency"]["endToEnd"]["p95"],
    ),
    Metric(
        "jobsClosed", "jobs Closed", "count", lambda r: r["jobs"]["finalStates"].get("Closed", 0)
    ),
    Metric("messages", "status messages published", "count", lambda r: r["messages"]["published"]),
)


def metrics_of(report: dict[str, Any]) -> dict[str, float | None]:
    """The sweep's figures of a run, from its JSON report."""
    return {metric.id: metric.read(report) for metric in METRICS}


@dataclass(frozen=True, slots=True)
class CellTask:
    """What a worker needs to run a cell: the document with the cell's values written in."""

    index: int
    where: str
    document: dict[str, Any]
    seed: int
    log_level: str = "warning"


_logging: list[str] = []


def run_cell(task: CellTask) -> dict[str, Any]:
    """Run ``task`` in virtual time on an in-memory store: the cell's figures, whether
    every invariant held and whether the run ended before its ``until``, and its wall time."""
    if _logging != [task.log_level]:  # once a process: the CLI's level, on stderr
        configure_logging(level=task.log_level, fmt="json")
        _logging[:] = [task.log_level]
    started = time.perf_counter()
    scenario = parse_scenario(task.document, task.where)
    result = run_scenario(scenario, MemoryStore(), seed=task.seed)
    history = History(result.history, scenario.epoch)
    report = build_report(result, history, check_run(result, history))
    return {
        "index": task.index,
        "seed": task.seed,
        "metrics": metrics_of(report),
        "invariantsOk": report["ok"],
        "finished": report["finished"],
        "wallSeconds": round(time.perf_counter() - started, 3),
    }
