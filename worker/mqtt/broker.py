"""How to reach an MQTT broker: address, credentials, TLS, protocol version.

``mqtt://user:pass@host:port`` or ``mqtts://host:port`` (TLS). The protocol is MQTT 5 by
default; ``auto`` tries 5 and falls back to 3.1.1 when the broker refuses it (amqtt and
older brokers answer CONNACK 132, "unsupported protocol version").
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = [
    "BrokerConfig",
    "Protocol",
    "Version",
    "connected",
    "make_client",
    "mqtt_properties",
    "subscribe",
]

Protocol = Literal["auto", "5", "3.1.1"]
Version = Literal["5", "3.1.1"]

log = structlog.get_logger("drivesim.mqtt")

_VERSIONS = {"5": aiomqtt.ProtocolVersion.V5, "3.1.1": aiomqtt.ProtocolVersion.V311}


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the broker is and how to talk to it."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    protocol: Protocol = "auto"
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **overrides: object) -> BrokerConfig:
        """Parse ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS); other
        settings (and credentials, over the URL's) come as keyword overrides, None ignored."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"expected a broker URL such as mqtt://127.0.0.1:1883, got {url!r}")
        tls = parts.scheme == "mqtts"
        config = cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )
        given = {key: value for key, value in overrides.items() if value is not None}
        return replace(config, **given)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """The broker's URL, without the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def mqtt_properties(packet_type: int) -> Properties:
    """Empty MQTT 5 properties for a packet type (paho's constructor is untyped)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def make_client(
    config: BrokerConfig,
    *,
    version: Version,
    identifier: str | None = None,
    will: aiomqtt.Will | None = None,
    max_inflight: int = 100,
    clean: bool = True,
) -> aiomqtt.Client:
    """An aiomqtt client tuned for windowed QoS 1 publishing. Build it inside the loop."""
    v5 = version == "5"
    properties = None
    if v5:
        properties = mqtt_properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0
    client = aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=config.password,
        identifier=identifier,
        protocol=_VERSIONS[version],
        will=will,
        clean_session=None if v5 else clean,
        keepalive=config.keepalive,
        timeout=5,  # the connect timeout; publishes pass their own
        max_inflight_messages=max_inflight,
        max_concurrent_outgoing_calls=None,
        tls_context=config.tls_context(),
        tls_insecure=config.tls_insecure if config.tls else None,
        properties=properties,
        # Requests and replies are small packets: Nagle's algorithm would hold each one
        # back until the previous one is acknowledged (a delayed ACK: about 40 ms).
        socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    )
    # aiomqtt warns on every publish beyond ten pending ones; a window is intended here.
    client.pending_calls_threshold = 10 * max_inflight
    return client


@asynccontextmanager
async def connected(
    config: BrokerConfig,
    make: Callable[[Version], aiomqtt.Client],
    *,
    prefer: Version = "5",
    fallback: bool = True,
) -> AsyncIterator[tuple[aiomqtt.Client, Version]]:
    """A connected client and its protocol version.

    With ``protocol = "auto"`` the ``prefer``-red version is tried first and the other one
    if that connect fails (a broker that does not speak MQTT 5 may refuse it, or may not
    answer at all); a fixed protocol, or ``fallback=False``, tries one version alone.
    """
    other: Version = "3.1.1" if prefer == "5" else "5"
    versions: list[Version] = [prefer, other]
    if config.protocol != "auto":
        versions = ["5" if config.protocol == "5" else "3.1.1"]
    elif not fallback:
        versions = [prefer]
    for attempt, version in enumerate(versions):
        client = make(version)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            # A broker that is down or unreachable says nothing about its protocol: only a
            # refused or unanswered CONNECT is a reason to try the other version.
            refused = isinstance(exc, aiomqtt.MqttCodeError) or "timed out" in str(exc)
            if attempt + 1 == len(versions) or not refused:
                raise
            log.info(
                "connect failed; trying the other protocol version",
                tried=version,
                error=str(exc),
            )
            continue
        try:
            yield client, version
        except BaseException as exc:
            await client.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await client.__aexit__(None, None, None)
        return


async def subscribe(client: aiomqtt.Client, topic: str) -> None:
    """Subscribe ``client`` to ``topic`` at QoS 1, or raise :class:`aiomqtt.MqttError` if the
    broker refuses (aiomqtt returns a refusal, SUBACK 0x80, without raising: a NATS node
    answers so while its JetStream leader is re-elected, or where its permissions deny)."""
    granted = await client.subscribe(topic, qos=1, timeout=10)
    if any(code >= 0x80 if isinstance(code, int) else code.is_failure for code in granted):
        raise aiomqtt.MqttError(f"the broker refused the subscription to {topic}")
