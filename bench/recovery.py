"""Recovery after a crash: ``python -m bench.recovery [--jobs 10000] [--trials 3] [--docs]``.

Time from restart to all jobs resumed after a SIGKILL with 10,000 jobs in flight.

1. A database with ``--jobs`` jobs in flight is built in virtual time
   (:mod:`bench.jobs_in_flight`): a generated scenario whose jobs are all created and
   shipped in the first simulated hour, cut after one simulated day, when they are spread
   over Shipping, Received, Transferring (drives mid-copy, between two checkpoints) and
   Packaging; none is finished. It is kept in ``--workdir`` and reused by later
   invocations with the same sizes.
2. A real Mosquitto starts, and a subscriber (``mosquitto_sub``, C, its own process: it
   stamps each message with its receive time) on every job's and drive's snapshot topic.
3. ``drivesim worker`` (the real process, ``--log-format json``) starts on a copy of the
   database at ``--speed`` simulated seconds a second, resumes the jobs and announces them,
   then runs for ``--run-for`` wall seconds (transfers checkpoint, packages arrive, jobs
   ship back) and is SIGKILLed.
4. Each trial: the killed worker's store is read (jobs, active jobs, transfers in flight),
   the worker is spawned again on it, and the bench measures from the spawn:

   * **resumed**: the worker's ``jobs resumed`` event (:class:`DatacenterPipeline`): every
     active job's task has taken its first step again and every drive that was
     transferring holds its bay and copies on from its last checkpoint;
   * **re-announced**: the moment the subscriber has received, from the new connection (its
     ``epoch``), the retained snapshot of every job in the store, and the worker's own
     ``every job announced again``.

   It checks that nothing was lost (the restarted worker loaded as many jobs as the killed
   one had committed, resumed every active one and every transfer, and the subscriber got a
   snapshot of each job and of each drive), lets the worker run ``--run-for`` seconds more
   and kills it again for the next trial. The last one is stopped with SIGTERM.

The breakdown comes from the worker's JSON log (wall time of each event): start-up
(interpreter, imports, settings and scenario) up to ``worker starting``, store open and
``load_jobs`` up to ``store loaded``, pipeline start up to ``worker running``, and the
MQTT connect and the re-announcement. Interpreter start and imports alone are also measured
in fresh processes. ``--smoke`` runs tiny sizes (the test suite runs it so the bench never
rots). ``--docs`` writes the table into docs/benchmarks.md between its markers.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cli, harness
from bench.docs import finish
from bench.harness import mosquitto, python_code, workdir
from bench.jobs_in_flight import StoreState, build_db, read_store
from bench.stats import median
from bench.subscriber import Subscriber
from bench.tables import header
from bench.tables import row as cells
from bench.worker_log import LogTail, stamp
from simulator.live.processes import Mosquitto, WorkerProcess
from worker import TOPIC_PREFIX

__all__ = ["TrialResult", "main", "read_store", "run"]

TARGET = 2.0
PROBE = "bench/recovery-probe"
_EPOCH = re.compile(r'^\{"epoch":(\d+),')
#: The worker's log events the bench reads, in the order they come.
MILESTONES = (
    "worker starting",
    "store loaded",
    "worker running",
    "connected to broker",
    "jobs resumed",
    "every job announced again",
)


class Snapshots:
    """Every job's and drive's snapshot an independent subscriber (``mosquitto_sub``)
    receives: ``(receive time, topic, epoch)`` of each, epoch None for an empty payload."""

    def __init__(self, port: int, path: Path) -> None:
        topics = [f"{TOPIC_PREFIX}/jobs/+/state", f"{TOPIC_PREFIX}/jobs/+/drives/+/state"]
        self._subscriber = Subscriber(
            port, topics, "%p", path, probe_topic=PROBE, version="mqttv311", interval=0.1
        )
        self._subscriber.start()
        self.seen: list[tuple[float, str, int | None]] = []

    def read(self) -> list[tuple[float, str, int | None]]:
        """:attr:`seen`, with what came since the last read."""
        lines = self._subscriber.lines()
        for received, topic, payload in lines[len(self.seen) :]:
            match = _EPOCH.match(payload)
            self.seen.append((received, topic, int(match[1]) if match else None))
        return self.seen

    def close(self) -> None:
        self._subscriber.stop()


@dataclass(slots=True)
class TrialResult:
    """One restart after a SIGKILL; times in seconds from the spawn."""

    trial: int
    jobs: int
    active: int
    states: dict[str, int]
    transfers: int
    drives: int
    events: dict[str, float] = field(default_factory=dict)
    resumed: float | None = None
    reannounced: float | None = None
    snapshots_jobs: int = 0
    snapshots_drives: int = 0
    loaded_jobs: int | None = None
    resumed_jobs: int | None = None
    resumed_transfers: int | None = None
    transfers_logged: int = 0
    changes_before_kill: int = 0
    problems: list[str] = field(default_factory=list)

    def breakdown(self) -> dict[str, float | None]:
        """Seconds of each phase of the restart (None if its events were not seen)."""
        e = self.events

        def span(a: str | None, b: str) -> float | None:
            start = 0.0 if a is None else e.get(a)
            end = e.get(b)
            return None if start is None or end is None else end - start

        return {
            "start-up (interpreter, imports, settings)": span(None, "worker starting"),
            "store open + load_jobs": span("worker starting", "store loaded"),
            "pipeline: jobs stepped, transfers resumed": span("store loaded", "jobs resumed"),
            "mqtt connect (alongside)": span("store loaded", "connected to broker"),
            "re-announce (connected -> worker done)": span(
                "connected to broker", "every job announced again"
            ),
        }


class Bench:
    """The subscriber and the worker process on ``broker``, in ``workdir``."""

    def __init__(
        self, broker: Mosquitto, workdir: Path, scenario: Path, db: Path, speed: float
    ) -> None:
        self.snapshots = Snapshots(broker.port, workdir / "received.txt")
        self.log = workdir / "worker.log"
        self.log.write_bytes(b"")
        #: The log of the latest :meth:`start`.
        self.tail = LogTail(self.log)
        self.db = db
        self.worker = WorkerProcess(
            ["--scenario", str(scenario), "--speed", repr(speed), "--broker", broker.url],
            log=self.log,
            db=db,
        )

    def close(self) -> None:
        self.worker.stop()
        self.snapshots.close()

    def start(self, timeout: float, expected: StoreState) -> tuple[float, list[str]]:
        """Spawn the worker and wait until it resumed and re-announced every job; the spawn
        time and what went wrong (empty: nothing). :attr:`tail` reads the log of this start."""
        self.tail = LogTail(self.log)
        mark = len(self.snapshots.read())
        spawned = time.time()
        self.worker.start()
        deadline = time.monotonic() + timeout
        while True:
            events = {e["event"] for e in self.tail.read()}
            if {"jobs resumed", "every job announced again"} <= events:
                epoch = self._epoch()
                if epoch is not None and len(self._announced(mark, epoch)) >= len(expected.jobs):
                    return spawned, []
            if not self.worker.running:
                return spawned, ["the worker exited: " + self.log.read_text()[-2000:]]
            if time.monotonic() > deadline:
                return spawned, [f"not resumed and re-announced within {timeout:g} s"]
            time.sleep(0.02)

    def _epoch(self) -> int | None:
        """The epoch the worker of this start connected with (None: not yet)."""
        for event in self.tail.events:
            if event["event"] == "connected to broker":
                return int(event["epoch"])
        return None

    def _announced(self, mark: int, epoch: int) -> set[str]:
        seen = self.snapshots.read()[mark:]
        return {t for _, t, e in seen if e == epoch and t.count("/") == 4}

    def measure(self, trial: int, expected: StoreState, timeout: float) -> TrialResult:
        result = TrialResult(
            trial=trial,
            jobs=len(expected.jobs),
            active=expected.active,
            states=dict(expected.states),
            transfers=expected.transferring,
            drives=expected.drives,
        )
        mark = len(self.snapshots.read())
        spawned, problems = self.start(timeout, expected)
        result.problems += problems
        for event in self.tail.read():
            name = event["event"]
            if name in MILESTONES and name not in result.events:
                result.events[name] = stamp(event) - spawned
            if name == "store loaded":
                result.loaded_jobs = int(event["jobs"])
            elif name == "jobs resumed":
                result.resumed_jobs = int(event["jobs"])
                result.resumed_transfers = int(event["transfers"])
            elif name == "transfer resumed from checkpoint":
                result.transfers_logged += 1
        result.resumed = result.events.get("jobs resumed")
        epoch = self._epoch()
        firsts: dict[str, float] = {}
        for received, topic, e in self.snapshots.read()[mark:]:
            if e == epoch and topic not in firsts:
                firsts[topic] = received
        jobs = {t: s for t, s in firsts.items() if t.count("/") == 4}
        names = {t.split("/")[3] for t in jobs}
        result.snapshots_jobs = len(jobs)
        result.snapshots_drives = len(firsts) - len(jobs)
        if names >= expected.jobs and jobs:
            result.reannounced = max(jobs[t] for t in jobs if t.split("/")[3] in expected.jobs)
            result.reannounced -= spawned
        self._check(result, expected, names)
        return result

    @staticmethod
    def _check(result: TrialResult, expected: StoreState, names: set[str]) -> None:
        p = result.problems
        if result.loaded_jobs != len(expected.jobs):
            p.append(f"loaded {result.loaded_jobs} jobs, the store had {len(expected.jobs)}")
        if result.resumed_jobs != expected.active:
            p.append(f"resumed {result.resumed_jobs} jobs, {expected.active} were active")
        if result.resumed_transfers != expected.transferring:
            p.append(
                f"resumed {result.resumed_transfers} transfers, "
                f"{expected.transferring} were in flight"
            )
        if result.transfers_logged != expected.transferring:
            p.append(f"{result.transfers_logged} 'transfer resumed from checkpoint' logged")
        missing = expected.jobs - names
        if missing:
            p.append(f"{len(missing)} jobs not re-announced, e.g. {sorted(missing)[:3]}")
        if result.snapshots_drives < expected.drives:
            p.append(f"{result.snapshots_drives} drive snapshots for {expected.drives} drives")

    def run_for(self, seconds: float) -> int:
        """Let the worker run; the job changes it committed meanwhile."""
        tail = LogTail(self.log)
        time.sleep(seconds)
        return sum(1 for e in tail.read() if e["event"] == "job changed")

    def kill(self) -> None:
        assert self.worker.process is not None
        self.worker.signal(signal.SIGKILL)


def startup_costs(reps: int = 3) -> dict[str, float]:
    """Interpreter start alone and ``drivesim worker``'s imports, in fresh processes (median
    wall seconds)."""

    def seconds(code: str) -> float:
        return harness.run(python_code(code))[1]

    bare = median([seconds("pass") for _ in range(reps)], 0.0)
    imports = median([seconds("import simulator.cli, worker.app") for _ in range(reps)], 0.0)
    return {"interpreter": bare, "interpreter+imports": imports}


def run(
    *,
    jobs: int,
    trials: int,
    speed: float,
    run_for: float,
    workdir: Path,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Build (or reuse) the database, then ``trials`` SIGKILL/restart cycles: the report."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario, seed_db, build_seconds = build_db(workdir, jobs)
    db = workdir / "worker.db"
    for stale in workdir.glob("worker.db*"):
        stale.unlink()
    shutil.copyfile(seed_db, db)
    initial = read_store(db)
    results: list[TrialResult] = []
    first: list[str] = []
    with mosquitto(workdir / "broker") as broker:
        bench = Bench(broker, workdir, scenario, db, speed)
        try:
            _, first = bench.start(timeout, initial)
            changes = bench.run_for(run_for)
            for trial in range(1, trials + 1):
                bench.kill()
                expected = read_store(db)
                result = bench.measure(trial, expected, timeout)
                result.changes_before_kill = changes
                results.append(result)
                changes = bench.run_for(run_for)
            exit_code = bench.worker.signal(signal.SIGTERM)
        finally:
            bench.close()
    costs = startup_costs()
    resumed = [r.resumed for r in results if r.resumed is not None]
    reannounced = [r.reannounced for r in results if r.reannounced is not None]
    return {
        "jobs": jobs,
        "speed": speed,
        "run_for": run_for,
        "build_seconds": build_seconds,
        "first_start_problems": first,
        "initial_states": initial.states,
        "trials": [_as_dict(r) for r in results],
        "resumed_median": median(resumed, None),
        "resumed_max": max(resumed) if resumed else None,
        "reannounced_median": median(reannounced, None),
        "target": TARGET,
        "target_met": bool(resumed) and max(resumed) < TARGET,
        "ok": not first and all(not r.problems for r in results) and len(results) == trials,
        "sigterm_exit": exit_code,
        "startup": costs,
    }


def _as_dict(result: TrialResult) -> dict[str, Any]:
    return {
        "trial": result.trial,
        "jobs": result.jobs,
        "active": result.active,
        "states": result.states,
        "transfers": result.transfers,
        "drives": result.drives,
        "resumed": result.resumed,
        "reannounced": result.reannounced,
        "events": result.events,
        "breakdown": result.breakdown(),
        "snapshots_jobs": result.snapshots_jobs,
        "snapshots_drives": result.snapshots_drives,
        "changes_before_kill": result.changes_before_kill,
        "problems": result.problems,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


HEAD = header(
    "trial | jobs | transfers | up | store | pipeline | connected | resumed | announced "
    "| received | checks",
    "rrrrrrrrrrl",
)


def row(t: dict[str, Any]) -> str:
    """One trial: the phases of its restart, seconds from the spawn."""
    b, e = t["breakdown"], t["events"]
    return cells(
        t["trial"],
        f"{t['jobs']:,}",
        f"{t['transfers']:,}",
        _fmt(b["start-up (interpreter, imports, settings)"]),
        _fmt(b["store open + load_jobs"]),
        _fmt(b["pipeline: jobs stepped, transfers resumed"]),
        _fmt(e.get("connected to broker")),
        f"**{_fmt(t['resumed'])}**",
        _fmt(e.get("every job announced again")),
        _fmt(t["reannounced"]),
        "ok" if not t["problems"] else "FAILED",
    )


def table(report: dict[str, Any], command: str) -> str:
    """The Markdown section for docs/benchmarks.md."""
    states = ", ".join(f"{n:,} {s}" for s, n in sorted(report["initial_states"].items()))
    startup = report["startup"]
    verdict = "met" if report["target_met"] else "NOT met"
    return "\n".join(
        [
            "## Crash recovery (`bench/recovery.py`)",
            "",
            f"Command: `{command}`. A database of {report['jobs']:,} jobs in flight ({states}; "
            "drives mid-copy between checkpoints), the real `drivesim worker` on it with a real "
            f"Mosquitto at {report['speed']:g} simulated seconds a second, SIGKILLed after "
            f"{report['run_for']:g} s of work, then restarted on its store. Seconds from the "
            "spawn: *up* = `worker starting` (interpreter, imports, settings and scenario), "
            "*store* = store open and `load_jobs`, *pipeline* = from there until every job's "
            "task has stepped and every transfer holds its bay again, "
            "*connected* = MQTT connected, **resumed** = every active job's task stepped and "
            "every interrupted transfer copying again from its checkpoint (`jobs resumed`), "
            "*announced* = the worker has re-announced every job, *received* = an independent "
            "subscriber holds every job's snapshot from the new connection. Every trial checks "
            "that the restarted worker loaded, resumed and re-announced every job and drive.",
            "",
            f"Target: resumed under {report['target']:g} s: **{verdict}** (median "
            f"{_fmt(report['resumed_median'])} s, worst {_fmt(report['resumed_max'])} s). "
            f"Interpreter start alone {startup['interpreter']:.2f} s, with `drivesim worker`'s "
            f"imports {startup['interpreter+imports']:.2f} s.",
            "",
            HEAD,
            *(row(t) for t in report["trials"]),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.recovery", __doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in flight (10,000)")
    parser.add_argument("--trials", type=int, default=3, help="SIGKILL/restart cycles (3)")
    parser.add_argument(
        "--speed", type=float, default=300.0, help="simulated seconds a second (300)"
    )
    parser.add_argument(
        "--run-for", type=float, default=3.0, help="wall seconds of work before each kill (3)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the database, broker and logs here (reused)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per restart (120 s)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: 100 jobs, 1 trial, 1 s at 3000x"
    )
    cli.add_outputs(parser, json_help="write the report here")
    given = cli.arguments(argv)
    args = parser.parse_args(given)
    if args.smoke:
        args.jobs, args.trials, args.run_for, args.speed = 100, 1, 1.0, 3000.0
    with contextlib.ExitStack() as stack:
        report = run(
            jobs=args.jobs,
            trials=args.trials,
            speed=args.speed,
            run_for=args.run_for,
            workdir=workdir(stack, "drivesim-recovery-", args.workdir),
            timeout=args.timeout,
        )
    for trial in report["trials"]:
        print(json.dumps(trial), flush=True)
    section = table(report, cli.command_line("bench.recovery", given))
    finish("recovery", section, report, json_path=args.json, docs=args.docs, echo="", indent=2)
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
