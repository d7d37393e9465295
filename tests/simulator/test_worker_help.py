"""``drivesim worker --help`` tells how to serve more than the default location."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from worker import DatacenterConfig


def test_worker_help_names_the_default_location_and_how_to_serve_others(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option: the phrases are not wrapped
    assert main(["worker", "--help"]) == 0
    out = capsys.readouterr().out
    (name, bays), *others = DatacenterConfig().locations.items()
    assert others == []
    assert f"Without one the worker serves {name} ({bays} bays)" in out
    assert '[datacenter] table: locations = { "West US" = 2, "East US" = 3 }' in out


def test_the_readme_names_the_default_location_and_the_example_config() -> None:
    """The README's sentence on locations quotes the default and configs/worker.toml."""
    root = Path(__file__).parents[2]
    readme = " ".join(root.joinpath("README.md").read_text().split())
    (name, bays), *_ = DatacenterConfig().locations.items()
    assert f"Without `--config` it serves one location, `{name}` with {bays} bays" in readme
    example = 'locations = { "West US" = 2, "East US" = 3 }'
    assert f"`{example}`" in readme
    assert example in root.joinpath("configs/worker.toml").read_text()
