"""An independent MQTT observer: records everything, reconnects by itself, and checks the
stream the way a consumer would.

It is a plain paho client in a thread of its own, connected straight to the broker (never
through the fault proxy), sharing nothing with the worker or the run's event loop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.report.history import History
from simulator.report.invariants import check_stream
from worker import DEFAULT_EPOCH, TOPIC_PREFIX, StatusMessage

__all__ = ["Observer", "Received", "collect_retained"]

Received = tuple[str, bytes, bool]


class Observer:
    """A paho subscriber on ``importexport/v1/#`` in its own thread."""

    def __init__(
        self,
        port: int,
        *,
        topics: tuple[str, ...] = (f"{TOPIC_PREFIX}/#",),
        username: str | None = None,
        password: str | None = None,
        listener: Callable[[str, bytes], None] | None = None,
        keepalive: int = 5,
    ) -> None:
        """``listener`` is called from the observer's thread with each message."""
        self.topics = topics
        self.listener = listener
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect_async("127.0.0.1", port, keepalive=keepalive)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, *_: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, *_: Any) -> None:
        self._subscribed.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        with self._lock:
            self.messages.append((message.topic, payload, bool(message.retain)))
        if self.listener is not None:
            self.listener(message.topic, payload)

    def wait_subscribed(self, timeout: float = 20) -> None:
        assert self._subscribed.wait(timeout), "the observer did not (re)subscribe in time"

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Any, timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    # -- reading the stream ----------------------------------------------------------------

    def status_messages(self) -> list[StatusMessage]:
        """Job messages, deduplicated by (topic, seq), first copy kept, in arrival order."""
        seen: set[tuple[str, int]] = set()
        out: list[StatusMessage] = []
        for topic, payload, retain in self.snapshot():
            parts = topic.split("/")
            if len(parts) < 5 or parts[2] != "jobs":
                continue
            job = parts[3]
            body = json.loads(payload) if payload else None
            seq = -1 if body is None else body.get("seq", body.get("data", {}).get("seq", -1))
            if seq == -1:
                # A clearing payload carries no seq: it belongs to the deletion's change.
                key = (topic, -len(out))
            else:
                key = (topic, seq if not topic.endswith("/events") else hash(payload))
            if key in seen:
                continue
            seen.add(key)
            out.append(
                StatusMessage(
                    topic=topic, payload=payload, qos=1, retain=retain, job=job, seq=max(seq, 0)
                )
            )
        return out

    def history(self, epoch: datetime = DEFAULT_EPOCH) -> History:
        return History(self.status_messages(), epoch)

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Until no message has come for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            count = len(self.snapshot())
            if count == seen:
                return
            seen = count
            time.sleep(quiet)

    def violations(self) -> dict[str, list[str]]:
        """The stream-only invariants, over the deduplicated stream."""
        return {c.name: c.violations for c in check_stream(self.history()) if c.violations}

    def worker_states(self, worker_id: str) -> list[str]:
        topic = f"{TOPIC_PREFIX}/workers/{worker_id}/status"
        return [json.loads(p)["state"] for t, p, _ in self.snapshot() if t == topic and p]


def collect_retained(port: int, *, quiet: float = 1.0, timeout: float = 60) -> dict[str, bytes]:
    """The job topics the broker holds retained, read by a fresh subscriber."""
    observer = Observer(port, topics=(f"{TOPIC_PREFIX}/jobs/#",))
    try:
        observer.wait_subscribed(timeout)
        observer.wait_quiet(quiet, timeout)
        return {topic: payload for topic, payload, retain in observer.snapshot() if retain}
    finally:
        observer.close()
