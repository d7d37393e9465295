"""Every fault kind, declared once: what it strikes, whether it lasts, how it is described,
and the function that injects it.

Kinds, by their target:

* ``broker``: ``broker-kill`` (SIGKILL, restarted after ``lasts``), ``broker-pause``
  (SIGSTOP, SIGCONT after ``lasts``);
* ``network``, between worker and broker, through the fault proxy: ``net-latency``,
  ``net-bandwidth``, ``net-blackhole`` (for ``lasts``) and ``net-reset`` (every
  connection reset at once);
* ``worker``: ``worker-kill`` (SIGKILL, restarted after ``lasts``; with ``after_cancel``
  it waits for the next accepted cancel and strikes right after it, between the request
  and its effect; of several workers, the fault's number picks which);
* ``database``, for several workers on a PostgreSQL of the run's own: ``db-restart``
  (the server SIGKILLed, restarted after ``lasts``: it recovers from its log) and
  ``db-partition`` (one worker, picked by the fault's number, cut off from the database
  through its fault proxy for ``lasts``: its leases run out and another worker takes
  over). Neither is among a chaos plan's kinds unless named;
* ``customers``: ``cancel-storm`` (``count`` jobs cancelled at once, each twice),
  ``delete-storm`` (``count`` jobs deleted whatever their state), ``garbage-commands``
  (``count`` malformed, mistyped, unknown and oversized requests), ``duplicate-commands``
  (the next ``count`` scripted requests sent twice, the copy first).

Broker, network and worker faults need real processes (a live run strikes them on its
Mosquitto, fault proxy and worker process); a virtual-time run logs them as skipped.
Customers' faults go through the same commands as scripted requests, in either run.

A new kind is one entry in :data:`FAULTS` and one injector function in this module; scenario
files, plans, runs and reports take it from there. :data:`FAULTS` is in the order a chaos
plan draws from: a kind added changes the plans drawn from every kind (the default), not
those of scenarios that list their kinds.
"""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol

import anyio

from simulator.live.postgres import PostgreSQL
from simulator.live.processes import Mosquitto, WorkerProcess
from simulator.live.proxy import FaultProxy
from simulator.run.answers import ActionResult
from worker import Clock, DrivesimError

__all__ = [
    "DEFAULT_KINDS",
    "FAULTS",
    "CustomerFault",
    "Customers",
    "Fault",
    "FaultKind",
    "Heal",
    "ProcessFault",
    "Processes",
    "Target",
]

#: What a kind of fault hits.
Target = Literal["broker", "network", "worker", "database", "customers"]
#: Undoes a broker, network or worker fault (blocking: a live run calls it in a thread).
Heal = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault (times in simulated seconds)."""

    index: int
    #: A name in :data:`FAULTS`.
    kind: str
    at: float
    lasts: float = 0.0
    count: int = 10
    latency: float = 0.2
    bandwidth: int = 64_000
    after_cancel: bool = False

    @property
    def spec(self) -> FaultKind:
        """Its kind, as :data:`FAULTS` declares it."""
        return FAULTS[self.kind]

    def describe(self) -> str:
        """Its kind, what its parameters are and how long it lasts (unless instant):
        ``"net-latency (150 ms latency) for 30m"``."""
        spec = self.spec
        what = spec.detail(self)
        span = f" for {_short(self.lasts)}" if self.lasts and not spec.instant else ""
        return f"{self.kind}{' (' + what + ')' if what else ''}{span}"


def _short(seconds: float) -> str:
    """``"1h 19m"``, ``"10m"``, ``"45s"``."""
    minutes = round(seconds / 60)
    if minutes == 0:
        return f"{seconds:.0f}s"
    hours, minutes = divmod(minutes, 60)
    return " ".join(
        part for part in (f"{hours}h" if hours else "", f"{minutes}m" if minutes else "") if part
    )


@dataclass(frozen=True, slots=True)
class Processes:
    """What broker, network and worker faults strike: a live run's processes."""

    broker: Mosquitto
    proxy: FaultProxy
    worker: WorkerProcess
    #: Blocks until the run's observer has subscribed again (once the broker is back).
    observer_back: Callable[[], None]
    #: Several workers: the others, their PostgreSQL, and each worker's proxy to it.
    others: tuple[WorkerProcess, ...] = ()
    database: PostgreSQL | None = None
    database_proxies: tuple[FaultProxy, ...] = ()

    @property
    def workers(self) -> tuple[WorkerProcess, ...]:
        return (self.worker, *self.others)

    def pick(self, fault: Fault) -> int:
        """Which worker a fault on one worker strikes: the fault's number picks."""
        return fault.index % len(self.workers)


class Customers(Protocol):
    """What a customers' fault sends its requests through: a run's
    :class:`~simulator.run.customer.Customer`."""

    #: Scripted requests still to be sent twice, the copy first.
    duplicates: int
    clock: Clock
    #: Sends any command payload, as it is, and returns the reply's JSON.
    send: Callable[[str, bytes], Awaitable[dict[str, Any]]]

    @property
    def jobs(self) -> Collection[str]:
        """The scenario's job names."""
        ...

    def number(self) -> int:
        """A fresh index for a request no script asked for."""
        ...

    async def call(
        self, do: str, job: str, *, index: int, expect: str | None = None, note: str = ""
    ) -> ActionResult:
        """A scripted kind of request (``create``, ``cancel``...) for ``job``, answered."""
        ...


def _no_detail(fault: Fault) -> str:
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultKind:
    """A kind of fault, as :data:`FAULTS` declares it."""

    name: str
    target: Target
    #: Strikes once and has nothing to heal: drawn with ``lasts`` 0, described without it.
    instant: bool = False
    #: What it puts out of order while it lasts. A live run strikes one fault at a time on
    #: each and skips a fault whose part is already down; None: nothing held.
    occupies: str | None = None
    #: May wait for the next accepted cancel and strike right after it (``after_cancel``).
    after_cancel: bool = False
    #: What its description says of the fault's parameters ("" for nothing).
    detail: Callable[[Fault], str] = _no_detail

    @property
    def needs_processes(self) -> bool:
        """Whether only a live run (real processes) can inject it."""
        return self.target != "customers"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessFault(FaultKind):
    """A fault a live run strikes on its processes: the broker, the network or the worker."""

    #: Injects the fault now (blocking) and returns how to heal it.
    strike: Callable[[Processes, Fault], Heal]


#: Sends a customers' fault's requests: (customers, fault, its generator, the jobs it picked
#: among those alive) to the answers.
CustomerStrike = Callable[
    [Customers, Fault, random.Random, list[str]], Awaitable[list[ActionResult]]
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerFault(FaultKind):
    """A fault the customers make, with the same commands as scripted requests."""

    target: Target = "customers"
    instant: bool = True
    strike: CustomerStrike


# -- the broker ----------------------------------------------------------------------------


def _kill_broker(on: Processes, fault: Fault) -> Heal:
    on.proxy.cut()  # the worker comes back only once the observer has
    on.broker.kill()

    def restart_broker() -> None:
        on.broker.start()
        on.observer_back()
        on.proxy.restore()

    return restart_broker


def _pause_broker(on: Processes, fault: Fault) -> Heal:
    on.broker.pause()
    return on.broker.resume


# -- the network ---------------------------------------------------------------------------


def _add_latency(on: Processes, fault: Fault) -> Heal:
    on.proxy.latency = fault.latency
    return lambda: setattr(on.proxy, "latency", 0.0)


def _cap_bandwidth(on: Processes, fault: Fault) -> Heal:
    on.proxy.bandwidth = fault.bandwidth
    return lambda: setattr(on.proxy, "bandwidth", None)


def _reset_connections(on: Processes, fault: Fault) -> Heal:
    on.proxy.reset()
    return lambda: None


def _blackhole(on: Processes, fault: Fault) -> Heal:
    on.proxy.blackhole()
    return on.proxy.lift_blackhole


# -- the worker ----------------------------------------------------------------------------


def _kill_worker(on: Processes, fault: Fault) -> Heal:
    worker = on.workers[on.pick(fault)]
    worker.signal(signal.SIGKILL)

    def restart_worker() -> None:
        worker.start()
        worker.wait_connected()

    return restart_worker


def _one_of(on: Processes) -> str:
    return f" of {len(on.workers)}" if on.others else ""


# -- the database --------------------------------------------------------------------------


def _database(on: Processes) -> PostgreSQL:
    if on.database is None:
        raise DrivesimError("a database fault needs several workers on PostgreSQL (--workers)")
    return on.database


def _restart_database(on: Processes, fault: Fault) -> Heal:
    database = _database(on)
    database.kill()
    return database.start


def _partition_database(on: Processes, fault: Fault) -> Heal:
    _database(on)
    if not on.database_proxies:
        raise DrivesimError("db-partition needs the workers behind fault proxies (not direct)")
    proxy = on.database_proxies[on.pick(fault)]
    proxy.blackhole()
    return proxy.lift_blackhole


# -- the customers -------------------------------------------------------------------------


async def _all_at_once(
    customers: Customers, fault: Fault, calls: list[tuple[str, str]]
) -> list[ActionResult]:
    """``calls`` (request, job) sent concurrently; the answers in the order they came."""
    results: list[ActionResult] = []

    async def one(do: str, job: str) -> None:
        note = f"fault #{fault.index} {fault.kind}"
        results.append(await customers.call(do, job, index=customers.number(), note=note))

    async with anyio.create_task_group() as tg:
        for do, job in calls:
            tg.start_soon(one, do, job)
    return results


async def _cancel_storm(
    customers: Customers, fault: Fault, rng: random.Random, picked: list[str]
) -> list[ActionResult]:
    return await _all_at_once(customers, fault, [("cancel", j) for j in picked for _ in range(2)])


async def _delete_storm(
    customers: Customers, fault: Fault, rng: random.Random, picked: list[str]
) -> list[ActionResult]:
    return await _all_at_once(customers, fault, [("delete", job) for job in picked])


async def _duplicate_commands(
    customers: Customers, fault: Fault, rng: random.Random, picked: list[str]
) -> list[ActionResult]:
    customers.duplicates += fault.count  # the scripted requests to come are sent twice
    return await _all_at_once(customers, fault, [])  # nothing to send now


async def _garbage_commands(
    customers: Customers, fault: Fault, rng: random.Random, picked: list[str]
) -> list[ActionResult]:
    jobs = sorted(customers.jobs)
    job = jobs[rng.randrange(len(jobs))] if jobs else "job"
    menu: list[tuple[str, str, bytes, str]] = [
        ("not JSON", "cancel", b"{cancel this job", "InvalidRequestContent"),
        ("wrong type", "cancel", json.dumps({"job": 42}).encode(), "InvalidRequestContent"),
        (
            "unknown field",
            "cancel",
            json.dumps({"job": job, "force": True}).encode(),
            "InvalidRequestContent",
        ),
        ("unknown operation", "explode", json.dumps({"job": job}).encode(), "UnknownOperation"),
        ("oversized", "create", b'{"job": "' + b"x" * 200_000 + b'"}', "PayloadTooLarge"),
        ("deeply nested", "create", b"[" * 5000 + b"]" * 5000, "InvalidRequestContent"),
        (
            "bad name",
            "create",
            json.dumps({"job": "no spaces allowed", "body": {}}).encode(),
            "InvalidResourceName",
        ),
        (
            "unknown job",
            "delete",
            json.dumps({"job": "never-created"}).encode(),
            "ResourceNotFound",
        ),
    ]
    results = []
    for _ in range(fault.count):
        what, op, payload, expect = menu[rng.randrange(len(menu))]
        reply = await customers.send(op, payload)
        error = reply.get("error") or {}
        results.append(
            ActionResult(
                index=customers.number(),
                job=job if expect != "ResourceNotFound" else "never-created",
                do=f"garbage ({what})",
                at=customers.clock.now(),
                outcome="ok" if reply.get("ok") else str(error.get("code")),
                detail=f"fault #{fault.index}: {error.get('message', '')}",
                expect=expect,
            )
        )
    return results


# -- the registry --------------------------------------------------------------------------


def _requests(fault: Fault) -> str:
    return f"{fault.count} requests"


def _declare(*kinds: FaultKind) -> Mapping[str, FaultKind]:
    by_name = {kind.name: kind for kind in kinds}
    assert len(by_name) == len(kinds), "a fault kind is declared twice"
    return MappingProxyType(by_name)


#: Every fault kind by name, in the order a chaos plan draws from.
FAULTS: Mapping[str, FaultKind] = _declare(
    ProcessFault(name="broker-kill", target="broker", occupies="broker", strike=_kill_broker),
    ProcessFault(name="broker-pause", target="broker", occupies="broker", strike=_pause_broker),
    ProcessFault(
        name="net-latency",
        target="network",
        occupies="latency",
        detail=lambda fault: f"{fault.latency * 1000:g} ms latency",
        strike=_add_latency,
    ),
    ProcessFault(
        name="net-bandwidth",
        target="network",
        occupies="bandwidth",
        detail=lambda fault: f"bandwidth {fault.bandwidth / 1000:g} kB/s",
        strike=_cap_bandwidth,
    ),
    ProcessFault(name="net-reset", target="network", instant=True, strike=_reset_connections),
    ProcessFault(name="net-blackhole", target="network", occupies="network", strike=_blackhole),
    ProcessFault(
        name="worker-kill",
        target="worker",
        occupies="worker",
        after_cancel=True,
        detail=lambda fault: "right after the next accepted cancel" if fault.after_cancel else "",
        strike=_kill_worker,
    ),
    CustomerFault(name="cancel-storm", detail=_requests, strike=_cancel_storm),
    CustomerFault(name="delete-storm", detail=_requests, strike=_delete_storm),
    CustomerFault(name="garbage-commands", detail=_requests, strike=_garbage_commands),
    CustomerFault(name="duplicate-commands", detail=_requests, strike=_duplicate_commands),
    ProcessFault(
        name="db-restart", target="database", occupies="database", strike=_restart_database
    ),
    ProcessFault(
        name="db-partition",
        target="database",
        occupies="database",
        detail=lambda fault: "one worker cut off from it",
        strike=_partition_database,
    ),
)

#: The kinds a chaos plan draws from unless it names its own: all but the database's,
#: which need several workers on PostgreSQL.
DEFAULT_KINDS: tuple[str, ...] = tuple(
    name for name, kind in FAULTS.items() if kind.target != "database"
)
