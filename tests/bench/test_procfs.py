"""bench/procfs.py reads what the kernel counts of real processes (Linux only)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.procfs import (
    bytes_written,
    own_cpu,
    own_run_delay,
    peak_rss_kib,
    process_cpu,
    run_delay,
    steal,
)


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_cpu_of_a_busy_child_grows_and_a_gone_one_reads_none() -> None:
    spin = "import time\nend = time.time() + 0.6\nwhile time.time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)
        first = process_cpu(child.pid)
        assert first is not None
        assert run_delay(child.pid) is not None
        assert peak_rss_kib(child.pid) > 1000  # an interpreter is a few MiB at least
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert process_cpu(child.pid) is None  # reaped: /proc has it no more
    assert run_delay(child.pid) is None
    assert peak_rss_kib(child.pid) == 0


def test_this_process_counts_its_own_cpu_and_writes() -> None:
    cpu, mine = own_cpu(), process_cpu(os.getpid())
    assert mine is not None
    _spin(0.2)
    assert own_cpu() - cpu >= 0.15
    after = process_cpu(os.getpid())
    assert after is not None
    assert after - mine >= 0.1  # clock ticks: coarser than getrusage
    written = bytes_written()
    with open(os.devnull, "wb") as sink:
        sink.write(b"x" * 100_000)
    assert bytes_written() - written >= 100_000


def test_waits_and_steal_are_running_totals() -> None:
    waited = own_run_delay()
    assert math.isnan(waited) or waited >= 0
    assert steal() >= 0
    if Path("/proc/self/schedstat").exists():
        assert own_run_delay() >= waited
