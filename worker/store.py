"""Where jobs and their outbox live: the store protocol.

A :class:`Commit` is atomic: the jobs it puts and deletes, the status messages it appends
to the outbox and the metadata it sets are all committed, or none is. The implementations
are :class:`~worker.memory_store.MemoryStore` and :class:`~worker.sqlite_store.SQLiteStore`.

Two contracts hold today that a store over the network, or a second sink, would change:

1. **A commit is synchronous, inside the event loop.** :meth:`JobStore.commit` returns
   once the change is durable, without awaiting, so a step of the pipeline (a timer
   callback) commits and goes on, nothing else runs in between, and a virtual-time clock
   cannot jump while a commit is under way (it jumps only when the loop is idle). A
   network store (PostgreSQL) waits on a round trip. The plan: the ledger's commit becomes
   awaitable; "committed before announced" stays, since the clone is swapped in and the
   listeners told only after the commit returns; a step then runs as a short task that
   awaits its commit, and commits that come due together are grouped into one transaction.
   Virtual-time runs stay on the memory or SQLite store, whose commit never suspends, so
   their histories stay identical.
2. **The outbox has one consumer.** One :class:`~worker.relay.OutboxRelay` reads
   :meth:`JobStore.pending` and marks entries delivered with :meth:`JobStore.ack`; "pending"
   is one flag per entry. Several workers over one database need each entry published by
   exactly one of them, in ``seq`` order per job: the plan is that the worker owning a job
   (by lease) publishes its entries, and a worker taking over a lapsed job takes its
   pending entries with it (``FOR UPDATE SKIP LOCKED`` on the job's rows). A second sink in
   one process (say a broker and a file) needs its own cursor over the outbox instead of
   the shared flag.

Both plans are written down again, with their reasons, in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from worker.record import JobRecord
from worker.status import StatusMessage

__all__ = ["Commit", "JobStore", "OutboxEntry"]


@dataclass(slots=True)
class Commit:
    """One atomic change of the store."""

    put: Sequence[JobRecord] = ()
    delete: Sequence[str] = ()
    messages: Sequence[StatusMessage] = ()
    meta: Mapping[str, bytes] = field(default_factory=dict)


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
