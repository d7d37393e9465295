"""Scenario files are validated on load; errors name the file, the key and what was expected."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from simulator.scenario import load_scenario, parse_scenario, parse_size
from simulator.scenario.spec import EXPECTATIONS
from worker.errors import ConfigError
from worker.states import CancelWindow

ROOT = Path(__file__).parents[3]
CONFIGS = ROOT / "configs"

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
        (_with(bogus=1), "bogus", "a known key (name, description, seed,"),
        (_with(seed="x"), "seed", "a whole number, not a string"),
        (
            _with(policy={"cancel_window": "never"}),
            "policy.cancel_window",
            "one of 'before-packaging', 'creating-or-shipping', 'creating-only'; not 'never'",
        ),
        (_with(policy={"retention": "ninety days"}), "policy.retention", "duration"),
        (_with(datacenter={"locations": {}}), "datacenter.locations", "at least one location"),
        (
            _with(datacenter={"locations": {"West US": 0}}),
            'datacenter.locations["West US"]',
            "a number of bays, from 1 to 1,000; not 0",
        ),
        (_with(datacenter={"throughput_mb_s": 0}), "datacenter.throughput_mb_s", "from 1 to"),
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
            "a size with its unit",
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
        (
            _with(actions=[{"at": "1h", "job": "j", "do": "explode"}]),
            "actions[0].do",
            "one of 'create', 'ship', 'cancel', 'delete', 'get', 'keys'; not 'explode'",
        ),
        (
            _with(actions=[{"when": "Lost", "job": "j", "do": "get"}]),
            "actions[0].when",
            "one of 'Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', ",
        ),
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


def _codes(*paths: Path) -> set[str]:
    """The error codes raised in ``paths`` (``code="X"`` and ``default_code = "X"``)."""
    pattern = re.compile(r'(?:\bcode=|default_code = )"([A-Za-z]+)"')
    return {code for path in paths for code in pattern.findall(path.read_text())}


def test_expect_lists_every_code_a_scripted_request_can_get() -> None:
    """``expect`` accepts every error code the service and its command handler raise (the
    REST API's own codes, about URLs and tokens, never reach a scripted action), names no
    code the worker never raises, and CancelTooLate only as rejected-too-late."""
    worker = ROOT / "worker"
    service = _codes(*(p for p in worker.glob("*.py") if not p.name.startswith("http")))
    codes = {e for e in EXPECTATIONS if e[0].isupper()}
    assert service - {"CancelTooLate"} <= codes
    assert codes <= _codes(*worker.rglob("*.py"))
    assert "CancelTooLate" not in EXPECTATIONS
    assert "rejected-too-late" in EXPECTATIONS


def test_a_misspelt_expectation_is_refused_with_the_choices() -> None:
    """A typo in ``expect`` is refused on load (it once ran the whole scenario and failed
    at the end), listing what ``expect`` can be."""
    raw = _with(actions=[{"at": "0h", "job": "j", "do": "cancel", "expect": "acepted"}])
    with pytest.raises(ConfigError) as info:
        parse_scenario(raw, "s.toml")
    assert info.value.key == "actions[0].expect"
    assert "'accepted', 'already-requested', 'rejected-too-late'" in info.value.expected
    assert info.value.expected.endswith("; not 'acepted'")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (_with(until=120), "until"),
        (_with(policy={"retention": 90}), "policy.retention"),
        (_with(actions=[{"at": 0, "job": "j", "do": "create"}]), "actions[0].at"),
        (_with(datacenter={"carrier_delay": ["1d", 3]}), "datacenter.carrier_delay[1]"),
    ],
)
def test_a_bare_number_is_not_a_duration(raw: dict[str, Any], key: str) -> None:
    """Durations carry their unit: ``until = 120`` (seconds? minutes?) is refused."""
    with pytest.raises(ConfigError) as info:
        parse_scenario(raw, "s.toml")
    assert info.value.key == key
    assert info.value.expected.startswith("a duration with its unit, such as '2m' or '120s'")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (_with(live_speed=math.nan), "live_speed"),
        (_with(datacenter={"throughput_mb_s": math.inf}), "datacenter.throughput_mb_s"),
        (_with(datacenter={"slow_drive_speed": [math.nan, 0.5]}), "datacenter.slow_drive_speed[0]"),
        (
            _with(jobs=[{"name": "j", "drives": [{"id": "D1", "size": "1TB", "speed": math.nan}]}]),
            "jobs[0].drives[0].speed",
        ),
        (
            _with(faults=[{"kind": "net-bandwidth", "at": "1h", "bandwidth_kb_s": math.inf}]),
            "faults[0].bandwidth_kb_s",
        ),
    ],
)
def test_nan_and_infinity_are_refused(raw: dict[str, Any], key: str) -> None:
    """TOML can write nan and inf; no number of a scenario takes them."""
    with pytest.raises(ConfigError) as info:
        parse_scenario(raw, "s.toml")
    assert info.value.key == key


def test_the_largest_values_in_range_load() -> None:
    """The bounds are inclusive: a petabyte drive and a century-long run are accepted."""
    raw = _with(
        until="36500d",
        jobs=[{"name": "j", "drives": [{"id": "D1", "size": "1PB"}]}],
    )
    scenario = parse_scenario(raw, "s.toml")
    assert scenario.jobs["j"].plans["D1"].size_bytes == 10**15
    assert scenario.until == 36500 * 86400
