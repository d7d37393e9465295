"""A benchmark's command line: its parser, the output options every bench has (``--json``,
``--docs``), the command as a report quotes it, and the worker's logging kept quiet while
it runs in the bench's own process."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import structlog

from worker import configure_logging

__all__ = ["add_outputs", "arguments", "command_line", "parser", "quiet_logging"]


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m module``, described by the first paragraph of ``doc``."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=(doc or "").split("\n\n")[0]
    )


def add_outputs(
    parser: argparse.ArgumentParser, json_help: str = "write every figure here"
) -> None:
    """``--json FILE`` (the report as JSON) and ``--docs`` (its table into the docs)."""
    parser.add_argument("--json", type=Path, metavar="FILE", help=json_help)
    parser.add_argument("--docs", action="store_true", help="write the table into the docs")


def arguments(argv: Sequence[str] | None) -> list[str]:
    """The arguments the bench was given: ``argv``, or the process's own."""
    return list(sys.argv[1:] if argv is None else argv)


def command_line(module: str, argv: Sequence[str]) -> str:
    """How a report quotes the command that made it: ``.venv/bin/python -m module ARGS``."""
    return shlex.join([".venv/bin/python", "-m", module, *argv])


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Only the worker's errors, as JSON on stderr, for the block (the worker runs in the
    bench's process); the logging configuration as it was after."""
    saved = structlog.get_config()
    configure_logging(level="error", fmt="json", stream=sys.stderr)
    try:
        yield
    finally:
        structlog.configure(**saved)
