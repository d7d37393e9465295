"""Virtual-time simulation speed: ``python -m bench.load configs/load-10k.toml [...]``.

Runs each scenario in a fresh process (so peak RSS is its own) in virtual time with the
in-memory store and bus, and prints wall seconds, simulated days, committed changes and
messages, their rates, and peak resident memory. Right after each drivesim run, the
minimal SimPy model of the same pipeline (:mod:`bench.simpy_reference`: same workload,
seed and plans) runs in a fresh process too, as the lower bound: its wall seconds, events
per second and drivesim's wall time over it (``--no-simpy`` leaves it out). ``--docs``
writes the table into docs/benchmarks.md between its markers.

``--processes N`` also runs each scenario split into N processes, one per shard of its
locations (:mod:`simulator.run.shards`, as ``drivesim run --processes N`` does), in a
fresh process of its own: the whole run's wall seconds (processes started, scenario read
in each, run, results merged), each shard's, and the peak RSS of every process, against
the run in one process and the SimPy reference of the same invocation; ``--docs`` then
writes that table into its own section (and leaves the one-process section alone).
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import cli
from bench.docs import finish, write_section
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


SHARDED = """
import json, resource, sys
from simulator.run.shards import run_sharded
from simulator.run.split import plan_split
from simulator.scenario import load_scenario
from worker import configure_logging
configure_logging(level="warning")
scenario = load_scenario(sys.argv[1])
split = plan_split(scenario, int(sys.argv[2]))
result = run_sharded(scenario, split, history=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
created = sum(1 for a in result.actions if a.do == "create" and a.outcome == "created")
print(json.dumps({"wall": result.wall_seconds, "sim_days": result.sim_seconds / 86400,
                  "processes": split.processes, "reason": split.reason,
                  "jobs": created, "changes": sum(s.changes for s in result.shards),
                  "messages": sum(s.messages for s in result.shards),
                  "finished": result.finished, "own_peak_rss_mib": peak,
                  "shards": [s.to_json() for s in result.shards]}))
"""


def measure_sharded(path: str, processes: int) -> dict[str, Any]:
    """drivesim's run of the scenario at ``path`` split into ``processes`` (one per shard
    of its locations), from a fresh process: the whole run's wall and each shard's."""
    data, process_wall = child_json(python_code(SHARDED, path, str(processes)))
    data["process_wall"] = process_wall
    data["peak_rss_mib"] = data.pop("own_peak_rss_mib")
    return data


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
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="also run each scenario split into N processes (one per shard of its locations) "
        "and compare",
    )
    args = parser.parse_args(argv)
    if args.processes is not None and args.processes < 2:
        parser.error("--processes: a number of processes from 2")
    scenarios = ["configs/load-small.toml"] if args.smoke else args.scenarios
    runs: list[dict[str, Any]] = []
    rows, simpy_rows, split_rows = [], [], []
    for path in scenarios:
        r = measure(path)
        run: dict[str, Any] = {"scenario": path, "drivesim": r}
        if args.processes is not None:
            run["sharded"] = measure_sharded(path, args.processes)
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
        if "sharded" in run:
            split_rows.append(_split_row(path, run))
            print(split_rows[-1], flush=True)
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
    report: dict[str, Any] = {"runs": runs, "table": table}
    if split_rows:
        report["split_table"] = _split_table(scenarios, args.processes, split_rows)
        print("\n" + report["split_table"], flush=True)
    finish(
        "load",
        table,
        report,
        json_path=args.json or None,
        # A split run's invocation writes its own section only: the one-process figures
        # are in it, and the section above keeps the scenarios of its own command.
        docs=args.docs and not args.smoke and not split_rows,
        echo=None,
        indent=2,
    )
    if split_rows and args.docs and not args.smoke:
        write_section("load_processes", report["split_table"])
    return report


def _split_row(path: str, run: dict[str, Any]) -> str:
    """One scenario split into processes, against one process and SimPy."""
    one, split = run["drivesim"], run["sharded"]
    simpy = run.get("simpy")
    shards = split["shards"]
    same = one["changes"] == split["changes"] and one["messages"] == split["messages"]
    return cells(
        f"`{path}`",
        f"{split['processes']}",
        f"{one['wall']:.1f}",
        f"{split['wall']:.1f}",
        f"{one['wall'] / split['wall']:.2f}x",
        " / ".join(f"{s['wallSeconds']:.1f}" for s in shards),
        " / ".join(f"{s['processSeconds']:.1f}" for s in shards),
        "—" if simpy is None else f"{simpy['wall']:.2f}",
        "—" if simpy is None else f"{split['wall'] / simpy['wall']:.1f}x",
        f"{one['peak_rss_mib']:,.0f}",
        " / ".join(f"{s['peakRssMiB']:,.0f}" for s in shards) + f" (+{split['peak_rss_mib']:,.0f})",
        "yes" if same else "**no**",
    )


def _split_table(scenarios: list[str], processes: int, rows: list[str]) -> str:
    return "\n".join(
        [
            "## Virtual time split into processes (`bench/load.py --processes`)",
            "",
            f"Command: `.venv/bin/python -m bench.load {' '.join(scenarios)} --processes "
            f"{processes} --docs`. "
            "Each scenario runs in one process, then split into "
            "processes, one per shard of its locations as `drivesim run --processes` splits "
            "it (`simulator/run/shards.py`: in-memory stores that keep no history; each "
            "shard counts its changes and messages as its store commits them, where the run "
            "in one process counts them with a subscriber, a call a message), from a fresh "
            "process of its own, then in the SimPy reference. *Wall, split* is the whole: "
            "the shards' processes started, the scenario read and expanded in each, the "
            "runs, their results merged; *shard run* is each shard's simulation alone, "
            "*shard process* from the start of the run to its result received. Peak RSS per "
            "shard, and (+) the process that started them. *Same stream*: the split run "
            "committed as many changes and messages as the run in one process.",
            "",
            header(
                "scenario | processes | wall s, 1 process | wall s, split | speed-up "
                "| shard run s | shard process s | SimPy wall s | split ÷ SimPy "
                "| peak RSS MiB, 1 process | peak RSS MiB per shard | same stream",
                "lrrrrrrrrrrl",
            ),
            *rows,
        ]
    )


if __name__ == "__main__":
    main()
