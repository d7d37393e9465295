"""Scenario files are validated on load; errors name the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.scenario import load_scenario, parse_scenario, parse_size
from worker.errors import ConfigError
from worker.states import CancelWindow

CONFIGS = Path(__file__).parents[3] / "configs"

BASE: dict[str, Any] = {
    "name": "t",
    "jobs": [{"name": "j", "drives": [{"id": "D1", "size": "1TB"}]}],
    "actions": [{"at": "0h", "job": "j", "do": "create"}],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


SCENARIOS = sorted(p for p in CONFIGS.glob("*.toml") if p.name != "worker.toml")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    """Every scenario shipped in configs/ is valid."""
    assert load_scenario(path).name


def test_a_valid_scenario_has_its_values() -> None:
    """Durations, sizes and policies are read in their units."""
    scenario = load_scenario(CONFIGS / "cancel-mid-transfer.toml")
    assert scenario.policy.cancel_window is CancelWindow.BEFORE_PACKAGING
    assert scenario.policy.retention == 90 * 86400
    assert scenario.datacenter.throughput == 200e6
    assert scenario.datacenter.carrier_delay.low == scenario.datacenter.carrier_delay.high == 86400
    assert scenario.jobs["contoso-import"].plans["9CA995BB"].size_bytes == 1_200_000_000_000


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        (_with(bogus=1), "(top level)", "unknown field `bogus`"),
        (_with(seed="x"), "seed", "Expected `int`"),
        (_with(policy={"cancel_window": "never"}), "policy.cancel_window", "Invalid enum value"),
        (_with(policy={"retention": "ninety days"}), "policy.retention", "duration"),
        (_with(datacenter={"locations": {}}), "datacenter.locations", "at least one location"),
        (_with(datacenter={"locations": {"X": 0}}), "datacenter.locations.X", "at least one bay"),
        (_with(datacenter={"throughput_mb_s": 0}), "datacenter.throughput_mb_s", "positive"),
        (_with(datacenter={"drive_error_rate": 2}), "datacenter.drive_error_rate", "probability"),
        (_with(datacenter={"carrier_delay": ["3d", "1d"]}), "datacenter.carrier_delay", "low <="),
        (_with(jobs=[{"name": "bad name"}]), "jobs[0].name", "letters, digits"),
        (_with(jobs=[{"name": "j", "drives": []}]), "jobs[0].drives", "1 to 10 drives"),
        (
            _with(jobs=[{"name": "j", "drives": [{"id": f"D{i}"} for i in range(11)]}]),
            "jobs[0].drives",
            "1 to 10 drives",
        ),
        (
            _with(jobs=[{"name": "j", "drives": [{"id": "D1"}, {"id": "D1"}]}]),
            "jobs[0].drives[1].id",
            "unique drive id",
        ),
        (
            _with(jobs=[{"name": "j", "drives": [{"id": "D1", "size": "big"}]}]),
            "jobs[0].drives[0].size",
            "size such as",
        ),
        (
            _with(jobs=[{"name": "j", "drives": [{"id": "D1", "missing": True}]}]),
            "jobs[0].drives[0].size",
            "size when",
        ),
        (
            _with(actions=[{"at": "1h", "job": "nobody", "do": "create"}]),
            "actions[0].job",
            "declared",
        ),
        (_with(actions=[{"job": "j", "do": "create"}]), "actions[0]", "exactly one of"),
        (
            _with(actions=[{"at": "1h", "when": "Packaging", "job": "j", "do": "cancel"}]),
            "actions[0]",
            "exactly one of",
        ),
        (_with(actions=[{"at": "1h", "job": "j", "do": "explode"}]), "actions[0].do", "Invalid"),
        (_with(actions=[{"when": "Lost", "job": "j", "do": "get"}]), "actions[0].when", "Invalid"),
    ],
)
def test_invalid_scenarios_name_the_key_and_the_expectation(
    raw: dict[str, Any], key: str, expected: str
) -> None:
    """Each invalid value is reported with its key path and what was expected."""
    with pytest.raises(ConfigError) as info:
        parse_scenario(raw, "s.toml")
    assert info.value.path == "s.toml"
    assert info.value.key == key
    assert expected in info.value.expected
    assert str(info.value).startswith(f"s.toml: {key}: ")


def test_missing_and_malformed_files_are_scenario_errors(tmp_path: Path) -> None:
    """A missing file or broken TOML is reported against the file."""
    with pytest.raises(ConfigError, match="an existing file"):
        load_scenario(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="valid TOML") as info:
        load_scenario(bad)
    assert info.value.path == str(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1TB", 10**12), ("1.5 TB", 1_500_000_000_000), ("500GB", 5 * 10**11), (42, 42), ("7", 7)],
)
def test_sizes_use_decimal_units(text: str | int, size: int) -> None:
    """Drive sizes read as drives are sold: 1 TB is 10**12 bytes."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1XB", "-1TB", "TB"])
def test_bad_sizes_are_refused(text: str) -> None:
    """Anything but a number with a decimal unit is refused."""
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_a_scenario_repr_counts_its_jobs_instead_of_listing_them() -> None:
    """The repr of a 10,000-job scenario names it and counts its parts in one short line
    (asyncio reprs a finished run's result as it closes the loop: a listing of every job
    cost hundreds of megabytes at load-100k)."""
    scenario = load_scenario(CONFIGS / "load-10k.toml")
    text = repr(scenario)
    assert text.startswith("Scenario(name='load-10k', ")
    assert "jobs=10000, " in text
    assert f"actions={len(scenario.actions)}, " in text
    assert len(text) < 200
