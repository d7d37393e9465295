"""bench/workers.py at smoke size, so it never rots: every set-up runs with its invariants
holding, the notify and in-flight figures come out (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.workers import SETUPS, main


@pytest.mark.slow
def test_workers_bench_reports_every_set_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "workers.json"
    argv = ["--until", "1d", "--speed", "32000", "--notifies", "20", "--rounds", "1"]
    report = main(
        [*argv, "--in-flight", "60", "--cancels", "6", "--kills", "1", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    (runs,) = report["rounds"]
    assert [(r["workers"], r["store"], r["slowdown"]) for r in runs] == list(SETUPS)
    for run in runs:
        assert run["observed"] > 0
        assert run["cpu_s"]["workers"] > 0
        assert run["failed"] == []
    assert runs[0]["cpu_s"]["postgresql"] == 0  # SQLite: no server
    assert all(r["cpu_s"]["postgresql"] > 0 for r in runs[1:])
    assert len(report["notify_ms"]) == 20
    flight = report["in_flight"]
    assert flight["cancels"] == {200: 6}
    (takeover,) = flight["takeovers"]
    assert takeover["jobs"] == 20  # 60 jobs over three locations: the victim's location's
    printed = capsys.readouterr().out
    assert "| 4 on PostgreSQL |" in printed
    assert "| 1 on PostgreSQL, 1/4 of the speed |" in printed
