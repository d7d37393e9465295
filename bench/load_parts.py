"""Where a virtual-time run's time goes: ``python -m bench.load_parts configs/load-10k.toml``.

Runs the scenario as :mod:`bench.load` does (in-memory store and bus, a subscriber that
counts the stream, logging at ``warning``), twice in one fresh process: once as it is, for
the reference wall time, then with the worker's parts wrapped in timers. Each part's time
is *exclusive*: a part called inside another (the status messages inside a commit, a
commit inside a pipeline step) counts for itself only. Whatever no part claims (the event
loop, the scripted customers' own scheduling: their waits and the records of what they
did) is *the rest*. Both runs are of the Python source (``DRIVESIM_PURE=1``): compiled
modules call each other directly, past any wrapper. The timers cost about a microsecond per
wrapped call, so the instrumented run is slower; the table gives both walls and every
figure per committed change.

The breakdown is the budget the load-100k targets leave: 60 s over load-100k's 2.6 M
changes is 23 µs a change for all of it, and 3x SimPy 33 µs where SimPy takes 28.5 s.
"""

from __future__ import annotations

from typing import Any

from bench import cli
from bench.docs import finish
from bench.harness import child_json, python_code
from bench.tables import header
from bench.tables import row as cells

__all__ = ["PARTS", "main", "measure"]

#: Part name, what it covers: the rows of the table, in order.
PARTS: dict[str, str] = {
    "status messages": "building each change's payloads (`status.build_messages`)",
    "record clone": "copying the committed record before a change (`record.clone`)",
    "pure changes": "the state transitions themselves (`worker.changes`, applied by the ledger)",
    "ledger": "seq, metadata, the commit and its listeners' dispatch (`Ledger`)",
    "store": "the in-memory store's commit (`MemoryStore.commit`)",
    "relay and bus": "outbox to the in-memory bus and the bench's counting subscriber",
    "pipeline": "timers, bays, transfer steps (`DatacenterPipeline`)",
    "customer requests": "the service's request handling and the customers' request bodies",
    "retention": "the retention sweeper (`RetentionSweeper.sweep`)",
}

CHILD = r"""
import os
os.environ["DRIVESIM_PURE"] = "1"  # the parts are timed by wrapping Python functions
import functools, json, sys, time, types
from collections import Counter
from time import perf_counter

from simulator.run import runner
from simulator.run.runner import ScenarioRun, run_scenario
from simulator.scenario import load_scenario
from worker import (
    DatacenterPipeline, JobService, MemoryStore, OutboxRelay, RetentionSweeper, configure_logging,
)
from worker import ledger  # internal: its commit is wrapped in a timer

configure_logging(level="warning")
scenario = load_scenario(sys.argv[1])
counts = {"changes": 0}

def count(message):
    topic = message.topic
    if topic.endswith("/state") and topic.count("/") == 4:
        counts["changes"] += 1

def run():
    counts["changes"] = 0
    started = time.perf_counter()
    run_scenario(scenario, MemoryStore(history=False), on_message=count)
    return time.perf_counter() - started

reference = run()

spent = Counter()
stack = []  # one [time of nested parts] per part under way

def timer(part, fn):
    def wrapper(*args, **kwargs):
        nested = [0.0]
        stack.append(nested)
        start = perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total = perf_counter() - start
            stack.pop()
            spent[part] += total - nested[0]
            if stack:
                stack[-1][0] += total
    return wrapper

def timed(part, fn):
    return functools.update_wrapper(timer(part, fn), fn)

def timed_async(part, fn):
    # The service's calls are coroutines that finish without suspending: each is driven
    # to its end inside the timer. One that suspended would be timed wrongly: refused.
    def drive(*args, **kwargs):
        coroutine = fn(*args, **kwargs)
        try:
            coroutine.send(None)
        except StopIteration as stop:
            return stop.value
        coroutine.close()
        raise RuntimeError(f"{fn.__qualname__} suspended: it cannot be timed exclusively")
    timed_drive = timed(part, drive)
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        return timed_drive(*args, **kwargs)
    return wrapper

def patch(owner, name, part, wrap=timed):
    setattr(owner, name, wrap(part, getattr(owner, name)))

patch(ledger, "build_messages", "status messages")
patch(ledger, "clone", "record clone")
update = ledger.Ledger.update
def update_timing_change(self, name, change, meta=None, **fence):
    return update(self, name, timer("pure changes", change), meta, **fence)
ledger.Ledger.update = update_timing_change
for name in ("update", "create", "delete", "note"):  # each commits through _commit
    patch(ledger.Ledger, name, "ledger")
patch(MemoryStore, "commit", "store")
patch(OutboxRelay, "_deliver_pending", "relay and bus")
patch(DatacenterPipeline, "_call", "pipeline")
patch(DatacenterPipeline, "_on_change", "pipeline")
for name in ("create", "update", "cancel", "delete", "get", "list_bitlocker_keys"):
    patch(JobService, name, "customer requests", timed_async)
patch(runner, "create_body", "customer requests")
patch(runner, "ship_body", "customer requests")
patch(ScenarioRun, "_on_change", "customer requests")
patch(RetentionSweeper, "sweep", "retention")

instrumented = run()
print(json.dumps({"reference_wall": reference, "wall": instrumented,
                  "changes": counts["changes"], "parts": dict(spent)}))
"""


def measure(path: str) -> dict[str, Any]:
    """The breakdown of a run of the scenario at ``path``, in a fresh process."""
    data, _ = child_json(python_code(CHILD, path))
    unknown = data["parts"].keys() - PARTS.keys()
    assert not unknown, f"parts the table does not name: {unknown}"
    data["parts"]["the rest"] = data["wall"] - sum(data["parts"].values())
    return data


def table(path: str, data: dict[str, Any]) -> str:
    changes, wall = data["changes"], data["wall"]
    rows = []
    for part in [*PARTS, "the rest"]:
        seconds = data["parts"].get(part, 0.0)
        what = PARTS.get(part, "the event loop; the customers' waits and records of their actions")
        rows.append(
            cells(
                part,
                what,
                f"{seconds:.2f}",
                f"{100 * seconds / wall:.0f} %",
                f"{seconds / changes * 1e6:.1f}",
            )
        )
    return "\n".join(
        [
            "## Virtual time: where a change's time goes (`bench/load_parts.py`)",
            "",
            f"Command: `.venv/bin/python -m bench.load_parts {path} --docs`. The scenario "
            "as `bench/load.py` runs it, then again in the same process with the worker's "
            "parts in timers; each part's time is exclusive of the parts it calls. "
            f"{changes:,} changes; wall {data['reference_wall']:.1f} s as it is "
            f"({data['reference_wall'] / changes * 1e6:.1f} µs a change), "
            f"{wall:.1f} s timed ({wall / changes * 1e6:.1f} µs a change).",
            "",
            header("part | what | s | share | µs a change", "llrrr"),
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.load_parts", __doc__)
    parser.add_argument("scenario", nargs="?", default="configs/load-10k.toml")
    cli.add_outputs(parser, json_help="also write the figures to this file")
    args = parser.parse_args(argv)
    data = measure(args.scenario)
    text = table(args.scenario, data)
    finish("load_parts", text, data, json_path=args.json, docs=args.docs)
    return data


if __name__ == "__main__":
    main()
