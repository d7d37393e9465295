"""The JobStore contract, run against MemoryStore and SQLiteStore alike."""

from __future__ import annotations

import pytest

from tests.worker.conftest import record
from worker.memory_store import MemoryStore
from worker.model import JobState
from worker.record import encode
from worker.status import StatusMessage
from worker.store import Commit, JobStore


def message(job: str, seq: int, leaf: str = "state", payload: bytes = b"{}") -> StatusMessage:
    return StatusMessage(
        topic=f"importexport/v1/jobs/{job}/{leaf}",
        payload=payload,
        qos=1,
        retain=leaf == "state",
        job=job,
        seq=seq,
    )


def encoded(store: JobStore) -> dict[str, bytes]:
    return {name: encode(r) for name, r in store.load_jobs().items()}


def test_empty_store(store: JobStore) -> None:
    """A new store has no jobs, no outbox entries and no metadata."""
    assert store.load_jobs() == {}
    assert store.pending(10) == []
    assert list(store.history()) == []
    assert store.get_meta("anything") is None
    assert store.meta_keys("") == []


def test_commit_puts_and_deletes_jobs(store: JobStore) -> None:
    """Committed jobs load back equal; a later commit replaces and deletes them."""
    a, b = record("a"), record("b")
    store.commit(Commit(put=[a, b]))
    assert encoded(store) == {"a": encode(a), "b": encode(b)}
    a2 = record("a", JobState.SHIPPING, seq=2)
    store.commit(Commit(put=[a2], delete=["b"]))
    assert encoded(store) == {"a": encode(a2)}
    store.commit(Commit(delete=["a", "never-existed"]))
    assert store.load_jobs() == {}


def test_load_jobs_keeps_insertion_order(store: JobStore) -> None:
    """Jobs load in the order they were first committed, a replacement keeping its place."""
    for name in ["c", "a", "b"]:
        store.commit(Commit(put=[record(name)]))
    store.commit(Commit(put=[record("c", JobState.SHIPPING, seq=2)]))
    assert list(store.load_jobs()) == ["c", "a", "b"]


def test_loaded_jobs_are_copies(store: JobStore) -> None:
    """Changing a loaded record does not change the store."""
    store.commit(Commit(put=[record("a")]))
    loaded = store.load_jobs()["a"]
    loaded.job.tags = {"x": "y"}
    loaded.keys.clear()
    assert store.load_jobs()["a"].job.tags is None
    assert store.load_jobs()["a"].keys == {"D1": "secret"}


def test_pending_is_oldest_first_and_limited(store: JobStore) -> None:
    """pending returns unacknowledged entries oldest first, at most ``limit`` of them."""
    messages = [message("a", i) for i in range(1, 6)]
    store.commit(Commit(messages=messages[:2]))
    store.commit(Commit(messages=messages[2:]))
    entries = store.pending(3)
    assert [e.message for e in entries] == messages[:3]
    ids = [e.id for e in store.pending(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_ack_removes_from_pending_but_not_from_history(store: JobStore) -> None:
    """Acknowledged entries leave pending, in any order, and stay in history."""
    messages = [message("a", i) for i in range(1, 6)]
    store.commit(Commit(messages=messages))
    ids = [e.id for e in store.pending(100)]
    store.ack([ids[3], ids[1]])
    assert [e.message for e in store.pending(100)] == [messages[0], messages[2], messages[4]]
    assert [e.message.seq for e in store.pending(2)] == [1, 3]
    store.ack([ids[0], ids[2]])
    assert [e.message for e in store.pending(100)] == [messages[4]]
    store.ack([ids[4]])
    assert store.pending(100) == []
    assert [(e.id, e.message) for e in store.history()] == list(zip(ids, messages, strict=True))


def test_ack_twice_and_ack_nothing(store: JobStore) -> None:
    """Acknowledging an entry again, or no entries, is harmless."""
    store.commit(Commit(messages=[message("a", 1), message("a", 2)]))
    first = store.pending(1)[0].id
    store.ack([first])
    store.ack([first])
    store.ack([])
    assert [e.message.seq for e in store.pending(10)] == [2]


def test_ids_keep_rising_after_everything_is_acked(store: JobStore) -> None:
    """New entries get ids after every earlier one, even when all earlier were acked."""
    store.commit(Commit(messages=[message("a", 1), message("a", 2)]))
    old = [e.id for e in store.pending(10)]
    store.ack(old)
    store.commit(Commit(messages=[message("a", 3)]))
    (new,) = store.pending(10)
    assert new.id > max(old)
    assert new.message.seq == 3


def test_meta_set_overwrite_and_prefix(store: JobStore) -> None:
    """Metadata is set, overwritten, and listed by prefix in key order."""
    store.commit(Commit(meta={"lastseq/b": b"2", "lastseq/a": b"1", "sim_now": b"0.0"}))
    store.commit(Commit(meta={"lastseq/a": b"7"}))
    assert store.get_meta("lastseq/a") == b"7"
    assert store.get_meta("lastseq/b") == b"2"
    assert store.meta_keys("lastseq/") == ["lastseq/a", "lastseq/b"]
    assert store.meta_keys("") == ["lastseq/a", "lastseq/b", "sim_now"]
    assert store.meta_keys("nope") == []


def test_empty_payload_roundtrips(store: JobStore) -> None:
    """An empty retained payload (a cleared topic) comes back as empty bytes."""
    store.commit(Commit(messages=[message("a", 9, payload=b"")]))
    (entry,) = store.pending(1)
    assert entry.message.payload == b""
    assert entry.message.retain is True


def test_memory_store_pending_after_a_gap_is_acked() -> None:
    """MemoryStore: acking the oldest entries moves past them; later gaps are respected."""
    store = MemoryStore()
    store.commit(Commit(messages=[message("a", i) for i in range(1, 8)]))
    store.ack([0, 1, 2, 5])
    assert [e.id for e in store.pending(10)] == [3, 4, 6]
    store.ack([3, 4])
    assert [e.id for e in store.pending(10)] == [6]
    store.commit(Commit(messages=[message("a", 8)]))
    assert [e.id for e in store.pending(10)] == [6, 7]
    assert len(list(store.history())) == 8


@pytest.mark.parametrize("state", list(JobState))
def test_every_state_roundtrips(store: JobStore, state: JobState) -> None:
    """Records in every state survive the store unchanged."""
    rec = record("a", state)
    store.commit(Commit(put=[rec]))
    assert store.load_jobs()["a"] == rec


def test_memory_store_without_history_forgets_what_was_delivered() -> None:
    """history=False drops delivered entries (ids go on rising) and keeps the pending ones."""
    store = MemoryStore(history=False)
    messages = [message("a", i) for i in range(1, 6)]
    store.commit(Commit(messages=messages))
    ids = [e.id for e in store.pending(100)]
    store.ack([ids[1]])  # out of order: nothing before it is forgotten yet
    assert [e.message for e in store.history()] == messages
    store.ack([ids[0], ids[2]])
    assert [(e.id, e.message) for e in store.history()] == [
        (ids[3], messages[3]),
        (ids[4], messages[4]),
    ]
    assert [e.id for e in store.pending(100)] == ids[3:]
    store.requeue([ids[4]])  # still held: can go again
    with pytest.raises(ValueError, match="forgotten"):
        store.requeue([ids[0]])
    store.commit(Commit(messages=[message("a", 6)]))
    store.ack([e.id for e in store.pending(100)])
    assert list(store.history()) == []
    store.commit(Commit(messages=[message("a", 7)]))
    (new,) = store.pending(10)
    assert new.id == ids[4] + 2
    assert new.message.seq == 7
