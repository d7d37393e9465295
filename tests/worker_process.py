"""``drivesim worker`` for tests: a settings file, a store and a log in the test's directory."""

from __future__ import annotations

from pathlib import Path

from simulator.live.processes import WorkerProcess

__all__ = ["worker_process"]


def worker_process(
    tmp: Path, broker_url: str, settings: str, *, db: str | Path | None = None
) -> WorkerProcess:
    """``db``: its store (default: a SQLite file in ``tmp``)."""
    config = tmp / "worker.toml"
    config.write_text(settings)
    args = ["--config", str(config), "--broker", broker_url]
    return WorkerProcess(args, log=tmp / "worker.log", db=db or tmp / "worker.db")
