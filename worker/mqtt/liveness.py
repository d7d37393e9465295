"""The worker's liveness on the broker: ``online``, ``offline``, and ``lost`` as its Last Will.

Each worker has a retained status topic. It publishes ``online`` on every connect and
``offline`` before a clean disconnect; the broker publishes the Last Will ``lost`` when
the connection dies without one (on MQTT 5 after a will delay, so a short blip is not
reported as a loss). Every payload carries the connection's ``epoch``.
"""

from __future__ import annotations

import json
from typing import Literal

import aiomqtt
from paho.mqtt.packettypes import PacketTypes

from worker.mqtt.broker import Version, mqtt_properties
from worker.status import TOPIC_PREFIX

__all__ = ["Liveness", "worker_status_topic"]

State = Literal["online", "offline", "lost"]


def worker_status_topic(worker_id: str) -> str:
    return f"{TOPIC_PREFIX}/workers/{worker_id}/status"


class Liveness:
    """The status topic of worker ``worker_id`` and what goes on it."""

    def __init__(self, worker_id: str, *, will_delay: int) -> None:
        self.worker_id = worker_id
        self.will_delay = will_delay
        self.topic = worker_status_topic(worker_id)

    def payload(self, state: State, epoch: int) -> bytes:
        return json.dumps({"state": state, "workerId": self.worker_id, "epoch": epoch}).encode()

    def will(self, version: Version, epoch: int) -> aiomqtt.Will:
        """The Last Will of a connection with this epoch: ``lost``, retained."""
        properties = None
        if version == "5":
            properties = mqtt_properties(PacketTypes.WILLMESSAGE)
            properties.WillDelayInterval = self.will_delay
        return aiomqtt.Will(
            self.topic, self.payload("lost", epoch), qos=1, retain=True, properties=properties
        )
