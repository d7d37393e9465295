"""The ledger: commit first, then swap in the new record, tell listeners and wake the relay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from worker import Datacenter, DatacenterConfig, Planner, changes
from worker.clock import Clock
from worker.errors import InvalidJobState, StoreError
from worker.ledger import Change, Ledger
from worker.model import DriveState, JobState
from worker.postgres_store import PostgresStore
from worker.record import JobRecord, encode
from worker.service import JobService
from worker.sqlite_store import SQLiteStore
from worker.status import Event, StatusMessage, decode_payload
from worker.store import Commit, JobStore, Lease

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


# -- a store several workers share: commits grouped by turn of the loop -------------------


class CountingStore(PostgresStore):
    """The real PostgreSQL store, counting the transactions the ledger sends it."""

    def __init__(self, url: str, worker_id: str) -> None:
        super().__init__(url, worker_id=worker_id)
        self.transactions = 0

    def commit_many(self, commits: Sequence[Commit]) -> None:
        self.transactions += 1
        super().commit_many(commits)


def shared(url: str, worker: str = "w1") -> tuple[Datacenter, CountingStore, dict[str, Lease]]:
    """A datacenter on PostgreSQL, not running, and the leases its steps are fenced by."""
    store = CountingStore(url, worker)
    config = DatacenterConfig(locations={"West US": 2, "East US": 2})
    datacenter = Datacenter(store, clock=Clock(), planner=Planner(config, seed=1), lease=30.0)
    store.join(list(config.locations), 30.0)
    leases = {lease.location: lease for lease in store.claim(2)}
    datacenter.ledger.kept = leases  # as its lease keeper would, driving them
    return datacenter, store, leases


def step(
    datacenter: Datacenter, leases: dict[str, Lease], name: str, change: Change | None = None
) -> None:
    """A step of the datacenter on job ``name`` (by default, its package is received),
    fenced by its location's lease, as the pipeline makes it."""
    ledger = datacenter.ledger
    record = ledger.get(name)
    assert record is not None
    ledger.update(name, change or receive(ledger), fence=leases[record.job.location])


def receive(ledger: Ledger) -> Change:
    return lambda r: changes.receive(r, ledger.clock.now())


def start_first_drive(ledger: Ledger) -> Change:
    return lambda r: changes.start_drive(r, r.drives[0].drive_id, ledger.clock.now())


async def test_on_a_shared_store_a_turns_changes_are_committed_together_then_announced(
    postgresql_url: str, import_body: Body, ship_body: Body
) -> None:
    """The datacenter's changes made in one turn of the loop go to PostgreSQL in one
    transaction at its end; until then the store holds none of them and the relay is not
    woken, while the ledger already shows them to the steps that follow."""
    datacenter, store, leases = shared(postgresql_url)
    service, ledger = datacenter.service, datacenter.ledger
    try:
        for name in ("a", "b", "c"):
            await service.create(name, import_body(1))
            await service.update(name, ship_body())
        woken: list[int] = []
        ledger.on_outbox(lambda: woken.append(store.transactions))
        before, committed = store.transactions, contents_of(store)
        for name in ("a", "b", "c"):
            step(datacenter, leases, name)
        assert [r.state for r in ledger] == [JobState.RECEIVED] * 3
        assert contents_of(store) == committed
        assert woken == []
        await anyio.lowlevel.checkpoint()  # the end of the turn
        assert store.transactions == before + 1
        assert woken == [before + 1]
        assert {r.name: r.state for r in store.load_jobs().values()} == {
            name: JobState.RECEIVED for name in ("a", "b", "c")
        }
    finally:
        store.close()


async def test_a_customers_request_is_judged_on_the_job_as_committed_and_committed_at_once(
    postgresql_url: str, import_body: Body, ship_body: Body
) -> None:
    """A request on a job with a change of the turn not yet committed commits it first and
    is judged on it; its own change is committed before it answers."""
    datacenter, store, leases = shared(postgresql_url)
    service, ledger = datacenter.service, datacenter.ledger
    try:
        await service.create("a", import_body(1))
        await service.update("a", ship_body())
        step(datacenter, leases, "a")  # the datacenter's, not yet committed
        answer = await service.cancel("a")
        assert answer.state is JobState.RECEIVED  # judged on the received job
        stored = store.load_jobs()["a"]
        assert stored.job.properties.cancel_requested is True
        assert stored.sim.seq == ledger.get("a").sim.seq  # type: ignore[union-attr]
    finally:
        store.close()


async def test_a_step_another_workers_cancel_got_in_before_is_made_again_on_it(
    postgresql_url: str, import_body: Body, ship_body: Body
) -> None:
    """Another worker commits a cancel of job a between this worker's step on it (its
    package received) and the end of the turn: the step's guard fails, so it is made again
    on the job as committed; it takes the same course (received, cancelled or not), so it
    is kept, and with it the later step of job b at the same location. Nothing is undone;
    listeners hear of a as it now is; its seq goes on from the cancel's."""
    datacenter, store, leases = shared(postgresql_url)
    other, other_store, _ = shared(postgresql_url, "w2")
    service, ledger = datacenter.service, datacenter.ledger
    try:
        for name in ("a", "b"):
            await service.create(name, import_body(1))
            await service.update(name, ship_body())
        told: list[tuple[JobRecord | None, JobRecord | None]] = []
        ledger.watch(lambda before, after: told.append((before, after)))
        failures: list[list[str]] = []
        ledger.on_failure(lambda error, jobs: failures.append([j.name for j in jobs]))
        for name in ("a", "b"):
            step(datacenter, leases, name)
        await other.service.cancel("a")
        await anyio.lowlevel.checkpoint()
        assert failures == []
        stored = store.load_jobs()
        for name in ("a", "b"):
            held = ledger.get(name)
            assert held is not None
            assert encode(held) == encode(stored[name])
            assert stored[name].state is JobState.RECEIVED
        assert stored["a"].cancel_requested
        assert stored["a"].sim.seq == 4
        heard = [(b and b.cancel_requested, a and a.cancel_requested) for b, a in told]
        assert heard == [(False, False), (False, False), (False, True)]  # a, b, a again
        assert {m.seq for m in messages_of(store, "a")} == {1, 2, 3, 4}
    finally:
        store.close()
        other_store.close()


async def test_a_step_that_takes_another_course_on_the_job_as_committed_is_undone(
    postgresql_url: str, import_body: Body, ship_body: Body
) -> None:
    """Another worker commits a cancel of job a between this worker's start of a's drive
    and the end of the turn: made again on the cancelled job, the start is refused, so it
    is not committed, nor is the later step of job b at the same location (made on what a's
    left: a bay, say); both are undone in memory, a is read again as the store holds it,
    and the failure hooks hear of both. The turn's step of job c, at another location, is
    committed all the same (after the refused group, whose pipeline psycopg had prepared
    statements in)."""
    datacenter, store, leases = shared(postgresql_url)
    other, other_store, _ = shared(postgresql_url, "w2")
    service, ledger = datacenter.service, datacenter.ledger
    try:
        for name, location in (("a", "West US"), ("b", "West US"), ("c", "East US")):
            await service.create(name, {**import_body(1), "location": location})
            await service.update(name, ship_body())
            step(datacenter, leases, name)
        await anyio.lowlevel.checkpoint()  # received, committed
        told: list[tuple[JobRecord | None, JobRecord | None]] = []
        ledger.watch(lambda before, after: told.append((before, after)))
        failures: list[tuple[str, list[str]]] = []
        ledger.on_failure(
            lambda error, jobs: failures.append((type(error).__name__, [j.name for j in jobs]))
        )
        for name in ("a", "c", "b"):
            step(datacenter, leases, name, start_first_drive(ledger))
        await other.service.cancel("a")
        await anyio.lowlevel.checkpoint()
        assert failures == [("RecordChanged", ["a", "b"])]
        stored = store.load_jobs()
        for name in ("a", "b", "c"):
            held = ledger.get(name)
            assert held is not None
            assert encode(held) == encode(stored[name])
        assert [stored[name].state for name in ("b", "c")] == [
            JobState.RECEIVED,
            JobState.TRANSFERRING,
        ]
        assert stored["a"].cancel_requested
        assert stored["a"].drives[0].state is DriveState.RECEIVED  # never started
        # Listeners heard the start, its undoing, and the job as the other worker left it.
        heard = [
            (b and b.cancel_requested, a and a.drives[0].state)
            for b, a in told
            if (record := a or b) is not None and record.name == "a"
        ]
        assert heard == [
            (False, DriveState.TRANSFERRING),
            (False, DriveState.RECEIVED),
            (False, DriveState.RECEIVED),
        ]
        assert {m.seq for m in messages_of(store, "a")} == {1, 2, 3, 4}  # …, receive, cancel
    finally:
        store.close()
        other_store.close()


async def test_a_request_whose_commit_fails_gets_the_error_and_changes_nothing(
    postgresql_url: str, import_body: Body, ship_body: Body
) -> None:
    """The database gone: a customer's request raises StoreError and the ledger keeps the
    job as committed."""
    datacenter, store, _ = shared(postgresql_url)
    service, ledger = datacenter.service, datacenter.ledger
    try:
        await service.create("a", import_body(1))
        committed = ledger.get("a")
        store.close()
        with pytest.raises(StoreError):
            await service.update("a", ship_body())
        assert ledger.get("a") is committed
    finally:
        store.close()


async def test_taking_in_no_job_reads_nothing(postgresql_url: str, import_body: Body) -> None:
    """Hearing of other workers' changes, none of them of a job this worker drives, takes
    in nothing and reads nothing (every customer's commit is heard by every worker: most
    are of jobs another drives), as it would with the database gone."""
    datacenter, store, _ = shared(postgresql_url)
    ledger = datacenter.ledger
    try:
        await datacenter.service.create("a", import_body(1))
        store.close()
        assert ledger.refresh([]) == 0
        with pytest.raises(StoreError):
            ledger.refresh(["a"])
    finally:
        store.close()


def contents_of(store: JobStore) -> object:
    return (
        {name: encode(r) for name, r in store.load_jobs().items()},
        [e.id for e in store.history()],
    )


def messages_of(store: JobStore, job: str) -> list[StatusMessage]:
    return [e.message for e in store.history() if e.message.job == job]
