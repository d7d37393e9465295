"""A sweep's grid: ``--vary`` parsed, the [sweep] table read, every cell's document, and each
bad key or value refused with the scenario loader's error before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from simulator.scenario.file import parse_scenario
from simulator.sweep.grid import load_grid, parse_key, split_vary
from worker import CancelWindow, ConfigError

TINY = Path(__file__).parent / "tiny.toml"


def test_vary_values_are_toml_values_or_bare_text() -> None:
    assert split_vary("workload.cancel=0.1,0.3") == ("workload.cancel", [0.1, 0.3])
    assert split_vary("policy.cancel_window=creating-only,before-packaging") == (
        "policy.cancel_window",
        ["creating-only", "before-packaging"],
    )
    assert split_vary("datacenter.locations.West US = 2, 4") == (
        "datacenter.locations.West US",
        [2, 4],
    )
    # Commas inside brackets and quotes do not cut; durations stay text.
    assert split_vary("workload.drives=[1, 3],[2,10]") == ("workload.drives", [[1, 3], [2, 10]])
    assert split_vary('description="a, b",c') == ("description", ["a, b", "c"])
    assert split_vary("until=30d,60d") == ("until", ["30d", "60d"])
    for bad in ("policy.cancel_window", "=1,2", "workload.cancel=0.1,,0.2", "a..b=1"):
        with pytest.raises(ValueError, match=r"KEY=|key|values"):
            split_vary(bad)


def test_keys_are_dotted_paths_with_quoted_parts() -> None:
    assert parse_key("policy.cancel_window") == ("policy", "cancel_window")
    assert parse_key('datacenter.locations."St. Louis"') == ("datacenter", "locations", "St. Louis")
    assert parse_key("datacenter.locations.West US") == ("datacenter", "locations", "West US")
    for bad in ("", ".a", "a.", 'a."b', "a..b"):
        with pytest.raises(ValueError, match="dotted scenario key"):
            parse_key(bad)


def test_the_sweep_table_is_the_default_grid() -> None:
    """tiny.toml's [sweep]: two cancel windows, two seeds from the scenario's seed 3."""
    grid = load_grid(TINY)
    assert [(v.key, v.values) for v in grid.varies] == [
        ("policy.cancel_window", ("before-packaging", "creating-only"))
    ]
    assert grid.seeds == (3, 4)
    assert grid.size == 4
    assert [(c.index, c.choice, c.seed) for c in grid.cells()] == [
        (0, (0,), 3),
        (1, (0,), 4),
        (2, (1,), 3),
        (3, (1,), 4),
    ]
    assert "sweep" not in grid.document


def test_each_cell_is_the_scenario_with_its_values_and_seed() -> None:
    """--vary replaces the table's keys; every combination runs, seeds from --seeds; the
    seed goes into the document, so the workload is drawn from it."""
    grid = load_grid(
        TINY,
        [
            ("policy.cancel_window", ["creating-only", "creating-or-shipping"]),
            ("datacenter.locations.West US", [1, 3]),
        ],
        seeds=3,
    )
    assert grid.size == 12
    assert grid.seeds == (3, 4, 5)
    cell = grid.cells()[-1]
    assert grid.values(cell.choice) == {
        "policy.cancel_window": "creating-or-shipping",
        "datacenter.locations.West US": 3,
    }
    scenario = parse_scenario(grid.document_for(cell.choice, cell.seed), grid.where)
    assert scenario.policy.cancel_window is CancelWindow.CREATING_OR_SHIPPING
    assert scenario.datacenter.locations == {"West US": 3}
    assert scenario.seed == 5
    other = parse_scenario(grid.document_for(cell.choice, 3), grid.where)
    assert [a.at for a in scenario.actions] != [a.at for a in other.actions]
    # The document of the grid itself is left as the file gave it.
    assert grid.document["datacenter"]["locations"] == {"West US": 2}


@pytest.mark.parametrize(
    ("vary", "key", "says"),
    [
        (("policy.cancel_window", ["sometimes"]), "policy.cancel_window", "'creating-only'"),
        (("policy.cancel_windw", ["creating-only"]), "policy.cancel_windw", "a known key"),
        (("workload.cancel", [0.5, 1.5]), "workload.cancel", "a probability"),
        (("datacenter.drive_error_rate", ["abc"]), "datacenter.drive_error_rate", "a number"),
        (("datacenter.locations.West US", [0]), 'datacenter.locations["West US"]', "bays"),
        (("until", [30]), "until", "a duration with its unit"),
        (("name.first", [1]), "name.first", "a key inside a table"),
        (("seed", [1, 2]), "seed", "--seeds"),
        (("workload.cancel", [0.1, 0.1]), "workload.cancel", "each value once"),
    ],
)
def test_a_bad_key_or_value_gets_the_loaders_error(
    vary: tuple[str, list[object]], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_grid(TINY, [vary])
    assert caught.value.path == str(TINY)
    assert caught.value.key == key
    assert says in caught.value.expected


def test_a_value_error_says_which_value_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"with --vary workload\.cancel=1\.5\)"):
        load_grid(TINY, [("workload.cancel", [0.5, 1.5])])


def test_a_scenario_without_keys_to_vary_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text('name = "bare"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="keys to vary"):
        load_grid(bare)
    bare.write_text('name = "bare"\n[sweep]\nvary = { until = ["1d"] }\nseeds = 0\n')
    with pytest.raises(ConfigError, match=r"sweep\.seeds: a number of seeds"):
        load_grid(bare)
    bare.write_text('name = "bare"\n[sweep]\nvary = { until = ["1d"] }\nruns = 2\n')
    with pytest.raises(ConfigError, match=r"sweep\.runs: a known key"):
        load_grid(bare)


def test_the_command_refuses_a_bad_value_in_one_line_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, one line naming the file and the key; no output folder."""
    out = tmp_path / "out"
    code = main(["sweep", str(TINY), "--vary", "policy.cancel_window=sometimes", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"error: {TINY}: policy.cancel_window: one of ")
    assert "--vary policy.cancel_window=sometimes" in err
    assert not out.exists()


def test_the_command_refuses_a_malformed_vary_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", str(TINY), "--vary", "policy.cancel_window"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --vary: expected KEY=V1,V2,..." in err
    assert main(["sweep", str(TINY), "--dask", "localhost"]) == 2
    assert "a Dask scheduler address such as tcp://" in capsys.readouterr().err
