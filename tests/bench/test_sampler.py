"""bench/sampler.py samples real processes from /proc and turns samples into CPU shares."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace
from typing import cast

import pytest

from bench.sampler import Sample, cpu_figures, sampled, utilisation
from simulator.live.run import LiveRun


def test_utilisation_is_the_growth_of_each_total_over_the_span() -> None:
    # Ten samples a second for two seconds: the worker uses half a core, then a full one.
    samples: list[Sample] = []
    worker = 0.0
    for i in range(21):
        t = i / 10
        samples.append((t, worker, 0.1 * t, 0.2 * t, 0.05 * t, 0.0))
        worker += 0.05 if t < 1.0 else 0.1
    shares = utilisation(samples, 0.0, 2.0)
    assert shares["worker"] == pytest.approx(0.75)
    assert shares["broker"] == pytest.approx(0.1)
    assert shares["bench"] == pytest.approx(0.2)
    assert shares["worker_waited"] == pytest.approx(0.05)
    assert shares["steal"] == 0.0
    assert shares["worker_peak"] == pytest.approx(1.0)  # its busiest second
    assert utilisation(samples[:1], 0.0, 2.0)["worker"] == 0.0  # one sample: no span


def test_cpu_figures_name_the_shares_as_reports_do() -> None:
    figures = cpu_figures({"worker": 0.5, "worker_peak": 0.9, "steal": 0.01})
    assert figures == {
        "worker_cpu": 0.5,
        "worker_cpu_peak": 0.9,
        "broker_cpu": 0.0,
        "bench_cpu": 0.0,
        "worker_waited": 0.0,
        "steal": 0.01,
    }


@pytest.mark.slow
def test_the_sampler_follows_the_processes_a_live_run_holds() -> None:
    busy = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    worker = subprocess.Popen([sys.executable, "-c", busy])
    # What the sampler reads of a LiveRun: its worker's and broker's processes.
    live = SimpleNamespace(worker=SimpleNamespace(process=worker), broker=None)
    try:
        start = time.perf_counter()
        with sampled(cast(LiveRun, live)) as sampler:
            time.sleep(1.0)
        end = time.perf_counter()
    finally:
        worker.kill()
        worker.wait()
    assert len(sampler.samples) >= 5
    assert not sampler.is_alive()
    shares = utilisation(sampler.samples, start, end)
    assert shares["worker"] > 0.3  # a spinning child, on a shared machine
    assert shares["broker"] == 0.0  # no broker process to read
    assert sampler.peak_rss_kib > 1000
