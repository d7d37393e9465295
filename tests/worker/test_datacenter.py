"""The composition root: a datacenter runs its parts together and stops them together."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from worker.clock import virtual_loop
from worker.config import DAY
from worker.datacenter import Datacenter
from worker.logs import sim_time
from worker.memory_bus import MemoryBus
from worker.memory_store import MemoryStore
from worker.model import JobState
from worker.status import TOPIC_PREFIX, StatusMessage

Body = Callable[..., dict[str, Any]]
MakeDatacenter = Callable[..., Datacenter]


def run(main: Callable[[], Awaitable[None]]) -> None:
    anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_loop})


async def until(datacenter: Datacenter, name: str, state: JobState) -> None:
    """Wait (in simulated ten minutes) until job ``name`` is in ``state``, which lasts
    longer than that."""
    while (record := datacenter.ledger.get(name)) is not None and record.state is not state:
        await datacenter.clock.sleep(600)
    assert record is not None, f"{name} was deleted before it was {state}"


def test_a_running_datacenter_moves_jobs_and_delivers_every_message(
    make_datacenter: MakeDatacenter, import_body: Body, ship_body: Body
) -> None:
    """While it runs, a shipped job goes all the way to Completed; once the block is left,
    the sink holds every committed message, in commit order."""
    datacenter = make_datacenter()
    bus = MemoryBus()

    async def main() -> None:
        async with datacenter.running(bus):
            await datacenter.service.create("job1", import_body(2))
            await datacenter.service.update("job1", ship_body())
            await until(datacenter, "job1", JobState.COMPLETED)

    run(main)
    assert bus.messages == [entry.message for entry in datacenter.store.history()]
    assert json.loads(bus.retained[f"{TOPIC_PREFIX}/jobs/job1/state"])["properties"]["state"] == (
        "Completed"
    )


def test_halt_refuses_requests_and_stops_every_job(
    make_datacenter: MakeDatacenter, import_body: Body, ship_body: Body
) -> None:
    """After halt() a request gets 503 and a shipped job no longer moves, however long
    the loop runs; what was committed before still reaches the sink."""
    datacenter = make_datacenter()
    bus = MemoryBus()
    replies: list[int] = []

    async def main() -> None:
        async with datacenter.running(bus):
            await datacenter.service.create("job1", import_body(1))
            await datacenter.service.update("job1", ship_body())
            datacenter.halt()
            reply = await datacenter.commands.handle("get", b'{"job": "job1"}')
            replies.append(reply.status)
            await datacenter.clock.sleep(30 * DAY)

    run(main)
    record = datacenter.ledger.get("job1")
    assert record is not None
    assert record.state is JobState.SHIPPING
    assert replies == [503]
    assert bus.messages == [entry.message for entry in datacenter.store.history()]


def test_a_datacenter_runs_again_and_takes_requests_again(
    make_datacenter: MakeDatacenter, import_body: Body
) -> None:
    """Leaving a run refuses requests until the datacenter runs again."""
    datacenter = make_datacenter()
    statuses: list[int] = []
    body = json.dumps({"job": "job1", "body": import_body(1)}).encode()

    async def first() -> None:
        async with datacenter.running(MemoryBus()):
            pass
        statuses.append((await datacenter.commands.handle("create", body)).status)

    async def second() -> None:
        async with datacenter.running(MemoryBus()):
            statuses.append((await datacenter.commands.handle("create", body)).status)

    run(first)
    run(second)
    assert statuses == [503, 201]


def test_announce_sends_every_snapshot_before_any_job_moves(
    make_datacenter: MakeDatacenter, import_body: Body, ship_body: Body
) -> None:
    """A resumed datacenter with ``announce`` sends each job's snapshot, as committed,
    to a new sink before anything else."""
    store = MemoryStore()
    first = make_datacenter(store)

    async def start() -> None:
        async with first.running(MemoryBus()):
            await first.service.create("job1", import_body(1))
            await first.service.update("job1", ship_body())

    run(start)
    committed = first.ledger.get("job1")
    assert committed is not None
    bus = MemoryBus()
    second = make_datacenter(store)

    async def resume() -> None:
        async with second.running(bus, announce=True):
            await until(second, "job1", JobState.COMPLETED)

    run(resume)
    snapshot = bus.messages[0]
    assert snapshot.topic == f"{TOPIC_PREFIX}/jobs/job1/state"
    assert snapshot.seq == committed.sim.seq
    assert json.loads(snapshot.payload)["properties"]["state"] == "Shipping"


class DeadSink:
    """A sink whose broker never answers: not ready, ever."""

    async def ready(self) -> None:
        await anyio.sleep_forever()

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        raise AssertionError("never ready, never asked")


def test_a_drain_given_up_is_not_tried_again_on_the_way_out(
    make_datacenter: MakeDatacenter, import_body: Body
) -> None:
    """A caller that bounds the drain (the worker, with its drain timeout) leaves the block
    at once when the sink is down; what is pending stays in the outbox for the next run."""
    datacenter = make_datacenter()

    async def main() -> None:
        with anyio.fail_after(DAY):  # virtual seconds: a hang jumps straight here
            async with datacenter.running(DeadSink()):
                await datacenter.service.create("job1", import_body(1))
                datacenter.halt()
                with anyio.move_on_after(5) as draining:
                    await datacenter.drain()
                assert draining.cancelled_caught

    run(main)
    assert datacenter.store.pending(10)


def test_log_lines_carry_the_simulated_time_of_the_datacenter_built_last(
    make_datacenter: MakeDatacenter,
) -> None:
    """Building a datacenter points the logs' simulated time at its clock."""
    first, second = make_datacenter(), make_datacenter()
    assert sim_time.clock is second.clock
    assert sim_time.clock is not first.clock
