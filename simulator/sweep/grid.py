"""A sweep's grid: the scenario document, the keys it varies with their values, the seeds.

A key is a dotted path into the scenario file (``policy.cancel_window``,
``datacenter.locations.West US``, ``workload.cancel``); a segment may be quoted
(``datacenter.locations."St. Louis"``). Each value, and then each combination, is applied to
the parsed document and validated by the scenario loader itself, so a bad value gets the
loader's error (file, key, what was expected) before any cell runs.

Each cell is one combination run with one seed. The seed is written into the document
before it is parsed, so the workload and the chaos plan are drawn anew for every seed.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from simulator.scenario.file import MAX_SEED, parse_scenario
from worker import ConfigError, SettingsFile, convert, read_toml

__all__ = [
    "MAX_CELLS",
    "MAX_SEEDS",
    "Grid",
    "Vary",
    "load_grid",
    "parse_key",
    "parse_values",
    "split_vary",
]

#: The most seeds a sweep runs each combination with, and the most cells it may have.
MAX_SEEDS = 10_000
MAX_CELLS = 100_000

#: The table a study file adds to a scenario: what ``drivesim sweep FILE`` varies by default.
SWEEP_TABLE = "sweep"


class SweepFile(SettingsFile):
    #: Each key with the values it takes, in order: ``{ "policy.cancel_window" = [...] }``.
    vary: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    seeds: int = 1


class _StudyFile(SettingsFile):
    sweep: SweepFile


_SEGMENT = re.compile(r'"([^"]*)"|([^."]+)')


def parse_key(text: str) -> tuple[str, ...]:
    """The path of a dotted key: ``a.b."c.d"`` is ``("a", "b", "c.d")``; ValueError if malformed."""
    parts: list[str] = []
    pos = 0
    while True:
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise ValueError(f"a dotted scenario key such as policy.cancel_window, not {text!r}")
        segment = match[1] if match[1] is not None else match[2].strip()
        if not segment:
            raise ValueError(f"a dotted scenario key without empty parts, not {text!r}")
        parts.append(segment)
        pos = match.end()
        if pos == len(text):
            return tuple(parts)
        if text[pos] != ".":
            raise ValueError(f"a dotted scenario key such as policy.cancel_window, not {text!r}")
        pos += 1


def _split_top(text: str) -> list[str]:
    """``text`` cut at its commas outside quotes and brackets: ``1,[2,3],"a,b"``."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def parse_values(text: str) -> list[Any]:
    """The values of ``V1,V2,...``: each a TOML value (``0.1``, ``true``, ``[1, 3]``,
    ``"a,b"``) or else the bare text (``creating-only``, ``2h``)."""
    values: list[Any] = []
    for item in _split_top(text):
        item = item.strip()
        if not item:
            raise ValueError(f"values separated by commas, with none empty: {text!r}")
        try:
            values.append(tomllib.loads(f"v = {item}")["v"])
        except tomllib.TOMLDecodeError:
            values.append(item)
    return values


def split_vary(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` as the key and its values (ValueError saying what is wrong)."""
    key, equals, values = text.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"KEY=V1,V2,... such as policy.cancel_window=creating-only, not {text!r}")
    parse_key(key.strip())
    return key.strip(), parse_values(values)


def _shown(value: Any) -> str:
    """A value as a label: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass(frozen=True, slots=True)
class Vary:
    """One varied key: its dotted text, its path, its values, and where it was given."""

    key: str
    path: tuple[str, ...]
    values: tuple[Any, ...]
    origin: str

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(_shown(v) for v in self.values)


@dataclass(frozen=True, slots=True)
class Cell:
    """One combination (an index into each key's values) run with one seed."""

    index: int
    combination: int
    choice: tuple[int, ...]
    seed: int


@dataclass(frozen=True, slots=True, repr=False)
class Grid:
    """A validated sweep: the scenario document without its ``[sweep]`` table, the keys it
    varies, the seeds, and the name and file of the scenario."""

    where: str
    name: str
    document: dict[str, Any]
    varies: tuple[Vary, ...]
    seeds: tuple[int, ...]

    def __repr__(self) -> str:
        return f"Grid(name={self.name!r}, keys={[v.key for v in self.varies]}, cells={self.size})"

    @property
    def choices(self) -> list[tuple[int, ...]]:
        """Every combination, as the index of each key's value, in grid order."""
        return list(itertools.product(*(range(len(v.values)) for v in self.varies)))

    @property
    def size(self) -> int:
        count = len(self.seeds)
        for vary in self.varies:
            count *= len(vary.values)
        return count

    def cells(self) -> list[Cell]:
        """Every cell in grid order: each combination, then each seed."""
        return [
            Cell(index=c * len(self.seeds) + s, combination=c, choice=choice, seed=seed)
            for c, choice in enumerate(self.choices)
            for s, seed in enumerate(self.seeds)
        ]

    def values(self, choice: Sequence[int]) -> dict[str, Any]:
        """The value of each key in a combination, by key."""
        return {v.key: v.values[i] for v, i in zip(self.varies, choice, strict=True)}

    def document_for(self, choice: Sequence[int], seed: int | None = None) -> dict[str, Any]:
        """The scenario document with a combination's values (and ``seed``) written in."""
        document = copy.deepcopy(self.document)
        for vary, i in zip(self.varies, choice, strict=True):
            _put(document, vary, vary.values[i], self.where)
        if seed is not None:
            document["seed"] = seed
        return document

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same grid: the scenario's content, the keys with their
        values, the seeds. A rerun in the same folder must match it to go on."""
        text = json.dumps(self.document, sort_keys=True, default=str)
        return {
            "scenario": self.name,
            "document": hashlib.sha256(text.encode()).hexdigest(),
            "vary": {
                v.key: json.loads(json.dumps(list(v.values), default=str)) for v in self.varies
            },
            "seeds": list(self.seeds),
        }


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (dates as text)."""
    return json.loads(json.dumps(value, default=str))


def _put(document: dict[str, Any], vary: Vary, value: Any, where: str) -> None:
    table = document
    for depth, part in enumerate(vary.path[:-1]):
        inner = table.setdefault(part, {})
        if not isinstance(inner, dict):
            above = ".".join(vary.path[: depth + 1])
            raise ConfigError(where, vary.key, f"a key inside a table, and {above} is not one")
        table = inner
    table[vary.path[-1]] = value


def _checked(grid: Grid, choice: Sequence[int], origin: str) -> None:
    """Parse the document with ``choice`` applied; a ConfigError says what was applied."""
    try:
        parse_scenario(grid.document_for(choice), grid.where)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.key, f"{exc.expected} (with {origin})") from None


def load_grid(
    path: str | Path, vary: Sequence[tuple[str, Sequence[Any]]] = (), seeds: int | None = None
) -> Grid:
    """The grid of the scenario at ``path``: the keys of ``vary`` (``--vary``) or else its
    ``[sweep]`` table's, ``seeds`` seeds (else the table's, else 1) from the scenario's
    seed on. Every value and combination is validated here; nothing runs."""
    where = str(path)
    raw = read_toml(path)
    table = raw.pop(SWEEP_TABLE, None)
    study = None if table is None else convert({SWEEP_TABLE: table}, _StudyFile, where).sweep
    base = parse_scenario(raw, where)  # the scenario itself first: its own errors, plainly
    given: list[tuple[str, Sequence[Any], str]]
    if vary:
        given = [(key, values, "--vary") for key, values in vary]
    elif study is not None:
        given = [(key, values, f"[{SWEEP_TABLE}] vary") for key, values in study.vary.items()]
    else:
        given = []
    if not given:
        raise ConfigError(
            where, SWEEP_TABLE, "keys to vary: --vary KEY=V1,V2,... or a [sweep] table's vary"
        )
    count = seeds if seeds is not None else (study.seeds if study is not None else 1)
    key_of = f"{SWEEP_TABLE}.seeds" if seeds is None else "--seeds"
    if not 1 <= count <= MAX_SEEDS:
        raise ConfigError(where, key_of, f"a number of seeds from 1 to {MAX_SEEDS:,}; not {count}")
    if base.seed + count - 1 > MAX_SEED:
        raise ConfigError(where, "seed", f"room for {count} seeds after it, up to {MAX_SEED}")
    varies: list[Vary] = []
    for key, values, source in given:
        try:
            parsed = parse_key(key)
        except ValueError as exc:
            raise ConfigError(where, key, f"{exc} (in {source})") from None
        if parsed == ("seed",):
            raise ConfigError(where, key, "a key other than the seed (the seeds come from --seeds)")
        if parsed[0] == SWEEP_TABLE:
            raise ConfigError(where, key, "a key of the scenario, not of its [sweep] table")
        if any(v.path == parsed for v in varies):
            raise ConfigError(where, key, f"each key varied once (in {source})")
        if not values:
            raise ConfigError(where, key, f"at least one value (in {source})")
        labels = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(labels)) != len(labels):
            raise ConfigError(where, key, f"each value once, not {list(values)!r} (in {source})")
        varies.append(Vary(key=key, path=parsed, values=tuple(values), origin=source))
    grid = Grid(
        where=where,
        name=base.name,
        document=raw,
        varies=tuple(varies),
        seeds=tuple(base.seed + i for i in range(count)),
    )
    if grid.size > MAX_CELLS:
        raise ConfigError(where, SWEEP_TABLE, f"at most {MAX_CELLS:,} cells, not {grid.size:,}")
    # Each value alone on the scenario as it is, then every combination of them.
    for one in varies:
        alone = Grid(where, base.name, raw, (one,), grid.seeds)
        for i, value in enumerate(one.values):
            _checked(alone, (i,), f"{one.origin} {one.key}={_shown(value)}")
    if len(varies) > 1:
        for choice in grid.choices:
            shown = ", ".join(f"{k}={_shown(v)}" for k, v in grid.values(choice).items())
            _checked(grid, choice, shown)
    return grid
