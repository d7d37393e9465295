"""worker/logs.py: what a log line looks like in each format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import pytest

from worker.logs import configure_logging, get_logger


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
