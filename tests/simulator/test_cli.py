"""``drivesim run``: timeline, report file, exit status (0 ok, 1 invariant failed, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import main

CONFIGS = Path(__file__).parents[2] / "configs"
MID = str(CONFIGS / "cancel-mid-transfer.toml")


def test_run_prints_a_timeline_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A good run exits 0, narrates the cancel, and writes the report with its figures."""
    report_path = tmp_path / "report.json"
    assert main(["run", MID, "--report", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "cancel recorded in Transferring" in out
    assert "skipped, cancel requested before it started" in out
    assert "Packaging → Completed  outcome: cancelled" in out
    report = json.loads(report_path.read_text())
    for key in ("scenario", "seed", "clock", "wallSeconds", "simulatedSeconds", "jobs", "cancel"):
        assert key in report
    assert report["clock"]["kind"] == "virtual"
    assert report["jobs"]["finalStates"] == {"Completed": 1}
    assert {i["name"] for i in report["invariants"]} >= {
        "legal-transitions",
        "terminal-or-deleted",
        "progress-monotonic",
        "no-start-after-cancel",
        "deletes-allowed-and-final",
        "no-secret-published",
    }
    assert report["ok"] is True


def test_quiet_prints_only_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """--quiet drops the timeline and keeps the summary."""
    assert main(["run", MID, "--quiet", "--db", ":memory:"]) == 0
    out = capsys.readouterr().out
    assert "cancel recorded" not in out
    assert "invariants" in out


def test_bad_input_exits_2_and_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing or invalid scenario, or a bad --speed, exits 2 with a clear message."""
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: (file): an existing file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[datacenter]\nbays = 2\n')
    assert main(["run", str(bad)]) == 2
    assert "bad.toml: datacenter.bays: a known key (locations, " in capsys.readouterr().err
    assert main(["run", MID, "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err


def test_a_failed_invariant_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario whose expectation is not met fails the run with status 1."""
    text = (CONFIGS / "cancel-too-late.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace('expect = "rejected-too-late"', 'expect = "accepted"'))
    assert main(["run", str(wrong)]) == 1
    assert "scripted-expectations" in capsys.readouterr().out


def test_a_database_of_another_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--db holding another scenario (or seed) is refused, not mixed in."""
    db = str(tmp_path / "run.db")
    assert main(["run", MID, "--quiet", "--db", db]) == 0
    assert main(["run", MID, "--quiet", "--db", db, "--seed", "99"]) == 2
    assert "holds" in capsys.readouterr().err


def test_rerunning_a_finished_database_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished run resumed on its database performs no action again and reports the same."""
    db = str(tmp_path / "run.db")
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert main(["run", MID, "--quiet", "--db", db, "--report", str(first)]) == 0
    assert main(["run", MID, "--quiet", "--db", db, "--report", str(second)]) == 0
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert b["starts"] == 2
    for key in ("jobs", "cancel", "actions", "invariants", "messages"):
        assert a[key] == b[key]
