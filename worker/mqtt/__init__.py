"""The worker on an MQTT broker: how to reach one, the connection, and what goes over it.

* :mod:`~worker.mqtt.broker`: addresses, credentials, TLS and the protocol version;
* :mod:`~worker.mqtt.embedded`: the zero-install amqtt broker for demos;
* :mod:`~worker.mqtt.link`: the connection, kept up with reconnects and epochs;
* :mod:`~worker.mqtt.liveness`: ``online``, ``offline`` and the Last Will ``lost``;
* :mod:`~worker.mqtt.publisher`: status through a window of QoS 1 publishes;
* :mod:`~worker.mqtt.intake`: commands in, replies out.
"""

from worker.mqtt.broker import (
    BrokerConfig,
    Protocol,
    Version,
    connected,
    make_client,
    mqtt_properties,
    subscribe,
)
from worker.mqtt.embedded import embedded_broker
from worker.mqtt.link import MqttLink

__all__ = [
    "BrokerConfig",
    "MqttLink",
    "Protocol",
    "Version",
    "connected",
    "embedded_broker",
    "make_client",
    "mqtt_properties",
    "subscribe",
]
