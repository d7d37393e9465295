"""The outbox relay: every committed message, once, in commit order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from worker.errors import PublishError
from worker.memory_bus import MemoryBus
from worker.relay import OutboxRelay
from worker.service import JobService
from worker.status import StatusMessage

Body = Callable[..., dict[str, Any]]

pytestmark = pytest.mark.asyncio


class FlakySink:
    """A sink that refuses the first ``failures`` publishes, then records what it gets."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.messages: list[StatusMessage] = []

    async def ready(self) -> None:
        pass

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.messages.extend(messages)


@pytest.mark.parametrize("overlap", [True, False])
async def test_drain_publishes_history_in_order_and_acks(
    service: JobService, import_body: Body, ship_body: Body, overlap: bool
) -> None:
    """drain sends every pending message in commit order and leaves nothing pending."""
    await service.create("a", import_body(2))
    await service.create("b", import_body(1))
    await service.update("a", ship_body())
    bus = MemoryBus()
    relay = OutboxRelay(service.ledger, bus, batch=3, overlap=overlap)
    sent = await relay.drain()
    history = [e.message for e in service.ledger.store.history()]
    assert bus.messages == history
    assert sent == len(history)
    assert service.ledger.store.pending(10) == []
    assert await relay.drain() == 0


@pytest.mark.parametrize("overlap", [True, False])
async def test_failed_publish_is_retried(
    service: JobService, import_body: Body, overlap: bool
) -> None:
    """A publish that fails leaves its messages pending; the next drain delivers them once."""
    await service.create("a", import_body(1))
    sink = FlakySink(failures=1)
    relay = OutboxRelay(service.ledger, sink, overlap=overlap)
    with pytest.raises(ConnectionError):
        await relay.drain()
    assert len(service.ledger.store.pending(100)) == len(list(service.ledger.store.history()))
    await relay.drain()
    assert sink.messages == [e.message for e in service.ledger.store.history()]


async def test_relay_runs_until_cancelled(service: JobService, import_body: Body) -> None:
    """The running relay delivers each commit soon after it happens."""
    bus = MemoryBus()
    created, cleared = anyio.Event(), anyio.Event()
    bus.subscribe(lambda m: created.set())
    bus.subscribe(lambda m: None if m.payload or not m.topic.endswith("a/state") else cleared.set())
    async with anyio.create_task_group() as tg:
        await tg.start(OutboxRelay(service.ledger, bus).run)
        await service.create("a", import_body(1))
        with anyio.fail_after(5):
            await created.wait()
        await service.delete("a")
        with anyio.fail_after(5):
            await cleared.wait()
        tg.cancel_scope.cancel()
    assert bus.messages == [e.message for e in service.ledger.store.history()]
    assert bus.retained == {}


async def test_running_relay_delivers_after_the_step_that_committed(
    service: JobService, import_body: Body
) -> None:
    """Commits made in one step reach an in-memory bus together, once the step yields:
    what the step did after its commit (recording an answer) is never outrun by a
    subscriber that saw the commit."""
    bus = MemoryBus()
    seen_at: list[int] = []
    step: list[int] = [0]
    bus.subscribe(lambda m: seen_at.append(step[0]))
    async with anyio.create_task_group() as tg:
        await tg.start(OutboxRelay(service.ledger, bus).run)
        await service.create("a", import_body(1))
        step[0] = 1  # the step goes on after its commit
        await service.create("b", import_body(1))
        step[0] = 2
        assert seen_at == []  # nothing delivered inside the step
        await anyio.lowlevel.checkpoint()
        assert seen_at
        assert set(seen_at) == {2}
        tg.cancel_scope.cancel()
    assert bus.messages == [e.message for e in service.ledger.store.history()]


class DroppingSink:
    """A sink whose connection drops in the middle of its first batch, after the broker
    acknowledged ``acked`` messages of it: the relay is told the connection was lost (as
    the MQTT link does) before the batch reports what it delivered."""

    def __init__(self, relay: list[OutboxRelay], acked: int) -> None:
        self.relay = relay
        self.acked = acked
        self.messages: list[StatusMessage] = []
        self.dropped = False

    async def ready(self) -> None:
        pass

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        if not self.dropped:
            self.dropped = True
            self.messages.extend(messages[: self.acked])
            self.relay[0].connection_lost()
            raise PublishError("connection lost", delivered=list(range(self.acked)))
        self.messages.extend(messages)


async def test_messages_acknowledged_by_a_batch_cut_off_by_a_lost_connection_go_again(
    service: JobService, import_body: Body
) -> None:
    """The broker may have acknowledged them and died before passing them on: with a
    replay tail they are sent again after the reconnect, in order, none missing."""
    await service.create("a", import_body(3))
    history = [e.message for e in service.ledger.store.history()]
    relays: list[OutboxRelay] = []
    sink = DroppingSink(relays, acked=2)
    relays.append(OutboxRelay(service.ledger, sink, replay_tail=2.0))
    await relays[0].drain()
    assert sink.messages == history[:2] + history
    assert service.ledger.store.pending(100) == []


class OverlappingSink:
    """Takes a few event-loop turns per batch, and notes how many batches it held at once."""

    def __init__(self) -> None:
        self.messages: list[StatusMessage] = []
        self.holding = 0
        self.most = 0

    async def ready(self) -> None:
        pass

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        self.holding += 1
        self.most = max(self.most, self.holding)
        self.messages.extend(messages)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        self.holding -= 1


async def test_the_next_batch_is_handed_over_while_one_awaits_its_acknowledgements(
    service: JobService, import_body: Body
) -> None:
    """The relay keeps two batches with the sink, so it never runs dry between batches;
    the sink still gets every message once, in commit order, and all are acknowledged."""
    await service.create("a", import_body(3))
    await service.create("b", import_body(2))
    history = [e.message for e in service.ledger.store.history()]
    assert len(history) > 4
    sink = OverlappingSink()
    sent = await OutboxRelay(service.ledger, sink, batch=2).drain()
    assert sink.most == 2
    assert sink.messages == history
    assert sent == len(history)
    assert service.ledger.store.pending(100) == []


class CutSink:
    """Its connection drops once, while it holds two batches: the broker had acknowledged
    the first message of the first batch and nothing of the second."""

    def __init__(self) -> None:
        self.messages: list[StatusMessage] = []
        self.calls = 0
        self.second = anyio.Event()
        self.cut = anyio.Event()

    async def ready(self) -> None:
        pass

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.second.wait()
            self.messages.append(messages[0])
            self.cut.set()
            raise PublishError("connection lost", delivered=[0])
        if self.calls == 2:
            self.second.set()
            await self.cut.wait()
            raise PublishError("connection lost", delivered=[])
        self.messages.extend(messages)


async def test_a_connection_lost_with_two_batches_in_flight_loses_nothing(
    service: JobService, import_body: Body
) -> None:
    """Both batches fail; what was acknowledged stays acknowledged, and the rest goes
    again from the oldest pending entry on, in commit order."""
    await service.create("a", import_body(3))
    history = [e.message for e in service.ledger.store.history()]
    sink = CutSink()
    sent = await OutboxRelay(service.ledger, sink, batch=2).drain()
    assert sink.calls > 2
    assert sink.messages == history
    assert sent == len(history)
    assert service.ledger.store.pending(100) == []


async def test_a_batch_broken_off_in_turn_goes_again_from_where_it_stopped(
    service: JobService, import_body: Body
) -> None:
    """overlap=False: what the sink acknowledged of a broken-off batch is not sent again."""
    await service.create("a", import_body(3))
    await service.create("b", import_body(3))
    history = [e.message for e in service.ledger.store.history()]

    class CutSink:
        def __init__(self) -> None:
            self.messages: list[StatusMessage] = []
            self.cut = True

        async def ready(self) -> None:
            pass

        async def publish(self, messages: Sequence[StatusMessage]) -> None:
            if self.cut:
                self.cut = False
                self.messages.extend(messages[:2])
                raise PublishError("connection lost", delivered=[0, 1])
            self.messages.extend(messages)

    sink = CutSink()
    assert await OutboxRelay(service.ledger, sink, overlap=False).drain() == len(history)
    assert sink.messages == history


class HeldSink:
    """Holds every batch until ``release`` is set."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.held = anyio.Event()
        self.messages: list[StatusMessage] = []

    async def ready(self) -> None:
        pass

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        self.held.set()
        await self.release.wait()
        self.messages.extend(messages)


async def test_settled_returns_once_the_batches_handed_over_are_published(
    service: JobService, import_body: Body
) -> None:
    """What a worker giving a location up waits for: nothing it read goes out later."""
    await service.create("a", import_body(2))
    sink = HeldSink()
    relay = OutboxRelay(service.ledger, sink)
    settled = False

    async def settle() -> None:
        nonlocal settled
        await relay.settled()
        settled = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.drain)
        await sink.held.wait()
        tg.start_soon(settle)
        await anyio.wait_all_tasks_blocked()
        assert not settled  # the batch is still with the sink
        sink.release.set()
    assert settled
    assert sink.messages == [e.message for e in service.ledger.store.history()]
