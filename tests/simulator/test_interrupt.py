"""Ctrl-C during ``drivesim run``: a real SIGINT to a real process. The run exits 130, says
where it stopped and how to resume it; run again on its database, it says it is resuming,
from when, and which restart this is."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from simulator.live.processes import DRIVESIM
from tests.simulator.conftest import interrupt_when

CONFIGS = Path(__file__).parents[2] / "configs"
SCENARIO = str(CONFIGS / "load-small.toml")


def _meta(db: Path, key: str) -> bytes | None:
    """What the run's store holds under ``key`` (None: nothing yet)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else bytes(row[0])


def _committed(db: Path, starts: bytes | None) -> bool:
    """This start of the run (the store counted another, after ``starts``) has committed
    changes at a simulated time past zero."""
    now = _meta(db, "sim_now")
    return _meta(db, "run/starts") != starts and now is not None and float(now) > 0


def _interrupted(db: Path) -> tuple[int, str]:
    """Start the run on ``db`` in scaled real time, SIGINT it once it has committed."""
    starts = _meta(db, "run/starts")
    process = subprocess.Popen(
        [*DRIVESIM, "run", SCENARIO, "--speed", "20000", "--quiet", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = interrupt_when(
        process, lambda: _committed(db, starts), "the run committed nothing", settle=0.5
    )
    return process.returncode, err


@pytest.mark.slow
def test_an_interrupted_run_exits_130_and_resumes_saying_so(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    code, err = _interrupted(db)
    assert code == 130
    assert "Traceback" not in err
    assert "stopped at simulated " in err
    assert f"resume it with: drivesim run {SCENARIO} --db {db}" in err

    code, err = _interrupted(db)
    assert code == 130
    assert f"resuming load-small from {db} at simulated " in err
    assert "(restart 1 of this run)" in err


@pytest.mark.slow
def test_an_interrupted_demo_exits_130_and_says_so() -> None:
    process = subprocess.Popen(
        [*DRIVESIM, "demo"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(3)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # and its pipes closed
    assert process.returncode == 130
    assert "interrupted: drivesim demo did not finish" in err
    assert "Traceback" not in err


def _shards(pid: int) -> list[int]:
    """The processes ``pid`` started for its shards."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
    return found


@pytest.mark.slow
def test_an_interrupted_split_run_exits_130_and_stops_its_processes() -> None:
    """Ctrl-C stops every shard's process; the run says it kept nothing to resume."""
    process = subprocess.Popen(
        [*DRIVESIM, "run", str(CONFIGS / "load-10k.toml"), "--processes", "2", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("2 processes: ")
    shards: list[int] = []

    def started() -> bool:
        shards[:] = _shards(process.pid)
        return len(shards) >= 2

    err = interrupt_when(process, started, "no shard started", settle=0.5)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "a run split between processes keeps no database" in err
    assert [pid for pid in shards if Path(f"/proc/{pid}").exists()] == []
