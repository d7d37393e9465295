"""``drivesim worker`` as a real process for tests: start, signal, restart on its database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["WorkerProcess"]


class WorkerProcess:
    def __init__(self, tmp: Path, broker_url: str, settings: str) -> None:
        self.config = tmp / "worker.toml"
        self.config.write_text(settings)
        self.db = tmp / "worker.db"
        self.log = tmp / "worker.log"
        self.broker_url = broker_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "simulator.cli",
            "--log-level",
            "info",
            "--log-format",
            "json",
            "worker",
            "--config",
            str(self.config),
            "--broker",
            self.broker_url,
            "--db",
            str(self.db),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
