"""Settings files: the shapes and readers shared by scenario files and the worker's config.

Files are TOML with snake_case keys. Unknown keys are errors, and every error names the
file, the key and what was expected (:class:`~worker.errors.ConfigError`).
"""

from __future__ import annotations

import enum
import json
import math
import re
import tomllib
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from worker.clock import parse_duration
from worker.config import DAY, DatacenterConfig, Policy, Range
from worker.errors import ConfigError
from worker.states import CancelWindow

__all__ = [
    "MAX_DURATION",
    "MAX_SIZE",
    "MAX_SPEED",
    "MIN_SPEED",
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


#: The longest duration a file may give: a century of simulated time (the calendar's clock
#: and the store's timestamps hold it; nothing the service does takes longer).
MAX_DURATION = 36500 * DAY
#: The largest size a file may give: a petabyte (the largest drive sold is a few dozen TB; a
#: job's ten drives stay far within the store's 64-bit integers).
MAX_SIZE = 10**15
#: Locations a datacenter may have, and bays a location.
MAX_LOCATIONS, MAX_BAYS = 100, 1000
#: The fastest a clock may run: simulated seconds a wall-clock second (about four months).
MAX_SPEED = 10_000_000.0
#: The slowest a drive may copy, relative to a bay (slower would take years).
MIN_SPEED = 0.01
#: The earliest and latest epoch a file may give (the calendar after a century must exist).
EPOCH_YEARS = (1970, 9000)

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

    def duration(self, key: str, value: Duration, *, low: float = 0.0) -> float:
        """Seconds in a duration written with its unit (``"2m"``, ``"1d 6h"``), within
        ``low`` and :data:`MAX_DURATION`; a bare number is refused (seconds? minutes?)."""
        if not isinstance(value, str):
            raise self.fail(
                key,
                f"a duration with its unit, such as '2m' or '120s', not the bare number {value:g}",
            )
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if not low <= seconds <= MAX_DURATION:
            lowest = f"{low:g}s" if low else "0s"
            raise self.fail(
                key, f"a duration from {lowest} to {MAX_DURATION / DAY:g}d, not {value!r}"
            )
        return seconds

    def size(self, key: str, value: Size, *, low: int = 0) -> int:
        """Bytes in a size written with its decimal unit (``"1TB"``, ``"500GB"``), within
        ``low`` and :data:`MAX_SIZE` (1PB)."""
        match = _SIZE.fullmatch(value) if isinstance(value, str) else None
        if match is None or match[2] is None:
            raise self.fail(
                key, f"a size with its unit (B, KB, MB, GB, TB, PB) such as '1TB', not {value!r}"
            )
        size = parse_size(value)
        if not low <= size <= MAX_SIZE:
            lowest = f"{low}B" if low else "0B"
            raise self.fail(key, f"a size from {lowest} to 1PB, not {value!r}")
        return size

    def number(
        self, key: str, value: float, low: float, high: float, what: str, *, above: bool = False
    ) -> float:
        """``value``, a finite number from ``low`` (excluded if ``above``) to ``high``."""
        if (
            isinstance(value, bool)
            or not math.isfinite(value)
            or not (low < value if above else low <= value)
            or value > high
        ):
            bound = f"more than {low:,.10g} and at most" if above else f"from {low:,.10g} to"
            raise self.fail(key, f"{what}, {bound} {high:,.10g}; not {value!r}")
        return float(value)

    def integer(self, key: str, value: int, low: int, high: int, what: str) -> int:
        """``value``, a whole number from ``low`` to ``high``."""
        if not low <= value <= high:
            raise self.fail(key, f"{what}, from {low:,} to {high:,}; not {value!r}")
        return value

    def probability(self, key: str, value: float) -> float:
        return self.number(key, value, 0.0, 1.0, "a probability")

    def epoch(self, key: str, value: datetime) -> datetime:
        """A date and time (UTC when the file gives no offset) within :data:`EPOCH_YEARS`."""
        low, high = EPOCH_YEARS
        if not low <= value.year <= high:
            raise self.fail(key, f"a date from the year {low} to {high}, not {value.isoformat()}")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @staticmethod
    def name_key(key: str, name: str) -> str:
        """The key of ``name`` in a table keyed by names: ``locations["West US"]``."""
        return f"{key}[{json.dumps(name, ensure_ascii=False)}]"

    def range(self, key: str, value: Any, parse: Any) -> Range:
        if not isinstance(value, list):
            one = parse(key, value)
            return Range(float(one), float(one))
        if len(value) != 2:
            raise self.fail(key, "a single value or a [low, high] pair")
        values = value
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
                # A sweep at least a second apart: a shorter one only spins the clock.
                sweep_interval=self.duration(
                    "policy.sweep_interval", policy.sweep_interval, low=1.0
                ),
            )
        except ValueError as exc:
            raise self.fail("policy", str(exc)) from None

    def datacenter(self, dc: DatacenterFile) -> DatacenterConfig:
        key = "datacenter"
        if not dc.locations:
            raise self.fail(f"{key}.locations", "at least one location with its number of bays")
        if len(dc.locations) > MAX_LOCATIONS:
            raise self.fail(f"{key}.locations", f"at most {MAX_LOCATIONS} locations")
        for name, bays in dc.locations.items():
            where = self.name_key(f"{key}.locations", name)
            if not name.strip():
                raise self.fail(where, "a location name that is not blank")
            self.integer(where, bays, 1, MAX_BAYS, "a number of bays")
        throughput = self.number(
            f"{key}.throughput_mb_s", dc.throughput_mb_s, 1.0, 100_000.0, "a rate in MB/s"
        )
        rates = {
            rate: self.probability(f"{key}.{rate}", getattr(dc, rate))
            for rate in (
                "drive_error_rate",
                "drive_missing_rate",
                "package_lost_rate",
                "slow_drive_rate",
                "late_drive_rate",
            )
        }
        factor = self.number(
            f"{key}.transfer_deadline_factor", dc.transfer_deadline_factor, 1.0, 100.0, "a factor"
        )
        # A checkpoint at least a second apart: a shorter one only spins the store.
        checkpoint = self.duration(f"{key}.checkpoint_interval", dc.checkpoint_interval, low=1.0)
        return DatacenterConfig(
            locations=dict(dc.locations),
            throughput=throughput * 1e6,
            checkpoint_interval=checkpoint,
            carrier_delay=self.range(f"{key}.carrier_delay", dc.carrier_delay, self.duration),
            return_delay=self.range(f"{key}.return_delay", dc.return_delay, self.duration),
            lost_package_after=self.duration(f"{key}.lost_package_after", dc.lost_package_after),
            transfer_deadline_factor=factor,
            drive_size=self.range(f"{key}.drive_size", dc.drive_size, self.size),
            export_drive_size=float(
                self.size(f"{key}.export_drive_size", dc.export_drive_size, low=1)
            ),
            export_size=self.range(f"{key}.export_size", dc.export_size, self.size),
            drive_error_rate=rates["drive_error_rate"],
            drive_missing_rate=rates["drive_missing_rate"],
            package_lost_rate=rates["package_lost_rate"],
            slow_drive_rate=rates["slow_drive_rate"],
            slow_drive_speed=self._speeds(f"{key}.slow_drive_speed", dc.slow_drive_speed),
            late_drive_rate=rates["late_drive_rate"],
            late_drive_delay=self.range(
                f"{key}.late_drive_delay", dc.late_drive_delay, self.duration
            ),
        )

    def _speeds(self, key: str, value: list[float]) -> Range:
        what = "a speed relative to a bay"
        return self.range(key, value, lambda k, v: self.number(k, v, MIN_SPEED, 1.0, what))


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
    """``raw`` as ``shape``; a type error or unknown key names its path in the file, an
    enumeration lists its choices, and a table keyed by names says the name."""
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `")
        key, kind, value = _locate(raw, shape, at.rstrip("`"))
        if message.startswith("Object contains unknown field"):
            field = message.rpartition("`")[0].rpartition("`")[2]
            known = _fields(kind)
            key = f"{key}.{field}" if key else field
            message = f"a known key{f' ({known})' if known else ''}; `{field}` is not one"
        elif message.startswith("Invalid enum value") and (choices := _choices(kind)):
            message = f"one of {', '.join(map(repr, choices))}; not {value!r}"
        elif message.startswith("Expected `") and (wanted := _WANTED.get(kind)):
            got = message.rpartition("got `")[2].rstrip("`")
            message = f"{wanted}, not {_GOT.get(got, got)}"
        elif kind is datetime:
            message = f"{_WANTED[datetime]}, not {value!r}"
        raise ConfigError(where, key or "(top level)", message) from None


_ANY = object()

#: What a value of each type of the file shapes looks like, for "Expected `int`, got `str`".
_WANTED: dict[Any, str] = {
    Duration: "a duration with its unit, such as '2m' or '1d 6h'",
    Durations: "a duration with its unit, or a [low, high] pair of them",
    Size: "a size with its unit, such as '1TB' or '500GB'",
    Sizes: "a size with its unit, or a [low, high] pair of them",
    int: "a whole number",
    float: "a number",
    str: "a string (in quotes)",
    bool: "true or false",
    datetime: "a date and time such as 2026-01-05T08:00:00Z",
}
_GOT = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "array": "a list",
    "object": "a table",
    "bool": "a boolean",
    "datetime": "a date and time",
}


def _locate(raw: Any, shape: Any, path: str) -> tuple[str, Any, Any]:
    """The key (names of name-keyed tables resolved), the type and the value at msgspec's
    ``path`` (``$.jobs[0].drives[...]``) in ``raw`` read as ``shape``."""
    key, kind, value = "", shape, raw
    for name, index in re.findall(r"\.([^.\[]+)|\[([^\]]*)\]", path.removeprefix("$")):
        kind = _struct_of(kind)
        if name:
            fields = msgspec.structs.fields(kind) if _is_struct(kind) else ()
            kind = next((f.type for f in fields if f.encode_name == name), Any)
            value = value.get(name, _ANY) if isinstance(value, dict) else _ANY
            key = f"{key}.{name}" if key else name
        elif index == "...":  # a table keyed by names: find the entry that does not convert
            args = typing.get_args(kind)
            kind = args[1] if len(args) == 2 else Any
            entries = value.items() if isinstance(value, dict) else ()
            bad = [(k, v) for k, v in entries if not _converts(v, kind)]
            name_, value = bad[0] if bad else ("...", _ANY)
            key = FileReader.name_key(key, str(name_))
        else:
            args = typing.get_args(kind)
            kind = args[0] if args else Any
            value = value[int(index)] if isinstance(value, list) else _ANY
            key = f"{key}[{index}]"
    return key, _struct_of(kind), value


def _converts(value: Any, kind: Any) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _struct_of(kind: Any) -> Any:
    """``kind`` without ``| None``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return kind


def _fields(kind: Any) -> str:
    if not _is_struct(kind):
        return ""
    return ", ".join(f.encode_name for f in msgspec.structs.fields(kind))


def _choices(kind: Any) -> tuple[Any, ...]:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return tuple(member.value for member in kind)
    if typing.get_origin(kind) is typing.Literal:
        return typing.get_args(kind)
    return ()
