"""PostgresStore: its schema migrated by the store itself, atomic commits, durability across
reopen and across a crash of the server, and a reconnect after one; workers sharing it:
leases claimed once and fenced, guarded commits, outbox by location, commands claimed once,
each other's commits heard. (The store contract
itself runs against it with the other stores in ``test_store.py``.)"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from simulator.live.postgres import PostgreSQL
from tests.worker.conftest import record
from worker.errors import LeaseLost, RecordChanged, StoreError
from worker.postgres_store import _PENDING_HELD, MIGRATIONS, PostgresStore
from worker.record import encode
from worker.status import StatusMessage
from worker.store import Commit, JobStore


def message(job: str, seq: int, payload: object = b"{}") -> StatusMessage:
    return StatusMessage(
        topic=f"importexport/v1/jobs/{job}/state",
        payload=payload,  # type: ignore[arg-type]
        qos=1,
        retain=True,
        job=job,
        seq=seq,
    )


def seeded(store: JobStore) -> None:
    store.commit(
        Commit(
            put=[record("a"), record("b")],
            messages=[message("a", 1), message("b", 1)],
            meta={"sim_now": b"1.0"},
        )
    )


def contents(store: JobStore) -> object:
    return (
        {name: encode(r) for name, r in store.load_jobs().items()},
        [(e.id, e.message) for e in store.history()],
        [e.id for e in store.pending(100)],
        store.get_meta("sim_now"),
    )


def schema_version(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT version FROM drivesim_schema").fetchall()
    assert len(row) == 1
    return int(row[0][0])


@pytest.fixture
def db(postgresql_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgresql_url)
    yield store
    store.close()


def test_opening_creates_the_schema_once(postgresql_url: str) -> None:
    first = PostgresStore(postgresql_url)
    seeded(first)
    first.close()
    again = PostgresStore(postgresql_url)
    try:
        assert list(again.load_jobs()) == ["a", "b"]
    finally:
        again.close()
    assert schema_version(postgresql_url) == len(MIGRATIONS)


def test_workers_opening_one_database_at_once_migrate_it_once(postgresql_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(postgresql_url, worker_id=None))
        except BaseException as exc:  # any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert schema_version(postgresql_url) == len(MIGRATIONS)


def test_a_schema_newer_than_the_code_is_refused(postgresql_url: str) -> None:
    PostgresStore(postgresql_url).close()
    with psycopg.connect(postgresql_url) as conn:
        conn.execute("UPDATE drivesim_schema SET version = %s", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="upgrade drivesim"):
        PostgresStore(postgresql_url)


def test_a_commit_failing_midway_leaves_nothing(db: PostgresStore, postgresql_url: str) -> None:
    seeded(db)
    before = contents(db)
    with pytest.raises(StoreError):
        db.commit(Commit(put=[record("c")], messages=[message("c", 1, payload=None)]))
    assert contents(db) == before
    other = PostgresStore(postgresql_url, worker_id=None)
    try:
        assert contents(other) == before
    finally:
        other.close()
    db.commit(Commit(put=[record("c")], messages=[message("c", 1)]))
    assert list(db.load_jobs()) == ["a", "b", "c"]


def test_a_closed_store_refuses_every_call(postgresql_url: str) -> None:
    store = PostgresStore(postgresql_url)
    seeded(store)
    store.close()
    with pytest.raises(StoreError):
        store.commit(Commit(put=[record("c")]))
    with pytest.raises(StoreError):
        store.ack([1])


def test_a_second_store_on_the_database_sees_every_commit(
    db: PostgresStore, postgresql_url: str
) -> None:
    other = PostgresStore(postgresql_url, worker_id=None)
    try:
        seeded(db)
        db.ack([1])
        assert contents(other) == contents(db)
    finally:
        other.close()


def test_a_second_worker_with_the_same_id_is_refused_until_the_first_is_gone(
    db: PostgresStore, postgresql_url: str
) -> None:
    with pytest.raises(StoreError, match="another worker named 'dc-1'"):
        PostgresStore(postgresql_url)
    PostgresStore(postgresql_url, worker_id="dc-2").close()
    db.close()
    PostgresStore(postgresql_url).close()


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as raised:
        PostgresStore("postgresql://drivesim:s3cret@127.0.0.1:1/none?connect_timeout=2")
    assert "s3cret" not in str(raised.value)
    assert "user=drivesim" in str(raised.value)
    assert "host=127.0.0.1 port=1" in str(raised.value)


@pytest.fixture
def own_postgresql() -> Iterator[PostgreSQL]:
    """A server of the test's own, to kill and restart."""
    workdir = Path(tempfile.mkdtemp(prefix="drivesim-postgresql-"))
    workdir.chmod(0o755)
    server = PostgreSQL(workdir / "server", durable=True)
    server.start()
    yield server
    server.stop()


def test_commits_survive_a_server_crash_and_the_store_reconnects(
    own_postgresql: PostgreSQL,
) -> None:
    store = PostgresStore(own_postgresql.url())
    try:
        seeded(store)
        before = contents(store)
        own_postgresql.kill()
        with pytest.raises(StoreError):
            store.commit(Commit(put=[record("c")], messages=[message("c", 1)]))
        own_postgresql.start()
        assert contents(store) == before
        store.commit(Commit(put=[record("c")], messages=[message("c", 1)]))
        assert list(store.load_jobs()) == ["a", "b", "c"]
    finally:
        store.close()


# -- several workers on one database ---------------------------------------------------


@pytest.fixture
def workers(postgresql_url: str) -> Iterator[list[PostgresStore]]:
    """Two workers that have joined a datacenter of three locations, leases of 30 s."""
    stores = [PostgresStore(postgresql_url, worker_id=f"w{i}") for i in (1, 2)]
    for store in stores:
        store.join(["East US", "North Europe", "West US"], lease=30.0)
    yield stores
    for store in stores:
        store.close()


def expire(url: str, location: str) -> None:
    """The lease on ``location`` runs out (as if its holder had stopped renewing it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE leases SET expires_at = clock_timestamp() - interval '1 second' "
            "WHERE location = %s",
            (location,),
        )


def test_leases_are_claimed_by_one_worker_each(workers: list[PostgresStore]) -> None:
    w1, w2 = workers
    first = w1.claim(2)
    second = w2.claim(5)
    assert [lease.location for lease in first] == ["East US", "North Europe"]
    assert [lease.location for lease in second] == ["West US"]
    assert w1.claim(1) == []
    assert w1.renew() == first
    assert w1.live_workers() == 2


def test_a_run_out_lease_is_taken_over_with_a_new_epoch_and_fences_its_old_holder(
    workers: list[PostgresStore], postgresql_url: str
) -> None:
    w1, w2 = workers
    (lease,) = w1.claim(1)
    w1.commit(Commit(put=[record("a")], guard=("a", None), fence=lease))
    expire(postgresql_url, lease.location)
    before = contents(w1)
    with pytest.raises(LeaseLost, match="no longer w1's"):
        w1.commit(
            Commit(
                put=[record("a", seq=2)],
                guard=("a", 1),
                messages=[message("a", 2)],
                meta={"sim_now": b"9.0"},
                fence=lease,
            )
        )
    assert contents(w1) == before  # nothing of the refused commit stays
    (taken,) = w2.claim(1)
    assert taken.location == lease.location
    assert taken.epoch == lease.epoch + 1
    assert w1.renew() == []  # the old holder learns it at its next renewal too
    w2.commit(Commit(put=[record("a", seq=2)], guard=("a", 1), fence=taken))
    assert w1.load_jobs()["a"].sim.seq == 2


def test_a_guarded_commit_fails_when_another_worker_committed_first(
    workers: list[PostgresStore],
) -> None:
    w1, w2 = workers
    w1.commit(Commit(put=[record("a")], guard=("a", None), messages=[message("a", 1)]))
    w2.commit(Commit(put=[record("a", seq=2)], guard=("a", 1), messages=[message("a", 2)]))
    before = contents(w1)
    with pytest.raises(RecordChanged):
        w1.commit(Commit(put=[record("a", seq=2)], guard=("a", 1), messages=[message("a", 2)]))
    with pytest.raises(RecordChanged):
        w1.commit(Commit(put=[record("a")], guard=("a", None)))
    with pytest.raises(RecordChanged):
        w1.commit(Commit(delete=["a"], guard=("a", 1)))
    assert contents(w1) == before


def test_a_worker_reads_the_outbox_of_the_locations_it_holds(
    workers: list[PostgresStore],
) -> None:
    w1, w2 = workers
    (east,) = w1.claim(1)
    w2.claim(1)
    east_job = record("e")
    east_job.job.location = east.location
    w2.commit(Commit(put=[east_job], guard=("e", None), messages=[message("e", 1)]))
    w2.commit(Commit(put=[record("w")], guard=("w", None), messages=[message("w", 1)]))
    assert [e.message.job for e in w1.pending(10)] == ["e"]
    assert w2.pending(10) == []  # it holds North Europe; West US is nobody's yet
    w2.release(["North Europe"])
    assert [lease.location for lease in w2.claim(3)] == ["North Europe", "West US"]
    assert [e.message.job for e in w2.pending(10)] == ["w"]


def test_a_command_is_claimed_once(workers: list[PostgresStore]) -> None:
    w1, w2 = workers
    assert w1.claim_command("k1")
    assert not w2.claim_command("k1")
    assert w2.claim_command("k2")


def test_workers_hear_of_each_others_customers_commits_and_not_their_own(
    workers: list[PostgresStore],
) -> None:
    """w2 hears of w1's commits of a and b, not of its own, nor of w1's fenced commit of
    f (a datacenter's step, made by the one worker driving its location)."""
    w1, w2 = workers
    (west,) = [lease for lease in w1.claim(3) if lease.location == "West US"]

    async def main() -> list[list[tuple[str, str]] | None]:
        heard: list[list[tuple[str, str]] | None] = []
        async with anyio.create_task_group() as tg:

            async def listen() -> None:
                async with contextlib.aclosing(w2.changed_jobs()) as changes:
                    async for names in changes:
                        heard.append(names)
                        if names == [("West US", "b")]:
                            tg.cancel_scope.cancel()

            tg.start_soon(listen)
            await anyio.sleep(0.5)  # listening
            w2.commit(Commit(put=[record("own")], guard=("own", None)))
            w1.commit(Commit(put=[record("a")], guard=("a", None)))
            w1.commit(Commit(put=[record("f")], guard=("f", None), fence=west))
            w1.commit(Commit(put=[record("b")], guard=("b", None)))
            with anyio.fail_after(10):
                await anyio.sleep_forever()
        return heard

    assert anyio.run(main) == [[("West US", "a")], [("West US", "b")]]


def test_a_worker_reads_no_further_than_an_entry_it_has_not_yet_settled(
    workers: list[PostgresStore],
) -> None:
    """With several writers, ids are not commit order: reading on past the last id handed
    over could skip an entry committed late, so a worker always reads from the oldest."""
    w1, _ = workers
    (east,) = w1.claim(1)
    job = record("e")
    job.job.location = east.location
    w1.commit(Commit(put=[job], guard=("e", None), messages=[message("e", 1)]))
    (entry,) = w1.pending(10)
    assert w1.pending_after(entry.id, 10) == []
    assert w1.pending_after(0, 10) == [entry]


LOCATIONS = ["East US", "North Europe", "West US"]


def blocks_read(db: psycopg.Connection[tuple[Any, ...]], location: str, batch: int) -> int:
    """The buffers a worker's read of ``batch`` pending entries of ``location`` touches (the
    read's own query, with the parameters the store gives it; a function's inner reads
    count), the second time: the first in a session also reads the catalog."""
    params = ([location, ""], 0, batch, batch)
    db.execute(_PENDING_HELD, params)
    row = db.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + _PENDING_HELD, params).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


@pytest.mark.parametrize("statistics", ["none", "taken", "stale"])
def test_reading_the_outbox_reads_a_batch_not_the_history_nor_the_backlog(
    workers: list[PostgresStore], postgresql_url: str, statistics: str
) -> None:
    """A worker's read of the outbox reads a batch of its location's pending entries along
    an index, however many entries were published before (300,000: the primary key walked
    through them took 20 ms a read) and however many are pending at its own or other
    locations (60,000: read and sorted whole, 14 to 36 ms a read), whatever the planner's
    statistics say: none yet (a fresh database's backlog), taken now, or taken while many
    more were pending."""
    w1, _ = workers
    (held,) = w1.claim(1)
    history, pending, batch = 300_000, 60_000, 250
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO outbox (job, seq, topic, payload, qos, retain, acked, location) "
            "SELECT 'j' || i, 1, 't', repeat('x', 300)::bytea, 1, false, i <= %s, "
            "(%s::text[])[1 + i %% 3] FROM generate_series(1, %s) i",
            (history, LOCATIONS, history + pending),
        )
        if statistics == "stale":
            db.execute(
                "INSERT INTO outbox (job, seq, topic, payload, qos, retain, location) "
                "SELECT 'k' || i, 1, 't', '', 1, false, %s FROM generate_series(1, 200000) i",
                (held.location,),
            )
        if statistics != "none":
            db.execute("ANALYZE outbox")
        if statistics == "stale":
            db.execute("UPDATE outbox SET acked = true WHERE job LIKE 'k%%'")
        read = blocks_read(db, held.location, batch)
    # A batch of 250 entries (about 300 bytes each) lies on about 40 blocks.
    assert read <= 100
    ids = range(history + 1, history + pending + 1)
    expected = [i for i in ids if LOCATIONS[i % 3] == held.location]
    assert [int(e.message.job[1:]) for e in w1.pending(batch)] == expected[:batch]


def test_a_worker_holding_several_locations_reads_their_entries_in_id_order(
    workers: list[PostgresStore], postgresql_url: str
) -> None:
    """Read location by location, the pending entries of every location held, and of none
    (a version-1 database's), come out merged in id order, each once."""
    w1, _ = workers
    held = {lease.location for lease in w1.claim(2)}
    spread = [*LOCATIONS, ""]
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO outbox (job, seq, topic, payload, qos, retain, location) "
            "SELECT 'j' || i, 1, 't', '', 1, false, (%s::text[])[1 + i %% 4] "
            "FROM generate_series(1, 2000) i",
            (spread,),
        )
    expected = [i for i in range(1, 2001) if spread[i % 4] in held | {""}]
    assert [int(e.message.job[1:]) for e in w1.pending(250)] == expected[:250]


def test_acknowledging_reads_the_entries_not_the_outbox_as_it_has_grown(
    workers: list[PostgresStore],
) -> None:
    """An acknowledgement is planned for the outbox as it is: one prepared while the outbox
    was nearly empty and kept (a sequential scan) read the whole outbox for each
    acknowledgement of a few entries, a cost growing with every message published."""
    w1, _ = workers
    (held,) = w1.claim(1)
    for i in range(12):  # psycopg prepares a statement on its fifth execution
        w1.commit(Commit(messages=[message(f"j{i}-{k}", 1) for k in range(20)]))
        w1.ack([e.id for e in w1.pending(10)])
    db = w1._connection()
    db.execute(
        "INSERT INTO outbox (job, seq, topic, payload, qos, retain, acked, location) "
        "SELECT 'h' || i, 1, 't', repeat('x', 300)::bytea, 1, false, true, %s "
        "FROM generate_series(1, 100000) i",
        (held.location,),
    )
    scans = "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'outbox'"
    ids = [e.id for e in list(w1.history())[:3]]
    db.execute("BEGIN")  # the store's connection, whose scans are counted till its end
    before = db.execute(scans).fetchone()
    w1.ack(ids)
    after = db.execute(scans).fetchone()
    db.execute("ROLLBACK")
    assert before is not None
    assert after is not None
    assert after[0] == before[0]  # no sequential scan
    assert after[1] > before[1]
