"""Measured figures: latencies, throughput, bay use and series, checked against the stream."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from simulator.report.history import History
from simulator.report.metrics import (
    drive_stages,
    job_locations,
    percentiles,
    series,
    time_span,
)
from simulator.run.result import RunResult
from simulator.scenario import load_scenario
from tests.simulator.conftest import run_to_report

CONFIGS = Path(__file__).parents[3] / "configs"
DAY = 86_400.0
THROUGHPUT = 200 * 10**6  # bytes a second per bay, from cancel-mid-transfer.toml


@pytest.fixture(scope="module")
def mid() -> tuple[RunResult, dict[str, Any], History]:
    """cancel-mid-transfer: one job, four drives, two bays, a cancel while two copy."""
    scenario = load_scenario(CONFIGS / "cancel-mid-transfer.toml")
    result, report = run_to_report(scenario)
    return result, report, History(result.history, scenario.epoch)


def _drive_times(history: History) -> dict[str, dict[str, float]]:
    """When each drive entered each state, read straight from the events."""
    times: dict[str, dict[str, float]] = {}
    for life in history.incarnations:
        for event in life.events_of("driveStateChanged"):
            times.setdefault(event.data["driveId"], {})[event.data["to"]] = event.time
    return times


def test_percentiles_are_nearest_rank() -> None:
    """p50/p90/p95/p99 by nearest rank; no values give a zero count and no figures."""
    assert percentiles(range(1, 11)) == {
        "count": 10,
        "p50": 5,
        "p90": 9,
        "p95": 10,
        "p99": 10,
        "max": 10,
    }
    assert percentiles(range(1, 21))["p95"] == 19
    assert percentiles([7.0]) == {
        "count": 1,
        "p50": 7.0,
        "p90": 7.0,
        "p95": 7.0,
        "p99": 7.0,
        "max": 7.0,
    }
    assert percentiles([]) == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p95": None,
        "p99": None,
        "max": None,
    }


def test_latencies_match_the_events(mid: tuple[RunResult, dict[str, Any], History]) -> None:
    """Two drives start at receipt (two bays) and copy 0.8 TB and 1.2 TB at 200 MB/s."""
    _, report, history = mid
    times = _drive_times(history)
    transferred = {d: t for d, t in times.items() if "Transferring" in t}
    assert sorted(transferred) == ["9CA995BB", "9CA995BC"]
    waits = sorted(t["Transferring"] - t["Received"] for t in transferred.values())
    copies = sorted(t["Completed"] - t["Transferring"] for t in transferred.values())
    assert waits == [0.0, 0.0]
    assert copies == [0.8e12 / THROUGHPUT, 1.2e12 / THROUGHPUT] == [4000.0, 6000.0]

    # The two other drives waited from receipt until the cancel, then were skipped: they
    # waited all the same, and the bay queue's figures count them.
    cancelled = next(e.time for e in history.incarnations[0].events_of("cancelRequested"))
    skipped = sorted(cancelled - t["Received"] for d, t in times.items() if d not in transferred)
    assert len(skipped) == 2
    assert min(skipped) > 0
    latency = report["latency"]
    assert latency["bayQueue"] == percentiles([*waits, *skipped])
    assert latency["bayQueue"]["max"] == max(skipped) > 0
    assert latency["transfer"] == {
        "count": 2,
        "p50": 4000.0,
        "p90": 6000.0,
        "p95": 6000.0,
        "p99": 6000.0,
        "max": 6000.0,
    }
    (life,) = history.incarnations
    completed = next(s.time for s in life.snapshots if s.state == "Completed")
    assert latency["endToEnd"]["count"] == 1
    assert latency["endToEnd"]["max"] == round(completed - life.snapshots[0].time, 3)


def test_bay_use_and_throughput(mid: tuple[RunResult, dict[str, Any], History]) -> None:
    """10,000 busy drive-seconds on two bays; both bays busy at once; one job ended."""
    result, report, history = mid
    first, last = time_span(history)
    assert (first, last) == (0.0, history.incarnations[0].events[-1].time)
    bays = report["bays"]
    west = bays["locations"]["West US"]
    assert west["bays"] == 2
    assert west["busyDriveSeconds"] == 10_000.0
    assert west["peakConcurrent"] == 2
    assert 0 < west["utilisation"] <= 1
    assert west["utilisation"] == round(10_000 / (2 * (last - first)), 4)
    # Copying ran from the two starts (1d 02:00) to the last end 6000 s later.
    assert west["utilisationWhileCopying"] == round(10_000 / (2 * 6000), 4)
    assert bays["overall"] == west

    throughput = report["throughput"]
    # 24 snapshots, and the deletion by retention: a change without one.
    assert throughput["changes"] == len(history.incarnations[0].snapshots) + 1 == 25
    assert throughput["jobsEndedPerSimDay"] == round(DAY / (last - first), 3)
    assert throughput["messagesPerWallSecond"] == round(
        len(result.history) / result.wall_seconds, 1
    )


def test_series_follow_the_run(mid: tuple[RunResult, dict[str, Any], History]) -> None:
    """Messages add up to the stream; two drives wait until the cancel; bays never overflow."""
    result, _, history = mid
    first, last = time_span(history)
    stages = drive_stages(history, job_locations(result))
    data = series(result, history, stages, start=first, end=last, buckets=100)
    assert data.buckets == 100
    assert sum(data.messages) == len(result.history)
    assert max(data.busy["West US"]) <= 2
    # The two drives that never got a bay waited 30 minutes, from receipt to the cancel.
    waited = sum(data.queue) * data.step
    assert math.isclose(waited, 2 * 1800.0, rel_tol=1e-6)
    assert math.isclose(sum(data.busy["West US"]) * data.step, 10_000.0, rel_tol=1e-6)
    assert max(data.active) == 1.0


def test_peaks_per_bucket_show_what_the_means_hide(
    mid: tuple[RunResult, dict[str, Any], History],
) -> None:
    """With buckets as long as the whole run, the mean of the two bays is below 2 but the
    peak is 2; the two skipped drives queued together; a peak is never below the mean."""
    result, _, history = mid
    first, last = time_span(history)
    stages = drive_stages(history, job_locations(result))
    for buckets in (1, 7, 100):
        data = series(result, history, stages, start=first, end=last, buckets=buckets)
        pairs = [
            (data.queue, data.queue_peak),
            (data.active, data.active_peak),
            (data.busy["West US"], data.busy_peak["West US"]),
        ]
        for means, peaks in pairs:
            assert len(peaks) == buckets
            assert all(m <= p + 1e-9 for m, p in zip(means, peaks, strict=True))
        assert max(data.busy_peak["West US"]) == 2.0
        assert max(data.queue_peak) == 2.0
    one = series(result, history, stages, start=first, end=last, buckets=1)
    assert one.busy["West US"][0] < 2.0
    assert one.busy_peak["West US"] == [2.0]


def test_load_report_has_the_measured_sections() -> None:
    """A workload: every drive that started has a queue figure; peaks within the bays."""
    scenario = load_scenario(CONFIGS / "load-small.toml")
    result, report = run_to_report(scenario)
    history = History(result.history, scenario.epoch)
    for key in ("latency", "throughput", "bays", "faults"):
        assert key in report
    assert report["messages"]["observed"] is None
    assert report["faults"] == []
    started = sum(
        1
        for life in history.incarnations
        for e in life.events_of("driveStateChanged")
        if e.data["to"] == "Transferring"
    )
    latency = report["latency"]
    waited = sum(
        1
        for life in history.incarnations
        for e in life.events_of("driveStateChanged")
        if e.data["to"] == "Received"
    )
    # Every drive that started waited first; so did those skipped while waiting.
    assert latency["transfer"]["count"] == started > 0
    assert started <= latency["bayQueue"]["count"] <= waited
    assert latency["bayQueue"]["p99"] > 0, "with 300 jobs some drive must have queued"
    for stage in latency.values():
        assert stage["p50"] <= stage["p90"] <= stage["p95"] <= stage["p99"] <= stage["max"]
    for name, use in report["bays"]["locations"].items():
        assert use["bays"] == scenario.datacenter.locations[name]
        assert 0 < use["utilisation"] <= use["utilisationWhileCopying"] <= 1
        assert 0 < use["peakConcurrent"] <= use["bays"]
    assert report["throughput"]["changes"] == sum(len(s) for s in history.seqs.values())


def test_the_plotted_peaks_reach_the_tables_peak() -> None:
    """load-small: the table's peak of busy bays is what the chart's peaks reach, in the
    200 buckets the page draws, while the means stay below it."""
    scenario = load_scenario(CONFIGS / "load-small.toml")
    result, report = run_to_report(scenario)
    history = History(result.history, scenario.epoch)
    first, last = time_span(history)
    stages = drive_stages(history, job_locations(result))
    data = series(result, history, stages, start=first, end=last, buckets=200)
    for name, use in report["bays"]["locations"].items():
        assert max(data.busy_peak[name]) == use["peakConcurrent"]
        assert max(data.busy[name]) <= use["peakConcurrent"]
