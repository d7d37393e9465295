"""Command latency under load: ``python -m bench.commands [--speed N] [--duration S]``.

How long a customer waits for the answer to a cancel, sent over MQTT 5, while the worker
runs ``configs/load-10k.toml`` in scaled real time. The load is a ``drivesim run --live``
(:class:`LiveRun`: its own Mosquitto, the worker as a child process, the observer, the
scripted customers); the run is cut after ``--duration`` wall seconds of
probing (load-10k in full takes hours at any speed where its customers keep up).

The probe (:mod:`bench.cancel_probe`) is a process of its own with its own MQTT 5
connection to the broker (not the scenario's customers, and not sharing their process,
whose loop and threads are busy with the observer and the proxy). It sends ``--rate``
cancel requests a second, open loop (a slow answer does not hold up the next request),
each to a job picked at random among those the status stream shows alive (the run
hands it a fresh sample every second), and times request sent → reply received with
``time.perf_counter``. Every answer counts: 200 (accepted, or already requested), 409
(too late), 404 (deleted in the meantime); a request unanswered after ``--timeout``
counts as a timeout.

The same invocation first probes an idle worker the same way, as the reference: the
same scenario, worker and plumbing, but the customers only create ``--idle-jobs`` jobs
at the start and do nothing else. Its figures read as a ratio: loaded / idle.

Besides the latencies it prints what the load was: the speed, the status messages the
observer received a second, how late the scripted customers' timed requests were
answered (they keep up, or the run is not the scenario as written), the worker's CPU,
and the cancels the probe got accepted (each one a real change of a job, so the load
is a little lighter than the script's). Timings are wall-clock on a shared machine.

``--profile DIR`` runs the worker under pyinstrument (session, text and HTML into DIR).
(Nagle's algorithm held each small request and reply back until the peer acknowledged
the last packet, which it may delay by 40 ms: p50 was 54 ms idle. The worker's MQTT
client sets ``TCP_NODELAY`` and the bench's Mosquitto ``set_tcp_nodelay``, as
docs/mosquitto/mosquitto.conf recommends.)
``--worker-tree DIR`` runs the worker from another source tree (e.g. ``git archive HEAD``).
The worker connects straight to Mosquitto, as a deployed worker does: the run plans no
fault, and the fault proxy (which lives in the bench's own process, sharing its GIL with
the observer and the customers) would only add two hops through a busy process. In three
paired runs it doubled the p99 (31.7 / 59.9, 74.4 / 153.8, 37.8 / 49.2 ms). ``--proxy``
puts it back between them: the difference is what the harness adds.
``--smoke``: a tiny scenario, a few seconds a phase (tests/bench/test_commands_smoke.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from bench import cli, worker_log
from bench.customers import request_figures
from bench.disk_load import add_disk_load_option, disk_load, disk_load_sentence
from bench.docs import finish
from bench.harness import ROOT, python, render_profile, run_workdir, worker_program
from bench.sampler import cpu_figures, sampled, utilisation
from bench.stats import nearest_index
from bench.tables import header
from bench.tables import row as cells
from simulator.live.run import LiveResult, LiveRun
from simulator.scenario import Scenario, load_scenario

__all__ = ["main", "measure", "probe_stats"]

SCENARIO = "configs/load-10k.toml"
#: load-10k's scripted customers keep up at this speed on a 2-vCPU machine (2026-11-25: at
#: 48,000 and 64,000 they fell seconds behind in the first 30 s, and replies with them).
SPEED = 32_000.0
DURATION = 60.0
RATE = 20.0
IDLE_JOBS = 200
TIMEOUT = 10.0
#: The target: a cancel answered within this at the 99th percentile, under load.
TARGET_P99_S = 0.050
#: Names handed to the probe each second (a sample of the alive jobs).
SAMPLE = 200

#: --smoke: five jobs over two simulated hours that stay around (retention, expiry: 30 d).
SMOKE_SCENARIO = """
name = "commands-smoke"
seed = 3
until = "3d"
live_speed = 20000

[policy]
retention = "30d"
creating_expiry = "30d"

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


# -- a phase: a live run with the probe alongside --------------------------------------------


class _ProbedRun(LiveRun):
    """A :class:`LiveRun` that ends when the probe is done (:meth:`stop`), not before: a
    scenario whose jobs are all gone would otherwise take the broker down under it."""

    def _check_finished(self) -> None:
        pass


def probe_stats(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p50 / p99 / max of the answered samples (seconds), counts by status and answer."""
    latencies = [float(s["latency"]) for s in samples if s["latency"] is not None]
    return {
        "count": len(samples),
        "answered": len(latencies),
        "timeouts": sum(1 for s in samples if s["latency"] is None),
        "p50_s": nearest_index(latencies, 0.5),
        "p90_s": nearest_index(latencies, 0.9),
        "p99_s": nearest_index(latencies, 0.99),
        "max_s": max(latencies, default=float("nan")),
        "mean_s": sum(latencies) / len(latencies) if latencies else float("nan"),
        "by_status": dict(sorted(Counter(str(s["status"]) for s in samples).items())),
        "by_answer": dict(sorted(Counter(str(s["answer"]) for s in samples).items())),
    }


def idle_scenario(scenario: Scenario, jobs: int) -> Scenario:
    """``scenario`` whose customers only create the first ``jobs`` jobs, right at the start."""
    creates = [a for a in scenario.actions if a.do == "create"]
    creates.sort(key=lambda a: (a.at if a.at is not None else float("inf"), a.index))
    keep = creates[:jobs]
    actions = tuple(dataclasses.replace(a, at=float(i), when=None) for i, a in enumerate(keep))
    names = {a.job for a in keep}
    return dataclasses.replace(
        scenario, actions=actions, jobs={k: v for k, v in scenario.jobs.items() if k in names}
    )


async def _phase(
    live: LiveRun,
    *,
    rate: float,
    duration: float,
    reply_within: float,
    seed: int,
    scratch: Path,
) -> tuple[LiveResult, list[dict[str, Any]], float]:
    """Run ``live`` and, once the worker is up and a job is alive, the probe for
    ``duration`` s; then stop the run. Returns the run's outcome, the probe's samples and
    the wall second (perf_counter) the probe started."""
    outcome: list[LiveResult] = []
    samples: list[dict[str, Any]] = []
    started = [0.0]

    async def probe() -> None:
        try:
            deadline = time.perf_counter() + 120
            while getattr(live, "customer", None) is None or not live.alive_jobs():
                if time.perf_counter() > deadline:
                    raise RuntimeError("no jobs alive to probe after 120 s")
                await anyio.sleep(0.05)
            out = scratch / "probe.json"
            errors = (scratch / "probe.err").open("wb")
            command = python(
                "bench.cancel_probe",
                *("--url", live.broker.url, "--rate", str(rate), "--timeout", str(reply_within)),
                *("--out", str(out), "--seed", str(seed)),
            )
            rng = random.Random(seed)
            async with await anyio.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT
            ) as process:
                assert process.stdin is not None
                started[0] = time.perf_counter()
                end = started[0] + duration
                while time.perf_counter() < end:
                    alive = sorted(live.alive_jobs())
                    picked = rng.sample(alive, min(SAMPLE, len(alive)))
                    await process.stdin.send((json.dumps(picked) + "\n").encode())
                    await anyio.sleep(min(1.0, max(0.0, end - time.perf_counter())))
                await process.stdin.aclose()
                with anyio.fail_after(reply_within + 30):
                    code = await process.wait()
            errors.close()
            if code != 0:
                raise RuntimeError(
                    f"the probe exited with {code}: {(scratch / 'probe.err').read_text()[-2000:]}"
                )
            samples.extend(json.loads(out.read_text()))
        finally:
            live.stop()

    async def run() -> None:
        outcome.append(await live.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        tg.start_soon(probe)
    return outcome[0], samples, started[0]


def measure(
    path: str,
    *,
    speed: float,
    duration: float,
    rate: float = RATE,
    timeout: float = TIMEOUT,
    idle: int | None = None,
    seed: int = 1,
    keep: Path | None = None,
    profile: Path | None = None,
    tree: Path | None = None,
    direct: bool = True,
    disk: bool = False,
) -> dict[str, Any]:
    """One phase: ``path`` live at ``speed`` (or, with ``idle``, only its first ``idle``
    creates), probed for ``duration`` s at ``rate`` cancels a second; ``disk``: with the
    disk kept busy next to the worker's store (:mod:`bench.disk_load`)."""
    scenario = load_scenario(path)
    if idle is not None:
        scenario = idle_scenario(scenario, idle)
    label = "idle" if idle is not None else "load"
    # The run ends when the probe is done; until is only a backstop.
    scenario = dataclasses.replace(scenario, until=speed * (duration + 180.0))
    with contextlib.ExitStack() as stack:
        workdir = run_workdir(stack, keep, "drivesim-bench-cmd-", f"{label}-{speed:.0f}-")
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
        program = worker_program(
            workdir,
            tree=tree,
            profile=None if profile is None else profile / f"worker-{label}.pyisession",
        )
        live = _ProbedRun(
            scenario,
            workdir / "run",
            speed=speed,
            program=program,
            direct=direct,
        )
        with sampled(live) as sampler, disk_load(workdir, enabled=disk) as load:
            outcome, samples, probe_start = anyio.run(
                lambda: _phase(
                    live,
                    rate=rate,
                    duration=duration,
                    reply_within=timeout,
                    seed=seed,
                    scratch=workdir,
                ),
                backend="asyncio",
            )
        log = worker_log.summary(workdir / "run" / "worker.log", scenario.epoch, speed)
    if profile is not None and (profile / f"worker-{label}.pyisession").exists():
        render_profile(profile / f"worker-{label}.pyisession")
    result = outcome.run
    wall = result.wall_seconds
    observed = result.observed or 0
    cpu = utilisation(sampler.samples, probe_start, probe_start + duration)
    return {
        "phase": label,
        "scenario": path,
        "worker_tree": None if tree is None else str(tree),
        "disk_load_mib": load.reported_mib,
        "direct": direct,
        "speed": speed,
        "rate": rate,
        "duration_s": duration,
        "probe": probe_stats(samples),
        "samples": samples,
        "wall_s": wall,
        "sim_s": result.sim_seconds,
        "observed": observed,
        "observed_per_s": observed / wall if wall > 0 else 0.0,
        "committed": len(result.history),
        "jobs_created": sum(1 for r in live.results if r.do == "create" and r.ok),
        **request_figures(scenario, live.results, speed, result.sim_seconds),
        **cpu_figures(cpu),
        **log,
    }


# -- output ----------------------------------------------------------------------------------

HEAD = header(
    "phase | speed | probe s | cancels sent / answered / timeouts | p50 ms | p99 ms | max ms "
    "| answers | status msg/s observed | customers' timed requests answered / due, late p99 s "
    "| CPU worker (peak) / broker / bench | worker waited for a CPU / machine steal",
    "lrrrrrrlrrrr",
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def setup(r: dict[str, Any]) -> str:
    """The phase and what the experiments changed in it."""
    return str(r["phase"]) + ("" if r["direct"] else " (through the fault proxy)")


def row(r: dict[str, Any]) -> str:
    p = r["probe"]
    return cells(
        setup(r),
        f"{r['speed']:,.0f}",
        f"{r['duration_s']:.0f}",
        f"{p['count']} / {p['answered']} / {p['timeouts']}",
        _ms(p["p50_s"]),
        _ms(p["p99_s"]),
        _ms(p["max_s"]),
        ", ".join(f"{k} {v}" for k, v in p["by_answer"].items()),
        f"{r['observed_per_s']:,.0f}",
        f"{r['requests_answered']} / {r['requests_due']}, {r['request_late_p99_s']:.2f}",
        f"{r['worker_cpu']:.0%} ({r['worker_cpu_peak']:.0%}) / {r['broker_cpu']:.0%} / "
        f"{r['bench_cpu']:.0%}",
        f"{r['worker_waited']:.0%} / {r['steal']:.0%}",
    )


def verdict(report: dict[str, Any]) -> str:
    load = report["load"]["probe"]
    line = (
        f"Under load, cancel p99 {_ms(load['p99_s'])} ms "
        f"(target < {_ms(TARGET_P99_S)} ms: {'met' if report['target_met'] else 'MISSED'})"
    )
    idle = report.get("idle")
    if idle is not None and idle["probe"]["answered"] and load["answered"]:
        line += (
            f"; loaded / idle: p50 ×{load['p50_s'] / idle['probe']['p50_s']:.1f}, "
            f"p99 ×{load['p99_s'] / idle['probe']['p99_s']:.1f}"
        )
    return line + "."


def table(report: dict[str, Any]) -> str:
    runs = [r for r in (report.get("idle"), report["load"]) if r is not None]
    lines = [
        "## Command latency under load (`bench/commands.py`)",
        "",
        f"Command: `{report['command']}`. A separate MQTT 5 client (its own process and "
        "connection) sends cancel requests at a steady rate to jobs the status stream shows "
        "alive, and times request → reply. *load*: the worker runs `configs/load-10k.toml` "
        "live (`drivesim run --live` machinery: Mosquitto, worker process, observer, "
        "scripted customers; the worker connects straight to Mosquitto, or with `--proxy` "
        "through the fault proxy) at the given speed, cut after the probe; *idle*: the "
        "same, but the customers only create a few jobs at the start. Every answer counts "
        "(200 accepted or already requested, 409 too late, 404 gone). *Customers' timed "
        "requests*: the scenario's own requests answered, and how late (they keep up, or the "
        "run is not the scenario as written). CPU over the probe, 100 % = one core; *bench*: "
        "the process with the observer, the customers and any proxy (not the probe). "
        "*Worker waited for a CPU*: share of the probe its loop thread was runnable but not "
        "running (`/proc/PID/schedstat`); *machine steal*: CPU the hypervisor gave other "
        "guests (`/proc/stat`), 100 % = one core. Wall-clock timings on a 2-vCPU machine."
        + "".join(disk_load_sentence(r.get("disk_load_mib")) for r in runs),
        "",
        HEAD,
        *(row(r) for r in runs),
        "",
        verdict(report),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.commands", __doc__)
    parser.add_argument("scenario", nargs="?", default=SCENARIO)
    parser.add_argument("--speed", type=float, default=SPEED, help="simulated seconds a second")
    parser.add_argument("--duration", type=float, help=f"probe seconds a phase ({DURATION:g})")
    parser.add_argument("--rate", type=float, default=RATE, help="cancels a second")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds for a reply")
    parser.add_argument("--idle-jobs", type=int, default=IDLE_JOBS, help="0: no idle phase")
    parser.add_argument("--seed", type=int, default=1, help="of the probe's picks")
    parser.add_argument("--keep", type=Path, help="keep each phase's workdir under this folder")
    parser.add_argument("--profile", type=Path, help="run the worker under pyinstrument")
    parser.add_argument("--worker-tree", type=Path, help="run the worker from this source tree")
    parser.add_argument(
        "--proxy", action="store_true", help="the worker through the fault proxy to the broker"
    )
    add_disk_load_option(parser, "each phase")
    parser.add_argument("--smoke", action="store_true", help="a tiny scenario, seconds a phase")
    cli.add_outputs(parser, json_help="write every figure (and sample) here")
    given = cli.arguments(argv)
    args = parser.parse_args(given)
    command = cli.command_line("bench.commands", given)
    with contextlib.ExitStack() as stack:
        stack.enter_context(cli.quiet_logging())
        path, speed = args.scenario, args.speed
        duration = args.duration if args.duration is not None else DURATION
        idle_jobs = args.idle_jobs
        if args.smoke:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cmd-smoke-")))
            path = str(folder / "smoke.toml")
            Path(path).write_text(SMOKE_SCENARIO)
            speed = 20_000.0 if "--speed" not in given else speed
            duration = args.duration if args.duration is not None else 2.0
            idle_jobs = min(idle_jobs, 2)
        common: dict[str, Any] = {
            "speed": speed,
            "duration": duration,
            "rate": args.rate,
            "timeout": args.timeout,
            "seed": args.seed,
            "keep": args.keep,
            "profile": args.profile,
            "tree": args.worker_tree,
            "direct": not args.proxy,
            "disk": args.disk_load,
        }
        print(HEAD, flush=True)
        idle = None
        if idle_jobs > 0:
            idle = measure(path, idle=idle_jobs, **common)
            print(row(idle), flush=True)
        load = measure(path, **common)
        print(row(load), flush=True)
    report: dict[str, Any] = {
        "command": command,
        "idle": idle,
        "load": load,
        "target_p99_s": TARGET_P99_S,
        "target_met": bool(load["probe"]["p99_s"] < TARGET_P99_S),
    }
    finish("commands", table(report), report, json_path=args.json, docs=args.docs)
    return report


if __name__ == "__main__":
    main()
