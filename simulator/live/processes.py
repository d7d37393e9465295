"""Real processes a live run manages: a Mosquitto broker and the worker.

Both listen on loopback only, can be killed with real signals, and start again on their
own files: the broker on its config, the worker on its SQLite store.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from worker import DrivesimError

__all__ = ["Mosquitto", "WorkerProcess", "find_mosquitto", "free_port", "terminate"]


def find_mosquitto() -> str:
    """The mosquitto binary (Debian puts it in /usr/sbin, which may not be on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise DrivesimError(
            "mosquitto is not installed: apt-get install mosquitto (make test does this)"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One broker process on 127.0.0.1; ``kill``, ``pause``, ``resume`` and ``start`` again."""

    def __init__(self, workdir: Path, *, extra_config: str = "", anonymous: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            "per_listener_settings false\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence false\n"
            f"listener {self.port} 127.0.0.1\n"
            "max_queued_messages 0\n"
            "set_tcp_nodelay true\n"  # replies and status go out at once, not 40 ms later
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + ("user root\n" if os.geteuid() == 0 else "") + extra_config
            # As root it would drop to user mosquitto, which cannot read our files.
        )
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [find_mosquitto(), "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise DrivesimError(f"mosquitto exited: {self.log.read_text()}") from None
                time.sleep(0.02)
        raise DrivesimError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL the broker: clients see their connections drop."""
        self.paused = False
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        terminate(self.process)
        self.process = None


#: ``drivesim`` as run by this interpreter (a worker variant can be run instead).
DRIVESIM = (sys.executable, "-m", "simulator.cli")


class WorkerProcess:
    """``drivesim worker ARGS`` as a child process, logging JSON to ``log``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        log: Path,
        db: str | Path | None = None,
        program: Sequence[str] = DRIVESIM,
    ) -> None:
        self.args = [*args, *(("--db", str(db)) if db is not None else ())]
        self.log = log
        self.db = db
        self.program = tuple(program)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_from = 0

    def start(self) -> None:
        command = [*self.program, "--log-level", "info", "--log-format", "json", "worker"]
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.args],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1

    def wait_connected(self, timeout: float = 30) -> None:
        """Until this start of the worker has connected to its broker."""
        deadline = time.monotonic() + timeout
        while not self._logged_since_start("connected to broker"):
            if self.process is None or self.process.poll() is not None:
                raise DrivesimError(f"the worker exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise DrivesimError("the worker did not connect to its broker in time")
            time.sleep(0.02)

    def _logged_since_start(self, text: str) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            return text.encode() in log.read()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int, timeout: float = 30) -> int:
        """Send ``signum`` and wait for the exit status."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def terminate(process: subprocess.Popen[bytes] | None, *, grace: float = 10.0) -> None:
    """Stop ``process`` if it still runs: SIGTERM, and SIGKILL after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
