"""Status messages: which topics a change announces, in what order, with what payloads."""

from __future__ import annotations

from tests.worker import conftest
from worker.model import DriveState, JobState
from worker.record import JobRecord, clone
from worker.status import Event, build_messages, decode_payload

PREFIX = "importexport/v1/jobs/job1"
TIME = "2026-01-05T08:00:00.000Z"


def record(*drives: str, state: JobState = JobState.CREATING) -> JobRecord:
    return conftest.record(state=state, drives=drives)


def test_a_new_job_announces_snapshot_drives_then_events() -> None:
    """A created job: retained snapshot first, then each drive, then one event per domain event."""
    after = record("D1", "D2")
    messages = build_messages(
        None, after, [Event("jobCreated", {"drives": 2})], seq=1, sim_time=TIME
    )
    assert [(m.topic, m.qos, m.retain) for m in messages] == [
        (f"{PREFIX}/state", 1, True),
        (f"{PREFIX}/drives/D1/state", 1, True),
        (f"{PREFIX}/drives/D2/state", 1, True),
        (f"{PREFIX}/events", 1, False),
    ]
    assert {(m.job, m.seq) for m in messages} == {("job1", 1)}
    snapshot = decode_payload(messages[0].payload)
    assert (snapshot["name"], snapshot["seq"], snapshot["simTime"]) == ("job1", 1, TIME)
    assert snapshot["properties"]["state"] == "Creating"
    assert "outcome" not in snapshot
    drive = decode_payload(messages[1].payload)
    assert drive == {
        "driveId": "D1",
        "state": "Specified",
        "job": "job1",
        "seq": 1,
        "simTime": TIME,
    }


def test_only_changed_drives_are_announced() -> None:
    """A change announces only the drives whose status differs from before."""
    before = record("D1", "D2", "D3")
    after = clone(before)
    after.set_drive(after.drive("D2"), state=DriveState.RECEIVED)
    messages = build_messages(before, after, [], seq=5, sim_time=TIME)
    assert [m.topic for m in messages] == [f"{PREFIX}/state", f"{PREFIX}/drives/D2/state"]


def test_a_drive_replaced_by_an_equal_status_is_not_announced() -> None:
    """Only a drive whose status differs is announced, even if a change replaced it."""
    before = record("D1", "D2", "D3")
    after = clone(before)
    after.set_drive(after.drive("D2"))
    messages = build_messages(before, after, [], seq=5, sim_time=TIME)
    assert [m.topic for m in messages] == [f"{PREFIX}/state"]


def test_dropped_drives_are_cleared() -> None:
    """A change that removes drives clears each removed drive's retained topic."""
    before = record("D1", "D2", "D3")
    after = record("D1", "D9")
    messages = build_messages(before, after, [], seq=2, sim_time=TIME)
    cleared = {m.topic for m in messages if m.retain and m.payload == b""}
    assert cleared == {f"{PREFIX}/drives/D2/state", f"{PREFIX}/drives/D3/state"}
    assert f"{PREFIX}/drives/D9/state" in {m.topic for m in messages if m.payload}


def test_progress_goes_to_the_progress_topic_at_qos0() -> None:
    """driveProgress events go to the progress topic, QoS 0, not retained, as plain JSON."""
    rec = record("D1")
    event = Event("driveProgress", {"driveId": "D1", "bytesSucceeded": 10, "percentComplete": 1})
    messages = build_messages(rec, rec, [event], seq=3, sim_time=TIME)
    progress = [m for m in messages if m.topic.endswith("/progress")]
    assert [(m.qos, m.retain) for m in progress] == [(0, False)]
    assert decode_payload(progress[0].payload) == {
        "driveId": "D1",
        "bytesSucceeded": 10,
        "percentComplete": 1,
        "job": "job1",
        "seq": 3,
        "simTime": TIME,
    }
    assert not any(m.topic.endswith("/events") for m in messages)


def test_events_are_cloudevents() -> None:
    """Each event is a CloudEvents 1.0 JSON document with a unique id per job, seq and type."""
    rec = record("D1")
    events = [
        Event("stateChanged", {"from": "Creating", "to": "Shipping"}),
        Event("jobUpdated", {}),
    ]
    messages = build_messages(rec, rec, events, seq=7, sim_time=TIME)
    bodies = [decode_payload(m.payload) for m in messages if m.topic.endswith("/events")]
    assert bodies[0] == {
        "specversion": "1.0",
        "id": "job1:7:0",
        "source": "/drivesim/datacenter",
        "type": "com.drivesim.importexport.stateChanged",
        "subject": "job1",
        "time": TIME,
        "datacontenttype": "application/json",
        "data": {"from": "Creating", "to": "Shipping", "seq": 7},
    }
    assert [b["id"] for b in bodies] == ["job1:7:0", "job1:7:1"]


def test_delete_clears_retained_topics() -> None:
    """A deleted job publishes empty retained payloads for its snapshot and every drive."""
    before = record("D1", "D2")
    messages = build_messages(before, None, [Event("jobDeleted", {})], seq=9, sim_time=TIME)
    assert [(m.topic, m.payload, m.retain) for m in messages[:3]] == [
        (f"{PREFIX}/state", b"", True),
        (f"{PREFIX}/drives/D1/state", b"", True),
        (f"{PREFIX}/drives/D2/state", b"", True),
    ]
    assert decode_payload(messages[3].payload)["type"].endswith("jobDeleted")
    assert decode_payload(b"") is None


def test_snapshot_carries_the_outcome_once_set() -> None:
    """The snapshot of an ended job carries its outcome."""
    rec = record("D1", state=JobState.COMPLETED)
    rec.sim.outcome = "cancelled"
    (snapshot, *_) = build_messages(None, rec, [], seq=2, sim_time=TIME)
    assert decode_payload(snapshot.payload)["outcome"] == "cancelled"


def test_no_message_carries_keys_or_simulation_bookkeeping() -> None:
    """Keys and the sim part of a record never appear in any payload."""
    before = record("D1", "D2")
    after = clone(before)
    after.job.properties.state = JobState.SHIPPING
    messages = build_messages(None, before, [Event("jobCreated")], seq=1, sim_time=TIME)
    messages += build_messages(before, after, [Event("stateChanged")], seq=2, sim_time=TIME)
    messages += build_messages(after, None, [Event("jobDeleted")], seq=3, sim_time=TIME)
    for message in messages:
        assert b"KEY-" not in message.payload
        assert b"carrierDelay" not in message.payload
        assert b"carrier_delay" not in message.payload
