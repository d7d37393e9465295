"""bench/load_parts.py breaks a run's time into the worker's parts (smoke size)."""

from __future__ import annotations

from pathlib import Path

from bench.load_parts import PARTS, measure, table
from tests.bench.test_load_smoke import SCENARIO


def test_every_part_of_a_run_is_timed_and_the_rest_is_what_none_claims(tmp_path: Path) -> None:
    path = tmp_path / "smoke.toml"
    path.write_text(SCENARIO)
    data = measure(str(path))
    parts = data["parts"]
    assert data["changes"] > 20
    assert data["reference_wall"] > 0
    # Every part ran (the smoke run creates, ships, copies, returns and deletes jobs).
    assert all(parts[part] > 0 for part in PARTS), parts
    # Exclusive times: no second is counted twice, so the parts leave some of the wall
    # to the rest (nested parts counted in full would add up to more than the wall).
    assert 0 < parts["the rest"] < data["wall"]
    text = table(str(path), data)
    for part in [*PARTS, "the rest"]:
        assert f"| {part} |" in text
