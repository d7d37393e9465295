"""A stateful property test: random customer requests, datacenter steps and time jumps drive a
real JobService (with its retention sweeper) and a small reference model side by side; after
every step get, list and list-keys must agree with the model, and every answer (accepted,
already requested, too late, 400, 404, 409) must be the one the model predicts.

How the async service runs inside a synchronous RuleBasedStateMachine: each example owns one
virtual-time event loop (:func:`worker.virtual_loop`) and every call goes through
``loop.run_until_complete``. JobService methods never suspend, so those calls return at
once; the real :class:`~worker.clock.Clock` reads the running loop's time, and the real
retention sweeper runs as a task of that loop, so ``advance`` (a ``clock.sleep``) lets
virtual time jump while the sweeper deletes what is due. Datacenter steps (arrival, lost
package, drive start and finish, settling, return) are the pure :mod:`worker.changes`
functions committed through ``ledger.update``, as the pipeline commits them, without the
pipeline's own timing.

Every step happens at k hours + 30 minutes, so a due time never falls on the sweeper's
hourly grid and the model can say exactly which jobs the sweeper has deleted.

There are four rules (create, request, datacenter, advance); each picks what it does from
what the model says is possible, so that deep states (Transferring with a cancel, Packaging,
Closed) are reached within a few steps.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.worker.conftest import RETURN_ADDRESS as ADDRESS
from worker import changes
from worker.clock import Clock, virtual_loop
from worker.config import DAY, HOUR, DatacenterConfig, Policy
from worker.datacenter import Datacenter
from worker.errors import InvalidJobState, ResourceNotFound, ServiceError, ValidationError
from worker.memory_store import MemoryStore
from worker.model import DriveState, JobState
from worker.plan import Planner
from worker.record import JobRecord
from worker.retention import RetentionSweeper
from worker.service import JobService
from worker.states import CancelAnswer, CancelWindow
from worker.status import Event

T = TypeVar("T")
J = JobState
D = DriveState

NAMES = ("alpha", "beta")
GHOST = "ghost"  # never created: every request to it is ResourceNotFound
PACKAGE = {"carrierName": "FedEx", "trackingNumber": "1"}
EXPIRY = 14 * DAY
RETENTION = 90 * DAY
#: Each example stays within 180 simulated days (two retention periods). Virtual time past
#: 2**24 loop seconds (194 days) once livelocked the loop; test_clock.py checks that apart.
TIME_LIMIT = 180 * DAY

#: The model's own copy of the rules (DESIGN.md), not read from worker.states.
WINDOW: dict[CancelWindow, set[JobState]] = {
    CancelWindow.BEFORE_PACKAGING: {J.CREATING, J.SHIPPING, J.RECEIVED, J.TRANSFERRING},
    CancelWindow.CREATING_OR_SHIPPING: {J.CREATING, J.SHIPPING},
    CancelWindow.CREATING_ONLY: {J.CREATING},
}
PACKAGE_UPDATABLE = {J.CREATING, J.SHIPPING}
LOG_LEVEL_UPDATABLE = {J.CREATING, J.SHIPPING, J.RECEIVED, J.TRANSFERRING}
DELETABLE = {J.CREATING, J.COMPLETED}
#: Datacenter steps tried in the wrong state, and the only states where each is allowed.
MISSTEPS: dict[str, set[JobState]] = {
    "receive": {J.SHIPPING},
    "lose-package": {J.SHIPPING},
    "ship-back": {J.PACKAGING},
}
#: Customer requests, the likelier ones listed more than once.
REQUESTS = [
    *("ship", "ship", "ship-with-address"),
    *("cancel", "cancel", "cancel"),
    *("touch", "touch", "delete", "delete"),
    *("noop", "ghost", "misstep"),
]


@dataclass
class ModelJob:
    state: JobState
    drives: dict[str, DriveState]
    keys: dict[str, str]
    has_address: bool
    touched: float
    cancel: bool = False
    ended: float | None = None
    verbose: bool = False  # logLevel Verbose, set by a touch

    def settle(self) -> None:
        """Leave the copy step once nothing copies and nothing may start."""
        if self.state not in (J.RECEIVED, J.TRANSFERRING):
            return
        if D.TRANSFERRING in self.drives.values():
            return
        if D.RECEIVED in self.drives.values() and not self.cancel:
            return
        self.state = J.PACKAGING


@dataclass
class Outcome:
    """What a call did: its value, or the service error it raised."""

    value: Any = None
    error: ServiceError | None = None


def _ship_back(record: JobRecord, now: float) -> list[Event]:
    return changes.ship_back(record, now, tracking_number="9", ship_date="2026-01-01")


STEPS: dict[str, Callable[[JobRecord, float], list[Event]]] = {
    "receive": changes.receive,
    "lose-package": changes.lose_package,
    "ship-back": _ship_back,
}


def _grid(due: float) -> float:
    return math.ceil(due / HOUR) * HOUR


class ServiceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop = virtual_loop()
        self.model: dict[str, ModelJob] = {}
        self.window = CancelWindow.BEFORE_PACKAGING
        self.service: JobService | None = None
        self.scope: anyio.CancelScope | None = None
        self.task: asyncio.Future[None] | None = None
        self.creates = 0

    # -- plumbing ------------------------------------------------------------------------

    @property
    def svc(self) -> JobService:
        assert self.service is not None
        return self.service

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return self.loop.run_until_complete(call())

    def call(self, make: Callable[[], Awaitable[Any]]) -> Outcome:
        try:
            return Outcome(value=self.run(make))
        except ServiceError as error:
            return Outcome(error=error)

    def commit(self, name: str, change: Callable[[JobRecord, float], list[Event]]) -> Outcome:
        """Commit a datacenter change through the ledger at the current simulated time."""
        ledger = self.svc.ledger

        async def apply() -> JobRecord:
            now = ledger.clock.now()
            return ledger.update(name, lambda r: change(r, now))

        return self.call(apply)

    def now(self) -> float:
        async def read() -> float:
            return self.svc.ledger.clock.now()

        return self.run(read)

    def pick(self, i: int) -> str:
        names = sorted(self.model)
        return names[i % len(names)]

    def expect_ok(self, got: Outcome) -> Any:
        assert got.error is None, got.error
        return got.value

    def expect_error(self, got: Outcome, kind: type[ServiceError], code: str) -> ServiceError:
        assert got.error is not None, f"expected {kind.__name__} {code}, got {got.value!r}"
        assert isinstance(got.error, kind), got.error
        assert got.error.code == code, got.error
        assert got.error.status == {ResourceNotFound: 404, InvalidJobState: 409}.get(kind, 400)
        return got.error

    async def _serve(self, sweeper: RetentionSweeper) -> None:
        with anyio.CancelScope() as scope:
            self.scope = scope
            await sweeper.run()

    async def _stop(self) -> None:
        assert self.scope is not None
        assert self.task is not None
        self.scope.cancel()
        await self.task

    def teardown(self) -> None:
        try:
            if self.task is not None:
                self.loop.run_until_complete(self._stop())
        finally:
            self.loop.close()

    # -- rules ---------------------------------------------------------------------------

    @initialize(window=st.sampled_from(list(CancelWindow)), seed=st.integers(0, 3))
    def start(self, window: CancelWindow, seed: int) -> None:
        self.window = window
        clock = Clock()
        policy = Policy(cancel_window=window, retention=RETENTION, creating_expiry=EXPIRY)
        planner = Planner(DatacenterConfig(), seed=seed)
        datacenter = Datacenter(MemoryStore(), clock=clock, planner=planner, policy=policy)
        self.service = datacenter.service
        sweeper = RetentionSweeper(datacenter.ledger, policy)  # retention runs, jobs do not move

        async def begin() -> None:
            clock.now()  # simulated zero is the loop's start
            self.task = asyncio.ensure_future(self._serve(sweeper))
            await asyncio.sleep(0)
            await clock.sleep(HOUR / 2)

        self.run(begin)
        assert self.now() == HOUR / 2

    @rule(
        name=st.sampled_from(NAMES),
        drives=st.integers(1, 3),
        address=st.sampled_from([True, True, True, False]),
    )
    def create(self, name: str, drives: int, address: bool) -> None:
        self.creates += 1
        keys = {f"D{i}": f"KEY-{self.creates}-{i}" for i in range(drives)}
        properties: dict[str, Any] = {
            "jobType": "Import",
            "storageAccountId": "/subscriptions/s/resourceGroups/rg/providers/"
            "Microsoft.Storage/storageAccounts/acct",
            "driveList": [{"driveId": d, "bitLockerKey": k} for d, k in keys.items()],
        }
        if address:
            properties["returnAddress"] = ADDRESS
        body = {"location": "West US", "properties": properties}
        got = self.call(lambda: self.svc.create(name, body))
        old = self.model.get(name)
        if old is not None and old.state is not J.CREATING:
            self.expect_error(got, InvalidJobState, "InvalidJobState")
            return
        assert self.expect_ok(got).created is (old is None)
        self.model[name] = ModelJob(
            state=J.CREATING,
            drives=dict.fromkeys(keys, D.SPECIFIED),
            keys=keys,
            has_address=address,
            touched=self.now(),
        )

    @precondition(lambda self: self.model)
    @rule(op=st.sampled_from(REQUESTS), i=st.integers(0, 3))
    def request(self, op: str, i: int) -> None:
        """A customer request (or a wrong-state datacenter step) on an existing job."""
        name = self.pick(i)
        job = self.model[name]
        if op.startswith("ship"):
            self.ship(name, job, address=op == "ship-with-address")
        elif op == "touch":
            self.touch(name, job)
        elif op == "noop":
            self.noop(name, i)
        elif op == "cancel":
            self.cancel(name, job)
        elif op == "delete":
            self.delete(name, job)
        elif op == "ghost":
            self.ghost(i)
        else:
            self.misstep(name, job, i)

    def ship(self, name: str, job: ModelJob, *, address: bool) -> None:
        properties: dict[str, Any] = {"state": "Shipping", "deliveryPackage": PACKAGE}
        if address:
            properties["returnAddress"] = ADDRESS
        got = self.call(lambda: self.svc.update(name, {"properties": properties}))
        if job.state not in PACKAGE_UPDATABLE:
            self.expect_error(got, InvalidJobState, "InvalidJobState")
        elif job.state is J.CREATING and not (address or job.has_address):
            self.expect_error(got, ValidationError, "MissingShippingInformation")
        else:
            assert self.expect_ok(got).properties.state is J.SHIPPING
            job.state = J.SHIPPING
            job.has_address = True

    def touch(self, name: str, job: ModelJob) -> None:
        got = self.call(lambda: self.svc.update(name, {"properties": {"logLevel": "Verbose"}}))
        # The value the job already has is no change, refused in no state.
        if job.state not in LOG_LEVEL_UPDATABLE and not job.verbose:
            self.expect_error(got, InvalidJobState, "InvalidJobState")
            return
        assert self.expect_ok(got).properties.log_level == "Verbose"
        job.verbose = True
        if job.state is J.CREATING:
            job.touched = self.now()

    def noop(self, name: str, i: int) -> None:
        body = [
            {},
            {"state": ""},
            {"cancelRequested": False},
            {"state": "", "cancelRequested": False},
        ]
        history = len(list(self.svc.ledger.store.history()))
        self.expect_ok(self.call(lambda: self.svc.update(name, {"properties": body[i]})))
        job = self.model[name]
        if job.state is J.CREATING:  # any Update call in Creating restarts the expiry
            job.touched = self.now()
            assert len(list(self.svc.ledger.store.history())) <= history + 1
        else:
            assert len(list(self.svc.ledger.store.history())) == history

    def cancel(self, name: str, job: ModelJob) -> None:
        got = self.call(lambda: self.svc.cancel(name))
        if job.cancel:
            assert self.expect_ok(got).answer is CancelAnswer.ALREADY_REQUESTED
        elif job.state in WINDOW[self.window]:
            assert self.expect_ok(got).answer is CancelAnswer.ACCEPTED
            job.cancel = True
            if job.state is J.CREATING:
                job.state = J.COMPLETED
                job.ended = self.now()
        else:
            error = self.expect_error(got, InvalidJobState, "CancelTooLate")
            assert str(job.state) in error.message
            return
        job.settle()

    def delete(self, name: str, job: ModelJob) -> None:
        got = self.call(lambda: self.svc.delete(name))
        if job.state in DELETABLE:
            self.expect_ok(got)
            del self.model[name]
        else:
            self.expect_error(got, InvalidJobState, "DeleteNotAllowed")

    def ghost(self, i: int) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: self.svc.update(GHOST, {"properties": {"state": "Shipping"}}),
            lambda: self.svc.cancel(GHOST),
            lambda: self.svc.delete(GHOST),
            lambda: self.svc.list_bitlocker_keys(GHOST),
        ]
        self.expect_error(self.call(calls[i]), ResourceNotFound, "ResourceNotFound")

    def misstep(self, name: str, job: ModelJob, i: int) -> None:
        step = sorted(MISSTEPS)[i % len(MISSTEPS)]
        if job.state in MISSTEPS[step]:
            return
        self.expect_error(self.commit(name, STEPS[step]), InvalidJobState, "InvalidJobState")

    def _steps(self) -> list[tuple[str, str]]:
        """Every (step, job) the datacenter could take next."""
        steps = []
        for name, job in sorted(self.model.items()):
            drives = set(job.drives.values())
            if job.state is J.SHIPPING:
                steps += [("receive", name), ("lose-package", name)]
            if job.state in (J.RECEIVED, J.TRANSFERRING):
                steps.append(("settle", name))
                if D.RECEIVED in drives:
                    steps += [("start-drive", name), ("start-drive", name)]
            if D.TRANSFERRING in drives:
                steps.append(("finish-drive", name))
            if job.state is J.PACKAGING:
                steps.append(("ship-back", name))
        return steps

    @precondition(lambda self: self._steps())
    @rule(k=st.integers(0, 15))
    def datacenter(self, k: int) -> None:
        """One step the datacenter may take now, on a job it applies to."""
        steps = self._steps()
        step, name = steps[k % len(steps)]
        job = self.model[name]
        if step == "receive":
            self.expect_ok(self.commit(name, changes.receive))
            job.state = J.RECEIVED
            job.drives = dict.fromkeys(job.drives, D.RECEIVED)
        elif step == "lose-package":
            self.expect_ok(self.commit(name, changes.lose_package))
            job.state = J.CLOSED
            job.drives = dict.fromkeys(job.drives, D.NEVER_RECEIVED)
            job.ended = self.now()
        elif step == "settle":
            self.expect_ok(self.commit(name, changes.settle))
            job.settle()
        elif step == "start-drive":
            drive = next(d for d, s in job.drives.items() if s is D.RECEIVED)
            got = self.commit(name, lambda r, now: changes.start_drive(r, drive, now))
            if job.cancel:
                self.expect_error(got, InvalidJobState, "InvalidJobState")
                return
            self.expect_ok(got)
            job.drives[drive] = D.TRANSFERRING
            job.state = J.TRANSFERRING
        elif step == "finish-drive":
            drive = next(d for d, s in job.drives.items() if s is D.TRANSFERRING)
            record = self.svc.ledger.get(name)
            assert record is not None
            size = record.sim.drives[drive].plan.size_bytes

            def finish(r: JobRecord, now: float) -> list[Event]:
                return changes.finish_drive(r, drive, now, copied=size, error=None)

            self.expect_ok(self.commit(name, finish))
            job.drives[drive] = D.COMPLETED
            job.settle()
        else:
            assert step == "ship-back"
            self.expect_ok(self.commit(name, _ship_back))
            job.state = J.COMPLETED
            job.ended = self.now()
            job.drives = {
                d: D.SHIPPED_BACK if s in (D.RECEIVED, D.COMPLETED) else s
                for d, s in job.drives.items()
            }

    def _due(self, job: ModelJob) -> float | None:
        """When the sweeper deletes ``job``: its due time rounded up to the hourly grid."""
        if job.state is J.CREATING:
            return _grid(job.touched + EXPIRY)
        if job.state in (J.COMPLETED, J.CLOSED):
            assert job.ended is not None
            return _grid(job.ended + RETENTION)
        return None

    @rule(jump=st.sampled_from(["1h", "5h", "1d", "6d", "before-next-deletion", "next-deletion"]))
    def advance(self, jump: str) -> None:
        """Let time pass: a little, or to half an hour before or after the next deletion the
        model expects (the long jumps of 14 and 90 days)."""
        now = self.now()
        if jump.endswith("next-deletion"):
            dues = [d for j in self.model.values() if (d := self._due(j)) is not None]
            if not dues:
                return
            hours = int((min(dues) - now) // HOUR) + (0 if jump.startswith("before") else 1)
        else:
            hours = {"1h": 1, "5h": 5, "1d": 24, "6d": 144}[jump]
        hours = min(hours, int((TIME_LIMIT - now) // HOUR))
        if hours <= 0:
            return
        clock = self.svc.ledger.clock
        self.run(lambda: clock.sleep(hours * HOUR))
        now = self.now()
        assert (now - HOUR / 2) % HOUR == 0
        for name, job in list(self.model.items()):
            due = self._due(job)
            if due is not None and due <= now:
                del self.model[name]

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def get_agrees(self) -> None:
        if self.service is None:
            return
        for name in (*NAMES, GHOST):
            got = self.call(lambda n=name: self.svc.get(n))  # type: ignore[misc]
            job = self.model.get(name)
            if job is None:
                self.expect_error(got, ResourceNotFound, "ResourceNotFound")
                continue
            props = self.expect_ok(got).properties
            assert props.state is job.state
            assert props.cancel_requested is job.cancel
            assert {d.drive_id: d.state for d in props.drive_list or []} == job.drives

    @invariant()
    def list_agrees(self) -> None:
        if self.service is None:
            return
        listed = self.run(self.svc.list)
        assert [(j.name, j.properties.state) for j in listed] == [
            (n, j.state) for n, j in self.model.items()
        ]
        for state in JobState:
            subset = self.run(lambda s=state: self.svc.list(state=str(s)))  # type: ignore[misc]
            assert [j.name for j in subset] == [
                n for n, j in self.model.items() if j.state is state
            ]

    @invariant()
    def keys_agree_and_stay_secret(self) -> None:
        if self.service is None:
            return
        for name, job in self.model.items():
            keys = self.run(lambda n=name: self.svc.list_bitlocker_keys(n))  # type: ignore[misc]
            assert {k.drive_id: k.bit_locker_key for k in keys} == job.keys
        for entry in self.svc.ledger.store.history():
            assert b"KEY-" not in entry.message.payload

    @invariant()
    def retained_topics_agree(self) -> None:
        """A broker fed every message so far retains exactly each job's snapshot and drives."""
        if self.service is None:
            return
        retained: set[str] = set()
        for entry in self.svc.ledger.store.history():
            message = entry.message
            if message.retain:
                (retained.add if message.payload else retained.discard)(message.topic)
        expected = set()
        for name, job in self.model.items():
            expected.add(f"importexport/v1/jobs/{name}/state")
            expected |= {f"importexport/v1/jobs/{name}/drives/{d}/state" for d in job.drives}
        assert retained == expected


TestServiceModel = ServiceMachine.TestCase
TestServiceModel.settings = settings(
    max_examples=250,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
