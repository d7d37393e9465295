"""bench/recovery.py kills and restarts a real worker at smoke size (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.recovery import main, read_store


@pytest.mark.slow
def test_recovery_bench_restarts_a_killed_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every job the killed worker committed is loaded, resumed and re-announced."""
    out = tmp_path / "recovery.json"
    report = main(["--smoke", "--workdir", str(tmp_path), "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert "## Crash recovery" in capsys.readouterr().out

    # The built database holds only jobs in flight, transfers among them.
    built = read_store(tmp_path / "recovery-100.db")
    assert len(built.jobs) == built.active == 100
    assert built.transferring > 0
    assert set(built.states) <= {"Shipping", "Received", "Transferring", "Packaging"}

    assert report["first_start_problems"] == []
    (trial,) = report["trials"]
    assert trial["problems"] == []
    assert trial["jobs"] == trial["active"] == 100
    assert trial["changes_before_kill"] > 0  # the killed worker was really at work
    assert trial["snapshots_jobs"] == 100
    assert trial["snapshots_drives"] >= trial["drives"] > 100
    assert trial["resumed"] > 0
    assert trial["reannounced"] > 0
    for phase, seconds in trial["breakdown"].items():
        assert seconds is not None, phase
        assert seconds >= 0, phase
    assert report["ok"]
    assert report["sigterm_exit"] == 0
    assert report["startup"]["interpreter+imports"] > report["startup"]["interpreter"] > 0
