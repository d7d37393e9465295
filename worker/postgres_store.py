"""The store in PostgreSQL: jobs, outbox and metadata in a database several workers share.

The schema is the worker's own: :data:`MIGRATIONS` lists it step by step, and opening the
store applies the steps a database has not had yet, under an advisory lock (two workers
starting at once do not both migrate), recording the version reached in
``drivesim_schema``. A database whose version is newer than this code knows is refused
rather than written to.

Several workers share one database (:class:`~worker.store.SharedStore`). Each location is
driven by the worker holding its lease (a row of ``leases``: owner, epoch, expiry on the
database's clock); a worker takes free or run-out leases with ``FOR UPDATE SKIP LOCKED``
and renews its own. Every commit is checked twice inside its transaction:

- its **guard**: the job still has the ``seq`` the change was judged against (a customer's
  cancel committed by another worker meanwhile makes it fail with
  :class:`~worker.errors.RecordChanged`, and the change is judged again);
- its **fence**, for the datacenter's own steps: the lease it runs under is still this
  worker's, unexpired, and is held ``FOR SHARE`` until the commit ends, so a takeover waits
  for it. A worker whose lease lapsed commits nothing more (:class:`~worker.errors.LeaseLost`).

A customer's commit (one without a fence) and a deletion tell the other workers with
``NOTIFY drivesim_jobs`` (the job's location and name), so the owner of a job hears of a
cancel within milliseconds; the datacenter's other commits tell no one (only their
location's holder keeps moving jobs in memory). The
outbox entries a worker reads are those of the locations it holds, so each goes out from
the one worker driving its job, in ``seq`` order; a worker taking a location over takes
its unpublished entries with it.
Two workers with one ``worker_id`` are refused (a session advisory lock per id).

Each commit is one transaction in one round trip (see :meth:`PostgresStore.commit_many`).
The store is synchronous, like :class:`~worker.sqlite_store.SQLiteStore`: a call returns
once the server has answered. A connection the server dropped (a restart, a network cut) is
opened again on the next call; the call that saw it drop raises
:class:`~worker.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import LiteralString

import anyio
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from worker.errors import LeaseLost, RecordChanged, StoreError
from worker.logs import get_logger
from worker.record import JobRecord, decode, encode
from worker.status import StatusMessage
from worker.store import Commit, Lease, OutboxEntry

__all__ = ["CHANNEL", "MIGRATIONS", "PostgresStore", "display_url", "migrate"]

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
    # Several workers: each job's seq and location beside its record, each outbox entry's
    # location, the leases on locations and the workers that hold them.
    """
    ALTER TABLE jobs ADD COLUMN location text NOT NULL DEFAULT '',
                     ADD COLUMN seq bigint NOT NULL DEFAULT 0;
    CREATE INDEX jobs_location ON jobs (location);
    ALTER TABLE outbox ADD COLUMN location text NOT NULL DEFAULT '',
                       ADD COLUMN worker text,
                       ADD COLUMN epoch bigint;
    DROP INDEX outbox_pending;
    CREATE INDEX outbox_pending ON outbox (location, id) WHERE NOT acked;
    CREATE TABLE leases (
        location   text PRIMARY KEY,
        owner      text,
        epoch      bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT '-infinity'
    );
    CREATE TABLE workers (
        id      text PRIMARY KEY,
        seen_at timestamptz NOT NULL
    );
    CREATE TABLE commands (
        key text PRIMARY KEY,
        at  timestamptz NOT NULL
    );
    """,
    # A commit whose fence or guard does not hold fails inside the database, undoing the
    # rest of its transaction: raised with the SQLSTATE it is given.
    """
    CREATE FUNCTION drivesim_refuse(code text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING ERRCODE = code, MESSAGE = 'commit refused: ' || code;
    END $$;
    """,
    # The pending entries in id order, whatever their location: a read of the outbox
    # filters the few pending by location, where (location, id) left the planner walking
    # the primary key through every entry ever acknowledged.
    """
    DROP INDEX outbox_pending;
    CREATE INDEX outbox_pending ON outbox (id) WHERE NOT acked;
    """,
    # And by location: a worker reads its locations' pending entries location by location
    # along this index, in id order, whatever the planner believes of how many are pending
    # (believing them few, it read every pending entry of the location and sorted them to
    # keep the first: 14 to 36 ms a read with 20,000 pending), planned on each call for the
    # outbox as it is then. (Building the index holds the outbox's writes for as long.)
    """
    CREATE INDEX outbox_pending_location ON outbox (location, id) WHERE NOT acked;
    CREATE FUNCTION drivesim_pending(locations text[], after bigint, n bigint)
    RETURNS SETOF outbox LANGUAGE plpgsql STABLE
    SET enable_bitmapscan = off SET plan_cache_mode = force_custom_plan AS $$
    DECLARE
        held text;
    BEGIN
        FOR held IN SELECT DISTINCT unnest(locations) LOOP
            RETURN QUERY SELECT * FROM outbox
                WHERE NOT acked AND location = held AND id > after ORDER BY id LIMIT n;
        END LOOP;
    END
    $$;
    """,
)

#: The channel on which every commit that changes a job is announced: "worker job".
CHANNEL = "drivesim_jobs"

#: Advisory lock keys: the migration's, and (with the id's hash) each worker's.
_MIGRATION_LOCK = 0x64726976  # "driv"
_WORKER_LOCK = 0x64726977

_ENTRY_COLUMNS = "id, job, seq, topic, payload, qos, retain"
#: The first pending entries of the locations held (and of none: a pre-version-2
#: database's): ``drivesim_pending(locations, after, limit)``.
_PENDING_HELD: LiteralString = (
    f"SELECT {_ENTRY_COLUMNS} FROM drivesim_pending(%s, %s, %s) ORDER BY id LIMIT %s"
)

#: The SQLSTATEs with which ``drivesim_refuse`` fails a commit, and what they mean.
_LEASE_LOST = "DSLSE"
_RECORD_CHANGED = "DSSEQ"
_REFUSALS: dict[str, type[LeaseLost | RecordChanged]] = {
    _LEASE_LOST: LeaseLost,
    _RECORD_CHANGED: RecordChanged,
}
#: Ends a guarded write (a CTE named ``done`` returning its rows): refuse if none was.
_UNLESS_DONE: LiteralString = "SELECT drivesim_refuse(%s) WHERE NOT EXISTS (SELECT FROM done)"

#: libpq's settings for a network that fails: give up connecting after 10 s, and drop a
#: connection whose peer went silent (keepalives unanswered for about 11 s, or data sent
#: and not acknowledged for 10 s) rather than wait on it for the kernel's quarter of an
#: hour, so that a worker cut off from its database finds out about when its leases run
#: out (the default lease is 10 s).
_NETWORK = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class PostgresStore:
    """Jobs, outbox and metadata in the PostgreSQL database at ``url``
    (``postgresql://user@host:port/dbname``), as worker ``worker_id``. A ``worker_id`` of
    None opens it to read (a benchmark looking at running workers' jobs)."""

    def __init__(self, url: str, *, worker_id: str | None = "dc-1") -> None:
        self.url = url
        self.worker_id = worker_id or ""
        self._db: psycopg.Connection[TupleRow] | None = None
        self._closed = False
        self._lease = 0.0
        #: The locations of the datacenter, once this worker has joined (see :meth:`join`).
        self._locations: list[str] | None = None
        #: The locations this worker holds, by the epoch of its lease.
        self._held: dict[str, int] = {}
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
            db = psycopg.connect(
                make_conninfo(self.url, **_NETWORK),
                autocommit=True,
                application_name=f"drivesim {self.worker_id}".strip(),
            )
            if self.worker_id:
                locked = db.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                    (_WORKER_LOCK, self.worker_id),
                ).fetchone()
                if locked is None or not locked[0]:
                    db.close()
                    raise StoreError(
                        f"another worker named {self.worker_id!r} is using "
                        f"{display_url(self.url)}: give each worker its own worker_id"
                    )
            self._db = db
        return self._db

    def _drop_connection(self) -> None:
        """Close the connection; the next call opens another."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a PostgreSQL failure into a :class:`StoreError` naming what failed."""
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"{what} in {display_url(self.url)} failed: {exc}") from exc

    # -- jobs ----------------------------------------------------------------------------

    def load_jobs(self) -> dict[str, JobRecord]:
        return self._records("SELECT record FROM jobs ORDER BY position", ())

    def load_location(self, location: str) -> dict[str, JobRecord]:
        return self._records(
            "SELECT record FROM jobs WHERE location = %s ORDER BY position", (location,)
        )

    def load_some(self, names: Sequence[str]) -> dict[str, JobRecord]:
        if not names:  # every customer's commit is heard by every worker: most by no owner
            return {}
        return self._records(
            "SELECT record FROM jobs WHERE name = ANY(%s) ORDER BY position", (list(names),)
        )

    def _records(self, query: LiteralString, params: tuple[object, ...]) -> dict[str, JobRecord]:
        with self._errors("loading jobs"):
            # Planned on each call, not prepared: see _mark.
            rows = self._connection().execute(query, params, prepare=False)
            records = [decode(blob) for (blob,) in rows]
        return {record.name: record for record in records}

    def commit(self, commit: Commit) -> None:
        try:
            self.commit_many([commit])
        except LeaseLost:
            assert commit.fence is not None
            self._held.pop(commit.fence.location, None)
            raise LeaseLost(_refusal(commit, LeaseLost, self.worker_id)) from None
        except RecordChanged:
            raise RecordChanged(_refusal(commit, RecordChanged, self.worker_id)) from None

    def commit_many(self, commits: Sequence[Commit]) -> None:
        """Apply ``commits`` in order in one transaction, in one round trip: all, or none
        (a refused one raises :class:`LeaseLost` or :class:`RecordChanged` for the whole;
        :meth:`commit` them one by one to learn which)."""
        try:
            with self._errors("commit"):
                db = self._connection()
                # A pipeline without BEGIN: PostgreSQL runs it as one implicit transaction
                # up to the pipeline's sync. A fence or guard that does not hold raises in
                # the database (``drivesim_refuse``), undoing every statement with it,
                # without a round trip to look.
                with db.pipeline(), db.cursor() as cur:
                    for commit in commits:
                        self._statements(cur, commit)
        except StoreError as exc:
            # psycopg's statements prepared in the failed pipeline are gone from the
            # server, not from its cache: a connection of its own forgets them (rare).
            self._drop_connection()
            refused = _REFUSALS.get(getattr(exc.__cause__, "sqlstate", None) or "")
            if refused is None:
                raise
            raise refused(f"a commit was refused: {exc.__cause__}") from None

    def _statements(self, cur: psycopg.Cursor[TupleRow], commit: Commit) -> None:
        """The statements of one commit, queued in the pipeline."""
        if (fence := commit.fence) is not None:
            cur.execute(
                "SELECT drivesim_refuse(%s) WHERE NOT EXISTS (SELECT FROM leases "
                "WHERE location = %s AND owner = %s AND epoch = %s "
                "AND expires_at > clock_timestamp() FOR SHARE)",
                (_LEASE_LOST, fence.location, self.worker_id, fence.epoch),
            )
        guard = commit.guard
        for record in commit.put:
            values = (encode(record), record.sim.seq, record.job.location, record.name)
            if guard is None or guard[0] != record.name:
                cur.execute(
                    "INSERT INTO jobs (record, seq, location, name) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "record = excluded.record, seq = excluded.seq, "
                    "location = excluded.location",
                    values,
                )
            elif guard[1] is None:
                cur.execute(
                    "WITH done AS (INSERT INTO jobs (record, seq, location, name) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING 1) "
                    + _UNLESS_DONE,
                    (*values, _RECORD_CHANGED),
                )
            else:
                cur.execute(
                    "WITH done AS (UPDATE jobs SET record = %s, seq = %s, location = %s "
                    "WHERE name = %s AND seq = %s RETURNING 1) " + _UNLESS_DONE,
                    (*values, guard[1], _RECORD_CHANGED),
                )
        if messages := commit.messages:
            # Each entry says which worker committed it, under which lease epoch if
            # fenced, and its job's location: the put record's, or for a deletion the
            # row's, read before the row goes (coalesce stops at the first). A
            # statement each: one INSERT of arrays (unnest) cost more to build here.
            put = {r.name: r.job.location for r in commit.put}
            epoch = None if fence is None else fence.epoch
            worker = self.worker_id or None
            cur.executemany(
                "INSERT INTO outbox (job, seq, topic, payload, qos, retain, worker, "
                "epoch, location) SELECT %s, %s, %s, %s, %s, %s, %s, %s, coalesce("
                "%s, (SELECT location FROM jobs WHERE name = %s), '')",
                [
                    (
                        m.job,
                        m.seq,
                        m.topic,
                        m.payload,
                        m.qos,
                        m.retain,
                        worker,
                        epoch,
                        put.get(m.job),
                        m.job,
                    )
                    for m in messages
                ],
            )
        for name in commit.delete:
            if guard is not None and guard[0] == name and guard[1] is not None:
                cur.execute(
                    "WITH done AS (DELETE FROM jobs WHERE name = %s AND seq = %s "
                    "RETURNING 1) " + _UNLESS_DONE,
                    (name, guard[1], _RECORD_CHANGED),
                )
            else:
                cur.execute("DELETE FROM jobs WHERE name = %s", (name,))
        if commit.meta:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(commit.meta.items()),
            )
        # "worker<TAB>location<TAB>job" (a deletion's location is not at hand: ""). The
        # datacenter's changes of jobs are its own (only the worker driving a location
        # keeps its moving jobs in memory); its deletions are for everyone.
        changed = [(r.job.location, r.name) for r in commit.put] if fence is None else []
        changed += [("", name) for name in commit.delete]
        if changed:
            cur.executemany(
                "SELECT pg_notify(%s, %s)",
                [(CHANNEL, f"{self.worker_id}\t{loc}\t{name}") for loc, name in changed],
            )

    async def changed_jobs(self) -> AsyncGenerator[list[tuple[str, str]] | None, None]:
        """``(location, job)`` of each job other workers changed, as PostgreSQL tells
        (location "" for a deletion; job "" for a lease given up); ``None`` when the
        listening connection was lost and opened again (what changed meanwhile is unknown:
        read everything again)."""
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    make_conninfo(self.url, **_NETWORK), autocommit=True
                ) as listener:
                    await listener.execute(f"LISTEN {CHANNEL}")
                    if not first:
                        yield None
                    first = False
                    async for note in listener.notifies():
                        worker, location, name = note.payload.split("\t")
                        if worker != self.worker_id:
                            yield [(location, name)]
            except psycopg.OperationalError as exc:
                first = False
                log.warning("listening for other workers' changes failed", error=str(exc))
                await anyio.sleep(1.0)

    # -- leases --------------------------------------------------------------------------

    def join(self, locations: Sequence[str], lease: float) -> None:
        self._locations, self._lease = list(locations), lease
        with self._errors("joining the workers"):
            db = self._connection()
            db.execute(
                "INSERT INTO leases (location) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (self._locations,),
            )
            self._heartbeat(db)

    def _heartbeat(self, db: psycopg.Connection[TupleRow]) -> None:
        db.execute(
            "INSERT INTO workers (id, seen_at) VALUES (%s, clock_timestamp()) "
            "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            (self.worker_id,),
        )

    def renew(self) -> list[Lease]:
        with self._errors("renewing leases"):
            db = self._connection()
            self._heartbeat(db)
            db.execute("DELETE FROM commands WHERE at < clock_timestamp() - interval '10 minutes'")
            rows = db.execute(
                "UPDATE leases SET expires_at = clock_timestamp() + %s * interval '1 second' "
                "WHERE owner = %s AND location = ANY(%s) AND expires_at > clock_timestamp() "
                "RETURNING location, epoch",
                (self._lease, self.worker_id, list(self._held)),
            ).fetchall()
        held = {str(loc): int(epoch) for loc, epoch in rows if self._held.get(loc) == epoch}
        self._held = held
        return [Lease(loc, epoch) for loc, epoch in sorted(held.items())]

    def claim(self, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        with self._errors("claiming leases"):
            rows = (
                self._connection()
                .execute(
                    "UPDATE leases SET owner = %s, epoch = epoch + 1, "
                    "expires_at = clock_timestamp() + %s * interval '1 second' "
                    "WHERE location IN (SELECT location FROM leases WHERE location = ANY(%s) "
                    "AND (owner IS NULL OR expires_at <= clock_timestamp()) "
                    "ORDER BY location LIMIT %s FOR UPDATE SKIP LOCKED) "
                    "RETURNING location, epoch",
                    (self.worker_id, self._lease, self._locations, limit),
                )
                .fetchall()
            )
        leases = sorted(Lease(str(loc), int(epoch)) for loc, epoch in rows)
        self._held.update({lease.location: lease.epoch for lease in leases})
        return leases

    def hand_over(self, locations: Sequence[str]) -> None:
        for location in locations:
            self._held.pop(location, None)

    def release(self, locations: Sequence[str]) -> None:
        self.hand_over(locations)
        with self._errors("releasing leases"):
            db = self._connection()
            with db.transaction():
                db.execute(
                    "UPDATE leases SET owner = NULL, expires_at = '-infinity' "
                    "WHERE owner = %s AND location = ANY(%s)",
                    (self.worker_id, list(locations)),
                )
                for location in locations:  # the others claim it now, not at their next turn
                    db.execute(
                        "SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.worker_id}\t{location}\t")
                    )

    def claim_command(self, key: str) -> bool:
        """Take the MQTT 3.1.1 command ``key`` for this worker; False: another worker has,
        or had within ten minutes."""
        with self._errors("claiming a command"):
            db = self._connection()
            claimed = db.execute(
                "INSERT INTO commands (key, at) VALUES (%s, clock_timestamp()) "
                "ON CONFLICT (key) DO NOTHING",
                (key,),
            ).rowcount
        return claimed == 1

    def live_workers(self) -> int:
        with self._errors("counting workers"):
            row = (
                self._connection()
                .execute(
                    "SELECT count(*) FROM workers "
                    "WHERE seen_at > clock_timestamp() - %s * interval '1 second'",
                    (self._lease,),
                )
                .fetchone()
            )
        return max(1, int(row[0]) if row else 1)

    def leave(self) -> None:
        """This worker stops: its leases go free at once and it counts no more."""
        self.release(list(self._held))
        with self._errors("leaving the workers"):
            self._connection().execute("DELETE FROM workers WHERE id = %s", (self.worker_id,))

    # -- the outbox ----------------------------------------------------------------------

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.pending_after(0, limit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        """Unacknowledged entries: once joined, those of the locations held (and of none,
        from a database of one worker before version 2); before, every one.

        Once joined, nothing is read past an entry (``after`` above 0): with several
        workers committing, ids are not commit order (an id taken by a transaction still
        open is committed after higher ones), so reading on from the last id handed over
        would skip such an entry and publish its job's next change before it. The relay
        then reads again from the oldest pending entry once its batch is settled."""
        if after > 0 and self._locations is not None:
            return []
        with self._errors("reading the outbox"):
            db = self._connection()
            if self._locations is None:
                rows = db.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE NOT acked AND id > %s "
                    "ORDER BY id LIMIT %s",
                    (after, limit),
                )
            else:
                rows = db.execute(_PENDING_HELD, ([*self._held, ""], after, limit, limit))
            return [_entry(row) for row in rows]

    def ack(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=True)

    def requeue(self, ids: Sequence[int]) -> None:
        self._mark(ids, acked=False)

    def _mark(self, ids: Sequence[int], *, acked: bool) -> None:
        if not ids:
            return
        with self._errors("marking outbox entries"):
            # Not prepared (psycopg prepares a statement on its fifth execution), as its
            # best plan depends on how many ids it is given and how large the outbox has
            # grown: one prepared while the outbox was nearly empty kept a sequential scan,
            # and read the whole outbox for each acknowledgement of a few entries (2 ms with
            # 7,000 entries, growing with every message). The commits' statements on one job
            # by its name keep their index scans prepared.
            self._connection().execute(
                "UPDATE outbox SET acked = %s WHERE id = ANY(%s)", (acked, list(ids)), prepare=False
            )

    def owners(self) -> list[tuple[int, str, str | None, int | None]]:
        """Who committed each outbox entry: ``(id, location, worker, lease epoch)`` in
        commit order (epoch None: a customer's request, which no lease fences)."""
        with self._errors("reading the outbox"):
            rows = (
                self._connection()
                .execute("SELECT id, location, worker, epoch FROM outbox ORDER BY id")
                .fetchall()
            )
        return [(int(i), str(loc), w, None if e is None else int(e)) for i, loc, w, e in rows]

    def history(self) -> Iterator[OutboxEntry]:
        with self._errors("reading the history"):
            rows = self._connection().execute(f"SELECT {_ENTRY_COLUMNS} FROM outbox ORDER BY id")
            entries = [_entry(row) for row in rows]
        yield from entries

    # -- metadata ------------------------------------------------------------------------

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
        if version == 1:
            _backfill(db)
        if version < len(MIGRATIONS):
            db.execute("UPDATE drivesim_schema SET version = %s", (len(MIGRATIONS),))
            log.info("store migrated", version=len(MIGRATIONS), was=version)
    return version


def _backfill(db: psycopg.Connection[TupleRow]) -> None:
    """Version 2's columns of what version 1 stored: each job's seq and location, read from
    its record, and each outbox entry's location, from its job's."""
    rows = db.execute("SELECT record FROM jobs").fetchall()
    with db.cursor() as cur:
        cur.executemany(
            "UPDATE jobs SET seq = %s, location = %s WHERE name = %s",
            [(r.sim.seq, r.job.location, r.name) for r in (decode(blob) for (blob,) in rows)],
        )
    db.execute("UPDATE outbox SET location = jobs.location FROM jobs WHERE outbox.job = jobs.name")


def _refusal(commit: Commit, refused: type[LeaseLost | RecordChanged], worker: str) -> str:
    if refused is LeaseLost:
        assert commit.fence is not None
        return (
            f"the lease on {commit.fence.location} (epoch {commit.fence.epoch}) is "
            f"no longer {worker}'s: the change was not committed"
        )
    assert commit.guard is not None
    return (
        f"job {commit.guard[0]} changed since seq {commit.guard[1]}: the change was not committed"
    )


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
