"""What the worker's JSON log says (``drivesim worker --log-format json``): its events as
it writes them (:class:`LogTail`), and a whole run's log in figures (:func:`summary`).
Each event carries its ``wall_time``; :func:`stamp` reads it as Unix time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import Tail
from bench.stats import busiest

__all__ = ["LogTail", "stamp", "summary"]


def stamp(event: dict[str, Any]) -> float:
    """The Unix time the worker logged ``event`` at."""
    return datetime.fromisoformat(str(event["wall_time"])).timestamp()


class LogTail:
    """The worker log's JSON events from ``offset`` (default: its end now) on, read as the
    worker writes them: each :meth:`read` parses only the lines completed since the last."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self._tail = Tail(path, offset)
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every event from the start offset, the new ones parsed and appended."""
        for line in self._tail.read():
            if line.startswith(b"{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    continue
        return self.events


def summary(path: Path, epoch: datetime, speed: float) -> dict[str, float]:
    """From the worker's JSON log, under a report's keys (``worker_...``): when it was
    running (wall seconds after the run's time origin, which is taken before the worker
    starts), its commits and the commands it answered and their busiest second, the
    commands that failed, the outbox drain after SIGTERM, and how many log lines it wrote."""
    lines = failed = undrained = 0
    commits: list[float] = []
    commands: list[float] = []
    stopping = stopped = running = None
    for raw in path.read_text(errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue
        lines += 1
        wall = entry.get("wall_time")
        if not isinstance(wall, str):
            continue
        when = datetime.fromisoformat(wall).timestamp()
        match entry.get("event"):
            case "job changed":
                commits.append(when)
            case "command":
                commands.append(when)
            case "command failed":
                failed += 1
            case "outbox not drained in time; the rest goes out on next start":
                undrained += 1
            case "worker stopping: draining the outbox":
                stopping = when
            case "worker stopped":
                stopped = when
            case "worker running" if running is None and isinstance(entry.get("sim_time"), str):
                sim = datetime.fromisoformat(entry["sim_time"]) - epoch
                running = sim.total_seconds() / speed
    commits.sort()
    commands.sort()
    figures = {
        "ready_s": -1.0 if running is None else running,
        "log_lines": lines,
        "commits": len(commits),
        "peak_commits_per_s": busiest(commits),
        "commands": len(commands),
        "peak_commands_per_s": busiest(commands),
        "commands_failed": failed,
        "outbox_not_drained": undrained,
        "drain_s": stopped - stopping if stopping is not None and stopped is not None else -1.0,
    }
    return {f"worker_{key}": value for key, value in figures.items()}
