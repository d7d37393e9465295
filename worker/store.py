"""Where jobs and their outbox live: the store protocol.

A :class:`Commit` is atomic: the jobs it puts and deletes, the status messages it appends
to the outbox and the metadata it sets are all committed, or none is. The implementations
are :class:`~worker.memory_store.MemoryStore`, :class:`~worker.sqlite_store.SQLiteStore`
and :class:`~worker.postgres_store.PostgresStore`, the one a :class:`SharedStore`.

Two contracts hold, which several workers over one database (:class:`SharedStore`) keep:

1. **A commit is synchronous, inside the event loop.** :meth:`JobStore.commit` returns
   once the change is durable, without awaiting, so nothing else runs in between and a
   virtual-time clock cannot jump while a commit is under way (it jumps only when the loop
   is idle). On a :class:`SharedStore` the ledger commits the datacenter's changes of a
   turn of the loop together (:meth:`SharedStore.commit_many`, one round trip) at the
   turn's end, before announcing any of them (:class:`~worker.ledger.Ledger`); virtual-time
   runs stay on the memory or SQLite store, whose ledger commits each change as it is
   made, so their histories stay identical.
2. **Each outbox entry has one consumer.** One :class:`~worker.relay.OutboxRelay` per
   worker reads :meth:`JobStore.pending` and marks entries delivered with
   :meth:`JobStore.ack`. On a shared store a worker reads only the entries of the
   locations it holds a lease on, so each entry goes out from the one worker driving its
   job, in ``seq`` order; a worker taking a location over takes its entries with it.

Both are written down again, with the checks a shared store adds to each commit (its
``guard`` and ``fence``), in ``docs/architecture.md`` and ``docs/scale-out.md``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import msgspec

from worker.record import JobRecord
from worker.status import StatusMessage

__all__ = ["Commit", "JobStore", "Lease", "OutboxEntry", "SharedStore"]


@dataclass(frozen=True, slots=True, order=True)
class Lease:
    """A worker's hold on a location: it alone drives that location's jobs until the lease
    runs out. ``epoch`` rises with every new holder, so a commit fenced with an old one
    fails."""

    location: str
    epoch: int


@dataclass(slots=True)
class Commit:
    """One atomic change of the store.

    A store shared by several workers checks two more things, which a store of one worker
    has no use for and ignores: ``guard`` is ``(job, seq)``, the ``seq`` the job must still
    have for the commit to apply (``None``: the job must not exist), else
    :class:`~worker.errors.RecordChanged`; ``fence`` is the lease under which the datacenter
    moves the job, which must still be held, else :class:`~worker.errors.LeaseLost`.
    """

    put: Sequence[JobRecord] = ()
    delete: Sequence[str] = ()
    messages: Sequence[StatusMessage] = ()
    meta: Mapping[str, bytes] = field(default_factory=dict)
    guard: tuple[str, int | None] | None = None
    fence: Lease | None = None


class OutboxEntry(msgspec.Struct, frozen=True, gc=False):
    id: int
    message: StatusMessage


class JobStore(Protocol):
    """Durable jobs, an outbox of status messages, and a little metadata."""

    def load_jobs(self) -> dict[str, JobRecord]:
        """Every stored job by name."""
        ...

    def commit(self, commit: Commit) -> None:
        """Apply ``commit`` atomically, or raise :class:`~worker.errors.StoreError`."""
        ...

    def pending(self, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unacknowledged outbox entries, oldest first."""
        ...

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` unacknowledged entries with ids above ``after``, oldest first."""
        ...

    def ack(self, ids: Sequence[int]) -> None:
        """Mark outbox entries (distinct ids) as delivered."""
        ...

    def requeue(self, ids: Sequence[int]) -> None:
        """Mark delivered outbox entries as pending again, to be sent once more."""
        ...

    def history(self) -> Iterator[OutboxEntry]:
        """Every outbox entry ever appended, delivered or not, oldest first."""
        ...

    def get_meta(self, key: str) -> bytes | None: ...

    def meta_keys(self, prefix: str) -> list[str]: ...

    def close(self) -> None: ...


@runtime_checkable
class SharedStore(JobStore, Protocol):
    """A store several workers share (PostgreSQL): each location is driven by the worker
    holding its lease, and every worker hears of the customers' changes the others commit.

    Leases are the store's: their times are the database's clock, so workers' clocks need
    not agree. :meth:`pending` gives only the outbox entries of the locations this worker
    holds, so each entry is published by the one worker driving its job.
    """

    worker_id: str

    def commit_many(self, commits: Sequence[Commit]) -> None:
        """Apply ``commits`` in order, atomically together; one refused (its guard or
        fence) refuses them all, raising as :meth:`commit` would."""
        ...

    def join(self, locations: Sequence[str], lease: float) -> None:
        """Register this worker (refused while another live worker has its id) and make
        sure every location has a lease row."""
        ...

    def renew(self) -> list[Lease]:
        """Extend the leases still held; those returned are held, any other was lost."""
        ...

    def claim(self, limit: int) -> list[Lease]:
        """Take up to ``limit`` locations no live worker holds (free or run out)."""
        ...

    def hand_over(self, locations: Sequence[str]) -> None:
        """Read no more outbox entries of these locations: their leases are about to be
        given up, once what was read of them has been published."""
        ...

    def release(self, locations: Sequence[str]) -> None:
        """Give up these locations' leases at once (a clean stop, or a fair share)."""
        ...

    def live_workers(self) -> int:
        """Workers seen within one lease, this one included."""
        ...

    def owners(self) -> list[tuple[int, str, str | None, int | None]]:
        """Who committed each outbox entry: ``(id, location, worker, lease epoch)`` in
        commit order (epoch None: not fenced, a customer's request)."""
        ...

    def claim_command(self, key: str) -> bool:
        """Take a command (by its key) for this worker; False: another worker has."""
        ...

    def leave(self) -> None:
        """This worker stops: its leases go free at once and it counts no more."""
        ...

    def load_some(self, names: Sequence[str]) -> dict[str, JobRecord]:
        """The stored records of ``names`` (absent: deleted)."""
        ...

    def load_location(self, location: str) -> dict[str, JobRecord]:
        """Every stored job at ``location``."""
        ...

    def changed_jobs(self) -> AsyncGenerator[list[tuple[str, str]] | None, None]:
        """``(location, job)`` of each job other workers committed a change of without a
        fence (a customer's) or deleted, as they commit them (location "" when it is not
        known, a deletion; job "" when a worker gave the location's lease up); ``None`` when
        some may have been missed (the connection was lost): read everything again. Any
        other change is the datacenter's, made by the worker driving the job's location."""
        ...
