"""``drivesim jobs`` and ``drivesim watch`` against a real worker process and Mosquitto."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.console.watch import _describe, _stamped
from simulator.live.processes import Mosquitto, WorkerProcess, free_port
from tests.worker_process import worker_process

SETTINGS = 'worker_id = "cli"\nspeed = 60\n[datacenter]\ncarrier_delay = "1h"\n'


@pytest.fixture
def worker(own_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = worker_process(tmp_path, own_mosquitto.url, SETTINGS)
    process.start()
    deadline = time.monotonic() + 20
    while "connected to broker" not in process.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, process.log.read_text()
        time.sleep(0.05)
    yield process
    process.stop()


def _jobs(url: str, *args: str) -> list[str]:
    return ["jobs", "--broker", url, *args]


def test_jobs_commands_drive_a_job(
    worker: WorkerProcess, own_mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """create (and create again: a replacement), ship, get, cancel, keys and list answer
    with readable output and exit 0;
    an error answer prints its code and exits 1; --json prints the raw reply."""
    url = own_mosquitto.url
    assert main(_jobs(url, "create", "cli-job", "--drives", "2")) == 0
    out = capsys.readouterr().out
    assert "created job cli-job" in out
    assert "cli-job · Import · Creating" in out
    # A second create of the name replaces the job, and says so.
    assert main(_jobs(url, "create", "cli-job", "--drives", "3")) == 0
    out = capsys.readouterr().out
    assert "replaced existing job cli-job" in out
    assert "created job" not in out
    assert main(_jobs(url, "ship", "cli-job")) == 0
    assert "Shipping" in capsys.readouterr().out
    assert main(_jobs(url, "cancel", "cli-job")) == 0
    assert "cancel: accepted" in capsys.readouterr().out
    assert main(_jobs(url, "keys", "cli-job")) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert main(_jobs(url, "list", "--state", "Shipping")) == 0
    assert "cli-job" in capsys.readouterr().out
    assert main(_jobs(url, "delete", "cli-job")) == 1
    assert "DeleteNotAllowed (409)" in capsys.readouterr().out
    assert main(_jobs(url, "--json", "get", "nope")) == 1
    reply = json.loads(capsys.readouterr().out)
    assert reply["error"]["code"] == "ResourceNotFound"
    assert reply["status"] == 404


def test_watch_shows_the_stream(worker: WorkerProcess, own_mosquitto: Mosquitto) -> None:
    """watch prints the worker's liveness and each job event as a readable line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "simulator.cli", "watch", "--broker", own_mosquitto.url]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as watcher:
        assert watcher.stdout is not None
        lines = []
        watchdog = threading.Timer(30, watcher.kill)  # a silent watcher must not hang the run
        watchdog.start()
        try:
            for line in watcher.stdout:  # subscribed once it says what it watches
                lines.append(line)
                if "worker cli: online" in line:
                    break
            assert main(_jobs(own_mosquitto.url, "create", "watched", "--drives", "1")) == 0
            assert main(_jobs(own_mosquitto.url, "ship", "watched")) == 0
            for line in watcher.stdout:
                lines.append(line)
                if "Creating → Shipping" in line:
                    break
        finally:
            watchdog.cancel()
            watcher.send_signal(signal.SIGINT)
            watcher.communicate(timeout=10)
    out = "".join(lines)
    assert "worker cli: online" in out
    assert "watched          created · Import · 1 drive" in out
    assert "watched          Creating → Shipping" in out
    # Stamped with the simulated time the messages carry (the worker's epoch is 2026-01-05
    # 08:00, its clock 60 simulated seconds a second), not the viewer's wall clock.
    created = next(line for line in lines if "created · Import" in line)
    assert re.match(r"2026-01-05 0[89]:\d\d:\d\d  watched ", created), created


def test_watch_prints_sizes_as_the_timeline_does() -> None:
    """A progress line in TB or GB, with the timeline's formatter, and its simulated time."""
    payload = json.dumps(
        {
            "driveId": "9CA995BB",
            "percentComplete": 60,
            "bytesSucceeded": 1_200_000_000_000,
            "job": "j1",
            "seq": 9,
            "simTime": "2026-01-05T09:30:00.250Z",
        }
    ).encode()
    text = _describe("importexport/v1/jobs/j1/progress", payload)
    assert text is not None
    line = _stamped(payload, text).plain
    assert line == "2026-01-05 09:30:00  j1                 drive 9CA995BB: 60% (1.20 TB)"
    small = payload.replace(b"1200000000000", b"720000000000")
    assert "(720.00 GB)" in str(_describe("importexport/v1/jobs/j1/progress", small))


def test_jobs_says_in_one_line_when_no_worker_answers(
    own_mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker with no worker on it: exit 3, one line naming the broker and the wait."""
    code = main(["jobs", "--broker", own_mosquitto.url, "--timeout", "0.5", "get", "nobody"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1
    assert f"no worker answered on {own_mosquitto.url} within 0.5 s" in err
    assert "Traceback" not in err


def test_jobs_says_in_one_line_when_the_broker_is_out_of_reach(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    code = main(["jobs", "--broker", url, "--timeout", "2", "list"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1
    assert f"cannot reach the broker at {url}" in err
