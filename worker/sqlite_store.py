"""The embedded default store: one SQLite file in WAL mode.

Commits run :mod:`sqlite3` directly in the event loop. A commit takes tens of
microseconds, and keeping it off threads is what lets a seeded run in virtual time
replay exactly: a wait on a thread would let the virtual clock jump while it is pending.

Checkpoints, which copy the WAL into the database file and wait for the disk to sync it,
run mostly on a thread of the store's own (:class:`_Checkpointer`): left to SQLite, they
would run inside a commit each time the WAL passed 1,000 pages, and on a busy disk one
such sync holds the loop for a tenth of a second or more.

``synchronous=NORMAL`` in WAL mode makes every commit durable against a crash of the
process (``SIGKILL`` included); only a power cut may lose the last commits. Pass
``durable=True`` for ``synchronous=FULL``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from worker.errors import StoreError
from worker.logs import get_logger
from worker.record import JobRecord, decode, encode
from worker.status import StatusMessage
from worker.store import Commit, OutboxEntry

__all__ = ["SQLiteStore"]

log = get_logger("drivesim.store")

#: Seconds between the checkpointer's rounds.
CHECKPOINT_INTERVAL = 0.25
#: Pages of WAL at which a commit checkpoints after all: only if the checkpointer has
#: fallen this far behind (SQLite's own default is 1,000).
BACKSTOP_PAGES = 16_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name   TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job     TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL,
    acked   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE acked = 0;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


class SQLiteStore:
    """Jobs, outbox and metadata in one SQLite file."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = str(path)
        try:
            synchronous = "FULL" if durable else "NORMAL"
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            # An UPDATE over a range of ids collects the rows first: in memory, not in a
            # temporary file (which would write more than the WAL does).
            self._db.execute("PRAGMA temp_store=MEMORY")
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            self._db.executescript(_SCHEMA)
            self._checkpointer = _Checkpointer(self.path, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the job store at {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a SQLite failure into a :class:`StoreError` naming what failed."""
        try:
            yield
        except (sqlite3.Error, OverflowError) as exc:
            raise StoreError(f"{what} in {self.path} failed: {exc}") from exc

    def load_jobs(self) -> dict[str, JobRecord]:
        with self._errors("loading jobs"):
            rows = self._db.execute("SELECT name, record FROM jobs ORDER BY rowid").fetchall()
        return {name: decode(blob) for name, blob in rows}

    def commit(self, commit: Commit) -> None:
        db = self._db
        with self._errors("commit"):
            db.execute("BEGIN IMMEDIATE")
            try:
                if commit.put:
                    db.executemany(
                        "INSERT INTO jobs (name, record) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                        [(r.name, encode(r)) for r in commit.put],
                    )
                if commit.delete:
                    db.executemany("DELETE FROM jobs WHERE name = ?", [(n,) for n in commit.delete])
                if commit.messages:
                    db.executemany(
                        "INSERT INTO outbox (job, seq, topic, payload, qos, retain) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (m.job, m.seq, m.topic, m.payload, m.qos, int(m.retain))
                            for m in commit.messages
                        ],
                    )
                if commit.meta:
                    db.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        list(commit.meta.items()),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        self._checkpointer.after_commit(db)

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.pending_after(0, limit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unacknowledged entries with ids above ``after``, oldest first.

        The relay reads the next batch with it while the one before is still in flight.
        The partial index ``outbox_pending`` holds exactly the unacknowledged ids, so this
        reads no acknowledged row.
        """
        with self._errors("reading the outbox"):
            rows = self._db.execute(
                "SELECT id, job, seq, topic, payload, qos, retain FROM outbox "
                "WHERE acked = 0 AND id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_entry(row) for row in rows]

    def ack(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=True)

    def _mark(self, ids: Sequence[int], *, acked: bool) -> None:
        """Set ``acked`` on outbox entries, in one transaction (not one per row), with one
        statement per run of consecutive ids (a batch is usually a single run)."""
        runs = _runs(ids)
        if not runs:
            return
        flag = int(acked)
        with self._errors("marking outbox entries"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "UPDATE outbox SET acked = ? WHERE id BETWEEN ? AND ?",
                    [(flag, first, last) for first, last in runs],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self._checkpointer.after_commit(self._db)

    def requeue(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=False)

    def history(self) -> Iterator[OutboxEntry]:
        with self._errors("reading the history"):
            rows = self._db.execute(
                "SELECT id, job, seq, topic, payload, qos, retain FROM outbox ORDER BY id"
            )
        for row in rows:
            yield _entry(row)

    def get_meta(self, key: str) -> bytes | None:
        with self._errors("reading metadata"):
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def meta_keys(self, prefix: str) -> list[str]:
        with self._errors("reading metadata"):
            rows = self._db.execute(
                "SELECT key FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        return [key for (key,) in rows]

    def close(self) -> None:
        self._checkpointer.stop()
        self._db.close()


class _Checkpointer:
    """Checkpoints the WAL from a thread, on a connection of its own.

    A checkpoint in ``PASSIVE`` mode copies what the WAL holds and syncs the database file
    without stopping the writer, but SQLite starts the WAL over only when a write begins
    with every frame copied: while the writer keeps committing, that never happens and the
    WAL grows without end. So the thread copies the bulk, and the writer, after its next
    commit, copies the few frames written meanwhile (:meth:`after_commit`); the commit
    after that starts the WAL over. The writer waits only for that small checkpoint.
    """

    def __init__(self, path: str, *, synchronous: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Its syncs are the store's: the same mode as the writer's connection.
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._copied = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL):
                _checkpoint(self._db)
                self._copied.set()
        except sqlite3.Error as exc:
            # Commits still checkpoint at the backstop: nothing is lost, the loop just
            # pays for the syncs again.
            log.warning("checkpoint thread stopped", error=str(exc))
        finally:
            self._db.close()

    def after_commit(self, db: sqlite3.Connection) -> None:
        """On the writer's connection, right after a commit: copy the frames the thread's
        last round left behind, if it has had one since."""
        if self._copied.is_set():
            self._copied.clear()
            try:
                _checkpoint(db)
            except sqlite3.Error as exc:  # the commit stands; the next round tries again
                log.warning("checkpoint failed", error=str(exc))

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


def _checkpoint(db: sqlite3.Connection) -> None:
    # fetchall: a statement left open would keep a read lock, and the WAL could not restart.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """``ids`` as ranges ``(first, last)`` of consecutive integers, in ascending order."""
    if not ids:
        return []
    ordered = sorted(set(ids))
    runs = []
    first = last = ordered[0]
    for i in ordered[1:]:
        if i != last + 1:
            runs.append((first, last))
            first = i
        last = i
    runs.append((first, last))
    return runs


def _entry(row: tuple[int, str, int, str, bytes, int, int]) -> OutboxEntry:
    id_, job, seq, topic, payload, qos, retain = row
    message = StatusMessage(
        topic=topic, payload=bytes(payload), qos=qos, retain=bool(retain), job=job, seq=seq
    )
    return OutboxEntry(id_, message)
