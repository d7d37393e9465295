"""The registry of fault kinds: each kind declares its target and its injector once, and what
it declares is what scenario files, plans, runs and live strikes do with it."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from simulator.faults.kinds import (
    DEFAULT_KINDS,
    FAULTS,
    CustomerFault,
    Fault,
    Processes,
    ProcessFault,
    Target,
)
from simulator.faults.plan import draw_faults
from simulator.live.postgres import PostgreSQL
from simulator.live.processes import Mosquitto, WorkerProcess
from simulator.live.proxy import FaultProxy
from simulator.run.runner import run_scenario
from simulator.scenario import parse_scenario
from worker.errors import ConfigError, DrivesimError
from worker.memory_store import MemoryStore

ONE_JOB: dict[str, Any] = {
    "name": "kinds",
    "seed": 5,
    "jobs": [{"name": "j", "drives": [{"id": "D1", "size": "100GB"}]}],
    "actions": [{"at": "0h", "job": "j", "do": "create"}, {"at": "1h", "job": "j", "do": "ship"}],
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_every_kind_declares_a_target_and_an_injector(name: str) -> None:
    kind = FAULTS[name]
    assert kind.name == name
    assert kind.target in get_args(Target)
    assert callable(kind.detail)
    if kind.target == "customers":
        assert isinstance(kind, CustomerFault)
        assert kind.instant
        assert not kind.needs_processes
    else:
        assert isinstance(kind, ProcessFault)
        assert kind.needs_processes
    assert callable(kind.strike)
    # A fault that lasts holds its part of the system until it heals; one that is instant
    # holds nothing.
    assert (kind.occupies is None) == kind.instant


def test_the_default_chaos_kinds_are_the_registry_s_in_its_order_but_the_database_s() -> None:
    chaos = {"faults": 30, "between": ["1h", "2d"], "lasts": ["10m", "1h"]}
    default = parse_scenario({"name": "d", "seed": 9, "chaos": chaos})
    kinds = [name for name, kind in FAULTS.items() if kind.target != "database"]
    assert list(DEFAULT_KINDS) == kinds
    assert "db-restart" not in kinds  # needs several workers on PostgreSQL: only by name
    listed = parse_scenario({"name": "d", "seed": 9, "chaos": {**chaos, "kinds": kinds}})
    assert default.faults == listed.faults
    shuffled = [*kinds[1:], kinds[0]]
    other = parse_scenario({"name": "d", "seed": 9, "chaos": {**chaos, "kinds": shuffled}})
    assert [f.kind for f in other.faults] != [f.kind for f in default.faults]


@pytest.mark.parametrize("name", list(FAULTS))
def test_instant_kinds_are_drawn_lasting_nothing(name: str) -> None:
    faults = draw_faults(3, 20, (name,), (3600.0, 7200.0), (600.0, 1200.0))
    if FAULTS[name].instant:
        assert all(f.lasts == 0 for f in faults)
        assert " for " not in faults[0].describe()
    else:
        assert all(600 <= f.lasts <= 1200 for f in faults)
        assert faults[0].describe().endswith(f" for {round(faults[0].lasts / 60)}m")


@pytest.mark.parametrize("name", list(FAULTS))
def test_only_kinds_that_may_wait_for_a_cancel_are_drawn_or_written_so(name: str) -> None:
    drawn = draw_faults(3, 40, (name,), (3600.0, 7200.0), (600.0, 1200.0))
    written = {"name": "w", "faults": [{"kind": name, "at": "1h", "after_cancel": True}]}
    if FAULTS[name].after_cancel:
        assert any(f.after_cancel for f in drawn)
        assert not all(f.after_cancel for f in drawn)
        (fault,) = parse_scenario(written).faults
        assert fault.after_cancel
    else:
        assert not any(f.after_cancel for f in drawn)
        with pytest.raises(ConfigError) as info:
            parse_scenario(written)
        assert info.value.key == "faults[0].after_cancel"
        allowed = [k.name for k in FAULTS.values() if k.after_cancel]
        assert all(k in info.value.expected for k in allowed)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"faults": [{"kind": "meteor", "at": "1h"}]}, "faults[0].kind"),
        ({"chaos": {"faults": 1, "kinds": ["net-reset", "meteor"]}}, "chaos.kinds[1]"),
        ({"chaos": {"faults": 1, "kinds": []}}, "chaos.kinds"),
    ],
)
def test_an_unknown_kind_is_refused_listing_the_registry(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario({"name": "k", **raw}, "kinds.toml")
    assert info.value.key == key
    assert ", ".join(FAULTS) in info.value.expected


def test_a_virtual_run_strikes_the_customers_kinds_and_skips_those_needing_processes() -> None:
    """One fault of every kind: what the registry says of each decides whether a run in
    virtual time (no processes) strikes it."""
    faults: list[dict[str, Any]] = [
        {"kind": name, "at": f"{2 + i}h", "lasts": "10m", "count": 2}
        for i, name in enumerate(FAULTS)
    ]
    scenario = parse_scenario({**ONE_JOB, "faults": faults})
    assert scenario.needs_processes
    result = run_scenario(scenario, MemoryStore())
    for record in result.faults:
        if FAULTS[record.fault.kind].needs_processes:
            assert record.skipped == "needs real processes (drivesim run --live)"
            assert record.struck is None
        else:
            assert record.skipped is None
            assert record.struck == record.fault.at
    customers_only = [f for f in faults if not FAULTS[f["kind"]].needs_processes]
    assert not parse_scenario({**ONE_JOB, "faults": customers_only}).needs_processes


class _Observer:
    """Counts the waits for the run's observer to be back on the broker."""

    def __init__(self) -> None:
        self.waits = 0

    def wait_subscribed(self) -> None:
        self.waits += 1


@pytest.fixture
def observer() -> _Observer:
    return _Observer()


@pytest.fixture
def processes(tmp_path: Path, observer: _Observer) -> Iterator[Processes]:
    """A live run's processes: a real broker and fault proxy; the worker is never started
    (nothing here strikes it)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    proxy = FaultProxy(broker.port)
    worker = WorkerProcess([], log=tmp_path / "worker.log")
    yield Processes(broker, proxy, worker, observer.wait_subscribed)
    proxy.close()
    broker.stop()


def _strike(name: str, on: Processes, **fields: Any) -> Any:
    kind = FAULTS[name]
    assert isinstance(kind, ProcessFault)
    return kind.strike(on, Fault(index=0, kind=name, at=0.0, **fields))


def _through_proxy(proxy: FaultProxy) -> bool:
    """Whether a connection through the proxy stays open (the broker waits for a CONNECT)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
        sock.settimeout(0.3)
        try:
            return sock.recv(1) != b""
        except TimeoutError:
            return True
        except ConnectionError:
            return False


def test_network_kinds_strike_the_proxy_and_heal_it(processes: Processes) -> None:
    proxy = processes.proxy
    heal = _strike("net-latency", processes, latency=0.05)
    assert proxy.latency == 0.05
    heal()
    assert proxy.latency == 0.0
    heal = _strike("net-bandwidth", processes, bandwidth=16_000)
    assert proxy.bandwidth == 16_000
    heal()
    assert proxy.bandwidth is None
    heal = _strike("net-blackhole", processes)
    assert proxy.blackholed.is_set()
    heal()
    assert not proxy.blackholed.is_set()
    _strike("net-reset", processes)()  # instant: its heal does nothing
    assert proxy.connections == 0


def test_broker_kinds_stop_the_broker_and_bring_it_back(
    processes: Processes, observer: _Observer
) -> None:
    broker, proxy = processes.broker, processes.proxy
    heal = _strike("broker-pause", processes)
    assert broker.paused
    heal()
    assert not broker.paused
    heal = _strike("broker-kill", processes)
    assert not broker.running
    assert not _through_proxy(proxy)  # the worker is kept out until the observer is back
    heal()
    assert broker.running
    assert _through_proxy(proxy)
    assert observer.waits == 1


@pytest.fixture
def with_database(processes: Processes) -> Iterator[Processes]:
    """The processes of a run of two workers on a PostgreSQL of its own (the workers are
    never started), each with its fault proxy to the database."""
    workdir = Path(tempfile.mkdtemp(prefix="drivesim-postgresql-"))
    workdir.chmod(0o755)
    database = PostgreSQL(workdir / "server")
    database.start()
    proxies = (FaultProxy(database.port), FaultProxy(database.port))
    other = WorkerProcess([], log=workdir / "w2.log")
    yield dataclasses.replace(
        processes, others=(other,), database=database, database_proxies=proxies
    )
    for proxy in proxies:
        proxy.close()
    database.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def test_database_kinds_restart_it_and_cut_one_worker_off(with_database: Processes) -> None:
    database = with_database.database
    assert database is not None
    heal = _strike("db-restart", with_database)
    assert not database.running
    heal()
    assert database.running
    kind = FAULTS["db-partition"]
    assert isinstance(kind, ProcessFault)
    heal = kind.strike(with_database, Fault(index=3, kind="db-partition", at=0.0))
    first, second = with_database.database_proxies
    assert second.blackholed.is_set()  # fault #3 of two workers: the second
    assert not first.blackholed.is_set()
    heal()
    assert not second.blackholed.is_set()


def test_a_partition_of_workers_reaching_the_database_directly_is_refused(
    with_database: Processes,
) -> None:
    direct = dataclasses.replace(with_database, database_proxies=())
    kind = FAULTS["db-partition"]
    assert isinstance(kind, ProcessFault)
    with pytest.raises(DrivesimError, match="fault proxies"):
        kind.strike(direct, Fault(index=0, kind="db-partition", at=0.0))
