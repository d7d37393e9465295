"""A private PostgreSQL server: for tests, live runs with several workers, and chaos.

It runs from its own data directory on a free loopback port, as the ``postgres`` user when
started by root (PostgreSQL refuses to run as root), and is a direct child process, so
:meth:`PostgreSQL.kill` is a real ``SIGKILL`` of the postmaster and :meth:`start` after it
is a crash recovery.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from simulator.live.processes import free_port, terminate
from worker import DrivesimError

__all__ = ["PostgreSQL", "create_database", "find_postgres"]


def find_postgres() -> Path:
    """The folder of PostgreSQL's server binaries (``initdb``, ``postgres``)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    found = str(candidates[-1]) if candidates else shutil.which("initdb")
    if found is None:
        raise DrivesimError(
            "PostgreSQL's server is not installed: apt-get install postgresql (make test does this)"
        )
    return Path(found).parent


class PostgreSQL:
    """One PostgreSQL server on 127.0.0.1 with its data in ``workdir``; ``fsync`` off unless
    ``durable`` (crash recovery still works: only a power cut would lose data)."""

    def __init__(self, workdir: Path, *, durable: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.data = workdir / "data"
        self.sockets = workdir / "sockets"
        self.log = workdir / "postgresql.log"
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            self._user = {"user": postgres.pw_uid, "group": postgres.pw_gid}

    def url(self, database: str = "postgres", *, port: int | None = None) -> str:
        """The URL of ``database`` on this server (reached at ``port``: a proxy's)."""
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def _own(self, *paths: Path) -> None:
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if self._user:
                os.chown(path, self._user["user"], self._user["group"])

    def _initdb(self) -> None:
        self._own(self.workdir)
        result = subprocess.run(
            [find_postgres() / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres"],
            capture_output=True,
            check=False,
            **self._user,
        )
        if result.returncode != 0:
            raise DrivesimError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self) -> None:
        """Start the server (creating its data directory the first time) and wait until it
        accepts connections."""
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._own(self.sockets)
        fsync = "on" if self.durable else "off"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    find_postgres() / "postgres",
                    *("-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", f"fsync={fsync}"),
                ],
                stdout=log,
                stderr=log,
                **self._user,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        ready = [str(find_postgres() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(ready, capture_output=True, check=False).returncode == 0:
                return
            if self.process is not None and self.process.poll() is not None:
                raise DrivesimError(f"postgres exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise DrivesimError("postgres did not start accepting connections within 30 s")

    def kill(self) -> None:
        """SIGKILL the postmaster: connections drop, and the next start recovers from WAL."""
        if self.process is not None and self.process.poll() is None:
            backends = _children(self.process.pid)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            # Its backends outlive it for a moment, attached to the shared memory the next
            # start needs; they exit on their own once they see the postmaster gone.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(_alive(pid) for pid in backends):
                time.sleep(0.02)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A fast shutdown (SIGINT: clients are disconnected, everything is flushed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                terminate(self.process, grace=0)
        self.process = None


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def create_database(url: str, name: str) -> None:
    """Create the database ``name`` on the server at ``url``."""
    import psycopg  # the postgresql extra: only where a PostgreSQL is used
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
