"""Fixtures shared by every test package: a real Mosquitto broker, a real three-node NATS
cluster speaking MQTT, a real PostgreSQL."""

from __future__ import annotations

import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import structlog
from psycopg import sql

from simulator.live.nats import NatsCluster
from simulator.live.postgres import PostgreSQL
from simulator.live.processes import Mosquitto

# The tests interrupt their child processes with SIGINT, as Ctrl-C does. A suite started in
# the background by a shell without job control inherits SIGINT ignored, and so would every
# child, which would then never stop: restore the default before anything is started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """One three-node NATS cluster (MQTT 3.1.1, JetStream) for tests that kill no node."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A three-node NATS cluster of the test's own, to kill nodes of and restart them."""
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    """One PostgreSQL server for the session, for tests that do not kill it. Its folder is
    outside pytest's (which the ``postgres`` user cannot enter when tests run as root)."""
    workdir = Path(tempfile.mkdtemp(prefix="drivesim-postgresql-"))
    workdir.chmod(0o755)
    server = PostgreSQL(workdir / "server")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgresql_url(postgresql: PostgreSQL) -> str:
    """The URL of a new, empty database of the test's own on the session's server."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgresql.url(), autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return postgresql.url(name)
