"""bench/schedule.py runs its smoke end to end: sane counts, nothing lost (no timing asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.schedule import main
from worker.clock import Clock


def _ordered(figures: dict[str, float]) -> bool:
    return figures["p50_ms"] <= figures["p99_ms"] <= figures["p999_ms"] <= figures["max_ms"]


@pytest.mark.slow
def test_schedule_bench_smoke_reports_a_sane_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "schedule.json"
    report = main(["--smoke", "--blocking", "5", "--json", str(out)])
    assert json.loads(out.read_text())["command"] == report["command"]
    assert "| `smoke` |" in capsys.readouterr().out
    assert Clock.wake_hook is None  # the bench leaves the clock as it found it

    run = report["run"]
    assert run["finished"]  # retention deleted every job: the run ended on its own
    assert run["window_messages_expected"] > 0
    assert run["rate_asked"] == pytest.approx(1000.0)
    assert run["speed"] > 0
    # Every committed message went out once and came back to the subscriber.
    assert run["committed"] > 0
    assert run["published"] == run["committed"]
    assert run["lost"] == 0
    assert run["connects"] == 1
    assert run["extra_in_run"] == 0
    assert run["received"] == run["committed"] + run["extra"]
    assert run["rate_achieved"] > 0
    assert run["busiest_second"] > 0
    # Timed steps were measured, at the wake and at the commit, and a reference ran.
    assert run["wake"]["n"] > 0
    assert run["commit"]["n"] > 0
    assert run["reference"]["n"] > 0
    assert run["probe"]["n"] > 0
    assert run["customer_wakes"] > 0  # the customers' timers are seen, and left out
    for name in ("wake", "commit", "reference", "probe"):
        assert _ordered(run[name]), (name, run[name])
        assert all(math.isfinite(v) for v in run[name].values()), (name, run[name])
    assert run["store"]["commit"]["n"] >= run["committed"] // 10
    assert run["store"]["ack"]["rows"] == run["committed"]
    assert isinstance(run["blocking"], list)
    assert run["disk_load_mib"] is None  # no --disk-load


def test_schedule_bench_smoke_never_writes_the_docs() -> None:
    with pytest.raises(SystemExit):
        main(["--smoke", "--docs"])
