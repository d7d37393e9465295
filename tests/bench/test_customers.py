"""bench/customers.py: how late a live run's scripted customers were answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.customers import request_figures, timed_requests
from simulator.run.answers import ActionResult
from simulator.scenario import load_scenario

SCENARIO = """
name = "customers"
seed = 1
[datacenter]
drive_size = "100GB"
[workload]
jobs = 4
over = "1h"
"""


def test_requests_are_late_by_their_answer_against_their_time(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    timed = [a for a in scenario.actions if a.at is not None]
    assert len(timed) >= 4
    first, second = timed[0], timed[1]
    assert first.at is not None
    assert second.at is not None
    # Two answered, 100 and 300 simulated seconds late; the rest never answered.
    results = [
        ActionResult(first.index, first.job, first.do, first.at + 100, "ok"),
        ActionResult(second.index, second.job, second.do, second.at + 300, "ok"),
    ]
    end = max(a.at for a in timed if a.at is not None)
    late, due = timed_requests(scenario, results, speed=100.0, sim_seconds=end)
    assert sorted(late) == pytest.approx([1.0, 3.0])  # wall seconds at 100x
    assert due == len(timed)
    figures = request_figures(scenario, results, 100.0, end)
    assert figures["requests_due"] == len(timed)
    assert figures["requests_answered"] == 2
    assert figures["request_late_p99_s"] == pytest.approx(3.0)
    # Due by an earlier moment: only those timed before it.
    assert timed_requests(scenario, results, 100.0, first.at)[1] >= 1
