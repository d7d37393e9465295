"""The ledger: commit first, then swap in the new record, tell listeners and wake the relay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from worker import changes
from worker.clock import Clock
from worker.errors import InvalidJobState, StoreError
from worker.record import JobRecord, encode
from worker.service import JobService
from worker.sqlite_store import SQLiteStore
from worker.status import Event, decode_payload
from worker.store import JobStore

Body = Callable[..., dict[str, Any]]
Contents = Callable[[JobService | JobStore], object]

pytestmark = pytest.mark.asyncio


def seqs(store: JobStore) -> list[int]:
    return [e.message.seq for e in store.history()]


async def test_seq_rises_by_one_per_commit(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """Every committed change raises the job's seq by one; all its messages carry it."""
    await service.create("job1", import_body(2))
    await service.update("job1", {"tags": {"a": "b"}})
    await service.update("job1", ship_body())
    await service.cancel("job1")
    record = service.ledger.get("job1")
    assert record is not None
    assert record.sim.seq == 4
    assert sorted(set(seqs(service.ledger.store))) == [1, 2, 3, 4]
    snapshots = [
        decode_payload(e.message.payload)
        for e in service.ledger.store.history()
        if e.message.topic == "importexport/v1/jobs/job1/state"
    ]
    assert [s["seq"] for s in snapshots] == [1, 2, 3, 4]


async def test_unchanged_update_commits_nothing(
    service: JobService, contents: Contents, import_body: Body
) -> None:
    """A change that alters nothing and says nothing commits nothing and returns the record."""
    await service.create("job1", import_body(1))
    before_record = service.ledger.get("job1")
    before = contents(service)
    got = service.ledger.update("job1", lambda r: [])
    assert got is before_record
    assert contents(service) == before


async def test_unchanged_update_with_meta_commits_only_the_meta(
    service: JobService, import_body: Body
) -> None:
    """With metadata, an unchanged update still records the metadata, and no message."""
    await service.create("job1", import_body(1))
    history = list(service.ledger.store.history())
    service.ledger.update("job1", lambda r: [], {"script/1": b"done"})
    assert service.ledger.store.get_meta("script/1") == b"done"
    assert list(service.ledger.store.history()) == history


async def test_failed_change_leaves_everything_as_it_was(
    service: JobService, contents: Contents, import_body: Body
) -> None:
    """A change that edits its clone and raises leaves record, store and listeners as they were."""
    await service.create("job1", import_body(1))
    committed = service.ledger.get("job1")
    assert committed is not None
    frozen = encode(committed)
    told: list[object] = []
    service.ledger.watch(lambda before, after: told.append(after))
    before = contents(service)

    def bad(record: JobRecord) -> list[Event]:
        record.job.tags = {"half": "done"}
        record.keys.clear()
        raise InvalidJobState("no", state="Creating")

    with pytest.raises(InvalidJobState):
        service.ledger.update("job1", bad)
    assert encode(committed) == frozen
    assert service.ledger.get("job1") is committed
    assert contents(service) == before
    assert told == []


async def test_listeners_see_before_and_after(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """Listeners get (None, new) on create, (old, new) on change and (old, None) on delete."""
    told: list[tuple[str | None, str | None]] = []

    def listener(before: JobRecord | None, after: JobRecord | None) -> None:
        told.append(
            (
                None if before is None else str(before.state),
                None if after is None else str(after.state),
            )
        )
        # The change is committed and visible by the time listeners run.
        assert service.ledger.get("job1") is after

    service.ledger.watch(listener)
    await service.create("job1", import_body(1))
    # An Update in Creating that changes nothing still restarts the expiry: a change.
    await service.update("job1", {"properties": {"state": ""}})
    await service.cancel("job1")
    await service.delete("job1")
    assert told == [
        (None, "Creating"),
        ("Creating", "Creating"),
        ("Creating", "Completed"),
        ("Completed", None),
    ]


async def test_store_failure_changes_nothing_in_memory(
    tmp_path: Path, import_body: Body, ship_body: Body, make_service: Callable[..., JobService]
) -> None:
    """When the store cannot commit, the ledger raises StoreError and keeps the old record."""
    store = SQLiteStore(tmp_path / "jobs.db")
    service = make_service(store)
    await service.create("job1", import_body(1))
    committed = service.ledger.get("job1")
    told: list[object] = []
    service.ledger.watch(lambda before, after: told.append(after))
    store.close()
    with pytest.raises(StoreError):
        await service.update("job1", ship_body())
    with pytest.raises(StoreError):
        await service.cancel("job1")
    with pytest.raises(StoreError):
        await service.delete("job1")
    assert service.ledger.get("job1") is committed
    assert [r.name for r in service.ledger] == ["job1"]
    assert told == []


async def test_create_on_a_failed_store_raises_store_error(
    tmp_path: Path, import_body: Body, make_service: Callable[..., JobService]
) -> None:
    """Creating a job on a store that cannot be used raises StoreError and adds nothing."""
    store = SQLiteStore(tmp_path / "jobs.db")
    service = make_service(store)
    store.close()
    with pytest.raises(StoreError):
        await service.create("job2", import_body(1))
    assert service.ledger.get("job2") is None
    assert len(service.ledger) == 0


async def test_commit_records_simulated_time(
    import_body: Body, make_service: Callable[..., JobService]
) -> None:
    """Each commit stores the simulated time it happened at, and stamps its messages with it."""
    clock = Clock(start=3600.0)
    service = make_service(clock=clock)
    await service.create("job1", import_body(1))
    stored = service.ledger.store.get_meta("sim_now")
    assert stored is not None
    assert 3600.0 <= float(stored) < 3700.0
    snapshot = decode_payload(next(service.ledger.store.history()).message.payload)
    assert snapshot["simTime"].startswith("2026-01-05T09:")


async def test_ledger_reloads_committed_jobs(
    tmp_path: Path, import_body: Body, ship_body: Body, make_service: Callable[..., JobService]
) -> None:
    """A new ledger over the same SQLite file has the same jobs, and seq goes on from them."""
    path = tmp_path / "jobs.db"
    first = make_service(SQLiteStore(path))
    await first.create("job1", import_body(2))
    await first.create("gone", import_body(1))
    await first.update("job1", ship_body())
    await first.delete("gone")
    records = {r.name: encode(r) for r in first.ledger}
    first.ledger.store.close()

    second = make_service(SQLiteStore(path))
    assert {r.name: encode(r) for r in second.ledger} == records
    await second.cancel("job1")
    await second.create("gone", import_body(1))
    job1 = second.ledger.get("job1")
    gone = second.ledger.get("gone")
    assert job1 is not None
    assert gone is not None
    assert job1.sim.seq == 3
    assert gone.sim.seq == 3  # created (1), deleted (2), created again (3)
    second.ledger.store.close()


async def test_wait_for_outbox_wakes_on_commit(service: JobService, import_body: Body) -> None:
    """wait_for_outbox returns once a commit adds messages, not before."""
    woke: list[int] = []

    async def waiter() -> None:
        await service.ledger.wait_for_outbox()
        woke.append(len(list(service.ledger.store.history())))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        assert woke == []
        await service.create("job1", import_body(1))
    assert woke
    assert woke[0] > 0


async def test_iteration_is_a_snapshot(
    import_body: Body, make_service: Callable[..., JobService]
) -> None:
    """Iterating the ledger while jobs are deleted is safe: it walks a copy."""
    service = make_service()
    for name in "abc":
        await service.create(name, import_body(1))
    for record in service.ledger:
        await service.delete(record.name)
    assert len(service.ledger) == 0


async def test_datacenter_changes_go_through_the_ledger(
    service: JobService, import_body: Body, ship_body: Body
) -> None:
    """A datacenter change refused by the state machine raises and commits nothing."""
    await service.create("job1", import_body(1))
    now = service.ledger.clock.now()
    history = len(list(service.ledger.store.history()))
    with pytest.raises(InvalidJobState):
        service.ledger.update("job1", lambda r: changes.receive(r, now))
    assert len(list(service.ledger.store.history())) == history
    await service.update("job1", ship_body())
    service.ledger.update("job1", lambda r: changes.receive(r, now))
    record = service.ledger.get("job1")
    assert record is not None
    assert str(record.state) == "Received"
