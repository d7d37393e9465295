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
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench.load: begin -->", "<!-- bench.load: end -->"

CHILD = """
import json, sys, time
from simulator.history import History
from simulator.runner import run_scenario
from simulator.scenario import load_scenario
from worker.store import MemoryStore
scenario = load_scenario(sys.argv[1])
started = time.perf_counter()
result = run_scenario(scenario, MemoryStore())
run_wall = time.perf_counter() - started
history = History(result.history, scenario.epoch)
changes = sum(len(seqs) for seqs in history.seqs.values())
print(json.dumps({"wall": run_wall, "sim_days": result.sim_seconds / 86400,
                  "changes": changes, "messages": len(result.history),
                  "jobs": len(history.incarnations), "finished": result.finished}))
"""


ROOT = Path(__file__).parents[1]


def measure(path: str) -> dict[str, float]:
    """drivesim's run of the scenario at ``path`` in a fresh process."""
    return _child([sys.executable, "-c", CHILD, path])


def measure_simpy(path: str) -> dict[str, float]:
    """The SimPy reference's run of the same scenario in a fresh process."""
    data = _child([sys.executable, "-m", "bench.simpy_reference", path])
    data.pop("ended", None)
    # Its own peak: the children's maximum includes the drivesim run before it.
    data["peak_rss_mib"] = data.pop("own_peak_rss_mib")
    return data


def _child(command: list[str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    total = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over children
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    data["process_wall"] = total
    data["peak_rss_mib"] = max(peak, before) / 1024
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="+")
    parser.add_argument("--docs", action="store_true", help="write the table into the docs")
    parser.add_argument(
        "--simpy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the SimPy reference model of each scenario (default: on)",
    )
    args = parser.parse_args()
    rows, simpy_rows = [], []
    for path in args.scenarios:
        r = measure(path)
        rows.append(
            f"| `{path}` | {r['jobs']:,.0f} | {r['sim_days']:.0f} | {r['wall']:.1f} | "
            f"{r['changes']:,.0f} | {r['changes'] / r['wall']:,.0f} | {r['messages']:,.0f} | "
            f"{r['messages'] / r['wall']:,.0f} | {r['peak_rss_mib']:,.0f} |"
        )
        print(rows[-1], flush=True)
        if args.simpy:
            s = measure_simpy(path)
            simpy_rows.append(
                f"| `{path}` | {s['jobs']:,.0f} | {s['sim_days']:.0f} | {s['wall']:.2f} | "
                f"{s['events']:,.0f} | {s['events'] / s['wall']:,.0f} | "
                f"{s['peak_rss_mib']:,.0f} | {r['wall'] / s['wall']:,.1f}x |"
            )
            print(simpy_rows[-1], flush=True)
    simpy_table = [
        "",
        "The same scenarios in `bench/simpy_reference.py`, a minimal SimPy model of the same "
        "pipeline (same expanded workload, seed and per-job plans; bays as `simpy.Resource`, "
        "checkpointed transfers, best-effort cancel, packaging, return, retention and expiry) "
        "with nothing published or stored: the lower bound for the same simulation. An "
        "*event* is counted where drivesim commits a change; *ratio* is drivesim's wall time "
        "over SimPy's.",
        "",
        "| scenario | jobs | simulated days | wall s | events | events/s | peak RSS MiB | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *simpy_rows,
    ]
    table = "\n".join(
        [
            "## Virtual-time simulation speed (`bench/load.py`)",
            "",
            f"Command: `.venv/bin/python -m bench.load {' '.join(args.scenarios)} --docs`, "
            "in-memory store and bus, one fresh process per scenario. *Wall* is the run alone "
            "(loading, the invariant checks and the report come on top); a *change* is one "
            "committed job change (one `seq`); peak RSS is the process's.",
            "",
            "| scenario | jobs | simulated days | wall s | changes | changes/s | messages "
            "| messages/s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            *(simpy_table if simpy_rows else []),
        ]
    )
    if args.docs:
        text = DOCS.read_text()
        if BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            text = head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + BEGIN + "\n" + table + "\n" + END + "\n"
        DOCS.write_text(text)


if __name__ == "__main__":
    main()
