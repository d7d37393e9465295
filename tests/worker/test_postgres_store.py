"""PostgresStore: its schema migrated by the store itself, atomic commits, durability across
reopen and across a crash of the server, and a reconnect after one. (The store contract
itself runs against it with the other stores in ``test_store.py``.)"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from simulator.live.postgres import PostgreSQL
from tests.worker.conftest import record
from worker.errors import StoreError
from worker.postgres_store import MIGRATIONS, PostgresStore
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
            stores.append(PostgresStore(postgresql_url, exclusive=False))
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
    other = PostgresStore(postgresql_url, exclusive=False)
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
    other = PostgresStore(postgresql_url, exclusive=False)
    try:
        seeded(db)
        db.ack([1])
        assert contents(other) == contents(db)
    finally:
        other.close()


def test_a_second_worker_on_the_database_is_refused_until_the_first_is_gone(
    db: PostgresStore, postgresql_url: str
) -> None:
    with pytest.raises(StoreError, match="another worker is using"):
        PostgresStore(postgresql_url)
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
