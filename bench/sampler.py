"""Where the CPU went during a live run: a thread samples the worker, the broker and the
bench's own process from /proc every 0.1 s, and :func:`utilisation` turns the samples
over a span into shares of a core.

The worker and the broker are found as a :class:`~simulator.live.LiveRun` holds them
(``live.worker.process``, ``live.broker.process``); a restarted process adds up by pid.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from bench.procfs import peak_rss_kib, process_cpu, run_delay, steal
from simulator.live.run import LiveRun

__all__ = ["SHARES", "Sample", "Sampler", "cpu_figures", "sampled", "utilisation"]

#: What :class:`Sampler` reads: (perf_counter, then the running totals of SHARES).
Sample = tuple[float, float, float, float, float, float]
SHARES = ("worker", "broker", "bench", "worker_waited", "steal")


class Sampler(threading.Thread):
    """Every ``interval`` s: CPU seconds of the worker, the broker and this process, the
    seconds the worker's loop thread waited, runnable, for a CPU, the machine's steal
    (what the hypervisor gave other guests), and the worker's VmHWM, read from /proc
    (restarted processes add up by pid)."""

    def __init__(self, live: LiveRun, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.interval = interval
        self.done = threading.Event()
        self.samples: list[Sample] = []
        self.peak_rss_kib = 0
        self._cpu: dict[str, dict[int, float]] = {"worker": {}, "broker": {}}
        self._waited: dict[int, float] = {}

    def _pid(self, name: str) -> int | None:
        owner = getattr(self.live, name, None)
        process = getattr(owner, "process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    def sample(self) -> None:
        for name in ("worker", "broker"):
            pid = self._pid(name)
            if pid is not None and (cpu := process_cpu(pid)) is not None:
                self._cpu[name][pid] = cpu
                if name == "worker":
                    self.peak_rss_kib = max(self.peak_rss_kib, peak_rss_kib(pid))
                    if (waited := run_delay(pid)) is not None:
                        self._waited[pid] = waited
        own = os.times()
        self.samples.append(
            (
                time.perf_counter(),
                sum(self._cpu["worker"].values()),
                sum(self._cpu["broker"].values()),
                own.user + own.system,
                sum(self._waited.values()),
                steal(),
            )
        )

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()


@contextmanager
def sampled(live: LiveRun) -> Iterator[Sampler]:
    """A :class:`Sampler` of ``live`` running for the block."""
    sampler = Sampler(live)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()


def utilisation(samples: Sequence[Sample], start: float, end: float) -> dict[str, float]:
    """Mean CPU share (1.0 = one core) of each process over [start, end], the busiest
    one-second stretch of the worker, the share of the time the worker waited for a CPU,
    and the machine's steal (1.0 = one core)."""
    inside = [s for s in samples if start - 0.15 <= s[0] <= end + 0.15]
    out = dict.fromkeys(SHARES, 0.0) | {"worker_peak": 0.0}
    if len(inside) < 2:
        return out
    span = inside[-1][0] - inside[0][0]
    for i, name in enumerate(SHARES, start=1):
        out[name] = (inside[-1][i] - inside[0][i]) / span
    j = 0
    for s in inside:
        while s[0] - inside[j][0] > 1.0:
            j += 1
        if (dt := s[0] - inside[j][0]) >= 0.5:
            out["worker_peak"] = max(out["worker_peak"], (s[1] - inside[j][1]) / dt)
    return out


def cpu_figures(cpu: dict[str, float]) -> dict[str, float]:
    """:func:`utilisation`'s shares under the report's keys."""
    return {
        "worker_cpu": cpu.get("worker", 0.0),
        "worker_cpu_peak": cpu.get("worker_peak", 0.0),
        "broker_cpu": cpu.get("broker", 0.0),
        "bench_cpu": cpu.get("bench", 0.0),
        "worker_waited": cpu.get("worker_waited", 0.0),
        "steal": cpu.get("steal", 0.0),
    }
