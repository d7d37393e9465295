"""Schedule keeping in scaled real time: ``python -m bench.schedule [SCENARIO] [--rate N]``.

How late does the worker's datacenter carry out its own schedule when it also publishes a
heavy stream of status messages? The bench runs a scenario in scaled real time, paced so
that it asks for ``--rate`` status messages a second (5,000 by default), through the real
path, and measures every timed step of the worker against its simulated due time.

**The path.** One process, one ordinary asyncio loop, as ``drivesim worker`` runs it: the
runner's :class:`~simulator.run.runner.ScenarioRun` (ledger, job service, datacenter pipeline,
retention sweeper, and the scripted customers calling the command handler in-process) on a
:class:`~worker.sqlite_store.SQLiteStore` in a temporary directory (the durable outbox),
its :class:`~worker.relay.OutboxRelay` publishing through the worker's own
:class:`~worker.mqtt.MqttLink` to a Mosquitto the bench starts on a free loopback port.
The run's ``sink`` is the link (noting when the final drain begins): batches, pipelining
and acknowledgements are the relay's own, unchanged. A
``mosquitto_sub -q 1`` in its own process writes a line per message it receives (receive
time, topic, QoS); after the run every committed outbox message is matched against them by
topic, so a lost or duplicated message shows (the batch in flight when the run stops is
sent again by the runner's final drain: at least once, by design, and counted apart), and
the achieved rate is counted where the messages arrive. The bench's own long-lived objects
(the loaded scenario with every customer action, which a worker process does not hold) are
``gc.freeze()``-d before the run so the collector's full passes walk only the worker's.

**The pace.** The scenario (cut at ``--until``) runs first in virtual time on an in-memory
store: that gives the messages it commits between ``--from`` and ``--until`` and the due
times of the worker's timed steps. The speed (simulated seconds a wall second) is then
``rate * (until - from) / messages in that window``: over the measured window the schedule
asks for ``rate`` messages a second on average (the workload's daily cycle makes some
seconds busier). The run itself starts at simulated 0 (an empty datacenter fills up in
the warm-up before ``--from``) and only steps due inside the window are reported.

**Lateness** (:mod:`bench.lateness`). While the measured run lasts, the clock's wake hook
reports every timer of the worker's own that ends as ``(due, woke)`` in simulated seconds
(the pipeline's callbacks and the ``worker`` package's tasks, not the customers'): a
package's arrival, each transfer checkpoint and drive finish, a late drive's arrival, the
return shipment. Two figures per step, in wall milliseconds:

* *wake*: ``(woke - due) / speed``, the loop time at which the timer's callback ran (or
  its task resumed), against the loop time its simulated due time maps to;
* *commit*: from that same due moment to the end of the SQLite commit of the change the
  step makes (the bench's store subclass notes the time after ``COMMIT``, in the same
  callback or task): what a consumer of the store would see. The retention sweeper waits on its own
  grid of ticks, not on the clock's sleeps: each deletion it commits counts here against
  its tick (``ceil(due / sweep_interval) * sweep_interval``; earlier, after a wake-up,
  counts as 0).

A transfer sleeps ``checkpoint_interval`` from its previous step (a relative sleep), so
lateness compounds along a drive's checkpoints; each figure is what one timer added.

**Reference.** In the same process and on the same loop, just before the run (broker
connected and idle), a bare ``anyio.sleep`` replay of the worker's own schedule: the due
times of its timed steps from the virtual-time run, at the same speed, over the busiest
``--reference-seconds`` of the window, each timer armed ahead as the worker's are. Its
lateness is what the loop, the OS and the machine give a timer with no work around it;
the run's p99 reads as a multiple of it. A *probe* task also wakes every 10 ms during the
run (counted inside the window): the loop's responsiveness to any timer, not only the
worker's.

**Diagnostics** (:mod:`bench.loop_diagnostics`). The machine is shared, so the run also
reports how long the loop's thread waited, runnable, for a CPU (``/proc/self/schedstat``);
the slowest synchronous store calls and garbage-collector pauses, wall and CPU; and the
CPU per committed message of this process and of the broker. ``--blocking MS`` lists the
loop callbacks over ``MS``, ``--profile FILE`` runs pyinstrument over the measured run
(``.html`` or text; sampling adds its own lateness), ``--keep DIR`` keeps the store, the
broker's config and the subscriber's lines.

Timings are wall-clock and noisy on a shared machine; the smoke mode (``--smoke``: a tiny
built-in scenario, a few seconds) runs in the test suite, which checks the counts and
never a timing. ``--docs`` writes the table into docs/benchmarks.md between its markers,
``--json`` every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import math
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from bench import cli
from bench.disk_load import add_disk_load_option, disk_load, disk_load_sentence
from bench.docs import finish
from bench.harness import connected, mosquitto, workdir
from bench.lateness import Recorder, probe_loop, replay, wake_hook
from bench.loop_diagnostics import (
    GcPauses,
    SlowCallbacks,
    StoreTimings,
    TimedSQLiteStore,
    profiled,
)
from bench.machine import load_average, machine_line
from bench.procfs import own_run_delay, process_cpu
from bench.stats import busiest, busiest_span, summary_ms
from bench.subscriber import Subscriber
from bench.tables import header
from bench.tables import row as cells
from simulator.live.processes import Mosquitto
from simulator.run.result import RunResult
from simulator.run.runner import ScenarioRun
from simulator.scenario import Scenario, load_scenario
from worker import (
    TOPIC_PREFIX,
    MemoryMetadata,
    MemoryStore,
    StatusMessage,
    format_duration,
    parse_duration,
    virtual_loop,
)
from worker.mqtt import BrokerConfig, MqttLink

__all__ = ["Calibration", "Settings", "main", "measure"]

DEFAULT_SCENARIO = "configs/load-10k.toml"
#: load-10k's datacenter is full (about 2,200 messages every six simulated hours) from
#: about day 7; ten days of it at 5,000 msg/s take about 18 wall seconds.
DEFAULT_FROM, DEFAULT_UNTIL = "7d", "17d"
DEFAULT_RATE = 5000.0
TARGET_P99_MS = 50.0
SUBSCRIPTION = f"{TOPIC_PREFIX}/jobs/#"
PROBE_TOPIC = "bench/schedule/probe"
#: Wall seconds to wait for the broker, and for the last messages to reach the subscriber.
CONNECT_TIMEOUT = 10.0
SETTLE_TIMEOUT = 60.0

#: Twenty jobs over a simulated day: arrivals, checkpoints (1 TB at 200 MB/s is 83
#: minutes, a checkpoint every 30), returns, and retention after two hours: every job is
#: deleted by the sweeper within three simulated days.
SMOKE_SCENARIO = """
name = "schedule-smoke"
seed = 5
until = "3d"

[policy]
retention = "2h"
creating_expiry = "2h"
sweep_interval = "10m"

[datacenter]
locations = { "West US" = 4 }
throughput_mb_s = 200
checkpoint_interval = "30m"
carrier_delay = ["1h", "3h"]
return_delay = ["1h", "2h"]
drive_size = ["500GB", "1TB"]

[workload]
jobs = 20
over = "1d"
drives = [1, 3]
ship_after = ["10m", "1h"]
"""
SMOKE_RATE = 1000.0


# -- calibration in virtual time -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Calibration:
    """The scenario's schedule, from a run in virtual time."""

    messages: int
    window_messages: int
    #: Simulated due times of the worker's timed steps, sorted.
    dues: list[float]
    #: Where the run ended (its ``until``, or earlier once every job was gone).
    end: float
    wall_s: float


def calibrate(scenario: Scenario, start: float) -> Calibration:
    """Run ``scenario`` in virtual time: its messages by simulated time, its timed steps."""
    recorder = Recorder()
    stamps: list[float] = []
    run: ScenarioRun

    def on_message(message: StatusMessage) -> None:
        stamps.append(run.clock.now())

    run = ScenarioRun(scenario, MemoryStore(), on_message=on_message)
    started = time.perf_counter()
    with wake_hook(recorder.on_wake):
        result: RunResult = anyio.run(
            run.run, backend="asyncio", backend_options={"loop_factory": virtual_loop}
        )
    wall = time.perf_counter() - started
    end = min(scenario.until, result.sim_seconds)
    return Calibration(
        messages=len(stamps),
        window_messages=sum(1 for t in stamps if start <= t <= end),
        dues=sorted(due for due, _ in recorder.wakes),
        end=end,
        wall_s=wall,
    )


# -- the MQTT side ---------------------------------------------------------------------------------


class LinkBus:
    """The run's status sink: the worker's MqttLink, counting what it publishes and noting
    when the run's final drain begins (the first publish not made by the relay's own task:
    the runner drains once more after its task group has stopped)."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link
        self.published = 0
        #: Unix time the final drain began (None: not yet).
        self.final_drain: float | None = None

    async def ready(self) -> None:
        await self.link.ready()

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        if self.final_drain is None:
            task = asyncio.current_task()
            if task is None or task.get_name() != "worker.relay.OutboxRelay.run":
                self.final_drain = time.time()
        await self.link.publish(messages)
        self.published += len(messages)


# -- the measured run ------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Settings:
    scenario: Scenario
    path: str
    rate: float
    start: float
    speed: float | None
    reference_seconds: float
    profile: Path | None
    #: Keep the working directory (store, broker config, the subscriber's lines) here.
    keep: Path | None = None
    #: Note loop callbacks longer than this many wall seconds (None: do not time them).
    blocking: float | None = None
    #: Keep the disk busy next to the store during the run (:mod:`bench.disk_load`).
    disk_load: bool = False


def measure(settings: Settings) -> dict[str, Any]:
    """Calibrate, then run in scaled real time through MQTT; every figure as a dict."""
    scenario = settings.scenario
    print(
        f"calibrating {settings.path} (cut at {format_duration(scenario.until).strip()}) "
        "in virtual time ...",
        flush=True,
    )
    cal = calibrate(scenario, settings.start)
    if cal.window_messages == 0:
        raise SystemExit("the window holds no messages: choose --from and --until")
    window = cal.end - settings.start
    per_sim_s = cal.window_messages / window
    speed = settings.speed or settings.rate / per_sim_s
    asked = per_sim_s * speed
    print(
        f"  {cal.messages:,} messages, {cal.window_messages:,} in the window "
        f"({window / 86400:.2f} simulated days), {len(cal.dues):,} timed steps; "
        f"{cal.wall_s:.1f} s. Speed {speed:,.0f}: {asked:,.0f} msg/s asked, "
        f"{window / speed:.1f} s measured after {settings.start / speed:.1f} s of warm-up",
        flush=True,
    )
    in_window = [d for d in cal.dues if settings.start <= d <= cal.end]
    offsets = [(d - settings.start) / speed for d in in_window]
    reference_offsets = busiest_span(offsets, settings.reference_seconds)

    with contextlib.ExitStack() as stack:
        folder = workdir(stack, "bench-sch-", settings.keep)
        broker = stack.enter_context(mosquitto(folder))
        # Receive time, topic and QoS of every status message, in a file of its own.
        subscriber = Subscriber(
            broker.port,
            [SUBSCRIPTION],
            "%q",
            folder / "received.txt",
            probe_topic=PROBE_TOPIC,
            timeout=CONNECT_TIMEOUT,
        )
        try:
            subscriber.start()
            with disk_load(folder, enabled=settings.disk_load) as load:
                run = _run(settings, speed, reference_offsets, broker, folder)
            run["disk_load_mib"] = load.reported_mib
            committed: Counter[str] = run.pop("committed_topics")
            subscriber.wait_for(sum(committed.values()), SETTLE_TIMEOUT)
            lines = [(stamp, topic, int(qos)) for stamp, topic, qos in subscriber.lines()]
        finally:
            subscriber.stop()
            cpu = process_cpu(broker.process.pid) if broker.process else None
            broker_cpu = math.nan if cpu is None else cpu

    received = Counter(topic for _, topic, _ in lines)
    qos0 = {topic for _, topic, qos in lines if qos == 0}
    lost = sum(max(0, n - received[t]) for t, n in committed.items())
    extra = sum(max(0, n - committed[t]) for t, n in received.items())
    w_from, w_until = run.pop("window_unix")
    # Received more often than committed: the batch in flight when the run stopped is sent
    # again by its final drain (at least once, by design); any before that would not be.
    final_drain = run.pop("final_drain_unix")
    seen: Counter[str] = Counter()
    extra_in_run = 0
    for stamp, topic, _ in lines:
        seen[topic] += 1
        if seen[topic] > committed[topic] and (final_drain is None or stamp < final_drain):
            extra_in_run += 1
    arrivals = sorted(t for t, _, _ in lines if w_from <= t <= w_until)
    wall_window = w_until - w_from
    wakes = [late for due, late in run.pop("wakes") if settings.start <= due <= cal.end]
    commits = [late for due, late in run.pop("commits") if settings.start <= due <= cal.end]
    wake, commit = summary_ms(wakes), summary_ms(commits)
    ref = summary_ms(run.pop("reference"))
    report: dict[str, Any] = {
        "scenario": settings.path,
        "from_s": settings.start,
        "until_s": cal.end,
        "speed": speed,
        "calibration_s": cal.wall_s,
        "window_messages_expected": cal.window_messages,
        "rate_asked": asked,
        "rate_achieved": len(arrivals) / wall_window if wall_window > 0 else math.nan,
        "busiest_second": busiest(arrivals),
        "window_wall_s": wall_window,
        "committed": sum(committed.values()),
        "received": len(lines),
        "lost": lost,
        "extra": extra,
        "extra_in_run": extra_in_run,
        "lost_qos0": sum(max(0, n - received[t]) for t, n in committed.items() if t in qos0),
        "wake": wake,
        "commit": commit,
        "reference": ref,
        "p99_ratio": wake["p99_ms"] / ref["p99_ms"] if ref["p99_ms"] else math.nan,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": max(wake["p99_ms"], commit["p99_ms"]) < TARGET_P99_MS,
        "broker_cpu_s": broker_cpu,
        "cpu_us_per_message": run["cpu_s"] / max(1, sum(committed.values())) * 1e6,
        **run,
    }
    return report


def _run(
    settings: Settings,
    speed: float,
    reference_offsets: Sequence[float],
    broker: Mosquitto,
    workdir: Path,
) -> dict[str, Any]:
    scenario = settings.scenario
    recorder = Recorder()
    timings = StoreTimings()
    pauses = GcPauses()
    slow = SlowCallbacks(settings.blocking or 0.0)
    store = TimedSQLiteStore(workdir / "worker.db", timings, recorder.on_commit)
    out: dict[str, Any] = {}

    async def main() -> None:
        config = BrokerConfig.from_url(broker.url)
        # The link keeps its bookkeeping (epoch, protocol) apart, as the demo's mirror does.
        link = MqttLink(config, worker_id="bench-schedule", meta=MemoryMetadata())
        bus = LinkBus(link)
        async with connected(link, CONNECT_TIMEOUT):
            print(f"  reference: {len(reference_offsets):,} bare timers ...", flush=True)
            out["reference"] = await replay(reference_offsets)
            run = ScenarioRun(scenario, store, speed=speed, sink=bus)
            recorder.run = run
            probe: list[tuple[float, float]] = []
            print(f"  running at {speed:,.0f} through {broker.url} ...", flush=True)
            cpu, wall, unix = time.process_time(), time.perf_counter(), time.time()
            waited = own_run_delay()
            loop_t0 = anyio.current_time()
            async with anyio.create_task_group() as probing:
                probing.start_soon(probe_loop, probe)
                with (
                    wake_hook(recorder.on_wake),
                    pauses.installed(),
                    slow.installed() if settings.blocking is not None else contextlib.nullcontext(),
                ):
                    result = await run.run()
                probing.cancel_scope.cancel()
            out["run_wall_s"] = time.perf_counter() - wall
            out["cpu_wait_s"] = own_run_delay() - waited
            out["gc_tracked_end"] = len(gc.get_objects())
            out["gc_frozen"] = gc.get_freeze_count()
            out["cpu_s"] = time.process_time() - cpu
            out["cpu"] = out["cpu_s"] / out["run_wall_s"]
            out["published"] = bus.published
            out["connects"] = link.connects
            out["final_drain_unix"] = bus.final_drain
            out["finished"] = result.finished
            out["sim_s"] = result.sim_seconds
            out["committed_topics"] = Counter(m.topic for m in result.history)
            # Loop time of simulated 0 and of the window's ends, in unix time.
            if recorder.anchor is None:
                raise RuntimeError("no worker timer fired in the run")
            loop_at, sim_at, scale = recorder.anchor
            zero = unix + (loop_at - loop_t0) - sim_at / scale
            end = min(scenario.until, result.sim_seconds)
            out["window_unix"] = (zero + settings.start / speed, zero + end / speed)
            # The probe's wake-ups inside the window (not the warm-up, not the final drain).
            first, last = (loop_at + (t - sim_at) / scale for t in (settings.start, end))
            out["probe"] = summary_ms([late for due, late in probe if first <= due <= last])

    # The bench's own long-lived objects (the loaded scenario: every job and action of
    # the customers, which a real worker does not hold; the calibration's leftovers) are
    # left out of the collector's full passes, which would otherwise walk them all.
    gc.collect()
    gc.freeze()
    try:
        if settings.profile is not None:
            profiled(main, settings.profile)
        else:
            anyio.run(main, backend="asyncio")
    finally:
        gc.unfreeze()
        store.close()
    out["wakes"], out["commits"] = recorder.wakes, recorder.commits
    out["customer_wakes"] = recorder.other_wakes
    out["store"] = timings.figures()
    out["gc"] = pauses.figures()
    if settings.blocking is not None:
        out["blocking"] = slow.figures()
        out["blocking_ms"] = settings.blocking * 1000
    return out


# -- output ----------------------------------------------------------------------------------------

HEAD = header(
    "scenario | window | speed | msg/s asked | msg/s achieved (busiest s) | timed steps "
    "| wake late p50 / p99 / max ms | commit late p50 / p99 / max ms "
    "| reference p50 / p99 / max ms | p99 ÷ reference | loop probe p99 / max ms "
    "| committed / received / lost | CPU bench / broker | waited for a CPU | p99 < 50 ms",
    "llrrrrrrrrrrrrl",
)


def _ms(s: dict[str, float]) -> str:
    return f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}"


def row(r: dict[str, Any]) -> str:
    run_wall = r["run_wall_s"]
    return cells(
        f"`{r['scenario']}`",
        f"{r['from_s'] / 86400:.1f}–{r['until_s'] / 86400:.1f} d",
        f"{r['speed']:,.0f}",
        f"{r['rate_asked']:,.0f}",
        f"{r['rate_achieved']:,.0f} ({r['busiest_second']:,})",
        f"{r['wake']['n']:,}",
        _ms(r["wake"]),
        _ms(r["commit"]),
        _ms(r["reference"]),
        f"{r['p99_ratio']:.1f}×",
        f"{r['probe']['p99_ms']:.1f} / {r['probe']['max_ms']:.1f}",
        f"{r['committed']:,} / {r['received']:,} / {r['lost']:,}",
        f"{r['cpu']:.0%} / {r['broker_cpu_s'] / run_wall:.0%}",
        f"{r['cpu_wait_s'] / run_wall:.0%}",
        "yes" if r["target_met"] else "**no**",
    )


#: A run whose loop waited for a CPU longer than this share of it measured the machine.
BUSY_MACHINE = 0.10


def details(r: dict[str, Any]) -> str:
    store = r["store"]
    gcs = r["gc"]
    waited = r["cpu_wait_s"] / r["run_wall_s"]
    busy = (
        f"**The machine was busy**: for {waited:.0%} of the run the loop's thread was ready "
        "but other processes had the CPUs, so these lateness figures measure the machine as "
        "much as the worker; run again on a quiet machine. "
        if waited > BUSY_MACHINE
        else ""
    )
    return busy + (
        f"This process spent {r['cpu_us_per_message']:.0f} µs of CPU per committed message "
        "(the worker, its publishing and the in-process customers). "
        f"Slowest synchronous calls in the loop, wall (CPU): commit p99 "
        f"{store['commit']['p99_ms']:.2f}, max {store['commit']['max_ms']:.2f} "
        f"({store['commit']['max_cpu_ms']:.2f}) ms ({store['commit']['n']:,}); relay batch read "
        f"max {store['pending']['max_ms']:.2f} ({store['pending']['max_cpu_ms']:.2f}) ms, ack "
        f"max {store['ack']['max_ms']:.2f} ({store['ack']['max_cpu_ms']:.2f}) ms "
        f"({store['ack']['n']:,} batches, {store['ack']['rows']:,} rows); GC {gcs['n']:,} "
        f"collections ({gcs['gen2']} full), longest {gcs['max_ms']:.1f} ms "
        f"(longest CPU {gcs['max_cpu_ms']:.1f} ms; the full ones found "
        f"{gcs['collected_full']:,} unreachable objects), "
        f"{gcs['total_ms']:.0f} ms in all, {r['gc_tracked_end']:,} objects tracked at the end "
        f"(the bench's {r['gc_frozen']:,} frozen ones left out). "
        f"Commit-late samples {r['commit']['n']:,}; "
        f"customer timers (not counted) {r['customer_wakes']:,}; "
        f"run {r['run_wall_s']:.1f} s wall for {r['sim_s'] / 86400:.2f} simulated days; "
        f"outbox backlog at most {store['outbox']['backlog_max']:,} messages; "
        f"{r['connects']} broker connection(s); {r['extra']:,} messages received twice "
        f"({r['extra_in_run']:,} before the run stopped; the others are the batch in flight "
        "when it stopped, sent again by its final drain)."
    )


def table(report: dict[str, Any]) -> str:
    r = report["run"]
    return "\n".join(
        [
            "## Schedule keeping in scaled real time (`bench/schedule.py`)",
            "",
            f"Run {report['when']}: `{report['command']}`. Machine: {report['machine']}; "
            f"1-minute load average {report['load_before']:.2f} before, "
            f"{report['load_after']:.2f} after. Timings are wall-clock on a shared machine: "
            "noisy.",
            "",
            "One process, an ordinary asyncio loop: the scenario's worker (pipeline, "
            "retention sweeper, in-process scripted customers) on a SQLite store in a temp "
            "dir, its outbox relay publishing through the worker's `MqttLink` to a Mosquitto "
            "on a free loopback port, `mosquitto_sub -q 1` counting in its own process. The "
            "speed makes the measured window ask for the rate on average (from a virtual-time "
            "run of the same scenario); the run starts at simulated 0 and only steps due in "
            "the window count. *Wake late*: loop time a worker timer's callback ran minus the "
            "loop time its simulated due time maps to (arrivals, checkpoints, drive finishes, "
            "returns); *commit late*: from that due moment to the end of the SQLite commit of "
            "the change (and retention deletions against their sweep tick). *Reference*: a "
            "bare `anyio.sleep` replay of the same timers at the same pace (the busiest "
            f"{report['reference_seconds']:g} s of the window) on the same loop just before "
            "the run. *Loop probe*: a 10 ms timer in the window. *Achieved*: messages "
            "received by the subscriber within the window's wall interval, per second. CPU: "
            "100 % = one core. *Waited for a CPU*: share of the run the loop's thread was "
            "runnable but not running (`/proc/self/schedstat`): other processes on the machine."
            + disk_load_sentence(r.get("disk_load_mib")),
            "",
            HEAD,
            row(r),
            "",
            details(r),
            *_blocking_lines(r),
        ]
    )


def _blocking_lines(r: dict[str, Any]) -> list[str]:
    """The callbacks that held the loop longest (``--blocking``), as a list."""
    rows = r.get("blocking") or []
    if not rows:
        return []
    return [
        "",
        f"Loop callbacks over {r['blocking_ms']:g} ms (`--blocking`), most wall time first:",
        "",
        *(
            f"* {b['what']}: {b['n']:,}×, longest {b['max_ms']:.1f} ms, "
            f"{b['total_ms']:,.0f} ms in all, of which CPU {b['cpu_ms']:,.0f} ms"
            for b in rows[:8]
        ),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.schedule", __doc__)
    parser.add_argument("scenario", nargs="?", help=f"scenario file (default {DEFAULT_SCENARIO})")
    parser.add_argument(
        "--rate", type=float, help=f"status messages a second asked for (default {DEFAULT_RATE:g})"
    )
    parser.add_argument("--speed", type=float, help="simulated seconds a second (over --rate)")
    parser.add_argument("--from", dest="start", help=f"window start (default {DEFAULT_FROM})")
    parser.add_argument("--until", help=f"window end: the cut (default {DEFAULT_UNTIL})")
    parser.add_argument(
        "--reference-seconds", type=float, default=10.0, help="length of the reference replay"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny built-in scenario")
    parser.add_argument("--profile", type=Path, help="pyinstrument the run into FILE")
    parser.add_argument(
        "--blocking",
        type=float,
        metavar="MS",
        help="also note every loop callback longer than MS ms (a diagnosis; it costs a little)",
    )
    add_disk_load_option(parser, "the run")
    parser.add_argument("--keep", type=Path, help="keep the working directory here")
    cli.add_outputs(parser)
    given = cli.arguments(argv)
    args = parser.parse_args(given)
    command = cli.command_line("bench.schedule", given)
    with (
        cli.quiet_logging(),
        tempfile.TemporaryDirectory(prefix="bench-schedule-smoke-") as tmp,
    ):
        settings = _settings(args, parser, Path(tmp))
        load_before = load_average()
        run = measure(settings)
        load_after = load_average()
    report: dict[str, Any] = {
        "command": command,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
        "load_before": load_before,
        "load_after": load_after,
        "reference_seconds": settings.reference_seconds,
        "run": run,
    }
    finish("schedule", table(report), report, json_path=args.json, docs=args.docs)
    return report


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser, tmp: Path) -> Settings:
    """What the command line asks for; ``--smoke`` writes its scenario into ``tmp``."""
    if args.smoke:
        if args.scenario:
            parser.error("--smoke runs its own scenario")
        if args.docs:
            parser.error("--smoke never writes the docs")
        path = tmp / "schedule-smoke.toml"
        path.write_text(SMOKE_SCENARIO)
        label, full = "smoke", load_scenario(path)
        start = parse_duration(args.start or "0s")
        until = parse_duration(args.until) if args.until else full.until
        rate, reference_seconds = args.rate or SMOKE_RATE, min(args.reference_seconds, 1)
    else:
        label = args.scenario or DEFAULT_SCENARIO
        full = load_scenario(label)
        start = parse_duration(args.start or DEFAULT_FROM)
        until = parse_duration(args.until or DEFAULT_UNTIL)
        rate, reference_seconds = args.rate or DEFAULT_RATE, args.reference_seconds
    if not start < until:
        parser.error("--from must come before --until")
    return Settings(
        scenario=dataclasses.replace(full, until=until),
        path=label,
        rate=rate,
        start=start,
        speed=args.speed,
        reference_seconds=reference_seconds,
        profile=args.profile,
        keep=args.keep,
        blocking=None if args.blocking is None else args.blocking / 1000,
        disk_load=args.disk_load,
    )


if __name__ == "__main__":
    main()
