"""Settings files: the shapes and readers shared by scenario files and the worker's config.

Files are TOML with snake_case keys. Unknown keys are errors, and every error names the
file, the key and what was expected (:class:`~worker.errors.ConfigError`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from worker.clock import parse_duration
from worker.config import DatacenterConfig, Policy, Range
from worker.errors import ConfigError
from worker.states import CancelWindow

__all__ = [
    "DatacenterFile",
    "Duration",
    "Durations",
    "FileReader",
    "PolicyFile",
    "SettingsFile",
    "Size",
    "Sizes",
    "convert",
    "durations",
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
