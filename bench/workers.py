"""Several workers on one PostgreSQL: ``python -m bench.workers [--speed N] [--until T]``.

One scenario (``configs/load-workers.toml``: load-small over four locations, cut at
``--until``) runs live, as ``drivesim run --live --workers N`` runs it, once per set-up in
each of ``--rounds`` rounds, in this order: one worker on SQLite (the reference), then 1,
2 and 4 workers sharing a PostgreSQL of the run's own, then one worker on PostgreSQL at 1/2
and 1/4 of the speed. The runs at full speed are paced by the same simulated schedule, so
each is asked for the same messages at the same moments; what differs is what they cost.
For each run: the messages the observer received and their rate a wall second, CPU
seconds of the workers together (and how much of it each spent starting, before the
customers began: imports, connections, schema), of PostgreSQL (its server and every
backend), of the broker and of this process (customers, observer, fault proxies), and
**messages per worker CPU-second**, as a ratio to one worker on PostgreSQL (and its rate
as a ratio to SQLite's), with and without the start-up: a cost per process that a run of
seconds does not amortise. The schedule sets the rate, so each of N workers carries 1/N of
it, and a worker carrying less spends more per message (more wake-ups and round trips for
fewer messages each, whether or not others share the work): one worker at 1/N of the
speed carries what each of N workers does, and N workers' figure as a ratio to that
worker's (start-up left out) sets the per-worker load aside, though not all else (that
worker runs N times as long, with N times its costs a second). A ratio is taken within a
round (the machine's speed drifts between rounds); the table gives each set-up's median
run and the median of its rounds' ratios (the lower of an even count).

Then figures of their own:

* **notify**: a commit through one store reaching another store's ``changed_jobs``
  (LISTEN/NOTIFY), the path by which a cancel accepted by any worker reaches the worker
  driving the job: ``--notifies`` commits one after another, the latency of each;
* **takeover**: three workers run the scenario, one is SIGKILLed a third of the way in;
  from the kill to each of its locations driven again by another worker (from their logs),
  with the lease at 2 s (the rate runs keep the default, 10 s);
* **in flight** (``--in-flight N``): N jobs created and shipped into the database first
  (through a datacenter in this process), their packages due within minutes, then three
  workers serving them at 100 simulated seconds a second, so the packages arrive as they
  start (a burst of commits) and the drives queue for 120 bays: ``--cancels`` cancels sent
  through the REST API of a worker that does not drive the job (the answer comes once the
  cancel is committed; the owner hears of it by NOTIFY), once each location is driven by
  its holder, one every 50 ms through a client per worker made beforehand, their latency
  from when each was due; then ``--kills``
  times, the holder of a location is SIGKILLed, timed from the kill to its jobs resumed by
  another worker (that pipeline's "jobs resumed" line), and started again; lease 5 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from bench import cli
from bench.docs import finish
from bench.harness import ROOT
from bench.procfs import process_cpu
from bench.stats import summary_ms
from bench.tables import header
from bench.tables import row as cells
from simulator.live.postgres import PostgreSQL, create_database
from simulator.live.run import LiveRun
from simulator.scenario import Scenario, load_scenario
from worker import (
    Clock,
    Commit,
    Datacenter,
    DatacenterConfig,
    JobRecord,
    MemoryStore,
    Planner,
    Range,
    SharedStore,
    open_store,
    parse_duration,
)

__all__ = ["main"]

SCENARIO = ROOT / "configs" / "load-workers.toml"
#: (workers, store, slowdown): the scenario at ``--speed`` divided by ``slowdown``. One worker
#: at half and at a quarter of the speed carries what each of 2 and 4 workers does.
SETUPS = (
    (1, "sqlite", 1),
    (1, "postgresql", 1),
    (2, "postgresql", 1),
    (4, "postgresql", 1),
    (1, "postgresql", 2),
    (1, "postgresql", 4),
)
#: Leases of the rate runs (the default) and of the takeover (short, to measure it).
LEASE = 10.0
TAKEOVER_LEASE = 2.0


# -- CPU of every process of a run -------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (PostgreSQL's backends under its postmaster)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


class _Cpu(threading.Thread):
    """Every 0.1 s, the CPU seconds so far of each process of a live run, by role; a
    process that has gone keeps its last reading."""

    def __init__(self, live: LiveRun) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.done = threading.Event()
        self.seen: dict[str, dict[int, float]] = {"workers": {}, "postgresql": {}, "broker": {}}
        #: Each worker's CPU seconds when the customers began: its start-up.
        self.startup: dict[int, float] = {}

    def _pids(self) -> dict[str, list[int]]:
        workers = [w.process.pid for w in self.live.all_workers if w.process is not None]
        broker = getattr(self.live, "broker", None)
        database = self.live.database
        postmaster = database.process.pid if database and database.process else None
        return {
            "workers": workers,
            "broker": [broker.process.pid] if broker and broker.process else [],
            "postgresql": [postmaster, *_children(postmaster)] if postmaster else [],
        }

    def run(self) -> None:
        while not self.done.wait(0.1):
            began = self.live.started_at is not None
            for role, pids in self._pids().items():
                for pid in pids:
                    if (cpu := process_cpu(pid)) is not None:
                        if role == "workers" and began and pid not in self.startup:
                            # The last reading before the customers began (idle since).
                            self.startup[pid] = self.seen[role].get(pid, cpu)
                        self.seen[role][pid] = cpu

    def totals(self) -> dict[str, float]:
        totals = {role: sum(by_pid.values()) for role, by_pid in self.seen.items()}
        return {**totals, "startup": sum(self.startup.values())}


@contextmanager
def _cpu(live: LiveRun) -> Iterator[_Cpu]:
    sampler = _Cpu(live)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.done.set()
        sampler.join()


# -- the rate table ----------------------------------------------------------------------


def _run(
    scenario: Scenario, speed: float, workers: int, store: str, slowdown: int = 1
) -> dict[str, Any]:
    """One live run at ``speed / slowdown``; its figures."""
    speed /= slowdown
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-workers-") as tmp:
        live = LiveRun(
            scenario,
            Path(tmp),
            speed=speed,
            workers=workers,
            lease=LEASE,
            postgresql=store == "postgresql",
            direct=True,
        )
        own = os.times()
        with _cpu(live) as cpu:
            outcome = anyio.run(live.run, backend="asyncio")
        bench = os.times()
    result = outcome.run
    cpu_s = cpu.totals()
    observed = result.observed or 0
    checks = outcome.checks()
    exempt = {"terminal-or-deleted", "scripted-expectations"}  # a run cut before its end
    return {
        "workers": workers,
        "store": store,
        "slowdown": slowdown,
        "wall_s": result.wall_seconds,
        "committed": len(result.history),
        "observed": observed,
        "observed_per_s": observed / result.wall_seconds,
        "cpu_s": {**cpu_s, "bench": bench.user + bench.system - own.user - own.system},
        "per_worker_cpu_s": observed / cpu_s["workers"] if cpu_s["workers"] else 0.0,
        "per_serving_cpu_s": observed / serving if (serving := serving_cpu(cpu_s)) else 0.0,
        "failed": [c.name for c in checks if not c.ok and c.name not in exempt],
    }


def serving_cpu(cpu_s: dict[str, float]) -> float:
    """The workers' CPU seconds from when the customers began: without their start-up
    (imports, connections, schema), a cost per process and not per message."""
    return cpu_s["workers"] - cpu_s["startup"]


# -- notify latency ----------------------------------------------------------------------


BODY = {
    "location": "West US",
    "properties": {
        "jobType": "Import",
        "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/"
        "Microsoft.Storage/storageAccounts/acct",
        "returnAddress": {
            "recipientName": "R",
            "streetAddress1": "S",
            "city": "C",
            "postalCode": "1",
            "countryOrRegion": "US",
            "phone": "1",
            "email": "r@example.com",
        },
        "driveList": [{"driveId": "D1", "bitLockerKey": "K"}],
    },
}


def new_records(count: int) -> list[JobRecord]:
    """``count`` new jobs, as a worker's service makes them."""
    datacenter = Datacenter(
        MemoryStore(), clock=Clock(), planner=Planner(DatacenterConfig(), seed=1)
    )

    async def create() -> None:
        for i in range(count):
            await datacenter.service.create(f"n{i}", BODY)

    anyio.run(create)
    return list(datacenter.ledger)


def _notify_latency(url: str, count: int) -> list[float]:
    """Seconds from each commit through one store to its name through another's
    ``changed_jobs``."""
    records = new_records(count)
    sender = open_store(url, worker_id="sender")
    receiver = open_store(url, worker_id="receiver")
    latencies: list[float] = []

    async def main() -> None:
        assert isinstance(receiver, SharedStore)
        sent: dict[str, float] = {}
        done = anyio.Event()

        async def listen() -> None:
            async with contextlib.aclosing(receiver.changed_jobs()) as changes:
                async for names in changes:
                    for _, name in names or ():
                        latencies.append(time.perf_counter() - sent[name])
                    if len(latencies) == count:
                        done.set()
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await anyio.sleep(0.5)  # listening
            for job in records:
                sent[job.name] = time.perf_counter()
                sender.commit(Commit(put=[job], guard=(job.name, None)))
                await anyio.sleep(0.001)  # the listener's turn
            with anyio.fail_after(30):
                await done.wait()
            tg.cancel_scope.cancel()

    try:
        anyio.run(main, backend="asyncio")
    finally:
        sender.close()
        receiver.close()
    return latencies


# -- takeover --------------------------------------------------------------------------------


class _KillOne(LiveRun):
    """A live run of three workers that SIGKILLs, at ``kill_at`` simulated seconds, one
    that holds a lease then, noting which and the wall time of the kill."""

    def __init__(self, *args: Any, kill_at: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kill_at = kill_at
        self.killed_at: float | None = None
        self.victim = ""

    async def _fault_plan(self) -> None:
        import psycopg

        await self.clock.sleep_until(self.kill_at)
        assert self.database is not None
        with psycopg.connect(self.database.url("drivesim")) as db:
            row = db.execute("SELECT min(owner) FROM leases WHERE owner IS NOT NULL").fetchone()
        self.victim = str(row[0]) if row else "w1"
        self.killed_at = time.time()
        self.all_workers[int(self.victim[1:]) - 1].signal(signal.SIGKILL)


def _takeover(scenario: Scenario, speed: float, keep: Path | None = None) -> list[float]:
    """Seconds from the kill of a worker to each location it drove being driven again."""
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-takeover-") as tmp:
        workdir = keep or Path(tmp)
        live = _KillOne(
            scenario,
            workdir,
            speed=speed,
            workers=3,
            lease=TAKEOVER_LEASE,
            kill_at=scenario.until / 3,
        )
        anyio.run(live.run, backend="asyncio")
        assert live.killed_at is not None
        driven = _driven(workdir / f"worker-{live.victim}.log")
        held = {loc for when, loc in driven if when < live.killed_at}
        taken: dict[str, float] = {}
        for name in {"w1", "w2", "w3"} - {live.victim}:
            for when, location in _driven(workdir / f"worker-{name}.log"):
                if location in held and when > live.killed_at:
                    taken[location] = min(taken.get(location, when), when)
        held_last = {loc for loc in held if _last_holder(driven, loc, live.killed_at)}
        return sorted(taken[loc] - live.killed_at for loc in held_last if loc in taken)


def _wall(entry: dict[str, Any]) -> float:
    """The wall-clock time of a worker's JSON log line."""
    return datetime.fromisoformat(entry["wall_time"].replace("Z", "+00:00")).timestamp()


def _driven(log: Path) -> list[tuple[float, str]]:
    """(wall time, location) of each "location driven" and "no longer driven" line, the
    latter as location prefixed with "-"."""
    found = []
    for line in log.read_text().splitlines():
        if '"location driven"' in line or '"location no longer driven"' in line:
            entry = json.loads(line)
            when = _wall(entry)
            gone = entry["event"] == "location no longer driven"
            found.append((when, ("-" if gone else "") + entry["location"]))
    return found


def _last_holder(driven: list[tuple[float, str]], location: str, before: float) -> bool:
    """Whether the log's worker still drove ``location`` just before ``before``."""
    state = False
    for when, entry in driven:
        if when >= before:
            break
        if entry == location:
            state = True
        elif entry == "-" + location:
            state = False
    return state


# -- many jobs in flight ---------------------------------------------------------------------

IN_FLIGHT_LEASE = 5.0
IN_FLIGHT_LOCATIONS = {"East US": 40, "North Europe": 40, "West US": 40}
#: The workers' clock: the seeded packages arrive within seconds, and the drives queue.
IN_FLIGHT_SPEED = 100.0
#: The cancels' schedule: one every 50 ms (200 over 10 s of the arrivals and the queue).
CANCEL_EVERY = 0.05


def _seed(url: str, jobs: int) -> dict[str, str]:
    """``jobs`` jobs created and shipped into the database at ``url``, their packages due
    within 1 to 10 simulated minutes; their locations."""
    config = DatacenterConfig(locations=IN_FLIGHT_LOCATIONS, carrier_delay=Range(60.0, 600.0))
    store = open_store(url, worker_id="seeder")
    datacenter = Datacenter(store, clock=Clock(), planner=Planner(config, seed=5))
    names = sorted(IN_FLIGHT_LOCATIONS)
    where = {f"f{i:05d}": names[i % len(names)] for i in range(jobs)}
    package = {"carrierName": "UPS", "trackingNumber": "1"}

    async def create() -> None:
        for name, location in where.items():
            await datacenter.service.create(name, {**BODY, "location": location})
            ship = {"properties": {"state": "Shipping", "deliveryPackage": package}}
            await datacenter.service.update(name, ship)

    try:
        anyio.run(create)
    finally:
        store.close()
    return where


def _in_flight(jobs: int, cancels: int, kills: int) -> dict[str, Any]:
    """With ``jobs`` jobs in flight among three workers: ``cancels`` cancels through a
    worker that does not drive the job, then ``kills`` times the SIGKILL of the worker
    holding a location, timed to its jobs resumed by another, and its restart."""
    import httpx
    import psycopg

    from simulator.live.processes import Mosquitto, WorkerProcess, free_port

    with tempfile.TemporaryDirectory(prefix="drivesim-postgresql-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        server = PostgreSQL(root / "server")
        server.start()
        (root / "broker").mkdir()
        broker = Mosquitto(root / "broker")
        broker.start()
        workers: dict[str, WorkerProcess] = {}
        try:
            create_database(server.url(), "drivesim")
            url = server.url("drivesim")
            seeded = time.perf_counter()
            where = _seed(url, jobs)
            seeding = time.perf_counter() - seeded
            ports = {}
            locations = ", ".join(f'"{k}" = {v}' for k, v in IN_FLIGHT_LOCATIONS.items())
            for name in ("w1", "w2", "w3"):
                ports[name] = free_port()
                settings = root / f"{name}.toml"
                settings.write_text(
                    f'worker_id = "{name}"\nspeed = {IN_FLIGHT_SPEED}\n'
                    f'lease = {IN_FLIGHT_LEASE}\nhttp = "127.0.0.1:{ports[name]}"\n'
                    f"[datacenter]\nlocations = {{ {locations} }}\n"
                )
                args = ["--config", str(settings), "--broker", broker.url]
                workers[name] = WorkerProcess(args, log=root / f"{name}.log", db=url)
                workers[name].start()
            for worker in workers.values():
                worker.wait_connected(timeout=120)

            def holders() -> dict[str, str]:
                """Each location's holder, once every worker holds one (the fair share) and
                drives it (at start-up one worker may claim all three and hand two over,
                each then resumed: 3,333 jobs)."""
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with psycopg.connect(url) as db:
                        rows = db.execute("SELECT location, owner FROM leases").fetchall()
                    held = {str(loc): str(owner) for loc, owner in rows if owner}
                    if (
                        len(held) == len(IN_FLIGHT_LOCATIONS)
                        and len(set(held.values())) == 3
                        and all(
                            _last_holder(_driven(root / f"{holder}.log"), location, math.inf)
                            for location, holder in held.items()
                        )
                    ):
                        return held
                    time.sleep(0.2)
                raise RuntimeError("the workers did not share and drive the locations in 60 s")

            held = holders()
            path = (
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                "drivesim/providers/Microsoft.ImportExport/jobs/"
            )
            latencies = []
            statuses: dict[int, int] = {}
            # A client per worker, made first (making one costs this process ~20 ms of
            # CPU, taken from the workers on two cores), its connection kept as the SDK's
            # session keeps it; the cancels go out on a fixed schedule, whatever their
            # answers take, each timed from when it was due.
            with contextlib.ExitStack() as stack:
                clients = {
                    name: stack.enter_context(
                        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
                    )
                    for name, port in ports.items()
                }
                own = os.times()
                began = time.perf_counter()
                for i, (job, location) in enumerate(sorted(where.items())[:cancels]):
                    other = sorted(set(workers) - {held[location]})[i % 2]
                    due = began + i * CANCEL_EVERY
                    time.sleep(max(0.0, due - time.perf_counter()))
                    answer = clients[other].patch(
                        path + job,
                        params={"api-version": "2021-01-01"},
                        json={"properties": {"cancelRequested": True}},
                    )
                    latencies.append(time.perf_counter() - due)
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                spent = time.perf_counter() - began
                ended = os.times()
            bench_share = (ended.user + ended.system - own.user - own.system) / spent
            takeovers: list[dict[str, Any]] = []
            for round_ in range(kills):
                held = holders()
                location = sorted(IN_FLIGHT_LOCATIONS)[round_ % len(IN_FLIGHT_LOCATIONS)]
                victim = held[location]
                killed = time.time()
                workers[victim].signal(signal.SIGKILL)
                deadline = time.monotonic() + 10 * IN_FLIGHT_LEASE
                taken: dict[str, Any] | None = None
                while taken is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                    for name in set(workers) - {victim}:
                        for line in (root / f"{name}.log").read_text().splitlines():
                            if '"jobs resumed"' in line:
                                entry = json.loads(line)
                                if entry.get("location") == location and _wall(entry) > killed:
                                    taken = {"s": _wall(entry) - killed, "jobs": entry["jobs"]}
                takeovers.append(taken or {"s": None, "jobs": 0})
                workers[victim].start()
                workers[victim].wait_connected(timeout=120)
        finally:
            for worker in workers.values():
                worker.stop()
            broker.stop()
            server.stop()
    return {
        "jobs": jobs,
        "seeding_s": seeding,
        "cancels": statuses,
        "cancel_ms": summary_ms(latencies),
        "cancel_every_s": CANCEL_EVERY,
        "cancel_bench_cpu": bench_share,
        "takeovers": takeovers,
        "lease_s": IN_FLIGHT_LEASE,
    }


# -- the table -------------------------------------------------------------------------------

#: The figures given as ratios: a rate to SQLite's, the others to one worker on PostgreSQL,
#: and (start-up left out) to one worker carrying the same share (``share``).
RATIOS = ("observed_per_s", "per_worker_cpu_s", "per_serving_cpu_s", "share")


def _ratios(runs: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Each run's figures as ratios to the reference runs of the same round; ``share``: N
    workers' messages per serving CPU-second to one worker's at 1/N of the speed (nan for
    the others)."""
    (sqlite,) = [r for r in runs if r["store"] == "sqlite"]
    alone = {r["slowdown"]: r for r in runs if r["workers"] == 1 and r["store"] == "postgresql"}
    one = alone[1]
    return [
        {
            "observed_per_s": r["observed_per_s"] / sqlite["observed_per_s"],
            "per_worker_cpu_s": r["per_worker_cpu_s"] / one["per_worker_cpu_s"],
            "per_serving_cpu_s": r["per_serving_cpu_s"] / one["per_serving_cpu_s"],
            "share": r["per_serving_cpu_s"] / alone[r["workers"]]["per_serving_cpu_s"]
            if r["workers"] in alone and r["workers"] > 1
            else math.nan,
        }
        for r in runs
    ]


def _median(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower one of an even count, as
    ``statistics.median_low``)."""
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


def _label(workers: int, store: str, slowdown: int) -> str:
    where = "SQLite" if store == "sqlite" else "PostgreSQL"
    return f"{workers} on {where}" + (f", 1/{slowdown} of the speed" if slowdown > 1 else "")


def _rounds_line(ratios: list[list[dict[str, float]]]) -> str:
    def each(i: int, key: str) -> str:
        return ", ".join(f"{round_[i][key]:.2f}" for round_ in ratios)

    several = [(i, n) for i, (n, _, slowdown) in enumerate(SETUPS) if n > 1 and slowdown == 1]
    return (
        f"* each of the {len(ratios)} rounds, messages per worker CPU-second as a ratio to one "
        "worker on PostgreSQL in the same round (start-up left out): "
        + "; ".join(
            f"{n} workers {each(i, 'per_worker_cpu_s')} ({each(i, 'per_serving_cpu_s')})"
            for i, n in several
        )
        + "; to one worker carrying the same share (start-up left out): "
        + "; ".join(f"{n} workers {each(i, 'share')}" for i, n in several)
        + f"; 1 on PostgreSQL to SQLite's rate {each(1, 'observed_per_s')}."
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.workers", __doc__)
    parser.add_argument("--speed", type=float, default=128_000.0, help="simulated s a second")
    parser.add_argument("--until", default="12d", help="cut the scenario here (simulated)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the set-ups")
    parser.add_argument("--notifies", type=int, default=1000, help="commits for the notify")
    parser.add_argument("--in-flight", type=int, default=0, help="jobs in flight (0: skip)")
    parser.add_argument("--cancels", type=int, default=200, help="cancels, with --in-flight")
    parser.add_argument("--kills", type=int, default=6, help="takeovers, with --in-flight")
    cli.add_outputs(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    scenario = dataclasses.replace(load_scenario(SCENARIO), until=parse_duration(args.until))
    rounds = [[_run(scenario, args.speed, *setup) for setup in SETUPS] for _ in range(args.rounds)]
    ratios = [_ratios(runs) for runs in rounds]
    rows = []
    for i, setup in enumerate(SETUPS):
        r = _median([runs[i] for runs in rounds], lambda run: run["per_worker_cpu_s"])
        cpu = r["cpu_s"]
        mid = {key: statistics.median_low(round_[i][key] for round_ in ratios) for key in RATIOS}
        rows.append(
            cells(
                _label(*setup),
                f"{r['wall_s']:.1f}",
                f"{r['observed']:,}",
                f"{r['observed_per_s']:,.0f}",
                f"{mid['observed_per_s']:.2f}",
                f"{cpu['workers']:.1f}",
                f"{cpu['startup']:.1f}",
                f"{r['per_worker_cpu_s']:,.0f}",
                f"{mid['per_worker_cpu_s']:.2f}",
                f"{r['per_serving_cpu_s']:,.0f}",
                f"{mid['per_serving_cpu_s']:.2f}",
                "" if math.isnan(mid["share"]) else f"{mid['share']:.2f}",
                f"{cpu['postgresql']:.1f}",
                f"{cpu['broker']:.1f}",
                f"{cpu['bench']:.1f}",
                ", ".join(sorted({name for runs in rounds for name in runs[i]["failed"]})) or "ok",
            )
        )
    with tempfile.TemporaryDirectory(prefix="drivesim-postgresql-") as tmp:
        Path(tmp).chmod(0o755)
        server = PostgreSQL(Path(tmp) / "server")
        server.start()
        try:
            create_database(server.url(), "notify")
            notify = _notify_latency(server.url("notify"), args.notifies)
        finally:
            server.stop()
    takeover = _takeover(scenario, args.speed)
    flight = _in_flight(args.in_flight, args.cancels, args.kills) if args.in_flight else None
    ms = [x * 1000 for x in notify]
    latency = summary_ms(notify)
    text = "\n".join(
        [
            "## Several workers on PostgreSQL (`bench/workers.py`)",
            "",
            f"Command: `{cli.command_line('bench.workers', cli.arguments(argv))}`. "
            + " ".join(__doc__.split("\n\n")[1].split()),
            "",
            header(
                "set-up | wall s | observed | observed/s | ÷ SQLite | worker CPU s | "
                "of which start-up | messages per worker CPU-s | ÷ 1 on PostgreSQL | "
                "the same, start-up left out | ÷ 1 on PostgreSQL | ÷ 1 carrying the same share | "
                "PostgreSQL CPU s | broker CPU s | bench CPU s | invariants",
                "lrrrrrrrrrrrrrrl",
            ),
            *rows,
            "",
            _rounds_line(ratios),
            f"* notify: {latency['n']} commits, p50 {latency['p50_ms']:.2f} ms, "
            f"p99 {latency['p99_ms']:.2f} ms, max {latency['max_ms']:.2f} ms.",
            "* takeover (lease 2 s): "
            + (
                ", ".join(f"{t:.2f} s" for t in takeover)
                if takeover
                else "no location of the killed worker was seen driven again"
            )
            + " from the SIGKILL to each of its locations driven by another worker.",
            *([] if flight is None else [_flight_line(flight)]),
        ]
    )
    report = {
        "speed": args.speed,
        "until": args.until,
        "rounds": rounds,
        "notify_ms": ms,
        "takeover_s": takeover,
        "in_flight": flight,
    }
    finish("workers", text, report, json_path=args.json, docs=args.docs)
    return report


def _flight_line(flight: dict[str, Any]) -> str:
    cancel = flight["cancel_ms"]
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(flight["cancels"].items()))
    times = sorted(t["s"] for t in flight["takeovers"] if t["s"] is not None)
    missed = sum(1 for t in flight["takeovers"] if t["s"] is None)
    jobs = [t["jobs"] for t in flight["takeovers"] if t["s"] is not None]
    takeover = (
        f"{len(times)} takeovers of {min(jobs):,} to {max(jobs):,} jobs each: "
        + ", ".join(f"{t:.2f}" for t in times)
        + " s"
        if times
        else "no takeover seen"
    )
    return (
        f"* in flight: {flight['jobs']:,} jobs shipped into the database "
        f"({flight['seeding_s']:.0f} s), arriving at three workers as the run starts; "
        f"{cancel['n']} cancels through a worker that does not drive the job, one every "
        f"{flight['cancel_every_s'] * 1000:.0f} ms ({answers}), each timed from when it was "
        f"due: p50 {cancel['p50_ms']:.1f} ms, p99 {cancel['p99_ms']:.1f} ms (this process "
        f"meanwhile {flight['cancel_bench_cpu']:.0%} of a core); the holder of a "
        f"location SIGKILLed and restarted in turn, {takeover} from the kill to the jobs "
        f"resumed by another worker (lease {flight['lease_s']:g} s"
        + (f"; {missed} not seen within ten leases" if missed else "")
        + ")."
    )


if __name__ == "__main__":
    main()
