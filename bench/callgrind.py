"""Instructions a virtual-time run executes: ``python -m bench.callgrind configs/load-small.toml``.

A virtual-time run as `bench/load.py` makes it (in-memory store and bus, a subscriber
counting the stream, logging at ``warning``) under Valgrind's callgrind, once per build:
with ``--pure`` first this repository's Python source (``DRIVESIM_PURE=1``), then this
repository as installed (compiled by mypyc where it could be), then each ``--tree``
(another checkout), each from its own folder with this interpreter, and each also stopped
before the run, so that the start-up (the interpreter, imports, reading the scenario) is
counted apart. An instruction count does not move with the machine's load, so two builds
compare on a busy machine as on a quiet one; callgrind slows a run about fifty times, hence
``load-small``. Reported per build: the instructions (Ir) of the start-up, and of the run
without it, in all and per committed change, and as a ratio to the first build's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import cli
from bench.docs import finish
from bench.harness import ROOT
from bench.tables import header
from bench.tables import row as cells

__all__ = ["count", "main"]

#: The run (``run``) or its start-up alone (``start-up``), then its counts as JSON.
CHILD = """
import json, sys
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import MemoryStore, configure_logging, describe_build
configure_logging(level="warning")
scenario = load_scenario(sys.argv[1])
counts = {"changes": 0, "messages": 0}
def count(message):
    counts["messages"] += 1
    if message.topic.endswith("/state") and message.topic.count("/") == 4:
        counts["changes"] += 1  # every change announces (or clears) one snapshot
if sys.argv[2] == "run":
    run_scenario(scenario, MemoryStore(history=False), on_message=count)
print(json.dumps({**counts, "build": describe_build()}))
"""

_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def count(scenario: str, tree: Path, *, pure: bool = False) -> dict[str, Any]:
    """Instructions of the run of ``scenario`` with the code of ``tree`` (its Python
    source if ``pure``), without its start-up; its counts and its build."""
    run = _count(scenario, tree, "run", pure)
    start_up = _count(scenario, tree, "start-up", pure)
    return {
        **run,
        "instructions": run["instructions"] - start_up["instructions"],
        "start_up_instructions": start_up["instructions"],
    }


def _count(scenario: str, tree: Path, part: str, pure: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drivesim-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                CHILD,
                str((ROOT / scenario).resolve()),
                part,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=tree,
            env={**os.environ, "DRIVESIM_PURE": "1" if pure else "0"},
        )
        found = _TOTALS.search(out.read_bytes())
    assert found is not None, "callgrind wrote no totals"
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"tree": str(tree), "instructions": int(found.group(1)), **data}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.callgrind", __doc__)
    parser.add_argument("scenario", nargs="?", default="configs/load-small.toml")
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="also count the run with the code of this source tree (repeatable)",
    )
    parser.add_argument("--pure", action="store_true", help="also count this tree's Python source")
    cli.add_outputs(parser)
    args = parser.parse_args(argv)
    runs = []
    rows = []
    builds = [
        *([(ROOT, True)] if args.pure else []),
        (ROOT, False),
        *((t, False) for t in args.tree),
    ]
    for tree, pure in builds:
        run = count(args.scenario, tree.resolve(), pure=pure)
        runs.append(run)
        rows.append(
            cells(
                "this repository" if tree == ROOT else f"`{tree}`",
                run["build"],
                f"{run['start_up_instructions'] / 1e9:,.2f}",
                f"{run['changes']:,}",
                f"{run['messages']:,}",
                f"{run['instructions'] / 1e9:,.2f}",
                f"{run['instructions'] / run['changes']:,.0f}",
                f"{run['instructions'] / runs[0]['instructions']:.3f}",
            )
        )
        print(rows[-1], flush=True)
    command = cli.command_line("bench.callgrind", cli.arguments(argv))
    text = "\n".join(
        [
            "## Instructions per change (`bench/callgrind.py`)",
            "",
            f"Command: `{command}`. " + " ".join(__doc__.split("\n\n")[1].split()),
            "",
            header(
                "source | build | start-up (G) | changes | messages | run (G) | per change "
                "| ÷ first",
                "llrrrrrr",
            ),
            *rows,
        ]
    )
    report = {"scenario": args.scenario, "runs": runs}
    finish("callgrind", text, report, json_path=args.json, docs=args.docs)
    return report


if __name__ == "__main__":
    main()
