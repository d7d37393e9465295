"""The worker's settings file: ``drivesim worker --config FILE`` (see ``configs/worker.toml``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

from worker.clock import DEFAULT_EPOCH
from worker.config import DatacenterConfig, Policy
from worker.files import (
    MAX_SPEED,
    DatacenterFile,
    FileReader,
    PolicyFile,
    SettingsFile,
    convert,
    read_toml,
)
from worker.mqtt.broker import BrokerConfig
from worker.plan import PlanHints
from worker.requests import JOB_NAME

__all__ = ["HttpConfig", "WorkerSettings", "load_worker_settings"]


class BrokerFile(SettingsFile):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    protocol: Literal["auto", "5", "3.1.1"] = "auto"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where the worker serves the Azure REST API; ``token`` None accepts any bearer token
    (or none), a string accepts only ``Authorization: Bearer <token>``. Port 0: any free port."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None
    #: Serve HTTPS: with ``cert_file``/``key_file`` (PEM) if given, else with a self-signed
    #: certificate generated at start (``HttpServer.cert_file``; needs ``cryptography``).
    https: bool = False
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_address(cls, address: str, *, token: str | None = None) -> HttpConfig:
        """``HOST:PORT`` or ``PORT`` (host 127.0.0.1); IPv6 hosts in brackets."""
        host, sep, port = address.strip().rpartition(":")
        if not sep:
            host, port = "", address.strip()
        host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT for the HTTP API, got {address!r}")
        return cls(host=host, port=int(port), token=token)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"


class WorkerFile(SettingsFile):
    worker_id: str = "dc-1"
    db: str = "drivesim.db"
    speed: float = 3600.0
    seed: int = 0
    epoch: datetime = DEFAULT_EPOCH
    window: int = 100
    max_command_bytes: int = 64 * 1024
    drain_timeout: float = 10.0
    will_delay: int = 5
    replay_tail: float = 2.0
    #: Workers sharing a PostgreSQL store: how long a location's lease lasts unrenewed.
    lease: float = 10.0
    broker: BrokerFile | None = None
    #: ``HOST:PORT`` to serve the Azure REST API on (none: no HTTP API).
    http: str | None = None
    http_token: str | None = None
    #: Serve the REST API over HTTPS (self-signed unless ``https_cert``/``https_key``).
    https: bool = False
    https_cert: str | None = None
    https_key: str | None = None
    policy: PolicyFile = msgspec.field(default_factory=PolicyFile)
    datacenter: DatacenterFile = msgspec.field(default_factory=DatacenterFile)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything ``drivesim worker`` needs (defaults: :class:`WorkerFile`); ``broker`` None
    means the embedded broker."""

    worker_id: str
    #: The job store: a SQLite file's path, or a ``postgresql://`` URL.
    db: str | Path
    speed: float
    seed: int
    epoch: datetime
    window: int
    max_command_bytes: int
    drain_timeout: float
    will_delay: int
    replay_tail: float
    broker: BrokerConfig | None
    policy: Policy
    datacenter: DatacenterConfig
    #: Per job, what a scenario pins down instead of drawing it.
    pinned: Mapping[str, PlanHints] = field(default_factory=dict)
    #: Unix time of simulated second 0: a restarted worker catches up with the time it was
    #: down. None: the clock resumes where the store left off.
    time_origin: float | None = None
    #: The Azure REST API (None: not served).
    http: HttpConfig | None = None
    #: Workers sharing a store: seconds a lease on a location lasts unrenewed.
    lease: float = 10.0


def load_worker_settings(path: str | Path | None) -> WorkerSettings:
    """The worker's settings file (all defaults when ``path`` is None)."""
    where = str(path) if path is not None else "(defaults)"
    raw = read_toml(path) if path is not None else {}
    data = convert(raw, WorkerFile, where)
    reader = FileReader(where)
    if not JOB_NAME.fullmatch(data.worker_id):
        raise reader.fail("worker_id", "1 to 64 letters, digits, '-' or '_'")
    reader.number("speed", data.speed, 0.0, MAX_SPEED, "simulated seconds a second", above=True)
    reader.integer("seed", data.seed, 0, 2**63 - 1, "a seed")
    # MQTT's own limits: 65,535 messages in flight, a packet of 256 MB.
    reader.integer("window", data.window, 1, 65_535, "QoS 1 publishes in flight")
    reader.integer("max_command_bytes", data.max_command_bytes, 1, 268_435_455, "bytes")
    reader.integer("will_delay", data.will_delay, 1, 86_400, "seconds")
    reader.number("drain_timeout", data.drain_timeout, 0.0, 3600.0, "seconds")
    reader.number("replay_tail", data.replay_tail, 0.0, 3600.0, "seconds")
    reader.number("lease", data.lease, 1.0, 3600.0, "seconds")
    broker = None
    if data.broker is not None:
        b = data.broker
        try:
            broker = BrokerConfig.from_url(
                b.url,
                username=b.username,
                password=b.password,
                ca_file=b.ca_file,
                cert_file=b.cert_file,
                key_file=b.key_file,
                tls_insecure=b.tls_insecure,
                protocol=b.protocol,
            )
        except ValueError as exc:
            raise reader.fail("broker.url", str(exc)) from None
    http = None
    if data.http is not None:
        try:
            http = HttpConfig.from_address(data.http, token=data.http_token)
        except ValueError as exc:
            raise reader.fail("http", str(exc)) from None
        if (data.https_cert is None) != (data.https_key is None):
            raise reader.fail("https_cert", "https_cert and https_key go together")
        http = dataclasses.replace(
            http,
            https=data.https or data.https_cert is not None,
            cert_file=data.https_cert,
            key_file=data.https_key,
        )
    epoch = reader.epoch("epoch", data.epoch)
    return WorkerSettings(
        worker_id=data.worker_id,
        db=data.db,
        speed=data.speed,
        seed=data.seed,
        epoch=epoch,
        window=data.window,
        max_command_bytes=data.max_command_bytes,
        drain_timeout=data.drain_timeout,
        will_delay=data.will_delay,
        replay_tail=data.replay_tail,
        broker=broker,
        policy=reader.policy(data.policy),
        datacenter=reader.datacenter(data.datacenter),
        http=http,
        lease=data.lease,
    )
