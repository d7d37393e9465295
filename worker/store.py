"""Where jobs and their outbox live: the store protocol.

A :class:`Commit` is atomic: the jobs it puts and deletes, the status messages it appends
to the outbox and the metadata it sets are all committed, or none is. Calls are
synchronous and short; they run in the event loop, never on a thread, so that virtual
time cannot jump while a commit is under way.
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
