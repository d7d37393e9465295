"""Kill the worker with SIGKILL at chosen moments, restart it on the same database, and check
that every job resumed where it was: none lost, none duplicated, transfers resumed from
their checkpoints, and an accepted cancel remembered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from worker.model import DriveState
from worker.sqlite_store import SQLiteStore

SCENARIO = Path(__file__).parent / "data" / "crash-drill.toml"
SPEED = "20000"
EXPECTED_FINAL = {"Closed": 1, "Completed": 2, "Creating": 1}


def _command(db: Path, report: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "simulator.cli",
        "--log-level",
        "error",
        "run",
        str(SCENARIO),
        "--speed",
        SPEED,
        "--db",
        str(db),
        "--report",
        str(report),
    ]


def _start(db: Path, report: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        _command(db, report), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _kill_at(db: Path, report: Path, marker: str, *, linger: float = 0.0) -> list[str]:
    """Run until a timeline line contains ``marker``, wait ``linger`` s, then SIGKILL."""
    seen = []
    with _start(db, report) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                break
            assert time.monotonic() < deadline, "marker not reached in time"
        else:
            pytest.fail(f"the run ended before {marker!r}:\n{''.join(seen)}")
        time.sleep(linger)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return seen


def _finish(db: Path, report: Path) -> dict[str, Any]:
    with _start(db, report) as proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def _check_complete(report: dict[str, Any], starts: int) -> None:
    assert report["ok"], [i for i in report["invariants"] if not i["ok"]]
    assert report["starts"] == starts
    assert report["jobs"]["created"] == 4, "a job was lost or created twice"
    assert report["jobs"]["finalStates"] == EXPECTED_FINAL
    assert report["jobs"]["remaining"] == 0
    cancel = report["cancel"]
    assert cancel["accepted"] == 1
    assert cancel["drivesSkipped"] == 1
    assert cancel["drivesFinishedAfterCancel"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "marker",
    [
        "alpha            Creating → Shipping",
        "draft            deleted",
        "bravo            Transferring → Packaging",
        "charlie          Packaging → Completed",
    ],
)
def test_killed_at_a_state_boundary_resumes_and_completes(tmp_path: Path, marker: str) -> None:
    """SIGKILL right after a committed transition: the restarted run finishes every job once."""
    db, report = tmp_path / "run.db", tmp_path / "report.json"
    _kill_at(db, report, marker)
    _check_complete(_finish(db, report), starts=2)


@pytest.mark.slow
def test_killed_mid_transfer_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    """A transfer killed halfway resumes from its last checkpoint, never from zero."""
    db, report = tmp_path / "run.db", tmp_path / "report.json"
    _kill_at(db, report, "drive A1: Received → Transferring", linger=0.4)
    store = SQLiteStore(db)
    alpha = store.load_jobs()["alpha"]
    store.close()
    drive = alpha.drive("A1")
    assert drive.state is DriveState.TRANSFERRING
    checkpoint = drive.bytes_succeeded or 0
    assert 0 < checkpoint < alpha.sim.drives["A1"].plan.size_bytes

    final = _finish(db, report)
    _check_complete(final, starts=2)
    store = SQLiteStore(db)
    progress = [
        json.loads(e.message.payload)["bytesSucceeded"]
        for e in store.history()
        if e.message.topic.endswith("/progress") and b'"driveId":"A1"' in e.message.payload
    ]
    store.close()
    resumed = [b for b in progress if b > checkpoint]
    assert resumed, "no progress after the restart"
    assert min(resumed) - checkpoint <= 100_000_000 * 600, "resumed further than one step ahead"
    assert progress == sorted(progress), "progress went back after the restart"


@pytest.mark.slow
def test_accepted_cancel_survives_a_crash_before_it_takes_effect(tmp_path: Path) -> None:
    """Killed between the cancel's commit and the Packaging boundary, the cancel still holds."""
    db, report = tmp_path / "run.db", tmp_path / "report.json"
    _kill_at(db, report, "cancel recorded in Transferring")
    store = SQLiteStore(db)
    alpha = store.load_jobs()["alpha"]
    store.close()
    assert alpha.cancel_requested
    assert str(alpha.state) == "Transferring"

    final = _finish(db, report)
    _check_complete(final, starts=2)
    cancels = [a for a in final["actions"] if a["do"] == "cancel"]
    assert [a["outcome"] for a in cancels] == ["accepted"], "the cancel was asked again"


@pytest.mark.slow
def test_killed_twice_still_completes_once(tmp_path: Path) -> None:
    """Two crashes at different moments: still every job exactly once, every invariant."""
    db, report = tmp_path / "run.db", tmp_path / "report.json"
    _kill_at(db, report, "alpha            Shipping → Received")
    _kill_at(db, report, "drive B1: Received → Transferring", linger=0.2)
    _check_complete(_finish(db, report), starts=3)
