"""A live run's process faults on a real broker and fault proxy: one fault at a time on each
part, each healed once it has lasted, an instant one healed as it strikes, and whatever
still holds healed when the run ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simulator.faults.kinds import FAULTS, Fault, Processes
from simulator.faults.plan import FaultRecord
from simulator.live.processes import Mosquitto, WorkerProcess
from simulator.live.proxy import FaultProxy
from simulator.live.strikes import ProcessStrikes
from worker.clock import Clock

pytestmark = pytest.mark.asyncio

#: Simulated seconds a wall-clock second: a minute of fault lasts 0.1 s.
SCALE = 600.0


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """A real broker behind a fault proxy; the worker is never started (nothing here
    strikes it)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    proxy = FaultProxy(broker.port)
    worker = WorkerProcess([], log=tmp_path / "worker.log")
    yield Processes(broker, proxy, worker, lambda: None)
    proxy.close()
    broker.stop()


class Strikes:
    """Process strikes on a scaled clock, and what they told."""

    def __init__(self, processes: Processes) -> None:
        self.struck: list[int] = []
        self.skipped: list[tuple[int, str]] = []
        self.strikes = ProcessStrikes(
            processes,
            Clock(scale=SCALE),
            struck=lambda record: self.struck.append(record.fault.index),
            skipped=lambda record, why: self.skipped.append((record.fault.index, why)),
        )


def _record(index: int, kind: str, lasts: float, **fields: Any) -> FaultRecord:
    return FaultRecord(Fault(index=index, kind=kind, at=0.0, lasts=lasts, **fields))


async def test_a_part_under_a_fault_takes_no_other_until_it_heals(processes: Processes) -> None:
    told = Strikes(processes)
    first = _record(0, "net-latency", 60.0, latency=0.05)
    second = _record(1, "net-latency", 60.0, latency=0.5)
    capped = _record(2, "net-bandwidth", 60.0, bandwidth=16_000)
    async with anyio.create_task_group() as tg:
        await told.strikes.strike(first, tg)
        assert processes.proxy.latency == 0.05
        assert not told.strikes.free(FAULTS["net-latency"])
        await told.strikes.strike(second, tg)
        assert processes.proxy.latency == 0.05
        await told.strikes.strike(capped, tg)  # another part: struck alongside
        assert processes.proxy.bandwidth == 16_000
    # The task group waited for both heals.
    assert told.struck == [0, 2]
    assert told.skipped == [(1, "the latency was already under a fault")]
    assert (second.struck, second.skipped) == (None, None)  # what to do with it: the run's
    assert (processes.proxy.latency, processes.proxy.bandwidth) == (0.0, None)
    for record in (first, capped):
        assert record.struck is not None
        assert record.healed is not None
        assert record.healed - record.struck >= 60.0
    assert told.strikes.free(FAULTS["net-latency"])
    assert told.strikes.free(FAULTS["net-bandwidth"])


async def test_an_instant_fault_is_healed_as_it_strikes(processes: Processes) -> None:
    told = Strikes(processes)
    reset = _record(0, "net-reset", 0.0)
    async with anyio.create_task_group() as tg:
        await told.strikes.strike(reset, tg)
    assert told.struck == [0]
    assert reset.struck is not None
    assert reset.healed == reset.struck
    assert told.strikes.free(FAULTS["net-reset"])


async def test_what_still_holds_when_the_run_ends_is_healed(processes: Processes) -> None:
    told = Strikes(processes)
    hole = _record(0, "net-blackhole", 86_400.0)
    async with anyio.create_task_group() as tg:
        await told.strikes.strike(hole, tg)
        assert processes.proxy.blackholed.is_set()
        tg.cancel_scope.cancel()  # the run is over: its heal timer goes with it
    assert hole.healed is None
    assert not told.strikes.free(FAULTS["net-blackhole"])
    await told.strikes.heal_all()
    assert not processes.proxy.blackholed.is_set()
    assert hole.healed is not None
    assert told.strikes.free(FAULTS["net-blackhole"])
