"""Fixtures shared by every test package: a real Mosquitto broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from simulator.live.processes import Mosquitto


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Every test starts from structlog's defaults (the CLI configures it globally)."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the session, for tests that do not kill it."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, to kill, pause and restart."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Mosquitto(workdir)
    broker.start()
    yield broker
    broker.stop()
