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
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import structlog

from bench.docs import finish
from bench.mqtt_cases import CASES
from simulator.live.run import LiveRun
from simulator.report.history import History
from simulator.run.answers import ActionResult
from simulator.scenario import Scenario, load_scenario
from worker.clock import parse_duration
from worker.config import Policy
from worker.logs import configure_logging
from worker.states import TERMINAL
from worker.status import StatusMessage

__all__ = ["Plan", "main", "measure", "reference"]

ROOT = Path(__file__).resolve().parents[1]

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


#: What :class:`_Sampler` reads: (perf_counter, then the running totals of _SHARES).
Sample = tuple[float, float, float, float, float, float]
_SHARES = ("worker", "broker", "bench", "worker_waited", "steal")


class _Sampler(threading.Thread):
    """Every ``interval`` s: CPU seconds of the worker, the broker and this process, the
    seconds the worker's loop thread waited, runnable, for a CPU, the machine's steal
    (what the hypervisor gave other guests), and the worker's VmHWM, read from /proc
    (restarted processes add up by pid)."""

    def __init__(self, live: LiveRun, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.interval = interval
        self.done = threading.Event()
        self.samples: list[Sample] = []
        self.peak_rss_kib = 0
        self._cpu: dict[str, dict[int, float]] = {"worker": {}, "broker": {}}
        self._waited: dict[int, float] = {}

    def _pid(self, name: str) -> int | None:
        owner = getattr(self.live, name, None)
        process = getattr(owner, "process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    def sample(self) -> None:
        for name in ("worker", "broker"):
            pid = self._pid(name)
            if pid is not None and (cpu := _proc_cpu(pid)) is not None:
                self._cpu[name][pid] = cpu
                if name == "worker":
                    self.peak_rss_kib = max(self.peak_rss_kib, _vm_hwm_kib(pid))
                    if (waited := _run_delay(pid)) is not None:
                        self._waited[pid] = waited
        own = os.times()
        self.samples.append(
            (
                time.perf_counter(),
                sum(self._cpu["worker"].values()),
                sum(self._cpu["broker"].values()),
                own.user + own.system,
                sum(self._waited.values()),
                _steal(),
            )
        )

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_delay(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` has waited, runnable, for a CPU (schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _steal() -> float:
    """CPU seconds the hypervisor has given other guests, all CPUs (/proc/stat's steal)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _busiest(times: Sequence[float], window: float = 1.0) -> int:
    """Most of ``times`` (sorted) within any ``window`` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_workdir(stack: contextlib.ExitStack, keep: Path | None, temp: str, kept: str) -> Path:
    """A run's workdir: a temporary one (prefix ``temp``) that ``stack`` removes, or with
    ``keep`` a folder of its own (prefix ``kept``) under ``keep``, left in place."""
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=temp)))
    keep.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=kept, dir=keep))


def timed_requests(
    scenario: Scenario, results: Sequence[ActionResult], speed: float, sim_seconds: float
) -> tuple[list[float], int]:
    """The scenario's scripted requests at a fixed simulated time: how late each answered
    one was answered (wall s), and how many were due by ``sim_seconds``."""
    timed = {a.index: a.at for a in scenario.actions if a.at is not None}
    answered = {r.index: r.at for r in results if r.index in timed}
    late = [(at - timed[i]) / speed for i, at in answered.items()]
    return late, sum(1 for at in timed.values() if at <= sim_seconds)


def cpu_figures(cpu: dict[str, float]) -> dict[str, float]:
    """:func:`_utilisation`'s shares under the report's keys."""
    return {
        "worker_cpu": cpu.get("worker", 0.0),
        "worker_cpu_peak": cpu.get("worker_peak", 0.0),
        "broker_cpu": cpu.get("broker", 0.0),
        "bench_cpu": cpu.get("bench", 0.0),
        "worker_waited": cpu.get("worker_waited", 0.0),
        "steal": cpu.get("steal", 0.0),
    }


def _utilisation(samples: Sequence[Sample], start: float, end: float) -> dict[str, float]:
    """Mean CPU share (1.0 = one core) of each process over [start, end], the busiest
    one-second stretch of the worker, the share of the time the worker waited for a CPU,
    and the machine's steal (1.0 = one core)."""
    inside = [s for s in samples if start - 0.15 <= s[0] <= end + 0.15]
    out = dict.fromkeys(_SHARES, 0.0) | {"worker_peak": 0.0}
    if len(inside) < 2:
        return out
    span = inside[-1][0] - inside[0][0]
    for i, name in enumerate(_SHARES, start=1):
        out[name] = (inside[-1][i] - inside[0][i]) / span
    j = 0
    for s in inside:
        while s[0] - inside[j][0] > 1.0:
            j += 1
        if (dt := s[0] - inside[j][0]) >= 0.5:
            out["worker_peak"] = max(out["worker_peak"], (s[1] - inside[j][1]) / dt)
    return out


def _worker_log(path: Path, epoch: datetime, speed: float) -> dict[str, float]:
    """From the worker's JSON log: when it was running (wall seconds after the run's time
    origin, which is taken before the worker starts), its commits and the commands it
    answered and their busiest second, the commands that failed, the outbox drain after
    SIGTERM, and how many log lines it wrote."""
    lines = failed = undrained = 0
    commits: list[float] = []
    commands: list[float] = []
    stopping = stopped = running = None
    for raw in path.read_text(errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue
        lines += 1
        wall = entry.get("wall_time")
        if not isinstance(wall, str):
            continue
        when = datetime.fromisoformat(wall).timestamp()
        match entry.get("event"):
            case "job changed":
                commits.append(when)
            case "command":
                commands.append(when)
            case "command failed":
                failed += 1
            case "outbox not drained in time; the rest goes out on next start":
                undrained += 1
            case "worker stopping: draining the outbox":
                stopping = when
            case "worker stopped":
                stopped = when
            case "worker running" if running is None and isinstance(entry.get("sim_time"), str):
                sim = datetime.fromisoformat(entry["sim_time"]) - epoch
                running = sim.total_seconds() / speed
    commits.sort()
    commands.sort()
    return {
        "ready_s": -1.0 if running is None else running,
        "log_lines": lines,
        "commits": len(commits),
        "peak_commits_per_s": _busiest(commits),
        "commands": len(commands),
        "peak_commands_per_s": _busiest(commands),
        "commands_failed": failed,
        "outbox_not_drained": undrained,
        "drain_s": stopped - stopping if stopping is not None and stopped is not None else -1.0,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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
        sampler = _Sampler(live)
        sampler.start()
        started = time.perf_counter()
        try:
            outcome = anyio.run(live.run, backend="asyncio")
        finally:
            sampler.stop()
        total = time.perf_counter() - started
        worker_log = _worker_log(tmp / "worker.log", scenario.epoch, speed)
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
    requests, due = timed_requests(scenario, live.results, speed, result.sim_seconds)
    arrivals = sorted(live.arrivals)
    cpu = _utilisation(sampler.samples, arrivals[0], arrivals[-1]) if arrivals else {}
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
        "peak_observed_per_s": _busiest(arrivals),
        "checkpoints": len(late),
        "checkpoint_late_p50_s": _percentile(late, 0.5),
        "checkpoint_late_p99_s": _percentile(late, 0.99),
        "checkpoint_late_max_s": max(late, default=float("nan")),
        "requests_due": due,
        "requests_answered": len(requests),
        "request_late_p50_s": _percentile(requests, 0.5),
        "request_late_p99_s": _percentile(requests, 0.99),
        "delivery_p50_s": _percentile(live.delivery, 0.5) / speed,
        "delivery_p99_s": _percentile(live.delivery, 0.99) / speed,
        "finish_late_s": finish_late,
        **cpu_figures(cpu),
        "worker_peak_rss_mib": sampler.peak_rss_kib / 1024,
        **{f"worker_{k}": v for k, v in worker_log.items()},
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
            [
                *(sys.executable, "-m", "bench.mqtt_throughput", "--no-docs"),
                *("--cases", REFERENCE_CASE, "--reps", str(reps)),
                *("--messages", str(messages), "--json", str(runs_file)),
            ],
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
        "rate": statistics.median(rates) if rates else 0.0,
        "errors": errors,
    }


# -- output ----------------------------------------------------------------------------------

HEAD = (
    "| scenario | speed | sim window | wall s | sim s / wall s | committed | observed | "
    "committed/s | observed/s | busiest s | ÷ aiomqtt: observed/s / busiest s | "
    "timed requests answered / due, late p50 / p99 s | checkpoint late p50 / p99 s | "
    "delivery p50 / p99 s | finish late s | "
    "CPU worker (peak) / broker / bench | worker RSS MiB | worker commands/s peak | drain s | "
    "invariants |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    "---:|---|"
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
    return (
        f"| `{r['scenario']}` | {r['speed']:,.0f} | {window} | {r['wall_s']:.1f} | "
        f"{r['sim_per_wall']:,.0f} | {r['committed']:,} | {r['observed']:,} | "
        f"{r['committed_per_s']:,.0f} | {r['observed_per_s']:,.0f} | "
        f"{r['peak_observed_per_s']:,} | {ratio} | "
        f"{r['requests_answered']} / {r['requests_due']}, "
        f"{r['request_late_p50_s']:.2f} / {r['request_late_p99_s']:.2f} | "
        f"{r['checkpoint_late_p50_s']:.3f} / {r['checkpoint_late_p99_s']:.3f} | "
        f"{r['delivery_p50_s']:.3f} / {r['delivery_p99_s']:.3f} | {late} | "
        f"{r['worker_cpu']:.0%} ({r['worker_cpu_peak']:.0%}) / {r['broker_cpu']:.0%} / "
        f"{r['bench_cpu']:.0%} | {r['worker_peak_rss_mib']:.0f} | "
        f"{r['worker_peak_commands_per_s']} | {r['worker_drain_s']:.2f} | {checks} |"
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
    parser = argparse.ArgumentParser(
        prog="python -m bench.live", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenarios", nargs="*", help="scenario files (default: the plan above)")
    parser.add_argument("--speed", type=float, nargs="+", help="simulated seconds a second")
    parser.add_argument("--until", help="cut a copy of each scenario at this simulated time")
    parser.add_argument("--seed", type=int, help="instead of each scenario's seed")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="wall seconds for `until` without --speed"
    )
    parser.add_argument("--reference-messages", type=int, default=20_000)
    parser.add_argument("--reference-reps", type=int, default=3, help="0: no reference")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", type=Path, help="keep each run's workdir under this folder")
    parser.add_argument("--docs", action="store_true", help="write the table into the docs")
    args = parser.parse_args(argv)
    todo = plans(args, parser)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m bench.live", *([shlex.join(given)] if given else [])])
    saved = structlog.get_config()
    configure_logging(level="error", fmt="json", stream=sys.stderr)
    try:
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
    finally:
        structlog.configure(**saved)
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
