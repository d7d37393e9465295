"""What Linux's /proc (and getrusage) say of a process: CPU used, time waited for a CPU,
peak memory, bytes written; and of the machine, the CPU its hypervisor gave others.

Each reader returns what the kernel counts so far (a running total): a figure over a span
is the difference of two readings. A process that has gone reads as None (or 0).
"""

from __future__ import annotations

import math
import os
import resource
from pathlib import Path

__all__ = [
    "bytes_written",
    "own_cpu",
    "own_run_delay",
    "peak_rss_kib",
    "process_cpu",
    "run_delay",
    "steal",
]


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (``/proc/PID/stat``); None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay(pid: int) -> float | None:
    """Seconds the main thread of ``pid`` has waited, runnable, for a CPU (schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def own_run_delay() -> float:
    """Seconds this process's main thread has waited, runnable, for a CPU: what other
    processes on the machine took from it (NaN where schedstat is missing)."""
    waited = run_delay(os.getpid())
    return math.nan if waited is None else waited


def steal() -> float:
    """CPU seconds the hypervisor has given other guests, all CPUs (/proc/stat's steal)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def peak_rss_kib(pid: int) -> int:
    """The peak resident memory of ``pid`` (``VmHWM``), KiB; 0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def bytes_written() -> int:
    """Bytes this process has passed to ``write`` and its kin (``/proc/self/io``'s wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def own_cpu() -> float:
    """User + system CPU seconds of this process, all its threads (getrusage)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
