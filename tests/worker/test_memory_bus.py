"""The in-memory bus: the retained map a broker would keep, and every message in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from worker.memory_bus import MemoryBus
from worker.relay import OutboxRelay
from worker.service import JobService
from worker.status import StatusMessage

Body = Callable[..., dict[str, Any]]

pytestmark = pytest.mark.asyncio


async def test_memory_bus_keeps_retained_and_clears_on_delete(
    service: JobService, import_body: Body
) -> None:
    """The bus keeps the last retained payload per topic and drops it on an empty one."""
    bus = MemoryBus()
    seen: list[str] = []
    bus.subscribe(lambda m: seen.append(m.topic))
    relay = OutboxRelay(service.ledger, bus)
    await service.create("a", import_body(2))
    await relay.drain()
    assert set(bus.retained) == {
        "importexport/v1/jobs/a/state",
        "importexport/v1/jobs/a/drives/DRV0/state",
        "importexport/v1/jobs/a/drives/DRV1/state",
    }
    await service.delete("a")
    await relay.drain()
    assert bus.retained == {}
    assert seen == [m.topic for m in bus.messages]


async def test_memory_bus_without_keep_holds_only_the_retained_map(
    service: JobService, import_body: Body
) -> None:
    """keep=False: subscribers hear every message, ``messages`` stays empty."""
    await service.create("a", import_body(2))
    bus = MemoryBus(keep=False)
    heard: list[StatusMessage] = []
    bus.subscribe(heard.append)
    await OutboxRelay(service.ledger, bus, overlap=False).drain()
    assert heard == [e.message for e in service.ledger.store.history()]
    assert bus.messages == []
    assert "importexport/v1/jobs/a/state" in bus.retained
