"""The store in PostgreSQL: jobs, outbox and metadata in a database several workers can share.

The schema is the worker's own: :data:`MIGRATIONS` lists it step by step, and opening the
store applies the steps a database has not had yet, each in its own transaction, under an
advisory lock (two workers starting at once do not both migrate), recording the version
reached in ``drivesim_schema``. A database whose version is newer than this code knows is
refused rather than written to.

Until jobs are leased to workers one by one, a worker holds its database alone: an
``exclusive`` store takes a session-level advisory lock on every connection it opens, and a
second worker on the same database is refused (a reader, such as a benchmark looking at a
running worker's jobs, opens it with ``exclusive=False``).

Each commit is one transaction, sent in pipeline mode (one round trip for its statements).
Like :class:`~worker.sqlite_store.SQLiteStore` it is synchronous: the call returns once the
server has committed. A connection the server dropped (a restart, a network cut) is opened
again on the next call; the call that saw it drop raises :class:`~worker.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import LiteralString

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from worker.errors import StoreError
from worker.logs import get_logger
from worker.record import JobRecord, decode, encode
from worker.status import StatusMessage
from worker.store import Commit, OutboxEntry

__all__ = ["MIGRATIONS", "PostgresStore", "display_url", "migrate"]

log = get_logger("drivesim.store")

#: The schema, one step per version: version N is the database after the first N steps.
MIGRATIONS: tuple[LiteralString, ...] = (
    """
    CREATE TABLE jobs (
        name     text PRIMARY KEY,
        position bigserial NOT NULL,
        record   bytea NOT NULL
    );
    CREATE TABLE outbox (
        id      bigserial PRIMARY KEY,
        job     text NOT NULL,
        seq     bigint NOT NULL,
        topic   text NOT NULL,
        payload bytea NOT NULL,
        qos     smallint NOT NULL,
        retain  boolean NOT NULL,
        acked   boolean NOT NULL DEFAULT false
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE NOT acked;
    CREATE TABLE meta (
        key   text PRIMARY KEY,
        value bytea NOT NULL
    );
    """,
)

#: Advisory lock keys: the migration's, and the one worker's that drives the database.
_MIGRATION_LOCK = 0x64726976  # "driv"
_WORKER_LOCK = 0x64726977

_ENTRY_COLUMNS = "id, job, seq, topic, payload, qos, retain"


class PostgresStore:
    """Jobs, outbox and metadata in the PostgreSQL database at ``url``
    (``postgresql://user@host:port/dbname``)."""

    def __init__(self, url: str, *, exclusive: bool = True) -> None:
        self.url = url
        self.exclusive = exclusive
        self._db: psycopg.Connection[TupleRow] | None = None
        self._closed = False
        try:
            with self._errors("opening the job store"):
                migrate(self._connection())
        except BaseException:
            self.close()
            raise

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._closed:
            raise psycopg.InterfaceError("the store is closed")
        if self._db is None or self._db.closed or self._db.broken:
            db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            if self.exclusive:
                locked = db.execute("SELECT pg_try_advisory_lock(%s)", (_WORKER_LOCK,)).fetchone()
                if locked is None or not locked[0]:
                    db.close()
                    raise StoreError(
                        f"another worker is using {display_url(self.url)}: one worker per "
                        "database (workers sharing one are not supported yet)"
                    )
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a PostgreSQL failure into a :class:`StoreError` naming what failed."""
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"{what} in {display_url(self.url)} failed: {exc}") from exc

    def load_jobs(self) -> dict[str, JobRecord]:
        with self._errors("loading jobs"):
            rows = self._connection().execute("SELECT record FROM jobs ORDER BY position")
            records = [decode(blob) for (blob,) in rows]
        return {record.name: record for record in records}

    def commit(self, commit: Commit) -> None:
        with self._errors("commit"):
            db = self._connection()
            with db.transaction(), db.pipeline(), db.cursor() as cur:
                if commit.put:
                    cur.executemany(
                        "INSERT INTO jobs (name, record) VALUES (%s, %s) "
                        "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                        [(r.name, encode(r)) for r in commit.put],
                    )
                if commit.delete:
                    cur.executemany(
                        "DELETE FROM jobs WHERE name = %s", [(n,) for n in commit.delete]
                    )
                if commit.messages:
                    cur.executemany(
                        "INSERT INTO outbox (job, seq, topic, payload, qos, retain) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        [
                            (m.job, m.seq, m.topic, m.payload, m.qos, m.retain)
                            for m in commit.messages
                        ],
                    )
                if commit.meta:
                    cur.executemany(
                        "INSERT INTO meta (key, value) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        list(commit.meta.items()),
                    )

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.pending_after(0, limit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        with self._errors("reading the outbox"):
            rows = self._connection().execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox "
                "WHERE NOT acked AND id > %s ORDER BY id LIMIT %s",
                (after, limit),
            )
            return [_entry(row) for row in rows]

    def ack(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=True)

    def requeue(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=False)

    def _mark(self, ids: Sequence[int], *, acked: bool) -> None:
        if not ids:
            return
        with self._errors("marking outbox entries"):
            self._connection().execute(
                "UPDATE outbox SET acked = %s WHERE id = ANY(%s)", (acked, list(ids))
            )

    def history(self) -> Iterator[OutboxEntry]:
        with self._errors("reading the history"):
            rows = self._connection().execute(f"SELECT {_ENTRY_COLUMNS} FROM outbox ORDER BY id")
            entries = [_entry(row) for row in rows]
        yield from entries

    def get_meta(self, key: str) -> bytes | None:
        with self._errors("reading metadata"):
            row = self._connection().execute("SELECT value FROM meta WHERE key = %s", (key,))
            found = row.fetchone()
        return None if found is None else bytes(found[0])

    def meta_keys(self, prefix: str) -> list[str]:
        with self._errors("reading metadata"):
            rows = self._connection().execute(
                "SELECT key FROM meta WHERE starts_with(key, %s) ORDER BY key", (prefix,)
            )
            return [str(key) for (key,) in rows]

    def close(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()


def migrate(db: psycopg.Connection[TupleRow]) -> int:
    """Bring ``db``'s schema to the newest version; the version it had before."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS drivesim_schema (version integer NOT NULL)")
        row = db.execute("SELECT version FROM drivesim_schema").fetchone()
        if row is None:
            db.execute("INSERT INTO drivesim_schema (version) VALUES (0)")
        version = 0 if row is None else int(row[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database's schema is version {version}; this drivesim knows up to "
                f"{len(MIGRATIONS)}: upgrade drivesim"
            )
        for step in MIGRATIONS[version:]:
            db.execute(step)
        if version < len(MIGRATIONS):
            db.execute("UPDATE drivesim_schema SET version = %s", (len(MIGRATIONS),))
            log.info("store migrated", version=len(MIGRATIONS), was=version)
    return version


def _entry(row: TupleRow) -> OutboxEntry:
    id_, job, seq, topic, payload, qos, retain = row
    return OutboxEntry(
        id=int(id_),
        message=StatusMessage(
            topic=str(topic),
            payload=bytes(payload),
            qos=int(qos),
            retain=bool(retain),
            job=str(job),
            seq=int(seq),
        ),
    )


def display_url(url: str) -> str:
    """``url`` as messages and logs show it: without its password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an invalid PostgreSQL URL)"
    info.pop("password", None)
    return make_conninfo("", **info)
