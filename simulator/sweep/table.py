"""A sweep's table: one row a cell (its values, seed and figures) in grid order, and a summary
of each combination across its seeds (mean, spread). Written as CSV and as JSON.

Only figures of simulated time are in it (no wall-clock time), so the same grid gives the
same table wherever and in whatever order its cells ran.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulator.sweep.cells import METRICS
from simulator.sweep.grid import Grid

__all__ = ["Spread", "build_table", "summary", "write_csv", "write_json"]

Spread = dict[str, float | int | None]


def _row(grid: Grid, result: Mapping[str, Any]) -> dict[str, Any]:
    cell = grid.cells()[int(result["index"])]
    return {
        "cell": cell.index,
        "values": grid.values(cell.choice),
        "seed": cell.seed,
        "metrics": {m.id: result["metrics"].get(m.id) for m in METRICS},
        "invariantsOk": result["invariantsOk"],
        "finished": result["finished"],
    }


def spread(values: list[float | None]) -> Spread:
    """Mean, sample standard deviation, min and max of the values that are not None."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    mean = math.fsum(present) / len(present)
    return {
        "n": len(present),
        "mean": round(mean, 6),
        "sd": round(statistics.stdev(present), 6) if len(present) > 1 else 0.0,
        "min": min(present),
        "max": max(present),
    }


def summary(grid: Grid, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each combination's figures across its seeds, in grid order."""
    by_combination: dict[int, list[dict[str, Any]]] = {}
    seeds = len(grid.seeds)
    for row in rows:
        by_combination.setdefault(row["cell"] // seeds, []).append(row)
    found = []
    for combination, choice in enumerate(grid.choices):
        cells = by_combination.get(combination, [])
        found.append(
            {
                "values": grid.values(choice),
                "seeds": [row["seed"] for row in cells],
                "metrics": {m.id: spread([row["metrics"][m.id] for row in cells]) for m in METRICS},
                "invariantsOk": all(row["invariantsOk"] for row in cells),
            }
        )
    return found


def build_table(grid: Grid, results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The sweep's table: the grid, the metrics, a row a cell done, a summary a combination."""
    rows = [_row(grid, results[i]) for i in sorted(results)]
    return {
        "scenario": grid.name,
        "file": grid.where,
        "grid": grid.identity(),
        "vary": {v.key: list(v.values) for v in grid.varies},
        "seeds": list(grid.seeds),
        "cellsDone": len(rows),
        "cells": grid.size,
        "metrics": [{"id": m.id, "label": m.label, "unit": m.unit} for m in METRICS],
        "rows": rows,
        "summary": summary(grid, rows),
    }


def write_json(path: Path, table: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(table, indent=2, default=str) + "\n", encoding="utf-8")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return value
    return json.dumps(value, default=str)


def write_csv(path: Path, table: Mapping[str, Any]) -> None:
    """One line a cell: the varied keys, the seed, each metric, the invariants."""
    keys = list(table["vary"])
    metrics = [m["id"] for m in table["metrics"]]
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*keys, "seed", *metrics, "invariantsOk", "finished"])
        for row in table["rows"]:
            writer.writerow(
                [
                    *(_csv_value(row["values"][k]) for k in keys),
                    row["seed"],
                    *(_csv_value(row["metrics"][m]) for m in metrics),
                    _csv_value(row["invariantsOk"]),
                    _csv_value(row["finished"]),
                ]
            )
