"""``drivesim demo``: the story runs end to end, each cancel window and each cancel moment
give the outcome the policy table predicts, the output reads in a plain narrow terminal,
the picture renders in headless Chromium, and the real-time path publishes the story to a
real broker (in a child process: amqtt stays out of the test process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.demo.command import play_virtual, run_virtual
from simulator.demo.outcome import DemoOutcome, at, outcome_of
from simulator.demo.picture import render_picture, write_picture
from simulator.demo.story import CANCEL_STATES, MAIN, OTHER, StoryOptions, demo_scenario
from simulator.live.observer import Observer
from simulator.live.processes import Mosquitto
from simulator.report.history import History
from simulator.report.html.chromium import dump_dom, screenshot
from simulator.report.invariants import check_stream
from simulator.report.json_report import cancel_figures
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from tests.pictures import screenshot_colours
from worker.errors import ChromiumMissing
from worker.memory_store import MemoryStore
from worker.model import JobState
from worker.states import CANCEL_WINDOWS, CancelWindow
from worker.status import PREFIX

DAY = 86_400.0
ROOT = Path(__file__).parents[3]


@pytest.fixture(scope="module")
def default() -> tuple[RunResult, DemoOutcome]:
    result = run_virtual(StoryOptions())
    return result, outcome_of(result, StoryOptions())


def test_the_default_story_cancels_mid_transfer(default: tuple[RunResult, DemoOutcome]) -> None:
    """Cancel accepted in Transferring: the drives copying finish (bytes after the request
    counted), the others are skipped; Fabrikam's cancel in Packaging is CancelTooLate;
    the delete in Packaging is DeleteNotAllowed; the job ends Completed with
    cancelRequested true and is deleted 90 days later."""
    result, outcome = default
    assert outcome.cancel.outcome == "accepted"
    assert outcome.cancel.state == "Transferring"
    in_flight = {d.drive for d in outcome.drives if d.at_cancel is not None}
    assert in_flight
    assert set(outcome.finished_after) == in_flight
    assert set(outcome.skipped) == {d.drive for d in outcome.drives} - in_flight
    assert all(d.copied == d.size for d in outcome.drives if d.drive in in_flight)
    assert all(d.copied == 0 for d in outcome.drives if d.skipped)
    assert outcome.bytes_after > 0
    assert outcome.history is not None
    figures = cancel_figures(result, outcome.history)
    assert figures["bytesAfterCancel"] == outcome.bytes_after
    assert figures["drivesSkipped"] == len(outcome.skipped)
    assert figures["drivesFinishedAfterCancel"] == len(outcome.finished_after)

    assert outcome.cancel_recorded is not None
    assert outcome.took_effect is not None
    assert outcome.took_effect > outcome.cancel_recorded
    assert outcome.effect == "Transferring → Packaging"

    late = outcome.late_cancel
    assert (late.job, late.state, late.outcome) == (OTHER, "Packaging", "rejected-too-late")
    assert "can no longer be cancelled" in late.detail
    delete = outcome.delete
    assert (delete.job, delete.state, delete.outcome) == (MAIN, "Packaging", "DeleteNotAllowed")

    assert (outcome.final_state, outcome.cancel_requested) == ("Completed", True)
    assert outcome.outcome == "cancelled"
    assert outcome.deleted_at is not None
    assert outcome.deleted_reason == "retention"
    sweep = result.scenario.policy.sweep_interval
    assert 90 * DAY <= outcome.deleted_at - outcome.ended_at <= 90 * DAY + sweep
    assert outcome.other_final == "Completed"
    assert outcome.other_deleted_at is not None
    assert outcome.ok, [c for c in outcome.invariants if not c.ok]
    assert result.starts == 2  # the fast-forward resumed the store


def test_the_fast_forward_changes_nothing(default: tuple[RunResult, DemoOutcome]) -> None:
    """Stopping once every job has ended and resuming in virtual time gives the very stream
    of one uninterrupted run."""
    result, _ = default
    whole = run_scenario(demo_scenario(StoryOptions()), MemoryStore())
    assert [m.payload for m in result.history] == [m.payload for m in whole.history]
    assert [a.to_json() for a in result.actions] == [a.to_json() for a in whole.actions]


@pytest.mark.parametrize("cancel_at", CANCEL_STATES, ids=str)
@pytest.mark.parametrize("policy", list(CancelWindow), ids=str)
def test_cancel_at_each_state_follows_the_policy(policy: CancelWindow, cancel_at: JobState) -> None:
    """Accepted exactly when the window holds the state; what runs on depends on the state."""
    options = StoryOptions(policy, cancel_at)
    outcome = play_virtual(options)
    accepted = cancel_at in CANCEL_WINDOWS[policy]
    assert outcome.cancel.state == str(cancel_at)
    assert outcome.cancel.outcome == ("accepted" if accepted else "rejected-too-late")
    assert outcome.late_cancel.outcome == "rejected-too-late"
    assert outcome.final_state == "Completed"
    assert outcome.cancel_requested is accepted
    assert outcome.outcome == ("cancelled" if accepted else "succeeded")
    assert outcome.deleted_at is not None
    assert outcome.ok, [c for c in outcome.invariants if not c.ok]
    drives = {d.drive for d in outcome.drives}
    if not accepted:
        assert outcome.took_effect is None
        assert not outcome.skipped
        assert outcome.drives_copied == len(drives)
        assert outcome.delete.outcome == "DeleteNotAllowed"
    elif cancel_at is JobState.CREATING:
        assert outcome.effect == "Creating → Completed"
        assert outcome.ended_at == outcome.cancel.at
        assert outcome.copied == 0
        ship = next(a for a in outcome.requests if a.job == MAIN and a.do == "ship")
        assert ship.outcome == "InvalidJobState"
        assert outcome.delete.outcome == "not-triggered"
    elif cancel_at in (JobState.SHIPPING, JobState.RECEIVED):
        assert outcome.effect == "Received → Packaging"
        assert set(outcome.skipped) == drives
        assert outcome.copied == 0
        assert outcome.delete.outcome == "DeleteNotAllowed"
    else:
        assert outcome.finished_after
        assert outcome.skipped
        assert outcome.bytes_after > 0
        assert outcome.delete.outcome == "DeleteNotAllowed"


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
        "12 of 12 hold",
    ):
        assert text in flat, text
    assert "mqtt importexport/v1/jobs/contoso-import/state" in flat


def test_bad_combinations_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--virtual has no broker; --compare runs in virtual time; --speed is positive."""
    assert main(["demo", "--virtual", "--broker", "mqtt://127.0.0.1:1"]) == 2
    assert main(["demo", "--compare", "--speed", "100"]) == 2
    assert main(["demo", "--speed", "0"]) == 2
    assert "error:" in capsys.readouterr().err


# -- the picture -----------------------------------------------------------------------------


def test_the_picture_is_self_contained(default: tuple[RunResult, DemoOutcome]) -> None:
    """Inline CSS and SVG: no script, no link, no address to fetch; every mark is there."""
    _, outcome = default
    page = render_picture([outcome])
    assert page.startswith("<!DOCTYPE html>")
    for banned in ("<script", "<link", "@import", "http://", "https://"):
        assert banned not in page, banned
    assert re.findall(r"\b(?:src|href)\s*=", page) == []
    assert page.count('class="after"') == len(outcome.finished_after)
    assert page.count('class="skip"') == len(outcome.skipped)
    for mark in ('class="ask"', 'class="effect"', "⑤ cancel: too late", "⑥ delete refused"):
        assert mark in page, mark
    assert outcome.deleted_at is not None
    assert "kept 90 days" in page
    assert f"deleted {at(outcome.deleted_at)}" in page


def test_the_picture_renders_in_chromium(
    default: tuple[RunResult, DemoOutcome], tmp_path: Path
) -> None:
    """A 1400x900 screenshot full of colour, with the after-the-request shade drawn; and
    with --compare, one timeline per policy in Chromium's DOM."""
    _, outcome = default
    html_path, png_path = tmp_path / "demo.html", tmp_path / "demo.png"
    write_picture(html_path, [outcome])
    try:
        screenshot(html_path, png_path, width=1400, height=900, timeout=120)
    except ChromiumMissing as exc:
        pytest.fail(f"{exc}. Run `make test`: it installs chromium before the suite.")
    _, colours = screenshot_colours(png_path.read_bytes(), (1400, 900))
    assert bytes((0x0E, 0x4A, 0x5C)) in colours  # bytes copied after the request
    assert bytes((0xD1, 0xD5, 0xDB)) in colours  # skipped drives

    compare = tmp_path / "compare.html"
    outcomes = [play_virtual(StoryOptions(policy)) for policy in CancelWindow]
    write_picture(compare, outcomes)
    dom = dump_dom(compare, timeout=120)
    assert re.findall(r'data-policy="([^"]+)"', dom) == [str(p) for p in CancelWindow]


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
        assert "12 of 12 hold" in done.stdout
        observer.wait_for(
            lambda _: "offline" in observer.worker_states("demo"), timeout=10, what="offline"
        )
        received = observer.snapshot()
        ours = [m for m in observer.status_messages() if m.job in (MAIN, OTHER)]
    finally:
        observer.close()
    assert observer.worker_states("demo") == ["online", "offline"]
    events = [json.loads(p) for t, p, _ in received if t == f"{PREFIX}/jobs/{MAIN}/events"]
    kinds = [e["type"].rsplit(".", 1)[-1] for e in events]
    assert "cancelRequested" in kinds
    assert kinds.count("driveSkipped") == 3
    assert kinds[-1] == "jobDeleted"
    snapshots = [json.loads(p) for t, p, _ in received if t == f"{PREFIX}/jobs/{MAIN}/state" and p]
    assert all(s["epoch"] == 1 for s in snapshots)
    assert snapshots[-1]["properties"]["state"] == "Completed"
    assert snapshots[-1]["properties"]["cancelRequested"] is True
    assert snapshots[-1]["outcome"] == "cancelled"
    cleared = {t for t, p, _ in received if not p and t.endswith("/state")}
    assert {f"{PREFIX}/jobs/{MAIN}/state", f"{PREFIX}/jobs/{OTHER}/state"} <= cleared
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
    assert "12 of 12 hold" in done.stdout
