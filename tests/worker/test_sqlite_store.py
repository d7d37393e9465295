"""SQLiteStore: atomic commits, durability across reopen, WAL mode, checkpoints off the
writer's thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.conftest import record
from worker.errors import StoreError
from worker.model import JobState
from worker.record import encode
from worker.service import JobService
from worker.sqlite_store import CHECKPOINT_INTERVAL, SQLiteStore
from worker.status import StatusMessage
from worker.store import Commit, JobStore

Contents = Callable[[JobService | JobStore], object]


def message(job: str, seq: int, payload: Any = b"{}") -> StatusMessage:
    return StatusMessage(
        topic=f"importexport/v1/jobs/{job}/state",
        payload=payload,
        qos=1,
        retain=True,
        job=job,
        seq=seq,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
def db(path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(path)
    yield store
    store.close()


def seeded(store: SQLiteStore) -> None:
    store.commit(
        Commit(
            put=[record("a"), record("b")],
            messages=[message("a", 1), message("b", 1)],
            meta={"sim_now": b"1.0"},
        )
    )


def test_wal_mode_is_on(db: SQLiteStore, path: Path) -> None:
    """The file is in WAL journal mode."""
    with sqlite3.connect(path) as other:
        (mode,) = other.execute("PRAGMA journal_mode").fetchone()
    other.close()
    assert mode == "wal"


@pytest.mark.parametrize(
    "bad",
    [
        Commit(
            put=[record("c")],
            delete=["a"],
            messages=[message("c", 1), message("c", 2, payload=None)],
        ),
        Commit(put=[record("c")], messages=[message("c", 1, payload=object())]),
        Commit(put=[record("c")], delete=["b"], messages=[message("c", 1)], meta={"k": object()}),  # type: ignore[dict-item]
    ],
    ids=["null-payload", "object-payload", "object-meta"],
)
def test_a_commit_failing_midway_leaves_nothing(
    db: SQLiteStore, path: Path, contents: Contents, bad: Commit
) -> None:
    """A commit failing midway raises StoreError and leaves connection and file unchanged."""
    seeded(db)
    before = contents(db)
    with pytest.raises(StoreError):
        db.commit(bad)
    assert contents(db) == before
    other = SQLiteStore(path)
    try:
        assert contents(other) == before
    finally:
        other.close()


def test_store_still_works_after_a_failed_commit(db: SQLiteStore) -> None:
    """After a failed commit the next one goes through."""
    seeded(db)
    with pytest.raises(StoreError):
        db.commit(Commit(put=[record("c")], messages=[message("c", 1, payload=None)]))
    db.commit(Commit(put=[record("c")], messages=[message("c", 1)]))
    assert list(db.load_jobs()) == ["a", "b", "c"]
    assert [e.message.job for e in db.pending(10)] == ["a", "b", "c"]


def test_commit_to_a_closed_store_raises_store_error(path: Path, contents: Contents) -> None:
    """A commit on a closed connection is StoreError, and the file is left as it was."""
    store = SQLiteStore(path)
    seeded(store)
    before = contents(store)
    store.close()
    with pytest.raises(StoreError):
        store.commit(Commit(put=[record("c")], messages=[message("c", 1)]))
    with pytest.raises(StoreError):
        store.ack([1])
    reopened = SQLiteStore(path)
    try:
        assert contents(reopened) == before
    finally:
        reopened.close()


def test_reopen_finds_the_same_jobs_outbox_and_meta(path: Path) -> None:
    """Jobs, pending and acknowledged entries, and metadata survive closing the file."""
    store = SQLiteStore(path)
    seeded(store)
    store.commit(
        Commit(
            put=[record("a", JobState.SHIPPING, seq=2)],
            delete=["b"],
            messages=[message("a", 2)],
            meta={"sim_now": b"2.0"},
        )
    )
    first = store.pending(1)[0]
    store.ack([first.id])
    jobs = {n: encode(r) for n, r in store.load_jobs().items()}
    pending = store.pending(10)
    history = list(store.history())
    store.close()

    reopened = SQLiteStore(path)
    try:
        assert {n: encode(r) for n, r in reopened.load_jobs().items()} == jobs
        assert reopened.pending(10) == pending
        assert list(reopened.history()) == history
        assert reopened.get_meta("sim_now") == b"2.0"
        assert len(history) == 3
        assert len(pending) == 2
    finally:
        reopened.close()


def test_durable_store_works(tmp_path: Path) -> None:
    """durable=True (synchronous=FULL) stores and reloads like the default."""
    store = SQLiteStore(tmp_path / "durable.db", durable=True)
    try:
        seeded(store)
        assert list(store.load_jobs()) == ["a", "b"]
    finally:
        store.close()


def test_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    """A path that cannot be opened is StoreError naming the path."""
    bad = tmp_path / "missing-dir" / "jobs.db"
    with pytest.raises(StoreError, match="missing-dir"):
        SQLiteStore(bad)


def test_a_second_connection_sees_commits(db: SQLiteStore, path: Path) -> None:
    """A reader opened on the same file sees what the writer committed."""
    seeded(db)
    reader = SQLiteStore(path)
    try:
        db.commit(Commit(put=[record("z")]))
        assert list(reader.load_jobs()) == ["a", "b", "z"]
    finally:
        reader.close()


def test_ack_and_requeue_touch_exactly_the_given_entries(db: SQLiteStore) -> None:
    """ack and requeue take ids in any order, with gaps and repeats: exactly those entries
    change, and pending lists the rest oldest first."""
    db.commit(Commit(messages=[message("a", seq) for seq in range(1, 11)]))
    ids = [e.id for e in db.pending(100)]
    db.ack([ids[6], ids[2], ids[3], ids[2], ids[4], ids[9]])
    assert [e.id for e in db.pending(100)] == [ids[i] for i in (0, 1, 5, 7, 8)]
    db.ack([ids[0], ids[1], ids[5], ids[7], ids[8]])
    assert db.pending(100) == []
    db.requeue([ids[8], ids[3], ids[4]])
    assert [e.id for e in db.pending(100)] == [ids[3], ids[4], ids[8]]
    db.ack([])
    db.requeue([])
    assert [e.message.seq for e in db.pending(100)] == [4, 5, 9]
    assert len(list(db.history())) == 10


def test_pending_after_reads_on_from_an_id(db: SQLiteStore) -> None:
    """pending_after lists the unacknowledged entries above an id, oldest first, up to
    the limit: the relay's read of the next batch while one is in flight."""
    db.commit(Commit(messages=[message("a", seq) for seq in range(1, 8)]))
    entries = db.pending(100)
    ids = [e.id for e in entries]
    db.ack([ids[4]])
    assert db.pending_after(ids[1], 100) == [entries[i] for i in (2, 3, 5, 6)]
    assert db.pending_after(ids[1], 2) == entries[2:4]
    assert db.pending_after(ids[6], 100) == []
    assert db.pending_after(0, 3) == db.pending(3) == entries[:3]


def test_a_busy_writers_wal_starts_over_without_commits_checkpointing(path: Path) -> None:
    """A commit every millisecond or so for twelve checkpoint rounds, far below the
    backstop at which a commit would checkpoint: the store's thread checkpoints and the
    WAL starts over, so its file stops growing after the first rounds (without the
    restarts it would triple from the first third of the run to its end)."""
    store = SQLiteStore(path)
    wal = Path(f"{path}-wal")
    blob = bytes(range(256)) * 16  # 4 kB a message
    seq, third, started = 0, 0, time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < 12 * CHECKPOINT_INTERVAL:
            seq += 1
            store.commit(Commit(messages=[message("a", seq, blob)], meta={"sim_now": b"1"}))
            if not third and elapsed > 4 * CHECKPOINT_INTERVAL:
                third = wal.stat().st_size
            time.sleep(0.001)
        end = wal.stat().st_size
    finally:
        store.close()
    assert 0 < third <= end < 2 * third


def test_closing_a_store_stops_its_checkpoint_thread(path: Path) -> None:
    store = SQLiteStore(path)
    named = f"checkpoint {path}"
    assert named in {t.name for t in threading.enumerate()}
    store.close()
    assert named not in {t.name for t in threading.enumerate()}
