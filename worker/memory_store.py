"""The store in a few dicts: for unit tests and fast simulations that need no file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from worker.record import JobRecord, clone
from worker.status import StatusMessage
from worker.store import Commit, OutboxEntry

__all__ = ["MemoryStore"]


class MemoryStore:
    """The store in a few dicts: for unit tests and fast simulations that need no file.

    ``history=False`` forgets outbox entries once they are delivered, so a long simulation
    holds only what is still pending: :meth:`history` then yields only those, and a
    delivered entry can no longer be requeued.
    """

    def __init__(self, *, history: bool = True) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._keep = history
        self._outbox: list[StatusMessage] = []
        self._acked: list[bool] = []
        self._base = 0  # the id of ``_outbox[0]``: entries before it were forgotten
        self._cursor = 0  # every entry before it is acknowledged
        self._meta: dict[str, bytes] = {}

    def load_jobs(self) -> dict[str, JobRecord]:
        return {name: clone(rec) for name, rec in self._jobs.items()}

    def commit(self, commit: Commit) -> None:
        # The ledger never mutates a committed record (it changes clones), so keep it as is.
        for record in commit.put:
            self._jobs[record.name] = record
        for name in commit.delete:
            self._jobs.pop(name, None)
        self._outbox.extend(commit.messages)
        self._acked.extend([False] * len(commit.messages))
        self._meta.update(commit.meta)

    def pending(self, limit: int) -> list[OutboxEntry]:
        return self.pending_after(-1, limit)

    def pending_after(self, after: int, limit: int) -> list[OutboxEntry]:
        base = self._base
        start = max(self._cursor, after + 1) - base
        end = min(len(self._outbox), start + limit)
        if True not in self._acked[start:end]:  # the usual case: none acknowledged out of turn
            return list(map(OutboxEntry, range(base + start, base + end), self._outbox[start:end]))
        entries = []
        for i in range(start, len(self._outbox)):
            if not self._acked[i]:
                entries.append(OutboxEntry(base + i, self._outbox[i]))
                if len(entries) >= limit:
                    break
        return entries

    def ack(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        base = self._base
        cursor = self._cursor - base
        n = len(ids)
        if ids[0] == base + cursor and ids[-1] == ids[0] + n - 1:  # the oldest, in order
            self._acked[cursor : cursor + n] = [True] * n
            cursor += n
        else:
            for i in ids:
                self._acked[i - base] = True
        while cursor < len(self._acked) and self._acked[cursor]:
            cursor += 1
        self._cursor = base + cursor
        if not self._keep and cursor > 0:
            del self._outbox[:cursor]
            del self._acked[:cursor]
            self._base = self._cursor

    def requeue(self, ids: Sequence[int]) -> None:
        if ids and min(ids) < self._base:
            raise ValueError("a store without history cannot requeue a forgotten entry")
        for i in ids:
            self._acked[i - self._base] = False
        self._cursor = min([self._cursor, *ids])

    def history(self) -> Iterator[OutboxEntry]:
        for i, message in enumerate(self._outbox):
            yield OutboxEntry(self._base + i, message)

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def meta_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self._meta if k.startswith(prefix))

    def close(self) -> None:
        pass
