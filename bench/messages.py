"""Status messages for the MQTT benchmarks: job snapshots as the outbox holds them.

Every message is what :func:`worker.status.build_messages` puts first in a change: the
retained QoS 1 snapshot of a job on ``importexport/v1/jobs/{job}/state``, an ARM-shaped JSON
object carrying the job's ``seq`` and ``simTime``. Real snapshots are 0.8 to 1.5 kB; the
benchmark trims the shape and pads it (with a tag) to a chosen size, 300 bytes by default.

Messages go round-robin over ``jobs`` jobs, so each job's ``seq`` rises by one per message
and every (topic, payload) pair is unique: the subscriber can tell duplicates from losses.
"""

from __future__ import annotations

from typing import Any

import msgspec

from worker import StatusMessage, job_topic

__all__ = ["DEFAULT_JOBS", "SUBSCRIPTION", "make_messages", "wire_payload"]

DEFAULT_JOBS = 100
#: A filter that matches every message :func:`make_messages` builds.
SUBSCRIPTION = "importexport/v1/jobs/#"

_json = msgspec.json.Encoder()
_RESOURCE = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/drivesim"
_STATES = ("Creating", "Shipping", "Received", "Transferring", "Packaging", "Closed")


def _snapshot(job: str, seq: int, *, full: bool) -> dict[str, Any]:
    state = _STATES[seq % len(_STATES)]
    properties: dict[str, Any] = {"jobType": "Import", "state": state}
    if full:
        properties.update(
            cancelRequested=False,
            percentComplete=seq % 101,
            driveList=[{"driveId": "DRV0", "state": state}],
            provisioningState="Succeeded",
        )
    body: dict[str, Any] = {"name": job}
    if full:
        body = {
            "id": f"{_RESOURCE}/providers/Microsoft.ImportExport/jobs/{job}",
            "name": job,
            "location": "West US",
        }
    body.update(properties=properties, seq=seq, simTime=f"2026-01-05T08:{seq % 60:02d}:00.000Z")
    return body


def _payload(job: str, seq: int, size: int) -> bytes:
    for full in (True, False):
        body = _snapshot(job, seq, full=full)
        bare = _json.encode(body)
        if len(bare) <= size:
            break
    if len(bare) >= size:
        return bare
    # Pad with a tag to exactly ``size`` bytes: ',"tags":{"note":""}' is 20 bytes.
    room = size - len(bare) - len(',"tags":{"note":""}')
    if room < 0:
        return bare
    body["tags"] = {"note": "x" * room}
    payload = _json.encode(body)
    assert len(payload) == size, (len(payload), size)
    return payload


def make_messages(
    count: int, payload_bytes: int, *, jobs: int = DEFAULT_JOBS
) -> list[StatusMessage]:
    """``count`` snapshot messages of (about) ``payload_bytes`` each, in commit order."""
    messages = []
    for i in range(count):
        job = f"job-{i % jobs:05d}"
        seq = i // jobs + 1
        messages.append(
            StatusMessage(
                topic=job_topic(job, "state"),
                payload=_payload(job, seq, payload_bytes),
                qos=1,
                retain=True,
                job=job,
                seq=seq,
            )
        )
    return messages


def wire_payload(message: StatusMessage, epoch: int) -> bytes:
    """The bytes :class:`worker.mqtt.MqttLink` puts on the wire for ``message``: a retained
    snapshot gets the connection's epoch as its first field. The plain publishers send
    these same bytes, so every case publishes identical packets."""
    payload = message.payload
    if message.retain and payload.startswith(b"{") and len(payload) > 2:
        return b'{"epoch":%d,' % epoch + payload[1:]
    return payload
