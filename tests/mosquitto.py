"""A real Mosquitto for tests: its own config, a free loopback port, killable and restartable."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Mosquitto", "find_mosquitto"]


def find_mosquitto() -> str:
    """The mosquitto binary (Debian puts it in /usr/sbin, which may not be on PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(
            "mosquitto is not installed: apt-get install mosquitto (make test does this)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One broker process on 127.0.0.1; ``kill``, ``pause``, ``resume`` and ``start`` again."""

    def __init__(self, workdir: Path, *, extra_config: str = "", anonymous: bool = True) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            "per_listener_settings false\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence false\n"
            f"listener {self.port} 127.0.0.1\n"
            "max_queued_messages 0\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + ("user root\n" if os.geteuid() == 0 else "") + extra_config
            # As root it would drop to user mosquitto, which cannot read the test's files.
        )
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

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
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()}") from None
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        """SIGKILL the broker: clients see their connections drop."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
