"""Schedule keeping in scaled real time: ``python -m bench.schedule [SCENARIO] [--rate N]``.

How late does the worker's datacenter carry out its own schedule when it also publishes a
heavy stream of status messages? The bench runs a scenario in scaled real time, paced so
that it asks for ``--rate`` status messages a second (5,000 by default), through the real
path, and measures every timed step of the worker against its simulated due time.

**The path.** One process, one ordinary asyncio loop, as ``drivesim worker`` runs it: the
runner's :class:`~simulator.runner.ScenarioRun` (ledger, job service, datacenter pipeline,
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

**Lateness.** While the measured run lasts, :attr:`worker.clock.Clock.wake_hook` is set
(unset it costs one attribute read per timer): every :meth:`~worker.clock.Clock.call_at`
timer that fires and every :meth:`~worker.clock.Clock.sleep` that ends reports ``(due,
woke)`` in simulated seconds. Only the worker's own timers count: the pipeline's, which
are :meth:`~worker.clock.Clock.call_at` callbacks outside any task, and the tasks named
after functions of the ``worker`` package (the scripted customers' tasks are
``simulator.runner...``): a package's arrival, each transfer checkpoint and drive finish,
a late drive's arrival, the return shipment. Two figures per step, in wall milliseconds:

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

**Diagnostics.** The machine is shared, so the run also reports how long the loop's
thread waited, runnable, for a CPU (``/proc/self/schedstat``): what other processes took.
The slowest synchronous store calls (commit, reading a relay batch, acknowledging it) and
garbage-collector pauses (``gc.callbacks``) come with their wall time and the CPU the
thread spent in them; the CPU of this process per committed message and of the broker
too. ``--blocking MS`` times every loop callback and lists those over ``MS`` by task, wall
and CPU: wall far over CPU means the thread was preempted or waited in a system call, CPU
close to wall is the worker's own code holding the loop. ``--profile FILE`` runs
pyinstrument over the measured run (``.html`` or text; sampling adds its own lateness).
``--keep DIR`` keeps the store, the broker's config and the subscriber's lines.

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
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import structlog

from bench.disk_load import disk_load, disk_load_sentence
from bench.docs import finish
from bench.machine import machine
from bench.procfs import process_cpu as _proc_cpu
from bench.procfs import run_delay as _run_delay
from bench.stats import busiest as _busiest
from bench.subscriber import sub_command, wait_subscribed
from simulator.processes import Mosquitto
from simulator.runner import RunResult, ScenarioRun
from simulator.scenario import Scenario, load_scenario
from worker.clock import Clock, format_duration, parse_duration, virtual_loop
from worker.logs import configure_logging
from worker.memory_store import MemoryStore
from worker.metadata import MemoryMetadata
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.link import MqttLink
from worker.retention import deletion_due
from worker.sqlite_store import SQLiteStore
from worker.status import PREFIX, StatusMessage
from worker.store import Commit, OutboxEntry

__all__ = ["Calibration", "Recorder", "main", "measure", "percentile"]

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SCENARIO = "configs/load-10k.toml"
#: load-10k's datacenter is full (about 2,200 messages every six simulated hours) from
#: about day 7; ten days of it at 5,000 msg/s take about 18 wall seconds.
DEFAULT_FROM, DEFAULT_UNTIL = "7d", "17d"
DEFAULT_RATE = 5000.0
TARGET_P99_MS = 50.0
SUBSCRIPTION = f"{PREFIX}/jobs/#"
PROBE_TOPIC = "bench/schedule/probe"
#: What the subscriber writes per message: receive time (unix, ns), topic, QoS.
FORMAT = "%U %t %q"
#: The loop probe's period (wall seconds).
PROBE_PERIOD = 0.01
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

log = structlog.get_logger("drivesim.bench.schedule")


# -- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q ≤ 1) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    """Count, p50, p99, p99.9 and max of wall seconds, in milliseconds."""
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "p999_ms": percentile(ordered, 0.999) * 1000,
        "max_ms": (ordered[-1] * 1000) if ordered else math.nan,
    }


def _is_worker_task(name: str) -> bool:
    """The worker's own tasks: those anyio names after functions of the ``worker`` package
    (the sweeper); customers run elsewhere."""
    return name.startswith("worker.")


#: Where a timer's due moment waits for its commit when the timer is a callback, not a task.
_TIMER = "timer"


# -- recording ---------------------------------------------------------------------------------


class Recorder:
    """The bench's :attr:`Clock.wake_hook` and its store's commit observer.

    Every worker timer that ends is kept as ``(due, late)``: its simulated due time and
    how late it woke, in loop (wall) seconds. The task's due moment, in loop time, waits
    for the task's next commit, which is kept as ``(due, late)`` too.
    """

    def __init__(self) -> None:
        self.wakes: list[tuple[float, float]] = []
        self.commits: list[tuple[float, float]] = []
        self.other_wakes = 0
        #: (loop time, simulated time, scale) read at the first wake: maps one to the other.
        self.anchor: tuple[float, float, float] | None = None
        self._due_at: dict[asyncio.Task[Any] | str, tuple[float, float]] = {}
        #: The measured run, once made (its clock and ledger, for the sweeper's deletions).
        self.run: ScenarioRun | None = None

    def on_wake(self, clock: Clock, due: float, woke: float) -> None:
        task = asyncio.current_task()
        if task is not None and not _is_worker_task(task.get_name()):
            self.other_wakes += 1
            return
        late = (woke - due) / clock.scale
        loop_now = asyncio.get_running_loop().time()
        if self.anchor is None:
            self.anchor = (loop_now, woke, clock.scale)
        self.wakes.append((due, late))
        self._due_at[task or _TIMER] = (due, loop_now - late)

    def on_commit(self, commit: Commit) -> None:
        task = asyncio.current_task()
        pending = self._due_at.pop(task or _TIMER, None)
        if pending is not None:
            due, due_loop = pending
            self.commits.append((due, asyncio.get_running_loop().time() - due_loop))
        elif (
            commit.delete
            and self.run is not None
            and task is not None
            and task.get_name().startswith("worker.retention.")
        ):
            self._sweeper_commit(commit, self.run)

    def _sweeper_commit(self, commit: Commit, run: ScenarioRun) -> None:
        # The deleted record is still the ledger's: the ledger swaps after the commit.
        policy = run.scenario.policy
        clock = run.clock
        now = clock.now()
        for name in commit.delete:
            record = run.ledger.get(name)
            if record is None:
                continue
            due = deletion_due(record, policy)
            if due is None:
                continue
            tick = math.ceil(due / policy.sweep_interval) * policy.sweep_interval
            self.commits.append((tick, max(0.0, now - tick) / clock.scale))


class StoreTimings:
    """The slowest synchronous store calls: they hold the loop while they run."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {"commit": [], "pending": [], "ack": []}
        #: The CPU the loop's thread spent in each call (wall well over it: I/O, preemption).
        self.cpu: dict[str, list[float]] = {"commit": [], "pending": [], "ack": []}
        self.rows: dict[str, int] = {"pending": 0, "ack": 0}
        #: Outbox messages committed and acknowledged so far, and the most ever pending.
        self.committed = 0
        self.backlog_max = 0

    def figures(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, seconds in self.calls.items():
            s = _summary(seconds)
            out[name] = {
                "n": s["n"],
                "p99_ms": s["p99_ms"],
                "max_ms": s["max_ms"],
                "max_cpu_ms": max(self.cpu[name], default=0.0) * 1000,
            }
            if name in self.rows:
                out[name]["rows"] = self.rows[name]
        out["outbox"] = {"backlog_max": self.backlog_max}
        return out


class TimedSQLiteStore(SQLiteStore):
    """The worker's SQLite store, timing its calls and telling the recorder of commits."""

    def __init__(self, path: Path, recorder: Recorder, timings: StoreTimings) -> None:
        super().__init__(path)
        self.recorder = recorder
        self.timings = timings

    def commit(self, commit: Commit) -> None:
        started, used = time.perf_counter(), time.thread_time()
        super().commit(commit)
        timings = self.timings
        timings.calls["commit"].append(time.perf_counter() - started)
        timings.cpu["commit"].append(time.thread_time() - used)
        timings.committed += len(commit.messages)
        timings.backlog_max = max(timings.backlog_max, timings.committed - timings.rows["ack"])
        self.recorder.on_commit(commit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        """Read a relay batch, timed under ``pending`` (``pending`` reads through this)."""
        started, used = time.perf_counter(), time.thread_time()
        result = super().pending_after(after, limit)
        timings = self.timings
        timings.calls["pending"].append(time.perf_counter() - started)
        timings.cpu["pending"].append(time.thread_time() - used)
        timings.rows["pending"] += len(result)
        return result

    def ack(self, ids: Sequence[int]) -> None:
        """Acknowledge a relay batch, timed under ``ack``."""
        started, used = time.perf_counter(), time.thread_time()
        super().ack(ids)
        timings = self.timings
        timings.calls["ack"].append(time.perf_counter() - started)
        timings.cpu["ack"].append(time.thread_time() - used)
        timings.rows["ack"] += len(ids)


class GcPauses:
    """Garbage-collector pauses while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        #: Unreachable objects the full (generation 2) passes found, in all.
        self.collected_full = 0
        self._started = self._used = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._used = time.perf_counter(), time.thread_time()
        else:
            took = time.perf_counter() - self._started
            self.pauses.append((info["generation"], took, time.thread_time() - self._used))
            if info["generation"] == 2:
                self.collected_full += info["collected"]

    @contextmanager
    def installed(self) -> Iterator[None]:
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)

    def figures(self) -> dict[str, float]:
        seconds = [s for _, s, _ in self.pauses]
        return {
            "n": len(seconds),
            "gen2": sum(1 for g, _, _ in self.pauses if g == 2),
            "max_ms": max(seconds, default=0.0) * 1000,
            "max_cpu_ms": max((c for _, _, c in self.pauses), default=0.0) * 1000,
            "total_ms": sum(seconds) * 1000,
            "collected_full": self.collected_full,
        }


class SlowCallbacks:
    """Loop callbacks (task steps, timers) that ran longer than ``threshold`` wall seconds:
    what held the loop, with the CPU the loop's thread spent in them (wall well over CPU:
    the thread was preempted, or waited in a system call such as an fsync). Opt-in
    (``--blocking MS``): it reads two clocks around every callback."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.slow: list[tuple[float, float, str]] = []

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = asyncio.events.Handle._run
        threshold, slow = self.threshold, self.slow
        wall, cpu = time.perf_counter, time.thread_time

        def timed(handle: asyncio.Handle) -> None:
            started, used = wall(), cpu()
            original(handle)
            took = wall() - started
            if took > threshold:
                slow.append((took, cpu() - used, _describe(handle)))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            asyncio.events.Handle._run = original  # type: ignore[method-assign]

    def figures(self) -> list[dict[str, Any]]:
        """Per callback, most time first: how often it went over, its longest and total,
        and the CPU of that total."""
        by: dict[str, list[tuple[float, float]]] = {}
        for took, used, what in self.slow:
            by.setdefault(what, []).append((took, used))
        rows = [
            {
                "what": what,
                "n": len(t),
                "max_ms": max(w for w, _ in t) * 1000,
                "total_ms": sum(w for w, _ in t) * 1000,
                "cpu_ms": sum(c for _, c in t) * 1000,
            }
            for what, t in by.items()
        ]
        return sorted(rows, key=lambda r: -float(r["total_ms"]))


def _describe(handle: asyncio.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return "task " + owner.get_name()
    step = handle._args[0] if getattr(handle, "_args", None) else None  # the pipeline's _call
    if callable(step):
        return getattr(step, "__qualname__", repr(step))[:100]
    return repr(callback)[:100]


@contextmanager
def _wake_hook(hook: Callable[[Clock, float, float], None]) -> Iterator[None]:
    Clock.wake_hook = hook
    try:
        yield
    finally:
        Clock.wake_hook = None


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
    with _wake_hook(recorder.on_wake):
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


# -- the reference: a bare sleep loop on the same schedule -----------------------------------------


def busiest_span(offsets: Sequence[float], seconds: float) -> list[float]:
    """The sorted ``offsets`` inside the ``seconds`` long span holding the most of them,
    shifted to start at 0."""
    if not offsets:
        return []
    best, best_lo, lo = 0, 0, 0
    for hi, value in enumerate(offsets):
        while value - offsets[lo] > seconds:
            lo += 1
        if hi - lo + 1 > best:
            best, best_lo = hi - lo + 1, lo
    first = offsets[best_lo]
    return [x - first for x in offsets[best_lo : best_lo + best]]


async def replay(offsets: Sequence[float], *, lead: float = 0.2) -> list[float]:
    """Sleep until each of ``offsets`` (loop seconds from now + ``lead``), each in a task of
    its own armed up to ``lead`` ahead, as the worker's timers are; how late each woke."""
    late: list[float] = []
    origin = anyio.current_time() + lead

    async def one(due: float) -> None:
        await anyio.sleep(max(0.0, due - anyio.current_time()))
        late.append(anyio.current_time() - due)

    async with anyio.create_task_group() as tg:
        index = 0
        while index < len(offsets):
            horizon = anyio.current_time() + lead
            while index < len(offsets) and origin + offsets[index] <= horizon:
                tg.start_soon(one, origin + offsets[index])
                index += 1
            await anyio.sleep(lead / 2)
    return late


async def _probe(late: list[tuple[float, float]]) -> None:
    """Wake every :data:`PROBE_PERIOD`, noting ``(due, late)`` in loop time; until cancelled."""
    while True:
        due = anyio.current_time() + PROBE_PERIOD
        await anyio.sleep(PROBE_PERIOD)
        late.append((due, anyio.current_time() - due))


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


class Subscriber:
    """``mosquitto_sub -q 1`` in its own process, a line per message into a file."""

    def __init__(self, broker: Mosquitto, path: Path) -> None:
        self.broker = broker
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = self.broker.port
        with self.path.open("wb") as out:
            self.process = subprocess.Popen(
                sub_command(port, [SUBSCRIPTION, PROBE_TOPIC], FORMAT),
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        wait_subscribed(
            lambda: PROBE_TOPIC.encode() in self.path.read_bytes(),
            port,
            PROBE_TOPIC,
            process=self.process,
            timeout=CONNECT_TIMEOUT,
        )

    def lines(self) -> list[tuple[float, str, int]]:
        """``(receive unix time, topic, qos)`` of every status message received so far."""
        out = []
        for raw in self.path.read_bytes().splitlines():
            parts = raw.decode().split(" ")
            if len(parts) == 3 and parts[1] != PROBE_TOPIC:
                out.append((float(parts[0]), parts[1], int(parts[2])))
        return out

    def wait_for(self, count: int, timeout: float) -> None:
        """Until ``count`` status messages are in (or ``timeout``), then 0.3 s more."""
        deadline = time.monotonic() + timeout
        while len(self.lines()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _own_run_delay() -> float:
    """Seconds this process's main thread (the loop's) has waited, runnable, for a CPU:
    what other processes on the machine took from it."""
    waited = _run_delay(os.getpid())
    return math.nan if waited is None else waited


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
        if settings.keep is not None:
            workdir = settings.keep
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sch-")))
        broker = Mosquitto(workdir)
        broker.start()
        subscriber = Subscriber(broker, workdir / "received.txt")
        try:
            subscriber.start()
            with disk_load(workdir, enabled=settings.disk_load) as load:
                run = _run(settings, speed, reference_offsets, broker, workdir)
            run["disk_load_mib"] = load.reported_mib
            committed: Counter[str] = run.pop("committed_topics")
            subscriber.wait_for(sum(committed.values()), SETTLE_TIMEOUT)
            lines = subscriber.lines()
        finally:
            subscriber.stop()
            cpu = _proc_cpu(broker.process.pid) if broker.process else None
            broker_cpu = math.nan if cpu is None else cpu
            broker.stop()

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
    busiest = _busiest(arrivals)
    wakes = [late for due, late in run.pop("wakes") if settings.start <= due <= cal.end]
    commits = [late for due, late in run.pop("commits") if settings.start <= due <= cal.end]
    wake, commit = _summary(wakes), _summary(commits)
    ref = _summary(run.pop("reference"))
    report: dict[str, Any] = {
        "scenario": settings.path,
        "from_s": settings.start,
        "until_s": cal.end,
        "speed": speed,
        "calibration_s": cal.wall_s,
        "window_messages_expected": cal.window_messages,
        "rate_asked": asked,
        "rate_achieved": len(arrivals) / wall_window if wall_window > 0 else math.nan,
        "busiest_second": busiest,
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
    store = TimedSQLiteStore(workdir / "worker.db", recorder, timings)
    out: dict[str, Any] = {}

    async def main() -> None:
        config = BrokerConfig.from_url(broker.url)
        # The link keeps its bookkeeping (epoch, protocol) apart, as the demo's mirror does.
        link = MqttLink(config, worker_id="bench-schedule", meta=MemoryMetadata())
        bus = LinkBus(link)
        async with anyio.create_task_group() as tg:
            await tg.start(link.run)
            with anyio.fail_after(CONNECT_TIMEOUT):
                await link.ready()
            print(f"  reference: {len(reference_offsets):,} bare timers ...", flush=True)
            out["reference"] = await replay(reference_offsets)
            run = ScenarioRun(scenario, store, speed=speed, sink=bus)
            recorder.run = run
            probe: list[tuple[float, float]] = []
            print(f"  running at {speed:,.0f} through {broker.url} ...", flush=True)
            cpu, wall, unix = time.process_time(), time.perf_counter(), time.time()
            waited = _own_run_delay()
            loop_t0 = anyio.current_time()
            async with anyio.create_task_group() as probing:
                probing.start_soon(_probe, probe)
                with (
                    _wake_hook(recorder.on_wake),
                    pauses.installed(),
                    slow.installed() if settings.blocking is not None else contextlib.nullcontext(),
                ):
                    result = await run.run()
                probing.cancel_scope.cancel()
            out["run_wall_s"] = time.perf_counter() - wall
            out["cpu_wait_s"] = _own_run_delay() - waited
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
            out["probe"] = _summary([late for due, late in probe if first <= due <= last])
            await link.stop()
            with anyio.move_on_after(5):
                await link.closed.wait()
            tg.cancel_scope.cancel()

    # The bench's own long-lived objects (the loaded scenario: every job and action of
    # the customers, which a real worker does not hold; the calibration's leftovers) are
    # left out of the collector's full passes, which would otherwise walk them all.
    gc.collect()
    gc.freeze()
    try:
        if settings.profile is not None:
            _profiled(main, settings.profile)
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


def _profiled(main: Callable[[], Any], path: Path) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="disabled")
    profiler.start()
    try:
        anyio.run(main, backend="asyncio")
    finally:
        profiler.stop()
        if path.suffix == ".html":
            path.write_text(profiler.output_html())
        else:
            path.write_text(profiler.output_text(unicode=True, show_all=False))
        print(f"profile: {path}", flush=True)


# -- output ----------------------------------------------------------------------------------------

HEAD = (
    "| scenario | window | speed | msg/s asked | msg/s achieved (busiest s) | timed steps "
    "| wake late p50 / p99 / max ms | commit late p50 / p99 / max ms "
    "| reference p50 / p99 / max ms | p99 ÷ reference | loop probe p99 / max ms "
    "| committed / received / lost | CPU bench / broker | waited for a CPU | p99 < 50 ms |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _ms(s: dict[str, float]) -> str:
    return f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}"


def row(r: dict[str, Any]) -> str:
    window = f"{r['from_s'] / 86400:.1f}–{r['until_s'] / 86400:.1f} d"
    run_wall = r["run_wall_s"]
    return (
        f"| `{r['scenario']}` | {window} | {r['speed']:,.0f} | {r['rate_asked']:,.0f} "
        f"| {r['rate_achieved']:,.0f} ({r['busiest_second']:,}) | {r['wake']['n']:,} "
        f"| {_ms(r['wake'])} | {_ms(r['commit'])} | {_ms(r['reference'])} "
        f"| {r['p99_ratio']:.1f}× | {r['probe']['p99_ms']:.1f} / {r['probe']['max_ms']:.1f} "
        f"| {r['committed']:,} / {r['received']:,} / {r['lost']:,} "
        f"| {r['cpu']:.0%} / {r['broker_cpu_s'] / run_wall:.0%} "
        f"| {r['cpu_wait_s'] / run_wall:.0%} "
        f"| {'yes' if r['target_met'] else '**no**'} |"
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


def _machine() -> str:
    return ", ".join(f"{key} {value}" for key, value in machine().items())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.schedule", description=__doc__.split("\n\n")[0]
    )
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
    parser.add_argument(
        "--disk-load",
        action="store_true",
        help="keep the disk busy during the run: a child writing and syncing 256 MiB files",
    )
    parser.add_argument("--keep", type=Path, help="keep the working directory here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--docs", action="store_true", help="write the table into the docs")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join([".venv/bin/python", "-m", "bench.schedule", *given])

    saved = structlog.get_config()
    configure_logging(level="error", fmt="json", stream=sys.stderr)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-schedule-smoke-") as tmp:
            if args.smoke:
                if args.scenario:
                    parser.error("--smoke runs its own scenario")
                if args.docs:
                    parser.error("--smoke never writes the docs")
                path = Path(tmp) / "schedule-smoke.toml"
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
            settings = Settings(
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
            load_before = os.getloadavg()[0]
            run = measure(settings)
            load_after = os.getloadavg()[0]
    finally:
        structlog.configure(**saved)
    report: dict[str, Any] = {
        "command": command,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": load_after,
        "reference_seconds": reference_seconds,
        "run": run,
    }
    finish("schedule", table(report), report, json_path=args.json, docs=args.docs)
    return report


if __name__ == "__main__":
    main()
