"""Running a scenario: the worker's parts wired together, scripted customers, a history.

A run is resumable. Every scripted action is recorded in the store in the same
transaction as its effect, and the simulated time with every commit; a run restarted on
the same database (after a crash, say) continues from where the store says it was and
performs no action twice.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable, Collection
from typing import Any

import anyio
import msgspec
import structlog

from simulator.faults.plan import FaultRecord
from simulator.run.answers import ActionResult
from simulator.run.customer import Customer, create_body, ship_body
from simulator.run.result import SCHEDULING_SLACK, RunResult
from simulator.scenario.file import Scenario
from simulator.scenario.spec import Action
from worker import (
    Clock,
    ConfigError,
    Datacenter,
    JobRecord,
    JobStore,
    MemoryBus,
    Planner,
    ServiceError,
    StatusMessage,
    StatusSink,
    get_logger,
    long_lived_heap,
    stored_time,
    virtual_loop,
)

__all__ = ["ScenarioRun", "run_scenario"]

log = get_logger("drivesim.runner")

_json = msgspec.json.Encoder()

RUN_KEY = "run/identity"
FINISHED_KEY = "run/finished"
STARTS_KEY = "run/starts"


class ScenarioRun:
    """One run of a scenario against a store, on the running event loop."""

    def __init__(
        self,
        scenario: Scenario,
        store: JobStore,
        *,
        seed: int | None = None,
        speed: float | None = None,
        on_message: Callable[[StatusMessage], None] | None = None,
        on_action: Callable[[ActionResult], None] | None = None,
        on_fault: Callable[[FaultRecord], None] | None = None,
        sink: StatusSink | None = None,
        locations: Collection[str] | None = None,
    ) -> None:
        """``sink``: where status goes (an MQTT link, say) instead of the in-memory bus; the
        result then has no retained map and ``on_message`` hears nothing. ``locations``: a
        shard of a run (:mod:`simulator.run.shards`): only the actions of these locations'
        jobs are performed (None: every job's)."""
        self.scenario = scenario
        self.store = store
        self.seed = scenario.seed if seed is None else seed
        self.speed = speed
        self.on_message = on_message
        self.on_action = on_action
        self.on_fault = on_fault
        self.sink = sink
        self.locations = None if locations is None else frozenset(locations)
        self.results: dict[int, ActionResult] = {}
        self.secrets: set[str] = set()
        self._finished = anyio.Event()
        #: Actions not yet answered, and the ``when`` ones of each job not yet scheduled.
        self._open: set[int] = set()
        self._waiting: dict[str, list[Action]] = {}
        #: Actions scheduled and not yet performed, by due time: one task performs them all.
        self._due: list[tuple[float, int, Action]] = []
        self._due_changed = anyio.Event()
        self.faults = [FaultRecord(f) for f in scenario.faults]

    async def run(self) -> RunResult:
        scenario = self.scenario
        identity = json.dumps({"scenario": scenario.name, "seed": self.seed}).encode()
        stored = self.store.get_meta(RUN_KEY)
        if stored is not None and stored != identity:
            raise ConfigError(
                getattr(self.store, "path", "(store)"),
                "--db",
                f"a database of scenario {scenario.name!r} with seed {self.seed}, "
                f"but it holds {stored.decode()}",
            )
        clock = Clock(epoch=scenario.epoch, scale=self.speed or 1.0, start=stored_time(self.store))
        self.clock = clock
        datacenter = Datacenter(
            self.store,
            clock=clock,
            planner=Planner(scenario.datacenter, self.seed),
            policy=scenario.policy,
        )
        ledger = self.ledger = datacenter.ledger
        self.service = datacenter.service
        for record in ledger:
            self.secrets.update(record.keys.values())
        starts = int(self.store.get_meta(STARTS_KEY) or 0) + 1
        ledger.note({RUN_KEY: identity, STARTS_KEY: str(starts).encode()})
        self._load_results()
        self._index_pending()

        handler = datacenter.commands

        async def send(op: str, payload: bytes) -> dict[str, Any]:
            reply: dict[str, Any] = json.loads((await handler.handle(op, payload)).to_json())
            return reply

        self.customer = Customer(scenario, self.seed, clock, send)
        bus = MemoryBus(keep=False)  # the history comes from the store
        if self.on_message is not None:
            bus.subscribe(self.on_message)
        wall = time.perf_counter()
        # A resumed run's bus starts empty: every job is announced again.
        async with (
            datacenter.running(self.sink or bus, announce=True),
            anyio.create_task_group() as tg,
        ):
            ledger.watch(self._on_change)
            for record in ledger:
                self._trigger(None, record)
            self._check_finished()
            tg.start_soon(self._perform_due)
            tg.start_soon(self._fault_plan)
            with anyio.move_on_after(clock.loop_delay(scenario.until - clock.now())):
                await self._finished.wait()
            datacenter.halt()
            tg.cancel_scope.cancel()
        finished = self._finished.is_set()
        if finished:
            ledger.note({FINISHED_KEY: b"1"})
        missing = {}
        for result in list(self.results.values()):
            if result.do == "delete" and result.outcome == "ok":
                missing[result.job] = await self._get_after_delete(result.job)
        return RunResult(
            scenario=scenario,
            seed=self.seed,
            clock_kind="virtual" if self.speed is None else "scaled",
            speed=self.speed,
            history=[entry.message for entry in self.store.history()],
            jobs={r.name: r for r in ledger},
            retained=dict(bus.retained),
            actions=[self.results[i] for i in sorted(self.results)],
            secrets=self.secrets,
            sim_seconds=clock.now(),
            wall_seconds=time.perf_counter() - wall,
            finished=finished,
            starts=starts,
            missing_after_delete=missing,
            faults=self.faults,
            slack=(self.speed or 0.0) * SCHEDULING_SLACK,
        )

    # -- faults --------------------------------------------------------------------------

    async def _fault_plan(self) -> None:
        """Customers' faults, through the command handler; the others need real processes."""
        for record in self.faults:
            fault = record.fault
            if fault.spec.needs_processes:
                record.skipped = "needs real processes (drivesim run --live)"
            elif self.store.get_meta(f"fault/{fault.index:05d}") is not None:
                record.skipped = "struck before the run was resumed"
            else:
                continue
            if self.on_fault is not None:
                self.on_fault(record)
        for record in self.faults:
            if record.skipped is not None:
                continue
            await self.clock.sleep_until(record.fault.at)
            record.struck = self.clock.now()
            alive = [r.name for r in self.ledger]
            results = await self.customer.client_fault(record.fault, alive)
            record.detail = f"{len(results)} requests" if results else "armed"
            self.ledger.note({f"fault/{record.fault.index:05d}": record.detail.encode()})
            if self.on_fault is not None:
                self.on_fault(record)
            for result in results:
                self._answered(result)

    # -- scripted actions ----------------------------------------------------------------

    def _load_results(self) -> None:
        for key in self.store.meta_keys("action/"):
            raw = self.store.get_meta(key)
            assert raw is not None
            data = json.loads(raw)
            index = int(key.removeprefix("action/"))
            action = self.scenario.actions[index]
            self.results[index] = ActionResult(
                index=index,
                job=action.job,
                do=action.do,
                at=data.get("at", math.nan),
                outcome=data.get("outcome", "applied"),
                detail=data.get("detail", "the worker stopped before the answer was recorded"),
                expect=action.expect,
                state=data.get("state"),
            )

    def _index_pending(self) -> None:
        jobs, locations = self.scenario.jobs, self.locations
        for action in self.scenario.actions:
            if action.index in self.results:
                continue
            if locations is not None and jobs[action.job].location not in locations:
                continue
            self._open.add(action.index)
            if action.when is not None:
                self._waiting.setdefault(action.job, []).append(action)

    async def _perform_due(self) -> None:
        """Perform each action when it is due: the timed ones, and each ``when`` one once
        its job entered the state (:meth:`_schedule`), in due time then script order."""
        for index in self._open:
            action = self.scenario.actions[index]
            if action.at is not None:
                self._schedule(action, action.at)
        clock = self.clock
        while True:
            due = self._due[0][0] if self._due else math.inf
            self._due_changed = changed = anyio.Event()
            # Woken by an earlier action: what is due by now. Else the one waited for is due,
            # even if the clock reads a rounding error short of it.
            if due > clock.now() and await clock.wait_until(due, changed):
                horizon = clock.now()
            else:
                horizon = max(due, clock.now())
            while self._due and self._due[0][0] <= horizon:
                await self._perform(heapq.heappop(self._due)[2])

    def _on_change(self, before: JobRecord | None, after: JobRecord | None) -> None:
        if after is not None and (before is None or before.keys != after.keys):
            self.secrets.update(after.keys.values())
        self._trigger(before, after)
        self._check_finished()

    def _trigger(self, before: JobRecord | None, after: JobRecord | None) -> None:
        """Schedule ``when`` actions of a job that entered their state; give up on deleted jobs."""
        record = after or before
        if record is None:
            return
        waiting = self._waiting.get(record.name)
        if not waiting:
            return
        entered = after is not None and (before is None or before.state is not after.state)
        for action in list(waiting):
            if after is None:
                waiting.remove(action)
                self._record(action, "not-triggered", f"the job was deleted before {action.when}")
            elif entered and after.state is action.when:
                waiting.remove(action)
                self._schedule(action, after.sim.state_entered_at + action.after)

    def _schedule(self, action: Action, when: float) -> None:
        entry = (when, action.index, action)
        if not self._due or entry[:2] < self._due[0][:2]:
            self._due_changed.set()
        heapq.heappush(self._due, entry)

    def _check_finished(self) -> None:
        if not self._open and len(self.ledger) == 0:
            self._finished.set()

    async def _perform(self, action: Action) -> None:
        spec = self.scenario.jobs[action.job]
        service = self.service
        applied = {action.key: _json.encode({"at": self.clock.now()})}
        if self.customer.duplicates > 0:  # a duplicate-commands fault: the copy goes first
            self.customer.duplicates -= 1
            copy = self.customer.number()
            self._answered(await self.customer.call(action.do, action.job, index=copy, note="copy"))
        before = self.ledger.get(spec.name)
        state = None if before is None else str(before.state)
        with structlog.contextvars.bound_contextvars(job=action.job):
            try:
                match action.do:
                    case "create":
                        created = await service.create(
                            spec.name,
                            create_body(spec, self.service.planner),
                            hints=spec.hints(),
                            meta=applied,
                        )
                        outcome, detail = ("created" if created.created else "replaced"), ""
                    case "ship":
                        await service.update(
                            spec.name,
                            ship_body(spec, service.planner, self.clock.isoformat()[:10]),
                            meta=applied,
                        )
                        outcome, detail = "ok", "package handed to the carrier"
                    case "cancel":
                        answer = await service.cancel(spec.name, meta=applied)
                        outcome, detail = str(answer.answer), f"in state {state}"
                    case "delete":
                        await service.delete(spec.name, meta=applied)
                        outcome, detail = "ok", "deleted"
                    case "get":
                        job = await service.get(spec.name)
                        outcome, detail = "ok", f"state {job.properties.state}"
                    case "keys":
                        keys = await service.list_bitlocker_keys(spec.name)
                        outcome, detail = "ok", f"{len(keys)} keys listed"
            except ServiceError as exc:
                outcome = "rejected-too-late" if exc.code == "CancelTooLate" else exc.code
                detail = exc.message
            log.info("scripted action", do=action.do, outcome=outcome)
        self._record(action, outcome, detail, state)

    def _record(self, action: Action, outcome: str, detail: str, state: str | None = None) -> None:
        result = ActionResult(
            index=action.index,
            job=action.job,
            do=action.do,
            at=self.clock.now(),
            outcome=outcome,
            detail=detail,
            expect=action.expect,
            state=state,
        )
        self.results[action.index] = result
        self._open.discard(action.index)
        self.ledger.note(
            {
                action.key: _json.encode(
                    {"at": result.at, "outcome": outcome, "detail": detail, "state": state}
                )
            }
        )
        if self.on_action is not None:
            self.on_action(result)
        self._check_finished()

    def _answered(self, result: ActionResult) -> None:
        """A request made by a fault (not persisted: a resumed run does not repeat it)."""
        self.results[result.index] = result
        if self.on_action is not None:
            self.on_action(result)

    async def _get_after_delete(self, name: str) -> str:
        """What a get answers at the end of the run for a job deleted by a scripted action."""
        try:
            job = await self.service.get(name)
        except ServiceError as exc:
            return exc.code
        return f"present in state {job.properties.state}"


def run_scenario(
    scenario: Scenario,
    store: JobStore,
    *,
    speed: float | None = None,
    seed: int | None = None,
    on_message: Callable[[StatusMessage], None] | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
    on_fault: Callable[[FaultRecord], None] | None = None,
) -> RunResult:
    """Run ``scenario`` to its end: in virtual time, or at ``speed`` simulated seconds a second."""
    run = ScenarioRun(
        scenario,
        store,
        seed=seed,
        speed=speed,
        on_message=on_message,
        on_action=on_action,
        on_fault=on_fault,
    )
    options: dict[str, Any] = {} if speed else {"loop_factory": virtual_loop}
    with long_lived_heap():
        result: RunResult = anyio.run(run.run, backend="asyncio", backend_options=options)
    return result
