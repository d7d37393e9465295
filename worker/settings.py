"""Settings files: the shapes and readers shared by scenario files and the worker's config.

Files are TOML with snake_case keys. Unknown keys are errors, and every error names the
file, the key and what was expected (:class:`~worker.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from worker.clock import DEFAULT_EPOCH, parse_duration
from worker.config import DatacenterConfig, Policy, Range
from worker.errors import ConfigError
from worker.mqtt.broker import BrokerConfig
from worker.plan import PlanHints
from worker.requests import NAME
from worker.states import CancelWindow

__all__ = [
    "DatacenterFile",
    "Duration",
    "FileReader",
    "HttpConfig",
    "PolicyFile",
    "SettingsFile",
    "Size",
    "WorkerSettings",
    "convert",
    "durations",
    "load_worker_settings",
    "parse_size",
    "read_toml",
    "sizes",
]

T = TypeVar("T")

Duration = str | float
Size = str | int
Durations = Duration | list[Duration]
Sizes = Size | list[Size]


def durations(*values: Duration) -> list[Duration]:
    """A typed list of durations, for defaults of file shapes."""
    return list(values)


def sizes(*values: Size) -> list[Size]:
    """A typed list of sizes, for defaults of file shapes."""
    return list(values)


class SettingsFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of the file shapes: unknown keys are errors, keys are snake_case."""


class PolicyFile(SettingsFile):
    cancel_window: CancelWindow = CancelWindow.BEFORE_PACKAGING
    retention: Duration = "90d"
    creating_expiry: Duration = "14d"
    sweep_interval: Duration = "1h"


class DatacenterFile(SettingsFile):
    locations: dict[str, int] = msgspec.field(default_factory=lambda: {"West US": 2})
    throughput_mb_s: float = 200.0
    checkpoint_interval: Duration = "15m"
    carrier_delay: Durations = msgspec.field(default_factory=lambda: durations("1d", "3d"))
    return_delay: Durations = msgspec.field(default_factory=lambda: durations("2d", "3d"))
    lost_package_after: Duration = "44d"
    transfer_deadline_factor: float = 3.0
    drive_size: Sizes = msgspec.field(default_factory=lambda: sizes("1TB", "4TB"))
    export_drive_size: Size = "4TB"
    export_size: Sizes = msgspec.field(default_factory=lambda: sizes("1TB", "8TB"))
    drive_error_rate: float = 0.0
    drive_missing_rate: float = 0.0
    package_lost_rate: float = 0.0
    slow_drive_rate: float = 0.0
    slow_drive_speed: list[float] = msgspec.field(default_factory=lambda: [0.2, 0.5])
    late_drive_rate: float = 0.0
    late_drive_delay: Durations = msgspec.field(default_factory=lambda: durations("1d", "3d"))


_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(B|KB|MB|GB|TB|PB)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}


def parse_size(value: str | int) -> int:
    """Bytes in ``"1TB"``, ``"500 GB"`` or a plain integer (decimal units, as drives are sold)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a size such as '1TB' or '500GB', got {value!r}")
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])


class FileReader:
    """Reads values of a settings file, failing with the file, the key and what was expected."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(self.where, key, expected)

    def duration(self, key: str, value: Duration) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def size(self, key: str, value: Size) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def range(self, key: str, value: Any, parse: Any) -> Range:
        values = value if isinstance(value, list) else [value, value]
        if len(values) != 2:
            raise self.fail(key, "a single value or a [low, high] pair")
        low, high = (parse(f"{key}[{i}]", v) for i, v in enumerate(values))
        if low > high:
            raise self.fail(key, f"low <= high, got [{values[0]}, {values[1]}]")
        return Range(float(low), float(high))

    def policy(self, policy: PolicyFile) -> Policy:
        try:
            return Policy(
                cancel_window=policy.cancel_window,
                retention=self.duration("policy.retention", policy.retention),
                creating_expiry=self.duration("policy.creating_expiry", policy.creating_expiry),
                sweep_interval=self.duration("policy.sweep_interval", policy.sweep_interval),
            )
        except ValueError as exc:
            raise self.fail("policy", str(exc)) from None

    def datacenter(self, dc: DatacenterFile) -> DatacenterConfig:
        key = "datacenter"
        if not dc.locations:
            raise self.fail(f"{key}.locations", "at least one location with its number of bays")
        for name, bays in dc.locations.items():
            if bays < 1:
                raise self.fail(f"{key}.locations.{name}", f"at least one bay, got {bays}")
        if dc.throughput_mb_s <= 0:
            raise self.fail(f"{key}.throughput_mb_s", "a positive rate in MB/s")
        for rate in (
            "drive_error_rate",
            "drive_missing_rate",
            "package_lost_rate",
            "slow_drive_rate",
            "late_drive_rate",
        ):
            if not 0.0 <= getattr(dc, rate) <= 1.0:
                raise self.fail(f"{key}.{rate}", "a probability between 0 and 1")
        if dc.transfer_deadline_factor < 1:
            raise self.fail(f"{key}.transfer_deadline_factor", "a factor of at least 1")
        checkpoint = self.duration(f"{key}.checkpoint_interval", dc.checkpoint_interval)
        if checkpoint <= 0:
            raise self.fail(f"{key}.checkpoint_interval", "a positive duration")
        return DatacenterConfig(
            locations=dict(dc.locations),
            throughput=dc.throughput_mb_s * 1e6,
            checkpoint_interval=checkpoint,
            carrier_delay=self.range(f"{key}.carrier_delay", dc.carrier_delay, self.duration),
            return_delay=self.range(f"{key}.return_delay", dc.return_delay, self.duration),
            lost_package_after=self.duration(f"{key}.lost_package_after", dc.lost_package_after),
            transfer_deadline_factor=dc.transfer_deadline_factor,
            drive_size=self.range(f"{key}.drive_size", dc.drive_size, self.size),
            export_drive_size=float(self.size(f"{key}.export_drive_size", dc.export_drive_size)),
            export_size=self.range(f"{key}.export_size", dc.export_size, self.size),
            drive_error_rate=dc.drive_error_rate,
            drive_missing_rate=dc.drive_missing_rate,
            package_lost_rate=dc.package_lost_rate,
            slow_drive_rate=dc.slow_drive_rate,
            slow_drive_speed=self._speeds(f"{key}.slow_drive_speed", dc.slow_drive_speed),
            late_drive_rate=dc.late_drive_rate,
            late_drive_delay=self.range(
                f"{key}.late_drive_delay", dc.late_drive_delay, self.duration
            ),
        )

    def _speeds(self, key: str, value: list[float]) -> Range:
        speeds = self.range(key, value, lambda _key, v: float(v))
        if not 0 < speeds.low <= speeds.high <= 1:
            raise self.fail(key, "[low, high] speeds relative to a bay, within (0, 1]")
        return speeds


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML at ``path``; a missing, unreadable or malformed file is a ConfigError."""
    where = str(path)
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, "(file)", "an existing file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, "(file)", f"a readable UTF-8 file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, "(file)", f"valid TOML ({exc})") from None


def convert(raw: dict[str, Any], shape: type[T], where: str) -> T:
    """``raw`` as ``shape``; a type error or unknown key names its path in the file."""
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `")
        key = at.rstrip("`").removeprefix("$.") or "(top level)"
        raise ConfigError(where, key, message) from None


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
    db: Path
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


def load_worker_settings(path: str | Path | None) -> WorkerSettings:
    """The worker's settings file (all defaults when ``path`` is None)."""
    where = str(path) if path is not None else "(defaults)"
    raw = read_toml(path) if path is not None else {}
    data = convert(raw, WorkerFile, where)
    reader = FileReader(where)
    if not NAME.fullmatch(data.worker_id):
        raise reader.fail("worker_id", "1 to 64 letters, digits, '-' or '_'")
    if data.speed <= 0:
        raise reader.fail("speed", "a positive number of simulated seconds a second")
    for key in ("window", "max_command_bytes", "will_delay"):
        if getattr(data, key) < 1:
            raise reader.fail(key, "a positive integer")
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
    epoch = data.epoch if data.epoch.tzinfo else data.epoch.replace(tzinfo=UTC)
    return WorkerSettings(
        worker_id=data.worker_id,
        db=Path(data.db),
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
    )
