"""The types of the command line's values, and the parser that refuses bad ones in one line.

Every option of ``drivesim`` takes its value through one of these ``type=`` functions, so
that argparse itself refuses a bad value before any work starts: exit 2, one line naming
the flag and what it takes, no traceback. A type raises :class:`argparse.ArgumentTypeError`
with that text; :class:`Parser` prints it as ``drivesim run: error: argument --speed: ...``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from worker import JOB_NAME, MAX_SPEED, HttpConfig
from worker.mqtt import BrokerConfig

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_SPEED",
    "Parser",
    "add_global_options",
    "broker_url",
    "choice",
    "count",
    "dask_address",
    "existing_file",
    "http_address",
    "job_name",
    "json_file",
    "nonempty",
    "number",
    "output_dir",
    "output_file",
    "seed",
    "speed",
    "store_path",
    "subparsers",
    "vary",
    "worker_id",
    "worker_store",
]

#: The log levels ``--log-level`` takes (structlog's, as logging names them).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "console", "json")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _figure(x: float) -> str:
    """1000000 as 1,000,000, 0.5 as 0.5."""
    return f"{x:,.0f}" if x == int(x) else f"{x:g}"


def _fail(expected: str, text: str) -> NoReturn:
    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")


def number(
    *, low: float | None = None, high: float | None = None, open_low: bool = False
) -> Callable[[str], float]:
    """A finite number within [low, high] (above ``low`` when ``open_low``)."""
    if low is not None and high is not None:
        lowest = f"above {_figure(low)} and up" if open_low else f"from {_figure(low)}"
        what = f"a number {lowest} to {_figure(high)}"
    elif low is not None:
        what = f"a number {'above' if open_low else 'of at least'} {_figure(low)}"
    else:
        what = "a finite number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            _fail(what, text)
        if (
            not math.isfinite(value)
            or (low is not None and (value <= low if open_low else value < low))
            or (high is not None and value > high)
        ):
            _fail(what, text)
        return value

    parse.__name__ = "number"
    return parse


#: Simulated seconds a second.
speed = number(low=0, high=MAX_SPEED, open_low=True)


def count(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number within [low, high]."""
    what = (
        f"a whole number from {low} to {high}"
        if high is not None
        else f"a whole number of at least {low}"
    )

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            _fail(what, text)
        if value < low or (high is not None and value > high):
            _fail(what, text)
        return value

    parse.__name__ = "count"
    return parse


#: A run's seed: what SQLite and JSON hold exactly.
seed = count(0, 2**63 - 1)


def choice(options: Iterable[str]) -> Callable[[str], str]:
    """One of ``options``, in any case; the value as ``options`` spell it."""
    spelled = {option.lower(): option for option in options}

    def parse(text: str) -> str:
        found = spelled.get(text.strip().lower())
        if found is None:
            _fail(f"one of {', '.join(spelled.values())}", text)
        return found

    parse.__name__ = "choice"
    return parse


def nonempty(text: str) -> str:
    if not text.strip():
        _fail("a value", text)
    return text


def job_name(text: str) -> str:
    """A job name as the service takes it (and no MQTT wildcard)."""
    if not JOB_NAME.fullmatch(text):
        _fail(
            "a job name: 1 to 64 letters, digits, '-' or '_', starting with a letter or digit", text
        )
    return text


def worker_id(text: str) -> str:
    """A worker's id: a name that can stand in an MQTT topic."""
    if not JOB_NAME.fullmatch(text):
        _fail("a worker id: 1 to 64 letters, digits, '-' or '_'", text)
    return text


def broker_url(text: str) -> str:
    """A broker URL, checked here and parsed where it is used."""
    try:
        BrokerConfig.from_url(text)
    except ValueError:
        _fail("a broker URL such as mqtt://127.0.0.1:1883", text)
    return text


def existing_file(text: str) -> Path:
    """A file to read."""
    path = Path(text)
    if not path.is_file():
        _fail("an existing file", text)
    if not os.access(path, os.R_OK):
        _fail("a file this user may read", text)
    return path


def json_file(text: str) -> Any:
    """A JSON file, read and parsed: its content."""
    path = existing_file(text)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{text}: not JSON ({exc})") from None


def output_file(text: str) -> Path:
    """A file to write (created or replaced): not a directory, in a folder that exists and
    that this user may write to. Checked before the run, not after it."""
    if not text.strip():
        _fail("a file name", text)
    path = Path(text)
    if path.is_dir():
        _fail("a file, not a directory", text)
    parent = path.parent
    if not parent.is_dir():
        _fail(f"a file in an existing folder ({parent} does not exist)", text)
    if path.exists() and not os.access(path, os.W_OK):
        _fail("a file this user may write", text)
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        _fail(f"a file in a folder this user may write ({parent})", text)
    return path


def output_dir(text: str) -> Path:
    """A folder to write in: an existing one, or one whose parent exists."""
    if not text.strip():
        _fail("a folder name", text)
    path = Path(text)
    if path.exists() and not path.is_dir():
        _fail("a folder, not a file", text)
    if not path.exists() and not path.parent.is_dir():
        _fail(f"a folder in an existing one ({path.parent} does not exist)", text)
    where = path if path.exists() else path.parent
    if not os.access(where, os.W_OK | os.X_OK):
        _fail(f"a folder this user may write ({where})", text)
    return path


def store_path(text: str) -> str:
    """A SQLite store to create or resume, or ``:memory:``."""
    return text if text == ":memory:" else str(output_file(text))


def worker_store(text: str) -> str:
    """A worker's store: a ``postgresql://`` (or ``postgres://``) URL with a host, or a
    SQLite file to create or resume."""
    if text.startswith(("postgresql://", "postgres://")):
        try:
            host = urlsplit(text).hostname
        except ValueError:
            host = None
        if not host:
            _fail("a URL such as postgresql://USER@HOST:PORT/DBNAME", text)
        return text
    return str(output_file(text))


def http_address(text: str) -> str:
    """``[HOST:]PORT`` for the REST API, checked here and parsed where it is used."""
    try:
        HttpConfig.from_address(text)
    except ValueError:
        _fail("[HOST:]PORT such as 127.0.0.1:8080 or 8080", text)
    return text


def dask_address(text: str) -> str:
    """A Dask scheduler's address: ``tcp://HOST:PORT`` (or ``tls://``)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        port = None
    if port is None or parts.scheme not in ("tcp", "tls") or not parts.hostname:
        _fail("a Dask scheduler address such as tcp://127.0.0.1:8786", text)
    return text


def vary(text: str) -> tuple[str, list[Any]]:
    """A sweep's ``KEY=V1,V2,...``: the dotted key and its values (checked against the
    scenario later, by its loader)."""
    from simulator.sweep.grid import split_vary

    try:
        return split_vary(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc}") from None


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """``--log-level`` and ``--log-format``: on the main parser with their defaults, and on
    each subcommand without (so ``drivesim run X --log-level debug`` works and a value
    given before the subcommand is kept)."""
    kept: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--log-level",
        type=choice(LOG_LEVELS),
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help="what to log on stderr: " + ", ".join(LOG_LEVELS) + " (default: warning)",
        **({"default": "warning"} if defaults else kept),
    )
    parser.add_argument(
        "--log-format",
        type=choice(LOG_FORMATS),
        choices=LOG_FORMATS,
        help="log rendering: console on a terminal and JSON otherwise (auto, the default), "
        "or always one of them",
        **({"default": "auto"} if defaults else kept),
    )


def subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under ``parser`` (subcommands, and theirs), each once."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.append(sub)
                found.extend(subparsers(sub))
    return found
