"""The JSON report: next to each job a violation names, the faults that struck during its
life."""

from __future__ import annotations

import dataclasses

from simulator.faults.plan import FaultRecord
from simulator.report.history import History
from simulator.report.json_report import suspects
from simulator.scenario import parse_scenario
from tests.simulator.conftest import Runner


def test_suspects_are_the_faults_struck_during_the_job_s_life(run_config: Runner) -> None:
    result, _ = run_config("cancel-mid-transfer")
    history = History(result.history, result.scenario.epoch)
    (life,) = history.incarnations
    times = [s.time for s in life.snapshots]
    ended = max(e.time for e in life.events)  # its deletion
    plan = parse_scenario(
        {
            "name": "suspects",
            "seed": 3,
            "faults": [
                {"kind": "broker-kill", "at": f"{times[2]:.3f}s", "lasts": "1h"},
                {"kind": "worker-kill", "at": f"{ended + 60:.3f}s"},
            ],
        }
    ).faults
    during, after = (FaultRecord(f, struck=f.at) for f in plan)
    during = dataclasses.replace(during, healed=during.fault.at + 3600)
    found = suspects([f"{life.job}: something odd (seq 4)"], history, [during, after])
    assert found == {life.job: [f"#0 {during.fault.describe()} at {during.struck:.0f} s"]}
    assert suspects(["the run reached its time limit"], history, [during]) == {}
