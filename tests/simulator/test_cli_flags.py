"""Every flag of every subcommand refuses a bad value before any work starts (exit 2, one
line naming the flag, no traceback); ``--help`` describes every subcommand and option; the
global options work after the subcommand too."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import _parser, main
from simulator.console import arguments

CONFIGS = Path(__file__).parents[2] / "configs"
MID = str(CONFIGS / "cancel-mid-transfer.toml")


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(prog, action) of every option and positional that takes a value, in every parser."""
    found = []
    for each in [parser, *arguments.subparsers(parser)]:
        for action in each._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue
            found.append((each.prog, action))
    return found


def _name(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.dest


def _corpus(tmp: Path) -> list[tuple[list[str], str]]:
    """(command line, the flag its error must name): at least one bad value of every option."""
    a_file = tmp / "a-file.txt"
    a_file.write_text("not json\n")
    missing = str(tmp / "no-such-folder" / "out")
    run = ["run", MID]
    return [
        # the global options, before and after the subcommand
        (["--log-level", "verbose", "run", MID], "--log-level"),
        ([*run, "--log-level", "loud"], "--log-level"),
        (["--log-format", "xml", "run", MID], "--log-format"),
        (["jobs", "list", "--log-format", "yaml"], "--log-format"),
        # run
        ([*run, "--speed", "nan"], "--speed"),
        ([*run, "--speed", "inf"], "--speed"),
        ([*run, "--speed", "1e12"], "--speed"),
        ([*run, "--speed", "-3"], "--speed"),
        ([*run, "--speed", "0"], "--speed"),
        ([*run, "--speed", "fast"], "--speed"),
        ([*run, "--seed", "1.5"], "--seed"),
        ([*run, "--seed", "-1"], "--seed"),
        ([*run, "--seed", str(2**64)], "--seed"),
        ([*run, "--db", missing], "--db"),
        ([*run, "--db", str(tmp)], "--db"),
        ([*run, "--processes", "0"], "--processes"),
        ([*run, "--processes", "two"], "--processes"),
        ([*run, "--processes", "257"], "--processes"),
        ([*run, "--report", missing], "--report"),
        ([*run, "--report", str(tmp)], "--report"),
        ([*run, "--report", ""], "--report"),
        ([*run, "--html", missing], "--html"),
        ([*run, "--html", str(tmp)], "--html"),
        ([*run, "--live", "--workdir", str(a_file)], "--workdir"),
        ([*run, "--live", "--workdir", missing + "/deeper"], "--workdir"),
        ([*run, "--live", "--workers", "0"], "--workers"),
        ([*run, "--live", "--workers", "2.5"], "--workers"),
        # worker
        (["worker", "--config", str(tmp / "none.toml")], "--config"),
        (["worker", "--broker", "http://127.0.0.1:1883"], "--broker"),
        (["worker", "--db", str(tmp)], "--db"),
        (["worker", "--store", "postgresql:///nohost"], "--db"),
        (["worker", "--worker-id", "a/b"], "--worker-id"),
        (["worker", "--scenario", missing], "--scenario"),
        (["worker", "--seed", "x"], "--seed"),
        (["worker", "--speed", "nan"], "--speed"),
        (["worker", "--time-origin", "inf"], "--time-origin"),
        (["worker", "--time-origin", "-5"], "--time-origin"),
        (["worker", "--http", "99999"], "--http"),
        (["worker", "--http", "host:port"], "--http"),
        # jobs
        (["jobs", "--broker", "127.0.0.1", "list"], "--broker"),
        (["jobs", "--timeout", "nan", "list"], "--timeout"),
        (["jobs", "--timeout", "0", "list"], "--timeout"),
        (["jobs", "create", "bad/name"], "name"),
        (["jobs", "create", "j1", "--type", "Copy"], "--type"),
        (["jobs", "create", "j1", "--drives", "0"], "--drives"),
        (["jobs", "create", "j1", "--drives", "11"], "--drives"),
        (["jobs", "create", "j1", "--location", " "], "--location"),
        (["jobs", "create", "j1", "--body", str(tmp / "none.json")], "--body"),
        (["jobs", "create", "j1", "--body", str(a_file)], "--body"),
        (["jobs", "get", "#"], "name"),
        (["jobs", "cancel", "a+b"], "name"),
        (["jobs", "delete", "-"], "name"),
        (["jobs", "keys", "x" * 65], "name"),
        (["jobs", "ship", "j 1"], "name"),
        (["jobs", "ship", "j1", "--carrier", ""], "--carrier"),
        (["jobs", "ship", "j1", "--tracking", ""], "--tracking"),
        (["jobs", "ship", "j1", "--drive-count", "-1"], "--drive-count"),
        (["jobs", "ship", "j1", "--drive-count", "1001"], "--drive-count"),
        (["jobs", "list", "--top", "0"], "--top"),
        (["jobs", "list", "--top", "1e3"], "--top"),
        (["jobs", "list", "--state", "Done"], "--state"),
        # demo
        (["demo", "--policy", "never"], "--policy"),
        (["demo", "--cancel-at", "Deleted"], "--cancel-at"),
        (["demo", "--speed", "1e12"], "--speed"),
        (["demo", "--speed", "nan"], "--speed"),
        (["demo", "--speed", "-inf"], "--speed"),
        (["demo", "--html", missing], "--html"),
        (["demo", "--html", str(tmp)], "--html"),
        (["demo", "--broker", "mqtt://"], "--broker"),
        # sweep
        (["sweep", missing], "scenario"),
        (["sweep", MID, "--vary", "policy.cancel_window"], "--vary"),
        (["sweep", MID, "--vary", "a..b=1"], "--vary"),
        (["sweep", MID, "--seeds", "0"], "--seeds"),
        (["sweep", MID, "--out", str(a_file)], "--out"),
        (["sweep", MID, "--processes", "0"], "--processes"),
        (["sweep", MID, "--dask", "localhost:8786"], "--dask"),
        (["sweep", MID, "--dask", "http://host:8786"], "--dask"),
        # watch
        (["watch", "--broker", "localhost:1883"], "--broker"),
        (["watch", "--job", "+"], "--job"),
    ]


def _path(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The progs of the parsers a command line goes through (drivesim, drivesim jobs...)."""
    progs = [parser.prog]
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            parser = subs[0].choices[token]
            progs.append(parser.prog)
    return progs


def test_the_corpus_has_a_bad_value_for_every_option(tmp_path: Path) -> None:
    """A new option without a bad value here fails this test: add one to the corpus."""
    parser = _parser()
    tried = {(prog, flag) for argv, flag in _corpus(tmp_path) for prog in _path(parser, argv)}
    shared = {"--log-level", "--log-format"}  # the same type on every parser
    missing = [
        f"{prog} {_name(action)}"
        for prog, action in _options(parser)
        if (prog, _name(action)) not in tried
        and not (_name(action) in shared and any(flag == _name(action) for _, flag in tried))
        and not (prog == "drivesim run" and action.dest == "scenario")
    ]
    assert missing == []


def test_every_option_takes_its_value_through_a_validating_type() -> None:
    """argparse's bare float/int/str/Path accept nan, inf, 1e12, '' or a missing folder: every
    value goes through a type of simulator.console.arguments (the run's scenario file is read
    and checked by the scenario loader)."""
    loose = [
        f"{prog} {_name(action)}"
        for prog, action in _options(_parser())
        if getattr(action.type, "__module__", None) != arguments.__name__
        and not (prog == "drivesim run" and action.dest == "scenario")
    ]
    assert loose == []


def test_every_bad_flag_value_exits_2_with_one_line_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, flag in _corpus(tmp_path):
        code = main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, (argv, captured.err)
        assert len(lines) == 1, (argv, captured.err)
        assert f"argument {flag}" in lines[0], (argv, lines[0])
        assert "Traceback" not in captured.err
        assert captured.out == "", argv


def test_choices_take_any_case_and_an_error_lists_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = _parser()
    args = parser.parse_args(["--log-level", "DEBUG", "demo", "--cancel-at", "transferring"])
    assert (args.log_level, args.cancel_at) == ("debug", "Transferring")
    args = parser.parse_args(["demo", "--policy", "BEFORE-PACKAGING", "--log-format", "Json"])
    assert (args.policy, args.log_format) == ("before-packaging", "json")
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--cancel-at", "deleted"])
    error = capsys.readouterr().err
    assert "Creating, Shipping, Received, Transferring, Packaging" in error


def test_output_paths_are_checked_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report into a missing folder fails at once: the run does not start (its --db, in a
    folder that exists, stays uncreated)."""
    db = tmp_path / "run.db"
    assert main(["run", MID, "--db", str(db), "--report", str(tmp_path / "gone" / "r.json")]) == 2
    assert "gone does not exist" in capsys.readouterr().err
    assert not db.exists()


def test_the_installed_command_refuses_bad_values_without_a_traceback(tmp_path: Path) -> None:
    """Through the real entry point, as a user types them."""
    drivesim = Path(sys.executable).parent / "drivesim"
    for argv in (
        ["--log-level", "verbose", "run", MID],
        ["demo", "--speed", "1e12"],
        ["demo", "--speed", "nan"],
        ["run", MID, "--html", str(tmp_path / "missing" / "x.html")],
    ):
        done = subprocess.run(
            [str(drivesim), *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_help_describes_every_subcommand_and_option() -> None:
    parser = _parser()
    undescribed = [sub.prog for sub in arguments.subparsers(parser) if not sub.description]
    assert undescribed == []
    unexplained = [
        f"{each.prog} {_name(action)}"
        for each in [parser, *arguments.subparsers(parser)]
        for action in each._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert unexplained == []
    # and each subcommand has its line in the main --help
    listed = {a.dest for a in parser._subparsers._group_actions[0]._choices_actions}  # type: ignore[union-attr]
    assert listed == {"run", "worker", "jobs", "demo", "sweep", "watch"}


def test_global_options_work_after_the_subcommand() -> None:
    parser = _parser()
    args = parser.parse_args(["run", MID, "--log-level", "debug", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("debug", "json")
    args = parser.parse_args(["jobs", "list", "--log-level", "info"])
    assert args.log_level == "info"
    # Given before the subcommand and not after, the value before stays.
    args = parser.parse_args(["--log-level", "error", "demo", "--virtual"])
    assert (args.log_level, args.log_format) == ("error", "auto")
    args = parser.parse_args(["watch"])
    assert (args.log_level, args.log_format) == ("warning", "auto")


def test_the_readme_quotes_the_fastest_speed() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"up to {arguments.MAX_SPEED:,.0f}, beyond which `--virtual`" in readme
