"""Live-mode message rate: ``python -m bench.live [SCENARIO ...] [--speed N ...] [--json FILE]``.

Each scenario runs live at each speed, as ``drivesim run --live`` runs it (:class:`LiveRun`
in a fresh temporary workdir: its own Mosquitto, the fault proxy, the worker as a child
process, an independent observer), and the bench prints, per run:

* wall seconds of the run and the simulated seconds it covered;
* messages the store committed and the observer received, and their rates per wall
  second of the run; the observer's busiest second;
* how well the worker kept to its own schedule, in wall seconds: how late its transfer
  checkpoints came (a transferring drive commits one every ``checkpoint_interval``
  simulated seconds, so any more between two is the worker's loop running late), how
  long a job snapshot took from its commit to this process, and, for a run that ended
  with every job gone, how long after the last deletion was due it ended (the sweeper
  may take up to one ``sweep_interval`` by design);
* CPU of the worker, the broker and this process (which holds the fault proxy, the
  observer and the customers) from ``/proc``, the worker's peak RSS (``VmHWM``), and
  how long the worker took to drain its outbox after SIGTERM (from its log);
* whether every invariant held (checked as ``drivesim run --live`` checks them).

Without ``--speed`` a scenario runs at its ``live_speed``, raised so that its ``until``
fits in ``--budget`` wall seconds (load-small, 200 simulated days in 60 s: 288,000).
``--until`` cuts a copy of each scenario (everything else unchanged) at that simulated
time: a cut run cannot pass *terminal-or-deleted* or *scripted-expectations*, so those
two are reported apart. With no scenario, the default
plan runs: chaos-broker at its live speed, then a speed sweep of load-small cut at
:data:`SWEEP_UNTIL`.

As a reference, the same invocation measures the raw capacity of the path from a
publisher through Mosquitto to a subscriber: :mod:`bench.mqtt_throughput`'s plain aiomqtt
case (QoS 1, 100 in flight, a fresh Mosquitto), and prints each run's observed rate as a
ratio of it. A live run is paced by its simulated schedule: at low speeds the rate is what
the schedule asks for, not what the path can carry; the sweep shows where it stops
growing with speed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from bench import cli, worker_log
from bench.customers import request_figures
from bench.docs import finish
from bench.harness import ROOT, python, run_workdir
from bench.mqtt_cases import CASES
from bench.sampler import cpu_figures, sampled, utilisation
from bench.stats import busiest, median, nearest_index
from bench.tables import header
from bench.tables import row as cells
from simulator.live.run import LiveRun
from simulator.report.history import History
from simulator.scenario import Scenario, load_scenario
from worker import Policy, StatusMessage, parse_duration
from worker.states import TERMINAL

__all__ = ["Plan", "main", "measure", "reference"]

#: Checks a run cut before its end cannot pass: jobs still open, actions never reached.
CUT_EXEMPT = frozenset({"terminal-or-deleted", "scripted-expectations"})
#: The default plan's sweep: load-small cut after its busy fortnight (30,500 of its 31,300
#: messages; retention and everything else unchanged), at these speeds.
SWEEP_SCENARIO = "configs/load-small.toml"
SWEEP_UNTIL = "15d"
SWEEP_SPEEDS = (32_000.0, 64_000.0, 128_000.0, 256_000.0, 512_000.0)
DEFAULT_SCENARIO = "configs/chaos-broker.toml"
#: Reference: the plain aiomqtt publisher of bench.mqtt_throughput.
REFERENCE_CASE = "aiomqtt"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One live run: a scenario file, a speed (None: automatic) and an optional cut."""

    path: str
    speed: float | None = None
    until: float | None = None


# -- lateness, read from the committed stream ---------------------------------------------------


def checkpoint_lateness(
    messages: Sequence[StatusMessage], epoch: datetime, interval: float
) -> list[float]:
    """Simulated seconds each transfer checkpoint came later than its timer was due.

    A transferring drive commits a checkpoint every ``interval`` simulated seconds: its
    timer starts as the previous change of the drive is committed, so two consecutive
    snapshots of a drive that is still transferring are ``interval`` apart, plus however
    late the worker's loop ran the timer and committed (zero in virtual time)."""
    last: dict[tuple[str, str], tuple[float, int]] = {}
    late = []
    for message in messages:
        parts = message.topic.split("/")
        if len(parts) != 7 or parts[4] != "drives" or not message.payload:
            continue
        body = json.loads(message.payload)
        key = (message.job, parts[5])
        if body.get("state") != "Transferring":
            last.pop(key, None)
            continue
        when = (datetime.fromisoformat(body["simTime"]) - epoch).total_seconds()
        copied = int(body.get("bytesSucceeded") or 0)
        previous = last.get(key)
        if previous is not None and copied > previous[1]:
            late.append(when - previous[0] - interval)
        last[key] = (when, copied)
    return late


def last_due(history: History, policy: Policy) -> float:
    """The simulated time by which the schedule has every job gone: the latest deletion,
    taken at its due time when retention or expiry deleted it (the sweeper may take up to
    one sweep interval more, by design)."""
    due = 0.0
    for life in history.incarnations:
        deleted = life.deleted
        if deleted is None:
            continue
        reason = deleted.data.get("reason")
        if reason == "retention":
            ended = [e.time for e in life.events_of("stateChanged") if e.data.get("to") in TERMINAL]
            when = ended[-1] + policy.retention if ended else deleted.time
        elif reason == "expired":
            touched = [
                e.time for e in life.events if e.type in ("jobCreated", "jobReplaced", "jobUpdated")
            ]
            when = touched[-1] + policy.creating_expiry if touched else deleted.time
        else:
            when = deleted.time
        due = max(due, when)
    return due


# -- a live run, timed ------------------------------------------------------------------------


class _TimedRun(LiveRun):
    """A :class:`LiveRun` that notes when the observer's messages reach the run's loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: perf_counter() of every message the observer handed over (duplicates included).
        self.arrivals: list[float] = []
        #: Simulated seconds from a job snapshot's commit (its simTime) to its arrival here.
        self.delivery: list[float] = []

    def _heard(self, topic: str, payload: bytes) -> None:
        self.arrivals.append(time.perf_counter())
        super()._heard(topic, payload)

    def _snapshot(self, job: str, body: dict[str, Any]) -> None:
        iso = body.get("simTime")
        if isinstance(iso, str):
            sent = (datetime.fromisoformat(iso) - self.scenario.epoch).total_seconds()
            self.delivery.append(self.clock.now() - sent)


def auto_speed(scenario: Scenario, budget: float) -> float:
    """The scenario's live speed, raised so that its ``until`` takes at most ``budget`` s."""
    return max(scenario.live_speed, scenario.until / budget)


def measure(
    plan: Plan, *, budget: float = 60.0, seed: int | None = None, keep: Path | None = None
) -> dict[str, Any]:
    """One live run of ``plan``; its figures as a JSON-able dict. ``keep``: leave the run's
    workdir (worker log and store, broker log) in a folder of its own under it."""
    full = load_scenario(plan.path)
    scenario = full if plan.until is None else dataclasses.replace(full, until=plan.until)
    speed = plan.speed or auto_speed(scenario, budget)
    with contextlib.ExitStack() as stack:
        tmp = run_workdir(stack, keep, "drivesim-bench-live-", f"{scenario.name}-{speed:.0f}-")
        live = _TimedRun(scenario, tmp, speed=speed, seed=seed)
        with sampled(live) as sampler:
            started = time.perf_counter()
            outcome = anyio.run(live.run, backend="asyncio")
        total = time.perf_counter() - started
        log = worker_log.summary(tmp / "worker.log", scenario.epoch, speed)
    result = outcome.run
    history = outcome.stored
    checks = outcome.checks()
    failed = [c.name for c in checks if not c.ok]
    cut = plan.until is not None
    exempt = CUT_EXEMPT if cut else frozenset()
    wall = result.wall_seconds
    committed, observed = len(result.history), result.observed or 0
    late = [
        x / speed
        for x in checkpoint_lateness(
            result.history, scenario.epoch, scenario.datacenter.checkpoint_interval
        )
    ]
    arrivals = sorted(live.arrivals)
    cpu = utilisation(sampler.samples, arrivals[0], arrivals[-1]) if arrivals else {}
    finish_late = (
        (result.sim_seconds - last_due(history, scenario.policy)) / speed
        if result.finished
        else None
    )
    return {
        "scenario": plan.path,
        "name": scenario.name,
        "jobs": len(scenario.jobs),
        "faults": len(scenario.faults),
        "speed": speed,
        "until_s": scenario.until,
        "cut": cut,
        "wall_s": wall,
        "process_wall_s": total,
        "sim_s": result.sim_seconds,
        # As RunResult has them: sim_s counts from the time origin, taken before the
        # worker starts; wall_s from when it is connected.
        "sim_per_wall": result.sim_seconds / wall if wall > 0 else 0.0,
        "finished": result.finished,
        "committed": committed,
        "observed": observed,
        # Job changes (one seq each): committed, and received by the observer (deduplicated).
        "committed_changes": sum(len(set(seqs)) for seqs in history.seqs.values()),
        "observed_changes": sum(len(set(seqs)) for seqs in outcome.observed.seqs.values()),
        "committed_per_s": committed / wall if wall > 0 else 0.0,
        "observed_per_s": observed / wall if wall > 0 else 0.0,
        "arrivals": len(arrivals),
        "arrival_span_s": arrivals[-1] - arrivals[0] if arrivals else 0.0,
        "peak_observed_per_s": busiest(arrivals),
        "checkpoints": len(late),
        "checkpoint_late_p50_s": nearest_index(late, 0.5),
        "checkpoint_late_p99_s": nearest_index(late, 0.99),
        "checkpoint_late_max_s": max(late, default=float("nan")),
        **request_figures(scenario, live.results, speed, result.sim_seconds),
        "delivery_p50_s": nearest_index(live.delivery, 0.5) / speed,
        "delivery_p99_s": nearest_index(live.delivery, 0.99) / speed,
        "finish_late_s": finish_late,
        **cpu_figures(cpu),
        "worker_peak_rss_mib": sampler.peak_rss_kib / 1024,
        **log,
        "worker_starts": result.starts,
        "failed_checks": failed,
        "violations": {c.name: c.violations[:10] for c in checks if not c.ok},
        "invariants_ok": not [name for name in failed if name not in exempt],
        "all_checks_ok": not failed,
    }


# -- the reference: plain aiomqtt through a fresh Mosquitto ------------------------------------


def reference(messages: int = 20_000, reps: int = 3) -> dict[str, Any]:
    """:mod:`bench.mqtt_throughput`'s plain aiomqtt case, ``reps`` times, each with a fresh
    Mosquitto, subscriber and publisher (run as that bench's own command, docs untouched)."""
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-ref-") as scratch:
        runs_file = Path(scratch) / "runs.json"
        done = subprocess.run(
            python(
                *("bench.mqtt_throughput", "--no-docs"),
                *("--cases", REFERENCE_CASE, "--reps", str(reps)),
                *("--messages", str(messages), "--json", str(runs_file)),
            ),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        runs: list[dict[str, Any]] = json.loads(runs_file.read_text()) if runs_file.exists() else []
    good = [r for r in runs if not r["error"] and not r["lost"]]
    rates = [float(r["rate"]) for r in good]
    errors = [r["error"] or f"lost {r['lost']}" for r in runs if r["error"] or r["lost"]]
    if done.returncode != 0 and not errors:
        errors.append(f"bench.mqtt_throughput exited with {done.returncode}: {done.stderr[-500:]}")
    return {
        "case": REFERENCE_CASE,
        "description": CASES[REFERENCE_CASE],
        "messages": messages,
        "rates": rates,
        "rate": median(rates, 0.0),
        "errors": errors,
    }


# -- output ----------------------------------------------------------------------------------

HEAD = header(
    "scenario | speed | sim window | wall s | sim s / wall s | committed | observed "
    "| committed/s | observed/s | busiest s | ÷ aiomqtt: observed/s / busiest s "
    "| timed requests answered / due, late p50 / p99 s | checkpoint late p50 / p99 s "
    "| delivery p50 / p99 s | finish late s | CPU worker (peak) / broker / bench "
    "| worker RSS MiB | worker commands/s peak | drain s | invariants",
    "lrlrrrrrrrrrrrrrrrrl",
)


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f} d"


def row(r: dict[str, Any], ref_rate: float) -> str:
    window = f"{_days(r['sim_s'])}" + (f" (cut at {_days(r['until_s'])})" if r["cut"] else "")
    ratio = (
        f"{r['observed_per_s'] / ref_rate:.2f} / {r['peak_observed_per_s'] / ref_rate:.2f}"
        if ref_rate
        else "–"
    )
    late = "–" if r["finish_late_s"] is None else f"{r['finish_late_s']:.2f}"
    failed = [c for c in r["failed_checks"] if not (r["cut"] and c in CUT_EXEMPT)]
    if failed:
        checks = "FAILED: " + ", ".join(failed)
    else:
        checks = "ok" + (" (cut: " + ", ".join(sorted(CUT_EXEMPT)) + " n/a)" if r["cut"] else "")
    return cells(
        f"`{r['scenario']}`",
        f"{r['speed']:,.0f}",
        window,
        f"{r['wall_s']:.1f}",
        f"{r['sim_per_wall']:,.0f}",
        f"{r['committed']:,}",
        f"{r['observed']:,}",
        f"{r['committed_per_s']:,.0f}",
        f"{r['observed_per_s']:,.0f}",
        f"{r['peak_observed_per_s']:,}",
        ratio,
        f"{r['requests_answered']} / {r['requests_due']}, "
        f"{r['request_late_p50_s']:.2f} / {r['request_late_p99_s']:.2f}",
        f"{r['checkpoint_late_p50_s']:.3f} / {r['checkpoint_late_p99_s']:.3f}",
        f"{r['delivery_p50_s']:.3f} / {r['delivery_p99_s']:.3f}",
        late,
        f"{r['worker_cpu']:.0%} ({r['worker_cpu_peak']:.0%}) / {r['broker_cpu']:.0%} / "
        f"{r['bench_cpu']:.0%}",
        f"{r['worker_peak_rss_mib']:.0f}",
        r["worker_peak_commands_per_s"],
        f"{r['worker_drain_s']:.2f}",
        checks,
    )


def note(r: dict[str, Any]) -> str | None:
    """What a reader must know about a run beyond its row: customers that fell behind their
    schedule (the run no longer plays the scenario as written), invariants that failed."""
    said = []
    if r["requests_answered"] < r["requests_due"] or r["request_late_p99_s"] > 1.0:
        late = r["request_late_p99_s"]
        said.append(
            f"the customers fell behind: {r['requests_answered']} of {r['requests_due']} timed "
            f"requests answered, p99 {late:.1f} s late (= {late * r['speed'] / 3600:,.0f} "
            f"simulated hours); the worker answered {r['worker_commands']:,} commands (requests "
            f"resent after the request timeout count again), at most "
            f"{r['worker_peak_commands_per_s']}/s"
            + (f", {r['worker_commands_failed']} failed" if r["worker_commands_failed"] else "")
            + (" (the fault plan holds requests back too)" if r["faults"] else "")
        )
    for name in r["failed_checks"]:
        if not (r["cut"] and name in CUT_EXEMPT):
            first = r["violations"].get(name, [""])[0]
            said.append(f"{name} failed, e.g. {first}")
    if not said:
        return None
    return f"* `{r['scenario']}` at {r['speed']:,.0f}: " + "; ".join(said) + "."


def table(runs: list[dict[str, Any]], ref: dict[str, Any] | None, command: str) -> str:
    ref_rate = float(ref["rate"]) if ref else 0.0
    lines = [
        "## Live-mode message rate (`bench/live.py`)",
        "",
        f"Command: `{command}`. Each row is one `drivesim run --live` (own Mosquitto, fault "
        "proxy, worker process, observer). *Sim window*: simulated time the run covered, from "
        "the time origin (taken before the worker starts) to its end; *wall s* and the rates "
        "count from the worker's connection to the end, as `RunResult` does. *Busiest s*: "
        "most messages the observer received in one second. *Timed requests*: scripted "
        "customer requests at a fixed simulated time, due by the end, answered, and how late "
        "their answer came. *Checkpoint late*: how much later than its timer was due each "
        "transfer checkpoint was committed (the worker's loop running behind); *delivery*: "
        "commit of a job snapshot to its arrival at the bench; *finish late*: end of the run "
        "after the last deletion was due (up to one sweep interval is by design). Lateness "
        "in wall seconds. CPU: mean over the stream (worker: and its busiest second), "
        "100 % = one core; *bench* is the process holding the fault proxy, the observer and "
        "the customers. *Drain*: the worker emptying its outbox after SIGTERM.",
        "",
    ]
    if ref:
        lines += [
            f"Reference: {ref['description']}, {ref['messages']:,} messages, fresh Mosquitto: "
            f"**{ref_rate:,.0f} msg/s** (median of "
            + " / ".join(f"{x:,.0f}" for x in ref["rates"])
            + "). *÷ aiomqtt*: observed/s and the busiest second over it.",
            "",
        ]
    lines += [HEAD, *(row(r, ref_rate) for r in runs)]
    notes = [n for n in map(note, runs) if n is not None]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def plans(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Plan]:
    until = None if args.until is None else parse_duration(args.until)
    if not args.scenarios:
        if args.speed or until is not None:
            parser.error("--speed and --until need scenarios")
        return [
            Plan(DEFAULT_SCENARIO),
            *(Plan(SWEEP_SCENARIO, s, parse_duration(SWEEP_UNTIL)) for s in SWEEP_SPEEDS),
        ]
    return [Plan(p, s, until) for p in args.scenarios for s in (args.speed or [None])]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.live", __doc__)
    parser.add_argument("scenarios", nargs="*", help="scenario files (default: the plan above)")
    parser.add_argument("--speed", type=float, nargs="+", help="simulated seconds a second")
    parser.add_argument("--until", help="cut a copy of each scenario at this simulated time")
    parser.add_argument("--seed", type=int, help="instead of each scenario's seed")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="wall seconds for `until` without --speed"
    )
    parser.add_argument("--reference-messages", type=int, default=20_000)
    parser.add_argument("--reference-reps", type=int, default=3, help="0: no reference")
    parser.add_argument("--keep", type=Path, help="keep each run's workdir under this folder")
    cli.add_outputs(parser)
    given = cli.arguments(argv)
    args = parser.parse_args(given)
    todo = plans(args, parser)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    command = cli.command_line("bench.live", given)
    with cli.quiet_logging():
        ref = None
        if args.reference_reps > 0:
            ref = reference(args.reference_messages, args.reference_reps)
            print(
                f"reference {REFERENCE_CASE}: {ref['rate']:,.0f} msg/s "
                f"({' / '.join(f'{x:,.0f}' for x in ref['rates'])})",
                flush=True,
            )
        ref_rate = float(ref["rate"]) if ref else 0.0
        print(HEAD, flush=True)
        runs = []
        for plan in todo:
            runs.append(measure(plan, budget=args.budget, seed=args.seed, keep=args.keep))
            print(row(runs[-1], ref_rate), flush=True)
            if (said := note(runs[-1])) is not None:
                print(said, flush=True)
    report: dict[str, Any] = {
        "command": command,
        "reference": ref,
        "runs": runs,
        "ok": all(r["invariants_ok"] for r in runs),
    }
    finish("live", table(runs, ref, command), report, json_path=args.json, docs=args.docs)
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
