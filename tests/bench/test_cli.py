"""bench/cli.py: a bench's parser, output options, quoted command and quiet logging."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import structlog

from bench import cli


def test_the_parser_is_named_after_the_module_and_described_by_the_first_paragraph() -> None:
    parser = cli.parser("bench.example", "What it measures.\n\nHow, at length.")
    assert parser.prog == "python -m bench.example"
    assert parser.description == "What it measures."
    cli.add_outputs(parser)
    args = parser.parse_args(["--json", "out.json", "--docs"])
    assert args.json == Path("out.json")
    assert args.docs
    args = parser.parse_args([])
    assert args.json is None
    assert not args.docs


def test_the_command_is_quoted_as_a_reader_would_run_it() -> None:
    assert cli.command_line("bench.live", []) == ".venv/bin/python -m bench.live"
    assert (
        cli.command_line("bench.live", ["configs/a b.toml", "--speed", "8000"])
        == ".venv/bin/python -m bench.live 'configs/a b.toml' --speed 8000"
    )


def test_the_arguments_are_the_ones_given_or_the_process_s_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["bench", "--smoke"])
    assert cli.arguments(None) == ["--smoke"]
    assert cli.arguments(["--docs"]) == ["--docs"]


def test_quiet_logging_puts_the_configuration_back() -> None:
    before = structlog.get_config()
    with cli.quiet_logging():
        assert structlog.get_config() != before
    assert structlog.get_config() == before
    with pytest.raises(RuntimeError), cli.quiet_logging():
        raise RuntimeError("the bench failed")
    assert structlog.get_config() == before
