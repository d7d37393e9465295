"""Status messages: what a committed change announces, topic by topic.

One change of a job has one ``seq`` and announces, in this order:

* ``{prefix}/jobs/{job}/state`` (QoS 1, retained): the full job snapshot, ARM shape, no secrets;
* ``{prefix}/jobs/{job}/drives/{drive}/state`` (QoS 1, retained): each drive that changed;
* ``{prefix}/jobs/{job}/events`` (QoS 1): one CloudEvents 1.0 event per domain event;
* ``{prefix}/jobs/{job}/progress`` (QoS 0): transfer progress of checkpoints.

A deleted job clears its retained topics with empty retained payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from worker.record import JobRecord

__all__ = [
    "STATUS_FILTERS",
    "TOPIC_PREFIX",
    "Event",
    "StatusMessage",
    "build_messages",
    "decode_payload",
    "drive_topic",
    "job_topic",
    "snapshot_messages",
    "watch_command",
]

#: The root of every topic drivesim uses: job status, workers, commands and replies.
TOPIC_PREFIX = "importexport/v1"
#: What a consumer subscribes to in order to watch the datacenter: job status and worker
#: liveness, never a secret. Not ``importexport/v1/#``: that also matches the commands
#: (``create`` and ``update`` carry BitLocker keys) and the replies under
#: ``importexport/v1/replies/`` (``list-bitlocker-keys`` answers with them).
STATUS_FILTERS = (f"{TOPIC_PREFIX}/jobs/#", f"{TOPIC_PREFIX}/workers/#")
EVENT_TYPE_PREFIX = "com.drivesim.importexport."
SOURCE = "/drivesim/datacenter"

_json = msgspec.json.Encoder()
_json_decode = msgspec.json.Decoder()


class Event(msgspec.Struct, frozen=True):
    """A domain event of one change: ``stateChanged``, ``cancelRequested``, ``jobDeleted``..."""

    type: str
    data: Mapping[str, Any] = msgspec.field(default_factory=dict)


class StatusMessage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One message waiting in the outbox; ``payload`` is the exact bytes to publish."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    job: str
    seq: int


def watch_command(host: str, port: int) -> str:
    """The ``mosquitto_sub`` line every hint prints: the status topics only."""
    filters = " ".join(f"-t '{f}'" for f in STATUS_FILTERS)
    return f"mosquitto_sub -h {host} -p {port} {filters} -v"


def job_topic(job: str, leaf: str) -> str:
    return f"{TOPIC_PREFIX}/jobs/{job}/{leaf}"


def drive_topic(job: str, drive: str) -> str:
    return f"{TOPIC_PREFIX}/jobs/{job}/drives/{drive}/state"


def build_messages(
    before: JobRecord | None,
    after: JobRecord | None,
    events: list[Event],
    *,
    seq: int,
    sim_time: str,
) -> list[StatusMessage]:
    """The messages that announce the change from ``before`` to ``after`` (None: deleted)."""
    record = after or before
    assert record is not None
    name = record.name
    base = f"{TOPIC_PREFIX}/jobs/{name}/"
    messages: list[StatusMessage] = []
    add = messages.append
    # The members every payload of this change ends with, and its job's name and time as
    # JSON strings, encoded once (a time is digits and "-:.TZ": nothing to escape).
    job_json = _json.encode(name)
    time_json = b'"%b"' % sim_time.encode()
    stamp = b',"seq":%d,"simTime":%b' % (seq, time_json)
    about = b',"job":' + job_json + stamp + b"}"

    if after is None:
        add(StatusMessage(topic=base + "state", payload=b"", qos=1, retain=True, job=name, seq=seq))
        for drive in record.drives:
            add(_cleared(base, drive.drive_id, name, seq))
    else:
        add(
            StatusMessage(
                topic=base + "state",
                payload=_snapshot(after, stamp),
                qos=1,
                retain=True,
                job=name,
                seq=seq,
            )
        )
        old = {d.drive_id: d for d in before.drives} if before is not None else {}
        kept = 0
        for drive in after.drives:
            previous = old.get(drive.drive_id)
            if previous is not None:
                kept += 1
            # Drive statuses are frozen and a change replaces those it changes: the
            # same object is the same status, and only a replaced one is compared.
            if previous is not drive and previous != drive:
                add(
                    StatusMessage(
                        topic=f"{base}drives/{drive.drive_id}/state",
                        payload=_extend(drive, about),
                        qos=1,
                        retain=True,
                        job=name,
                        seq=seq,
                    )
                )
        if kept < len(old):  # a replaced drive list: clear the dropped drives
            dropped = old.keys() - {d.drive_id for d in after.drives}
            for drive_id in sorted(dropped):
                add(_cleared(base, drive_id, name, seq))

    for index, event in enumerate(events):
        if event.type == "driveProgress":
            topic, payload, qos = base + "progress", _extend(event.data, about), 0
        else:
            topic, qos = base + "events", 1
            payload = _cloudevent(job_json, seq, index, time_json, event)
        add(StatusMessage(topic=topic, payload=payload, qos=qos, retain=False, job=name, seq=seq))
    return messages


def _cleared(base: str, drive_id: str, job: str, seq: int) -> StatusMessage:
    return StatusMessage(
        topic=f"{base}drives/{drive_id}/state", payload=b"", qos=1, retain=True, job=job, seq=seq
    )


def snapshot_messages(record: JobRecord, *, sim_time: str) -> list[StatusMessage]:
    """The retained snapshots of a job as it stands: to announce it again after a reconnect."""
    return build_messages(None, record, [], seq=record.sim.seq, sim_time=sim_time)


def _snapshot(record: JobRecord, stamp: bytes) -> bytes:
    if record.sim.outcome is not None:
        return _extend(record.job, stamp + b',"outcome":' + _json.encode(record.sim.outcome) + b"}")
    return _extend(record.job, stamp + b"}")


def _extend(value: msgspec.Struct | Mapping[str, Any], tail: bytes) -> bytes:
    """The JSON object of ``value`` with more members: ``tail`` is ``,"key":value...}``.

    Encoding the struct straight to bytes and splicing costs a third of building the dict.
    """
    head = _json.encode(value)
    return head[:-1] + tail if head != b"{}" else b"{" + tail[1:]


#: Each event type's JSON string, as ``_cloudevent`` writes it.
_EVENT_TYPES: dict[str, bytes] = {}
_EVENT_HEAD = b'{"specversion":"1.0","id":'
_EVENT_SOURCE = b',"source":' + _json.encode(SOURCE) + b',"type":'
_EVENT_DATA = b',"datacontenttype":"application/json","data":'


def _cloudevent(job: bytes, seq: int, index: int, time: bytes, event: Event) -> bytes:
    """A CloudEvents 1.0 structured JSON event, its id unique per event (a change may
    raise several events of one type); ``job`` and ``time`` are JSON strings already."""
    kind = _EVENT_TYPES.get(event.type)
    if kind is None:
        kind = _EVENT_TYPES[event.type] = _json.encode(EVENT_TYPE_PREFIX + event.type)
    return b"".join(
        (
            _EVENT_HEAD,
            b'%b:%d:%d"' % (job[:-1], seq, index),  # the id: "job:seq:index"
            _EVENT_SOURCE,
            kind,
            b',"subject":',
            job,
            b',"time":',
            time,
            _EVENT_DATA,
            _extend(event.data, b',"seq":%d}' % seq),
            b"}",
        )
    )


def decode_payload(payload: bytes) -> Any:
    """The JSON of a status payload (None for an empty, clearing payload)."""
    return _json_decode.decode(payload) if payload else None
