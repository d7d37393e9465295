"""bench/live.py runs a tiny scenario live and reports sane figures (no timing asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.live import main

# Five jobs over two simulated hours, short delays and retention: every job is created,
# shipped, copied, finished and deleted by retention within a simulated day.
SCENARIO = """
name = "live-smoke"
seed = 3
until = "3d"
live_speed = 50000

[policy]
retention = "2h"
creating_expiry = "2h"
sweep_interval = "10m"

[datacenter]
locations = { "West US" = 2 }
throughput_mb_s = 200
checkpoint_interval = "30m"
carrier_delay = "1h"
return_delay = "1h"
drive_size = "100GB"

[workload]
jobs = 5
over = "2h"
drives = [1, 2]
ship_after = ["10m", "30m"]
"""


@pytest.mark.slow
def test_live_bench_reports_a_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "smoke.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "live.json"
    report = main(
        [str(path), "--reference-messages", "300", "--reference-reps", "1", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    printed = capsys.readouterr().out
    assert "| `" + str(path) + "` | 50,000 |" in printed

    ref = report["reference"]
    assert ref["case"] == "aiomqtt"
    assert not ref["errors"]
    assert ref["rate"] > 0

    (run,) = report["runs"]
    assert run["speed"] == 50000
    assert not run["cut"]
    assert run["jobs"] == 5
    assert run["finished"]
    assert run["failed_checks"] == []
    assert run["invariants_ok"]
    assert report["ok"]
    # Every committed job change reached the observer (the raw message counts may differ
    # by a retained clear seen twice).
    assert run["committed_changes"] >= 5 * 6  # created, shipped, received, ..., deleted
    assert run["observed_changes"] == run["committed_changes"]
    assert run["committed"] > run["committed_changes"]
    assert run["observed"] >= run["committed_changes"]
    assert run["arrivals"] >= run["observed"]
    for rate in ("committed_per_s", "observed_per_s", "peak_observed_per_s", "sim_per_wall"):
        assert run[rate] > 0, rate
    assert run["wall_s"] > 0
    assert run["sim_s"] > 0
    assert run["requests_answered"] == run["requests_due"] > 0
    assert run["checkpoints"] > 0
    assert run["checkpoint_late_p50_s"] >= 0
    assert run["finish_late_s"] is not None
    assert math.isfinite(run["finish_late_s"])
    assert run["worker_commits"] >= run["committed_changes"]  # deletions have no snapshot
    assert run["worker_commands"] >= run["requests_answered"]
    assert run["worker_commands_failed"] == 0
    assert run["worker_ready_s"] > 0
    assert run["worker_drain_s"] >= 0
    assert run["worker_peak_rss_mib"] > 10
    assert run["worker_cpu"] > 0
