"""bench/worker_log.py reads the worker's JSON log as it is written and as a whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.worker_log import LogTail, stamp, summary

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
WALL = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)


def _line(event: str, wall_s: float, **fields: Any) -> str:
    wall = (WALL + timedelta(seconds=wall_s)).isoformat()
    return json.dumps({"event": event, "wall_time": wall, **fields}) + "\n"


def test_stamp_reads_the_wall_time() -> None:
    assert stamp({"wall_time": WALL.isoformat()}) == WALL.timestamp()


def test_the_tail_parses_the_events_written_since_it_began(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text(_line("worker starting", 0.0))
    tail = LogTail(log)
    with log.open("a") as out:
        out.write("not json\n" + _line("store loaded", 0.1, jobs=3))
        out.write(_line("jobs resumed", 0.2)[:10])  # half a line: not yet
        out.flush()
        assert [e["event"] for e in tail.read()] == ["store loaded"]
        out.write(_line("jobs resumed", 0.2)[10:])
    assert [e["event"] for e in tail.read()] == ["store loaded", "jobs resumed"]
    assert tail.events[0]["jobs"] == 3


def test_a_run_s_log_in_figures(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    sim = (EPOCH + timedelta(seconds=3000)).isoformat()
    log.write_text(
        "Traceback: not an event\n"
        + _line("worker running", 0.5, sim_time=sim)
        + "".join(_line("job changed", 1.0 + i / 10) for i in range(5))
        + _line("job changed", 9.0)
        + _line("command", 2.0)
        + _line("command failed", 2.1)
        + _line("worker stopping: draining the outbox", 10.0)
        + _line("worker stopped", 10.25)
    )
    figures = summary(log, EPOCH, speed=1000.0)
    assert figures == {
        "worker_ready_s": 3.0,  # simulated 3,000 s at 1,000x
        "worker_log_lines": 11,
        "worker_commits": 6,
        "worker_peak_commits_per_s": 5,
        "worker_commands": 1,
        "worker_peak_commands_per_s": 1,
        "worker_commands_failed": 1,
        "worker_outbox_not_drained": 0,
        "worker_drain_s": 0.25,
    }
