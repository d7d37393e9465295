"""``drivesim demo`` on the command line: the policies side by side, the output in a plain
narrow terminal, bad combinations refused, and the real-time path publishing the story to
a real broker (in a child process: amqtt stays out of the test process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.demo.story import MAIN, OTHER, StoryOptions, demo_scenario
from simulator.live.observer import Observer
from simulator.live.processes import Mosquitto
from simulator.report.history import History
from simulator.report.invariants import check_stream
from worker.model import JobState
from worker.states import CANCEL_WINDOWS, CancelWindow
from worker.status import TOPIC_PREFIX

ROOT = Path(__file__).parents[3]


def _rows(out: str) -> dict[str, list[str]]:
    """The compare table's rows: label, then one cell per policy (split on 2+ spaces)."""
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    return rows


def test_compare_prints_the_three_windows_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    """One column per policy; which cancel was accepted and what ran on follow
    CANCEL_WINDOWS."""
    assert main(["demo", "--compare", "--virtual"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    policies = list(CancelWindow)
    accepted = [JobState.TRANSFERRING in CANCEL_WINDOWS[p] for p in policies]
    assert rows["the cancel"] == ["accepted" if a else "CancelTooLate" for a in accepted]
    assert rows["late cancel"] == ["CancelTooLate"] * 3
    assert rows["delete"] == ["DeleteNotAllowed"] * 3
    assert rows["cancelRequested"] == [str(a).lower() for a in accepted]
    assert rows["outcome"] == ["cancelled" if a else "succeeded" for a in accepted]
    assert rows["final state"] == ["Completed"] * 3
    for ran_on, skipped, a in zip(rows["ran on after it"], rows["skipped"], accepted, strict=True):
        assert (ran_on != "–") is a
        assert (skipped != "–") is a


def test_compare_in_shipping_accepts_under_two_windows(capsys: pytest.CaptureFixture[str]) -> None:
    """A cancel in Shipping: before-packaging and creating-or-shipping accept it."""
    assert main(["demo", "--compare", "--cancel-at", "Shipping"]) == 0
    rows = _rows(capsys.readouterr().out)
    expected = [
        "accepted" if JobState.SHIPPING in CANCEL_WINDOWS[p] else "CancelTooLate"
        for p in CancelWindow
    ]
    assert rows["the cancel"] == expected


def test_plain_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped (not a terminal), 60 columns: no escape codes, no line wider than 60, and the
    whole story with its reasons and its summary."""
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["demo", "--virtual"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert max(len(line) for line in out.splitlines()) <= 60
    flat = " ".join(out.split())  # lines wrapped at 60 columns, read back as one
    for text in (
        "asks to cancel in Transferring: accepted",
        "cancel recorded in Transferring",
        "finished after the cancel",
        "drive 9CA995B3 skipped",
        "the cancel takes effect here",
        "CancelTooLate",
        "DeleteNotAllowed",
        "cancelRequested true",
        "every job has ended: fast-forward",
        "deleted (retention, was Completed)",
        "summary · before-packaging",
        "13 of 13 hold",
    ):
        assert text in flat, text
    assert "mqtt importexport/v1/jobs/contoso-import/state" in flat


def test_bad_combinations_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--virtual has no broker; --compare runs in virtual time; --speed is positive."""
    assert main(["demo", "--virtual", "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert main(["demo", "--compare", "--speed", "100"]) == 2
    assert main(["demo", "--speed", "0"]) == 2
    assert "error:" in capsys.readouterr().err


# -- real time, a real broker (child processes) -------------------------------------------


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
        check=False,
    )


def test_real_time_demo_publishes_the_story(mosquitto: Mosquitto) -> None:
    """--broker: every change reaches a subscriber as the worker publishes it (epoch in the
    snapshots, online then offline), from the accepted cancel to the retention clears, and
    the stream a consumer sees passes the stream invariants."""
    observer = Observer(mosquitto.port)
    try:
        observer.wait_subscribed()
        done = _demo("--speed", "40000", "--broker", mosquitto.url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"broker: {mosquitto.url}" in done.stdout
        assert "13 of 13 hold" in done.stdout
        observer.wait_for(
            lambda _: "offline" in observer.worker_states("demo"), timeout=10, what="offline"
        )
        received = observer.snapshot()
        ours = [m for m in observer.status_messages() if m.job in (MAIN, OTHER)]
    finally:
        observer.close()
    assert observer.worker_states("demo") == ["online", "offline"]
    events = [json.loads(p) for t, p, _ in received if t == f"{TOPIC_PREFIX}/jobs/{MAIN}/events"]
    kinds = [e["type"].rsplit(".", 1)[-1] for e in events]
    assert "cancelRequested" in kinds
    assert kinds.count("driveSkipped") == 3
    assert kinds[-1] == "jobDeleted"
    snapshots = [
        json.loads(p) for t, p, _ in received if t == f"{TOPIC_PREFIX}/jobs/{MAIN}/state" and p
    ]
    assert all(s["epoch"] == 1 for s in snapshots)
    assert snapshots[-1]["properties"]["state"] == "Completed"
    assert snapshots[-1]["properties"]["cancelRequested"] is True
    assert snapshots[-1]["outcome"] == "cancelled"
    cleared = {t for t, p, _ in received if not p and t.endswith("/state")}
    assert {f"{TOPIC_PREFIX}/jobs/{MAIN}/state", f"{TOPIC_PREFIX}/jobs/{OTHER}/state"} <= cleared
    stream = History(ours, demo_scenario(StoryOptions()).epoch)
    assert {c.name: c.violations for c in check_stream(stream) if c.violations} == {}
    assert [life.job for life in stream.incarnations] == [OTHER, MAIN]


def test_real_time_demo_on_the_embedded_broker() -> None:
    """No broker given: the demo starts amqtt on loopback, publishes there and says so."""
    done = _demo("--speed", "40000", "--cancel-at", "Received")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(embedded amqtt, MQTT 3.1.1)" in done.stdout
    assert "asks to cancel in Received: accepted" in done.stdout
    assert "Received → Packaging" in done.stdout
    assert "13 of 13 hold" in done.stdout
