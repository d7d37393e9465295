"""A live run: the worker as a real process, a real Mosquitto, scaled real time, faults.

The run starts its own Mosquitto on a free loopback port, a fault proxy in front of it,
an independent observer on the broker itself, and ``drivesim worker`` as a child process
that reaches the broker only through the proxy. Customers send their requests as MQTT 5
commands and retry them when the worker or the broker is gone, as real clients do. The
scenario's fault plan is struck on schedule: the broker killed or paused, the network
slowed, cut or blackholed, the worker SIGKILLed (also right after a cancel was accepted),
storms of cancels, deletes and garbage.

Worker and run share one time origin, so both agree on simulated time and a restarted
worker catches up with the time it was down. At the end the worker is stopped with
SIGTERM, the broker's retained state is read by a fresh subscriber, and the worker's
SQLite store is opened: the invariants are checked on what the store committed and, by
the observer, on what a consumer received.

With ``workers`` above one, the run starts a PostgreSQL of its own and that many workers
sharing it (``w1``, ``w2``...), each reaching the database through a fault proxy of its own
(``db-partition`` cuts one off) and the broker through the run's proxy; the store's record
of who committed what under which lease is checked too (one holder per location at a
time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from simulator.faults.kinds import CustomerFault, Processes
from simulator.faults.plan import FaultRecord
from simulator.live.commands import RetryingCommands
from simulator.live.observer import Observer, collect_retained
from simulator.live.postgres import PostgreSQL, create_database
from simulator.live.processes import DRIVESIM, Mosquitto, WorkerProcess
from simulator.live.proxy import FaultProxy
from simulator.live.strikes import ProcessStrikes
from simulator.report.history import History
from simulator.report.invariants import CheckResult, check_observed, check_owners, check_run
from simulator.report.json_report import build_report, suspects
from simulator.run.answers import ActionResult
from simulator.run.customer import Customer
from simulator.run.result import SCHEDULING_SLACK, RunResult
from simulator.scenario.file import Scenario
from simulator.scenario.spec import Action
from worker import (
    Clock,
    JobStore,
    SharedStore,
    SQLiteStore,
    StatusMessage,
    get_logger,
    open_store,
    sim_time,
)
from worker.mqtt import BrokerConfig

__all__ = ["LiveResult", "LiveRun"]

log = get_logger("drivesim.live")


@dataclass(slots=True)
class LiveResult:
    run: RunResult
    #: What the worker's store committed, read back once.
    stored: History
    #: What the independent observer received, deduplicated.
    observed: History
    #: Several workers: who committed each outbox entry, under which lease epoch.
    owners: list[tuple[int, str, str | None, int | None]] | None = None

    def checks(self) -> list[CheckResult]:
        """Every invariant on the store's history, then the observer's (and, with several
        workers, the leases')."""
        checks = check_run(self.run, self.stored) + check_observed(self.stored, self.observed)
        if self.owners is not None:
            checks.append(check_owners(self.owners))
        return checks

    def report(self) -> dict[str, Any]:
        """The JSON report, with, for each job named in a violation, the faults that struck
        during its life."""
        checks = self.checks()
        report = build_report(self.run, self.stored, checks)
        violations = [v for check in checks for v in check.violations]
        report["suspects"] = suspects(violations, self.stored, self.run.faults)
        return report


class LiveRun:
    """One live run of ``scenario`` in ``workdir`` (broker, worker store and logs go there)."""

    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        *,
        speed: float,
        seed: int | None = None,
        program: tuple[str, ...] = DRIVESIM,
        request_timeout: float = 3.0,
        direct: bool = False,
        workers: int = 1,
        lease: float = 2.0,
        postgresql: bool = False,
        on_action: Callable[[ActionResult], None] | None = None,
        on_fault: Callable[[FaultRecord], None] | None = None,
        on_message: Callable[[StatusMessage], None] | None = None,
    ) -> None:
        """``on_*`` are told each answer, fault and status message the observer hears;
        ``direct`` connects the workers straight to the broker and the database, not through
        fault proxies (for measurements: the network faults, ``broker-kill`` and
        ``db-partition`` then no longer reach them);
        ``workers`` above one (or one, with ``postgresql``) share a PostgreSQL of the run's
        own, with leases of ``lease`` wall-clock seconds."""
        self.scenario = scenario
        self.workdir = workdir
        self.speed = speed
        self.seed = scenario.seed if seed is None else seed
        self.program = program
        self.request_timeout = request_timeout
        self.direct = direct
        self.workers = workers
        self.lease = lease
        self.postgresql = postgresql or workers > 1
        self.on_action = on_action
        self.on_fault = on_fault
        self.on_message = on_message
        self.results: list[ActionResult] = []
        self.faults = [FaultRecord(f) for f in scenario.faults]
        self._open = {a.index for a in scenario.actions}
        self._waiting: dict[str, list[Action]] = {}
        for action in scenario.actions:
            if action.when is not None:
                self._waiting.setdefault(action.job, []).append(action)
        #: What the stream says of each job: its latest (seq, state), None once deleted.
        self._jobs: dict[str, tuple[int, str] | None] = {}
        self._created: set[str] = set()
        self._finished = anyio.Event()
        #: Set by :meth:`stop`: the run ends early, and does not count as finished.
        self._stopped = False
        self._kill_after_cancel: FaultRecord | None = None
        self._tg: TaskGroup | None = None
        #: One chain per job: a job's requests go out in the order they were scheduled.
        self._chains: dict[str, anyio.Lock] = {}

    async def run(self) -> LiveResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "broker").mkdir(exist_ok=True)
        self.broker = Mosquitto(self.workdir / "broker")
        self.broker.start()
        self.proxy = FaultProxy(self.broker.port)
        loop = asyncio.get_running_loop()
        self.observer = Observer(
            self.broker.port,
            keepalive=60,
            listener=lambda topic, payload: _call_soon(loop, self._heard, topic, payload),
        )
        db: str | Path = self.workdir / "worker.db"
        database_dir: Path | None = None
        self.database: PostgreSQL | None = None
        self.database_proxies: list[FaultProxy] = []
        self.all_workers: list[WorkerProcess] = []
        #: When the workers were all up and the customers began (``time.perf_counter``).
        self.started_at: float | None = None
        try:
            await anyio.to_thread.run_sync(self.observer.wait_subscribed)
            if self.postgresql:
                database_dir = Path(tempfile.mkdtemp(prefix="drivesim-postgresql-"))
                db = await anyio.to_thread.run_sync(self._start_database, database_dir)
            origin = time.time()
            self.clock = Clock(epoch=self.scenario.epoch, scale=self.speed)
            self.clock.now()  # bind now: simulated second 0 is ``origin`` for the worker too
            sim_time.clock = self.clock
            args = [
                "--scenario",
                self.scenario.path,
                "--seed",
                str(self.seed),
                "--speed",
                repr(self.speed),
                "--time-origin",
                repr(origin),
                "--broker",
                f"mqtt://127.0.0.1:{self.broker.port if self.direct else self.proxy.port}",
            ]
            self.all_workers = self._workers(args, db)
            self.worker = self.all_workers[0]
            for worker in self.all_workers:
                worker.start()
            for worker in self.all_workers:
                await anyio.to_thread.run_sync(worker.wait_connected)
            self.strikes = ProcessStrikes(
                Processes(
                    self.broker,
                    self.proxy,
                    self.worker,
                    self.observer.wait_subscribed,
                    others=tuple(self.all_workers[1:]),
                    database=self.database,
                    database_proxies=tuple(self.database_proxies),
                ),
                self.clock,
                struck=self._tell_struck,
                skipped=self._skip,
            )
            broker = BrokerConfig.from_url(self.broker.url)
            commands = RetryingCommands(broker, self.request_timeout)
            self.customer = Customer(self.scenario, self.seed, self.clock, commands.send)
            wall = self.started_at = time.perf_counter()
            async with anyio.create_task_group() as connection:
                await connection.start(commands.run)
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._timed_actions)
                    tg.start_soon(self._fault_plan)
                    with anyio.move_on_after(self.clock.loop_delay(self.scenario.until)):
                        await self._finished.wait()
                    tg.cancel_scope.cancel()
                self._tg = None
                sim_seconds = self.clock.now()
                wall_seconds = time.perf_counter() - wall
                await self.strikes.heal_all()
                if self._kill_after_cancel is not None:
                    self._skip(self._kill_after_cancel, "no cancel was accepted after it")
                self._check_finished()
                finished = self._finished.is_set() and not self._stopped
                missing = {}
                for done in self.results:
                    if done.do == "delete" and done.outcome == "ok":
                        answer = await self.customer.call("get", done.job, index=-1)
                        missing[done.job] = answer.outcome
                connection.cancel_scope.cancel()
            for worker in self.all_workers:
                if worker.running:
                    worker.signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(self.observer.wait_quiet)
            retained = await anyio.to_thread.run_sync(collect_retained, self.broker.port)
            store: JobStore = (
                SQLiteStore(db) if self.database is None else open_store(db, worker_id=None)
            )
            try:
                history = [entry.message for entry in store.history()]
                jobs = store.load_jobs()
                owners = store.owners() if isinstance(store, SharedStore) else None
            finally:
                store.close()
        finally:
            self.observer.close()
            self.proxy.close()
            self.broker.stop()
            for worker in self.all_workers:
                worker.stop()
            for proxy in self.database_proxies:
                proxy.close()
            if self.database is not None:
                self.database.stop()
            if database_dir is not None:
                shutil.rmtree(database_dir, ignore_errors=True)
        with (self.workdir / "observed.jsonl").open("w", encoding="utf-8") as out:
            for topic, payload, retain in self.observer.snapshot():
                line = {"topic": topic, "retain": retain, "payload": payload.decode("utf-8")}
                out.write(json.dumps(line) + "\n")
        observed = self.observer.status_messages()
        result = RunResult(
            scenario=self.scenario,
            seed=self.seed,
            clock_kind="live",
            speed=self.speed,
            history=history,
            jobs=jobs,
            retained=retained,
            actions=sorted(self.results, key=lambda a: a.index),
            secrets=self.customer.secrets(),
            sim_seconds=sim_seconds,
            wall_seconds=wall_seconds,
            finished=finished,
            starts=sum(worker.starts for worker in self.all_workers),
            missing_after_delete=missing,
            faults=self.faults,
            observed=len(observed),
            slack=self.speed * SCHEDULING_SLACK,
        )
        epoch = self.scenario.epoch
        return LiveResult(result, History(history, epoch), History(observed, epoch), owners)

    def _start_database(self, workdir: Path) -> str:
        """A PostgreSQL of the run's own, and a database in it for the workers (the
        ``postgres`` user must reach its folder, hence one outside the run's)."""
        workdir.chmod(0o755)
        self.database = PostgreSQL(workdir / "server")
        self.database.start()
        create_database(self.database.url(), "drivesim")
        return self.database.url("drivesim")

    def _workers(self, args: list[str], db: str | Path) -> list[WorkerProcess]:
        """One worker on a SQLite file, or ``workers`` on the run's PostgreSQL, each with
        its own id and its own fault proxy to the database (none when ``direct``)."""
        if self.database is None:
            log_file = self.workdir / "worker.log"
            return [WorkerProcess(args, log=log_file, db=db, program=self.program)]
        settings = self.workdir / "workers.toml"
        settings.write_text(f"lease = {self.lease!r}\n")
        made = []
        for number in range(1, self.workers + 1):
            port = None
            if not self.direct:
                proxy = FaultProxy(self.database.port)
                self.database_proxies.append(proxy)
                port = proxy.port
            name = f"w{number}"
            made.append(
                WorkerProcess(
                    [*args, "--config", str(settings), "--worker-id", name],
                    log=self.workdir / f"worker-{name}.log",
                    db=self.database.url("drivesim", port=port),
                    program=self.program,
                )
            )
        return made

    def stop(self) -> None:
        """End the run now, as if its ``until`` had come (it does not count as finished)."""
        self._stopped = True
        self._finished.set()

    def alive_jobs(self) -> list[str]:
        """The jobs the status stream shows alive now: seen, and not deleted since."""
        return [job for job, seen in self._jobs.items() if seen is not None]

    # -- what the observer hears ---------------------------------------------------------

    def _heard(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 5 or parts[2] != "jobs":
            return
        job = parts[3]
        if self.on_message is not None:
            self.on_message(
                StatusMessage(topic=topic, payload=payload, qos=1, retain=False, job=job, seq=0)
            )
        if len(parts) != 5 or parts[4] != "state":
            return
        if not payload:
            self._jobs[job] = None
            for action in self._waiting.pop(job, []):
                self._record(action, "not-triggered", f"the job was deleted before {action.when}")
            self._check_finished()
            return
        body = json.loads(payload)
        self._snapshot(job, body)
        seq, state = int(body["seq"]), body["properties"]["state"]
        known = self._jobs.get(job)
        if known is not None and seq <= known[0]:
            return  # a replay or a duplicate
        self._jobs[job] = (seq, state)
        if known is not None and known[1] == state:
            return
        entered = (datetime.fromisoformat(body["simTime"]) - self.scenario.epoch).total_seconds()
        for action in list(self._waiting.get(job, [])):
            if action.when == state:
                self._waiting[job].remove(action)
                self._later(action, entered + action.after)

    def _snapshot(self, job: str, body: dict[str, Any]) -> None:
        """Told every job snapshot the observer hears (replays and duplicates included),
        parsed; a hook for subclasses, it does nothing here."""

    def _check_finished(self) -> None:
        if self._open or not self._created:
            return
        if all(self._jobs.get(job, 0) is None for job in self._created):
            self._finished.set()

    # -- customers -----------------------------------------------------------------------

    async def _timed_actions(self) -> None:
        timed = sorted(
            (a for a in self.scenario.actions if a.at is not None), key=lambda a: (a.at, a.index)
        )
        for action in timed:
            assert action.at is not None
            await self.clock.sleep_until(action.at)
            self._chain(action)

    def _later(self, action: Action, when: float) -> None:
        if self._tg is None:  # the run is over
            return

        async def later() -> None:
            await self.clock.sleep_until(when)
            self._chain(action)

        self._tg.start_soon(later)

    def _chain(self, action: Action) -> None:
        """Perform ``action`` after the job's earlier requests, without holding up others."""
        assert self._tg is not None
        lock = self._chains.setdefault(action.job, anyio.Lock())
        # Locks are fair (FIFO): taking it here, before any await, keeps the order.
        self._tg.start_soon(self._perform, action, lock)

    async def _perform(self, action: Action, lock: anyio.Lock) -> None:
        async with lock:
            with structlog.contextvars.bound_contextvars(job=action.job):
                for result in await self.customer.perform(action):
                    self._add(result)
                    if result.index == action.index:
                        self._open.discard(action.index)
                    if result.do == "create" and result.outcome in ("created", "replaced"):
                        self._created.add(result.job)
                    if result.do == "cancel" and result.outcome == "accepted":
                        await self._after_cancel()
        self._check_finished()

    def _record(self, action: Action, outcome: str, detail: str) -> None:
        self._add(
            ActionResult(
                index=action.index,
                job=action.job,
                do=action.do,
                at=self.clock.now(),
                outcome=outcome,
                detail=detail,
                expect=action.expect,
            )
        )
        self._open.discard(action.index)

    def _add(self, result: ActionResult) -> None:
        self.results.append(result)
        if self.on_action is not None:
            self.on_action(result)

    # -- faults --------------------------------------------------------------------------

    async def _fault_plan(self) -> None:
        assert self._tg is not None
        for record in self.faults:
            await self.clock.sleep_until(record.fault.at)
            if record.fault.after_cancel:
                self._kill_after_cancel = record
                record.detail = "armed: strikes right after the next accepted cancel"
            else:  # a storm waiting out a dead broker must not hold up the next fault
                self._tg.start_soon(self._strike, record)

    async def _strike(self, record: FaultRecord) -> None:
        if not isinstance(record.fault.spec, CustomerFault):
            assert self._tg is not None
            return await self.strikes.strike(record, self._tg)
        self._struck(record)
        results = await self.customer.client_fault(record.fault, self.alive_jobs())
        for result in results:
            self._add(result)
        record.detail = f"{len(results)} requests" if results else "armed"

    async def _after_cancel(self) -> None:
        record = self._kill_after_cancel
        if record is not None and self.strikes.free(record.fault.spec):
            self._kill_after_cancel = None
            record.detail = "struck right after a cancel was accepted"
            await self._strike(record)

    def _struck(self, record: FaultRecord) -> None:
        record.struck = self.clock.now()
        self._tell_struck(record)

    def _tell_struck(self, record: FaultRecord) -> None:
        log.info("fault", fault=record.fault.index, kind=record.fault.kind)
        if self.on_fault is not None:
            self.on_fault(record)

    def _skip(self, record: FaultRecord, why: str) -> None:
        record.skipped = why
        if self.on_fault is not None:
            self.on_fault(record)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Hand a call from another thread to the run's loop (dropped once the loop is closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
