"""Virtual-time simulation speed: ``python -m bench.load configs/load-10k.toml [...]``.

Runs each scenario in a fresh process (so peak RSS is its own) in virtual time with the
in-memory store and bus, and prints wall seconds, simulated days, committed changes and
messages, their rates, and peak resident memory. Right after each drivesim run, the
minimal SimPy model of the same pipeline (:mod:`bench.simpy_reference`: same workload,
seed and plans) runs in a fresh process too, as the lower bound: its wall seconds, events
per second and drivesim's wall time over it (``--no-simpy`` leaves it out). ``--docs``
writes the table into docs/benchmarks.md between its markers.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import cli
from bench.docs import finish
from bench.harness import child_json, python, python_code
from bench.tables import header
from bench.tables import row as cells

CHILD = """
import json, sys, time
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import MemoryStore, configure_logging
configure_logging(level="warning")  # as the CLI does: info events would cost more than the run
scenario = load_scenario(sys.argv[1])
counts = {"changes": 0, "messages": 0, "jobs": 0}
created = b'importexport.jobCreated"'
def count(message):
    counts["messages"] += 1
    topic = message.topic
    if topic.endswith("/state") and topic.count("/") == 4:  # importexport/v1/jobs/{job}/state
        counts["changes"] += 1  # every change announces (or clears) exactly one snapshot
    elif topic.endswith("/events") and created in message.payload:
        counts["jobs"] += 1
started = time.perf_counter()
result = run_scenario(scenario, MemoryStore(history=False), on_message=count)
run_wall = time.perf_counter() - started
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall": run_wall, "sim_days": result.sim_seconds / 86400,
                  **counts, "finished": result.finished, "own_peak_rss_mib": peak}))
"""


def measure(path: str) -> dict[str, float]:
    """drivesim's run of the scenario at ``path`` in a fresh process."""
    data, process_wall = child_json(python_code(CHILD, path))
    data["process_wall"] = process_wall
    data["peak_rss_mib"] = data.pop("own_peak_rss_mib")
    return data


def measure_simpy(path: str) -> dict[str, float]:
    """The SimPy reference's run of the same scenario in a fresh process."""
    data, process_wall = child_json(python("bench.simpy_reference", path))
    data["process_wall"] = process_wall
    data.pop("ended", None)
    # Its own peak: the children's maximum includes the drivesim run before it.
    data["peak_rss_mib"] = data.pop("own_peak_rss_mib")
    return data


#: What the issue asks of load-100k in virtual time.
TARGET_WALL_S, TARGET_RSS_MIB, TARGET_SIMPY_RATIO = 60.0, 1024.0, 3.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.load", __doc__)
    parser.add_argument(
        "scenarios", nargs="*", default=["configs/load-10k.toml", "configs/load-100k.toml"]
    )
    cli.add_outputs(parser, json_help="also write the figures to this file")
    parser.add_argument(
        "--smoke", action="store_true", help="configs/load-small.toml only; no docs"
    )
    parser.add_argument(
        "--simpy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the SimPy reference model of each scenario (default: on)",
    )
    args = parser.parse_args(argv)
    scenarios = ["configs/load-small.toml"] if args.smoke else args.scenarios
    runs: list[dict[str, Any]] = []
    rows, simpy_rows = [], []
    for path in scenarios:
        r = measure(path)
        run: dict[str, Any] = {"scenario": path, "drivesim": r}
        rows.append(
            cells(
                f"`{path}`",
                f"{r['jobs']:,.0f}",
                f"{r['sim_days']:.0f}",
                f"{r['wall']:.1f}",
                f"{r['changes']:,.0f}",
                f"{r['changes'] / r['wall']:,.0f}",
                f"{r['messages']:,.0f}",
                f"{r['messages'] / r['wall']:,.0f}",
                f"{r['peak_rss_mib']:,.0f}",
            )
        )
        print(rows[-1], flush=True)
        if args.simpy:
            s = measure_simpy(path)
            run["simpy"] = s
            run["ratio"] = r["wall"] / s["wall"]
            simpy_rows.append(
                cells(
                    f"`{path}`",
                    f"{s['jobs']:,.0f}",
                    f"{s['sim_days']:.0f}",
                    f"{s['wall']:.2f}",
                    f"{s['events']:,.0f}",
                    f"{s['events'] / s['wall']:,.0f}",
                    f"{s['peak_rss_mib']:,.0f}",
                    f"{run['ratio']:,.1f}x",
                )
            )
            print(simpy_rows[-1], flush=True)
        runs.append(run)
    simpy_table = [
        "",
        "The same scenarios in `bench/simpy_reference.py`, a minimal SimPy model of the same "
        "pipeline (same expanded workload, seed and per-job plans; bays as `simpy.Resource`, "
        "checkpointed transfers, best-effort cancel, packaging, return, retention and expiry) "
        "with nothing published or stored: the lower bound for the same simulation. An "
        "*event* is counted where drivesim commits a change; *ratio* is drivesim's wall time "
        "over SimPy's.",
        "",
        header(
            "scenario | jobs | simulated days | wall s | events | events/s | peak RSS MiB | ratio",
            "lrrrrrrr",
        ),
        *simpy_rows,
    ]
    table = "\n".join(
        [
            "## Virtual-time simulation speed (`bench/load.py`)",
            "",
            f"Command: `.venv/bin/python -m bench.load {' '.join(scenarios)} --docs`, "
            "in-memory store and bus that keep no history (`MemoryStore(history=False)`; a "
            "subscriber counts the stream), one fresh process per scenario, logging at "
            "`warning` as the CLI runs. *Wall* is the run alone; a *change* is one committed "
            "job change (one `seq`); peak RSS is the process's own.",
            "",
            header(
                "scenario | jobs | simulated days | wall s | changes | changes/s | messages "
                "| messages/s | peak RSS MiB",
                "lrrrrrrrr",
            ),
            *rows,
            *(simpy_table if simpy_rows else []),
        ]
    )
    report = {"runs": runs, "table": table}
    finish(
        "load",
        table,
        report,
        json_path=args.json or None,
        docs=args.docs and not args.smoke,
        echo=None,
        indent=2,
    )
    return report


if __name__ == "__main__":
    main()
