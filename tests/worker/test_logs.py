"""worker/logs.py: the simulated-time stamp (from the clock's own loop only, an explicit one
kept), levels, and what a log line looks like in each format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import anyio
import pytest

from worker.clock import Clock
from worker.logs import configure_logging, get_logger, sim_time

log = get_logger("test")


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_carry_the_clock_on_its_loop_and_no_stamp_on_another() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    clock = Clock(start=3600.0)
    sim_time.clock = clock

    async def on_its_loop() -> None:
        clock.now()
        log.info("mine")
        log.info("committed", sim_time="2026-01-05T08:30:00.000Z")

    async def on_another_loop() -> None:
        log.info("elsewhere")

    try:
        anyio.run(on_its_loop)
        anyio.run(on_another_loop)  # a new loop: the clock's time means nothing there
    finally:
        sim_time.clock = None
    mine, committed, elsewhere = _lines(stream)
    assert str(mine["sim_time"]).startswith("2026-01-05T09:00:00")
    assert committed["sim_time"] == "2026-01-05T08:30:00.000Z"
    assert "sim_time" not in elsewhere


def test_an_unknown_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="got 'verbose'"):
        configure_logging(level="verbose")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_path_field_is_logged_as_a_plain_path(fmt: Literal["json", "console"]) -> None:
    """A Path in any field (the HTTPS certificate, a store file...) reads as the path,
    never as ``PosixPath('...')``."""
    stream = io.StringIO()
    configure_logging(level="info", fmt=fmt, stream=stream)
    get_logger("drivesim.test").info(
        "http api serving", cert_file=Path("/tmp/drivesim/cert.pem"), db=Path("jobs.db")
    )
    line = stream.getvalue()
    assert "PosixPath" not in line
    if fmt == "json":
        fields = json.loads(line)
        assert (fields["cert_file"], fields["db"]) == ("/tmp/drivesim/cert.pem", "jobs.db")
    else:
        assert "cert_file=/tmp/drivesim/cert.pem" in line
        assert "db=jobs.db" in line
