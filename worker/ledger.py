"""The one place where a job change becomes durable and is announced.

Every change, from a customer request or from the datacenter, goes through
:meth:`Ledger.update` (or :meth:`Ledger.create`, :meth:`Ledger.delete`):

1. the current record is cloned and the change applied to the clone (a pure function
   that may raise a :class:`~worker.errors.ServiceError`: then nothing happened);
2. the job's ``seq`` rises by one and its status messages are built;
3. record, outbox messages and the simulated time are committed in one transaction;
4. only then are the messages announced (the outbox relay woken).

Step 3 happens in the call, then the clone is swapped in and listeners told, except for
the datacenter's own changes on a store several workers share (PostgreSQL: a commit is a
round trip; the datacenter's changes are the ones fenced by a lease). Those of one turn of
the event loop are **grouped**: each is swapped in and its listeners told at once (the
next step builds on it), and the turn's are committed in one transaction at its end
(:meth:`Ledger.flush`), before anything of them is announced (the relay reads only
committed messages). A customer's request is judged on the job as committed
(:meth:`Ledger.committed`) and committed at once. A group refused in part (a customer's
request through another worker changed a job first, or a lease lapsed) is committed change
by change. A change refused because the job changed is made again on the job as committed
and kept when it takes the same course (the same job and drive states and due time, so the
same bays and timers: a cancel landing on a copying drive's checkpoint); otherwise it is
undone in memory with whatever followed it at its location (listeners hear of it, and of
the job as the store holds it) and told to the failure hooks, so the datacenter takes the
location up again from what is committed, as after a crash.
Each commit is guarded by the ``seq`` its change was judged against, so another worker's
commit in between is never overwritten: a customer's request is then judged again
(:class:`~worker.errors.RecordChanged`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Container, Iterator, Mapping, Sequence

import anyio

from worker import states
from worker.clock import Clock
from worker.errors import LeaseLost, RecordChanged, ServiceError, StoreError
from worker.logs import get_logger
from worker.record import JobRecord, clone
from worker.status import Event, build_messages
from worker.store import Commit, JobStore, Lease, SharedStore

__all__ = ["ATTEMPTS", "SIM_NOW", "Change", "FailureHook", "Ledger", "Listener", "stored_time"]

#: Told ``(before, after)`` after every committed change; ``None`` means absent.
Listener = Callable[[JobRecord | None, JobRecord | None], None]
#: Applies a change to a clone of the record in place and returns its events.
Change = Callable[[JobRecord], list[Event]]
#: Told ``(error, jobs)`` when changes of ``jobs`` made in memory could not be committed
#: (and were undone).
FailureHook = Callable[[StoreError, list[JobRecord]], None]

#: The metadata key under which every commit stores the simulated time.
SIM_NOW = "sim_now"
LAST_SEQ = "lastseq/"
#: How many times a change is judged against a job that other workers keep changing under
#: it (each time raising :class:`~worker.errors.RecordChanged`) before that is an error.
ATTEMPTS = 10

log = get_logger("drivesim.ledger")


class Ledger:
    """The committed jobs, kept in memory in front of a :class:`~worker.store.JobStore`."""

    def __init__(self, store: JobStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._jobs = store.load_jobs()
        self._listeners: list[Listener] = []
        self._outbox_ready = anyio.Event()
        self._outbox_hooks: list[Callable[[], None]] = []
        #: Other workers may commit to the store: a job not held here is looked up there,
        #: and commits are grouped (see the module's docstring).
        self._shared = isinstance(store, SharedStore)
        #: Changes made in memory and not yet committed, in order, and their jobs.
        self._queued: list[_Queued] = []
        self._queued_jobs: set[str] = set()
        self._flush_scheduled = False
        self._failure_hooks: list[FailureHook] = []
        #: On a shared store, the locations whose jobs this worker keeps up to date (it
        #: drives them, and hears of every customer's change of them); of any other, it
        #: keeps a job only while it waits for its customer or for its deletion (then only
        #: a customer's change or a deletion can change it, and it hears of both: see
        #: :meth:`forget`), and reads a moving job from the store again whenever it is asked
        #: for. None: every job held is up to date (a store no other worker changes, or a
        #: ledger driven by hand).
        self.kept: Container[str] | None = None

    def get_meta(self, key: str) -> bytes | None:
        """Metadata committed under ``key`` (a :class:`~worker.metadata.Metadata`)."""
        self.flush()
        return self.store.get_meta(key)

    def get(self, name: str) -> JobRecord | None:
        """The record of ``name`` as the last change left it (on a shared store the
        datacenter's may be queued still: see :meth:`committed`); never mutate it. On a
        shared store, a job this worker does not keep (see :attr:`kept`) is read from the
        store, as is one another worker created a moment ago."""
        record = self._jobs.get(name)
        if self._shared and (
            record is None
            or (
                self.kept is not None
                and record.job.location not in self.kept
                and record.state in states.ACTIVE
            )
        ):
            self.refresh([name])
            record = self._jobs.get(name)
        return record

    def committed(self, name: str) -> JobRecord | None:
        """The committed record of ``name``: what :meth:`get` gives, once a change of the
        job made in memory, if any, is committed (or undone)."""
        self._flush_if_queued([name])
        return self.get(name)

    def _flush_if_queued(self, names: Sequence[str] | None) -> None:
        """Flush when a change of one of ``names`` (None: any job) waits to be committed."""
        if self._queued and (names is None or not self._queued_jobs.isdisjoint(names)):
            self.flush()

    def __iter__(self) -> Iterator[JobRecord]:
        """The jobs held here: on a shared store, those this worker keeps are up to date,
        others may be old or missing (see :meth:`jobs`)."""
        return iter(list(self._jobs.values()))

    def jobs(self) -> Iterator[JobRecord]:
        """Every job as committed: on a shared store, what is queued is committed first,
        and unless every job held is kept up to date, all are read again."""
        self._flush_if_queued(None)
        if self._shared and self.kept is not None:
            self.refresh()
        return iter(self)

    def cached(self, name: str) -> JobRecord | None:
        """The record of ``name`` if held here, without reading the store."""
        return self._jobs.get(name)

    def forget(self, names: Sequence[str]) -> None:
        """Drop ``names`` from what is held here (another worker changed them, and this one
        does not drive them): the next :meth:`get` reads them from the shared store."""
        self._flush_if_queued(names)
        for name in names:
            self._jobs.pop(name, None)

    def __len__(self) -> int:
        return len(self._jobs)

    def watch(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unwatch(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def create(
        self, record: JobRecord, events: list[Event], meta: Mapping[str, bytes] | None = None
    ) -> JobRecord:
        """Commit a new job, or a replacement of one with the same name."""
        before = self._jobs.get(record.name)
        if before is not None:
            record.sim.seq = before.sim.seq
        else:
            self._flush_if_queued([record.name])  # its deletion, which wrote its last seq
            last = self.store.get_meta(LAST_SEQ + record.name)
            record.sim.seq = int(last) if last else 0
        self._commit(before, record, events, meta)
        return record

    def update(
        self,
        name: str,
        change: Change,
        meta: Mapping[str, bytes] | None = None,
        *,
        fence: Lease | None = None,
    ) -> JobRecord:
        """Apply ``change`` to job ``name``; an unchanged record commits nothing. The
        datacenter's steps give the ``fence`` of the lease they run under."""
        before = self._jobs[name]
        after = clone(before)
        events = change(after)
        if not events and after == before:
            if meta:
                self.note(meta)
            return before
        self._commit(before, after, events, meta, fence, change)
        return after

    def delete(
        self,
        name: str,
        events: list[Event],
        meta: Mapping[str, bytes] | None = None,
        *,
        fence: Lease | None = None,
    ) -> None:
        """Remove job ``name``; its retained status is cleared."""
        before = self._jobs[name]
        extra = {LAST_SEQ + name: str(before.sim.seq + 1).encode()}
        self._commit(before, None, events, {**(meta or {}), **extra}, fence)

    def refresh(
        self, names: Sequence[str] | None = None, *, fresh: Mapping[str, JobRecord] | None = None
    ) -> int:
        """Take in the jobs ``names`` (every job: None) as the shared store holds them now,
        after other workers' commits, with ``fresh`` those already read from it (the rest of
        ``names`` is read); listeners hear of each that changed, and the relay is woken for
        the entries those commits added. Returns how many changed."""
        store = self.store
        assert isinstance(store, SharedStore), "only a shared store changes under the ledger"
        self._flush_if_queued(names)  # compared with what is committed, not what may be undone
        if fresh is None:
            fresh = store.load_jobs() if names is None else store.load_some(names)
        names = list(self._jobs) if names is None else list(names)
        changed = 0
        for name in dict.fromkeys([*names, *fresh]):
            before, after = self._jobs.get(name), fresh.get(name)
            if before is None and after is None:
                continue
            if before is not None and after is not None and after.sim.seq <= before.sim.seq:
                continue  # as new as ours: our own commit, or already taken in
            if after is None:
                del self._jobs[name]
            else:
                self._jobs[name] = after
            changed += 1
            for listener in self._listeners:
                listener(before, after)
        if changed:
            self._outbox_pending()
        return changed

    def note(self, meta: Mapping[str, bytes]) -> None:
        """Commit metadata alone (for example, that a scripted action ran), at once."""
        self.flush()
        self.store.commit(Commit(meta={**meta, SIM_NOW: _stamp(self.clock.now())}))

    def on_failure(self, hook: FailureHook) -> None:
        """Call ``hook`` when changes made in memory could not be committed (a grouped
        commit refused or failed): they are undone, and the datacenter takes the jobs up
        again from what the store holds."""
        self._failure_hooks.append(hook)

    def off_failure(self, hook: FailureHook) -> None:
        self._failure_hooks.remove(hook)

    def on_outbox(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever messages become pending: right after each commit that adds
        some (before the listeners hear of the change), and on :meth:`wake_outbox`."""
        self._outbox_hooks.append(hook)

    def off_outbox(self, hook: Callable[[], None]) -> None:
        self._outbox_hooks.remove(hook)

    def wake_outbox(self) -> None:
        """Wake the outbox relay: entries became pending without a commit (a requeue)."""
        self._outbox_pending()

    def _outbox_pending(self) -> None:
        self._outbox_ready.set()
        for hook in self._outbox_hooks:
            hook()

    async def wait_for_outbox(self) -> None:
        """Return once a commit has added messages since the last call."""
        await self._outbox_ready.wait()
        self._outbox_ready = anyio.Event()

    def _commit(
        self,
        before: JobRecord | None,
        after: JobRecord | None,
        events: list[Event],
        meta: Mapping[str, bytes] | None,
        fence: Lease | None = None,
        change: Change | None = None,
    ) -> None:
        record = after or before
        assert record is not None
        now = self.clock.now()
        commit = self._commit_of(before, after, events, meta, fence, now)
        grouped = self._shared and fence is not None
        if grouped:
            self._queue(_Queued(before, after, commit, change, now))
        else:
            assert record.name not in self._queued_jobs, "judged on an uncommitted change"
            try:
                self.store.commit(commit)
            except RecordChanged:
                self.refresh([record.name])
                raise
        if after is None:
            del self._jobs[record.name]
        else:
            self._jobs[record.name] = after
        if log.is_enabled_for(logging.INFO):
            log.info(
                "job changed",
                job=record.name,
                seq=record.sim.seq if after is not None else record.sim.seq + 1,
                state=None if after is None else str(after.state),
                events=[e.type for e in events],
                sim_time=self.clock.isoformat(now),  # the commit's time, as its messages say
            )
        if not grouped:
            self._outbox_pending()
        for listener in self._listeners:
            listener(before, after)

    def _commit_of(
        self,
        before: JobRecord | None,
        after: JobRecord | None,
        events: list[Event],
        meta: Mapping[str, bytes] | None,
        fence: Lease | None,
        now: float,
    ) -> Commit:
        """The commit of a change made at ``now``; ``after`` gets its ``seq`` and time."""
        record = after or before
        assert record is not None
        seq = record.sim.seq + 1
        if after is not None:
            after.sim.seq = seq
            after.sim.changed_at = now
        stamp = _stamp(now)
        return Commit(
            put=[after] if after is not None else (),
            delete=[record.name] if after is None else (),
            messages=build_messages(
                before, after, events, seq=seq, sim_time=self.clock.isoformat(now)
            ),
            meta={**meta, SIM_NOW: stamp} if meta else {SIM_NOW: stamp},
            guard=(record.name, None if before is None else before.sim.seq),
            fence=fence,
        )

    # -- grouped commits (a shared store) ------------------------------------------------

    def _queue(self, queued: _Queued) -> None:
        self._queued.append(queued)
        self._queued_jobs.add(queued.name)
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing to group with
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self._flush_soon, context=contextvars.Context())

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Commit every change made in memory and not yet committed, in one transaction
        (a refused group: change by change), then wake the relay; undo what could not be
        committed. Called at the end of each turn of the loop, and by whatever must not run
        ahead of the store."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        self._queued_jobs.clear()
        assert isinstance(self.store, SharedStore)
        judged_again: dict[str, JobRecord] = {}
        try:
            self.store.commit_many([q.commit for q in queued])
        except (LeaseLost, RecordChanged):
            judged_again = self._commit_each(queued)
        except StoreError as exc:
            for q in queued:
                q.error = exc
        failed = [q for q in queued if q.error is not None]
        if len(failed) < len(queued):
            self._outbox_pending()
        undone = {q.name for q in failed}
        for name, record in judged_again.items():
            if name not in undone:
                self._take_judged_again(record)
        if failed:
            self._undo(failed)

    def _commit_each(self, queued: list[_Queued]) -> dict[str, JobRecord]:
        """A group was refused: commit its changes one by one to learn which. A change
        refused because its job changed is made again on the job as committed, and kept
        if it takes the same course (:meth:`_judge_again`). Once a change fails, so does
        every later change at its location: each was made on what the earlier ones left
        (a drive starts in the bay another one's end freed). Returns the jobs whose
        changes were judged again, as committed."""
        failed: dict[str, StoreError] = {}
        judged_again: dict[str, JobRecord] = {}
        for i, q in enumerate(queued):
            if (earlier := failed.get(q.location)) is not None:
                q.error = RecordChanged(
                    f"job {q.name}: an earlier change at {q.location} was not committed ({earlier})"
                )
                continue
            try:
                if (base := judged_again.get(q.name)) is not None:
                    self._judge_again(q, base)  # made on a change judged again: so is this
                try:
                    self.store.commit(q.commit)
                except RecordChanged:
                    if base is not None:
                        raise
                    self._judge_again(q, self._stored(q.name))
                    self.store.commit(q.commit)
                if q.judged_again:
                    assert q.after is not None
                    judged_again[q.name] = q.after
            except (LeaseLost, RecordChanged) as exc:
                q.error = failed[q.location] = exc
            except StoreError as exc:  # the database went: so does the rest
                for rest in queued[i:]:
                    rest.error = exc
                break
        return judged_again

    def _stored(self, name: str) -> JobRecord | None:
        assert isinstance(self.store, SharedStore)
        return self.store.load_some([name]).get(name)

    def _judge_again(self, q: _Queued, base: JobRecord | None) -> None:
        """Make ``q``'s change again on ``base``, the job as committed, in place of the
        refused one: kept only where it takes the course the refused one took (the same
        job and drive states, the same due time), for what followed it in memory (bays
        granted, timers set) was arranged on that course. Raises RecordChanged if not."""
        if q.change is None or q.after is None or base is None:
            raise RecordChanged(
                f"job {q.name} changed: a creation, a deletion or a change of a job now gone "
                "is not made again"
            )
        after = clone(base)
        try:
            events = q.change(after)
        except ServiceError as exc:
            raise RecordChanged(f"job {q.name} changed; judged again: {exc}") from None
        if _course(after) != _course(q.after):
            raise RecordChanged(f"job {q.name} changed; judged again, it takes another course")
        q.commit = self._commit_of(base, after, events, q.commit.meta, q.commit.fence, q.now)
        q.after = after
        q.judged_again = True

    def _take_judged_again(self, record: JobRecord) -> None:
        """Swap in a job whose changes were judged again and committed; listeners hear of
        it (the job now holds what the other worker committed, a cancel say)."""
        before = self._jobs.get(record.name)
        self._jobs[record.name] = record
        log.info("change judged again on the job as committed", job=record.name, seq=record.sim.seq)
        for listener in self._listeners:
            listener(before, record)

    def _undo(self, failed: list[_Queued]) -> None:
        """Put back, in memory, each failed job as it was before its first failed change;
        listeners and failure hooks hear of it; then take in what the store holds."""
        firsts: dict[str, _Queued] = {}
        for q in failed:
            firsts.setdefault(q.name, q)
        undone: list[JobRecord] = []
        for name, first in firsts.items():
            current = self._jobs.get(name)
            undone.append(first.record)
            if first.before is None:
                self._jobs.pop(name, None)
            else:
                self._jobs[name] = first.before
            log.warning("change not committed; undone", job=name, error=str(first.error))
            if current is not None or first.before is not None:
                for listener in self._listeners:
                    listener(current, first.before)
        error = failed[0].error
        assert error is not None
        for hook in list(self._failure_hooks):
            hook(error, undone)
        try:
            self.refresh(list(firsts))
        except StoreError as exc:  # the database is gone: so is whatever got in first
            log.warning("undone jobs not read again", error=str(exc))


class _Queued:
    """A change made in memory, its commit to come; ``error``: why it was not committed."""

    __slots__ = (
        "after",
        "before",
        "change",
        "commit",
        "error",
        "judged_again",
        "location",
        "name",
        "now",
        "record",
    )

    def __init__(
        self,
        before: JobRecord | None,
        after: JobRecord | None,
        commit: Commit,
        change: Change | None,
        now: float,
    ) -> None:
        record = after or before
        assert record is not None
        self.name = record.name
        self.record = record
        self.location = record.job.location
        self.before = before
        self.after = after
        self.commit = commit
        #: To make the change again on the job as committed, at the time it was made.
        self.change = change
        self.now = now
        self.judged_again = False
        self.error: StoreError | None = None


def _course(record: JobRecord) -> tuple[object, ...]:
    """What the datacenter arranges a job's next steps on: its state and due time, and
    each drive's state and arrival."""
    arrivals = {name: sim.arrives_at for name, sim in record.sim.drives.items()}
    return (
        record.state,
        record.sim.due_at,
        [(d.drive_id, d.state, arrivals.get(d.drive_id)) for d in record.drives],
    )


def stored_time(store: JobStore) -> float:
    """The simulated time of the store's last commit: where a resumed run's clock starts."""
    return float(store.get_meta(SIM_NOW) or 0.0)


def _stamp(now: float) -> bytes:
    """Simulated time as stored under :data:`SIM_NOW`: exact, and read back by float()."""
    return repr(now).encode()
