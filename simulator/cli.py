"""The ``drivesim`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from simulator.console import arguments
from simulator.console.arguments import MAX_SPEED, Parser, add_global_options
from simulator.console.jobs import DEFAULT_BROKER, add_jobs_parser, run_jobs
from simulator.demo.command import add_demo_parser, run_demo
from simulator.scenario.file import load_scenario
from simulator.sweep.command import add_sweep_parser, run_sweep
from worker import (
    DatacenterConfig,
    DrivesimError,
    HttpConfig,
    JobStore,
    NoAnswer,
    StatusMessage,
    configure_logging,
    describe_build,
    format_duration,
    load_worker_settings,
    store_name,
    stored_time,
    watch_command,
)
from worker.mqtt import BrokerConfig

# What one command alone needs is imported by that command, so that ``drivesim worker`` (which
# a crashed worker's supervisor restarts) does not wait for the HTTP server, the live runner,
# the reports and the timeline it does not use.
if TYPE_CHECKING:
    from simulator.console.progress import RunProgress
    from simulator.console.timeline import Timeline
    from simulator.faults.plan import FaultRecord
    from simulator.report.history import History
    from simulator.run.result import RunResult
    from simulator.run.split import Split
    from simulator.scenario.file import Scenario

__all__ = ["main"]


def _served(locations: Mapping[str, int]) -> str:
    """The locations a worker serves, with their bays: ``West US (2 bays)``."""
    return ", ".join(
        f"{name} ({bays} bay{'s' if bays != 1 else ''})" for name, bays in locations.items()
    )


EXIT_OK, EXIT_INVARIANT, EXIT_BAD_INPUT, EXIT_NO_ANSWER = 0, 1, 2, 3
#: The most processes ``drivesim run --processes`` takes.
MAX_PROCESSES = 256
#: Interrupted (Ctrl-C), as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="drivesim",
        description="A simulated Azure Import/Export datacenter: run scenarios, serve the "
        "datacenter over MQTT and the Azure REST API, and watch it.",
    )
    add_global_options(parser)
    parser.add_argument(
        "--version",
        action="version",
        version=f"drivesim {metadata.version('drivesim')} ({describe_build()})",
        help="the version, and which build runs: compiled with mypyc, or pure Python",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a scenario file and report on it",
        description="Run a scenario file (a datacenter, jobs, scripted customers, faults) and "
        "check the invariants: exit 0 when every one holds, 1 when one fails, 2 on bad input.",
    )
    run.add_argument(
        "scenario", type=Path, help="a scenario file, e.g. configs/cancel-mid-transfer.toml"
    )
    pace = run.add_mutually_exclusive_group()
    pace.add_argument(
        "--virtual", action="store_true", help="virtual time: as fast as possible (default)"
    )
    pace.add_argument(
        "--speed",
        type=arguments.speed,
        metavar="N",
        help=f"scaled real time: N simulated seconds a second (above 0, up to {MAX_SPEED:,.0f})",
    )
    run.add_argument("--seed", type=arguments.seed, help="override the scenario's seed")
    run.add_argument(
        "--db",
        type=arguments.store_path,
        metavar="PATH",
        help="SQLite job store (default: a temporary file, or memory for a run split between "
        "processes); an existing run there is resumed; ':memory:' keeps everything in memory",
    )
    run.add_argument(
        "--processes",
        type=arguments.count(low=1, high=MAX_PROCESSES),
        metavar="N",
        help="virtual time: run the locations in N processes, each its own share of them "
        "(default: as many as there are cores, at most one per location with jobs, from 5,000 "
        "drives; one where a customers' fault spans every location, or with --db or --speed)",
    )
    run.add_argument(
        "--report", type=arguments.output_file, metavar="FILE", help="write the JSON report here"
    )
    run.add_argument(
        "--html",
        type=arguments.output_file,
        metavar="FILE",
        help="write a self-contained HTML report (timeline, queue, bays, messages) here",
    )
    run.add_argument(
        "--quiet", action="store_true", help="no timeline: progress on stderr, then the summary"
    )
    run.add_argument(
        "--live",
        action="store_true",
        help="a real Mosquitto, the worker as a process, scaled real time (the scenario's "
        "live_speed unless --speed) and the fault plan struck for real",
    )
    run.add_argument(
        "--workdir",
        type=arguments.output_dir,
        metavar="DIR",
        help="with --live: keep the broker's and the worker's files and logs here",
    )
    run.add_argument(
        "--workers",
        type=arguments.count(low=1, high=16),
        default=1,
        metavar="N",
        help="with --live: N workers sharing a PostgreSQL of the run's own (default 1, on "
        "SQLite); the db-restart and db-partition faults need N above 1",
    )

    worker = commands.add_parser(
        "worker",
        help="run the datacenter as a service over MQTT until SIGINT or SIGTERM",
        description="Run the datacenter as a long-lived service: commands and status over "
        "MQTT, and the Azure REST API with --http, until SIGINT or SIGTERM.",
    )
    worker.add_argument(
        "--config",
        type=arguments.existing_file,
        metavar="FILE",
        help="worker settings, e.g. configs/worker.toml. Without one the worker serves "
        f"{_served(DatacenterConfig().locations)}; to serve other locations, list them "
        "with their bays in its [datacenter] table: "
        'locations = { "West US" = 2, "East US" = 3 }',
    )
    worker.add_argument(
        "--broker",
        type=arguments.broker_url,
        metavar="URL",
        help="broker URL, e.g. mqtt://127.0.0.1:1883 (default: an embedded broker)",
    )
    worker.add_argument(
        "--db",
        "--store",
        type=arguments.worker_store,
        metavar="PATH|URL",
        help="the job store: a SQLite file, or a postgresql://USER@HOST:PORT/DBNAME URL that "
        "several workers may share, each with its own --worker-id (overrides the config)",
    )
    worker.add_argument(
        "--worker-id",
        type=arguments.worker_id,
        metavar="ID",
        help="this worker's name: in its online/offline status, and unique among the workers "
        "sharing a database (overrides the config; default dc-1)",
    )
    worker.add_argument(
        "--scenario",
        type=arguments.existing_file,
        metavar="FILE",
        help="take the datacenter, rules, epoch, seed and pinned drive fates from a scenario file",
    )
    worker.add_argument("--seed", type=arguments.seed, help="override the seed")
    worker.add_argument(
        "--speed",
        type=arguments.speed,
        metavar="N",
        help=f"simulated seconds a second (above 0, up to {MAX_SPEED:,.0f}; overrides the config)",
    )
    worker.add_argument(
        "--time-origin",
        type=arguments.number(low=0),
        metavar="UNIX_TIME",
        help="the wall-clock time of simulated second 0 (a restarted worker catches up)",
    )
    worker.add_argument(
        "--http",
        type=arguments.http_address,
        metavar="[HOST:]PORT",
        help="also serve the Azure REST API (Microsoft.ImportExport) here, e.g. 127.0.0.1:8080 "
        "(host 127.0.0.1 unless given)",
    )
    worker.add_argument(
        "--https",
        action="store_true",
        help="serve the REST API over HTTPS, with a self-signed certificate generated at start "
        "unless https_cert/https_key are set (the azure-core SDK needs HTTPS for bearer tokens)",
    )

    add_jobs_parser(commands)
    add_demo_parser(commands)
    add_sweep_parser(commands)

    watcher = commands.add_parser(
        "watch",
        help="a live, readable view of the status stream",
        description="Subscribe to the status stream and print one readable line per change, "
        "stamped with its simulated time, until Ctrl-C.",
    )
    watcher.add_argument(
        "--broker",
        type=arguments.broker_url,
        default=DEFAULT_BROKER,
        metavar="URL",
        help=f"broker URL (default: {DEFAULT_BROKER})",
    )
    watcher.add_argument("--job", type=arguments.job_name, help="only this job")
    for sub in arguments.subparsers(parser):
        add_global_options(sub, defaults=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exited:  # a bad value (2, its line printed) or --help (0)
        return exited.code if isinstance(exited.code, int) else EXIT_BAD_INPUT
    configure_logging(level=args.log_level, fmt=args.log_format)
    console = Console(highlight=False)
    try:
        return _dispatch(args, console)
    except KeyboardInterrupt:
        if args.command == "watch":  # Ctrl-C is how watching ends
            return EXIT_OK
        _tell(f"[bold red]interrupted:[/bold red] drivesim {args.command} did not finish")
        return EXIT_INTERRUPTED
    except ValueError as exc:  # a malformed broker URL
        _tell(f"[bold red]error:[/bold red] {escape(str(exc))}")
        return EXIT_BAD_INPUT
    except DrivesimError as exc:
        _tell(f"[bold red]error:[/bold red] {escape(str(exc))}")
        return EXIT_NO_ANSWER if isinstance(exc, NoAnswer) else EXIT_BAD_INPUT


def _tell(text: str) -> None:
    """One line on stderr, unwrapped."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(text)


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    match args.command:
        case "run":
            return _run(args, console)
        case "worker":
            return _worker(args, console)
        case "jobs":
            return run_jobs(args, console)
        case "demo":
            return run_demo(args, console)
        case "sweep":
            return run_sweep(args, console)
        case _:
            from simulator.console.watch import watch

            watch(BrokerConfig.from_url(args.broker), console, job=args.job)
            return EXIT_OK


def _worker(args: argparse.Namespace, console: Console) -> int:
    from worker import serve

    settings = load_worker_settings(args.config)
    if args.broker:
        settings = dataclasses.replace(settings, broker=BrokerConfig.from_url(args.broker))
    if args.scenario:
        settings = load_scenario(args.scenario).for_worker(settings, seed=args.seed)
    elif args.seed is not None:
        settings = dataclasses.replace(settings, seed=args.seed)
    if args.speed is not None:
        settings = dataclasses.replace(settings, speed=args.speed)
    if args.db:
        settings = dataclasses.replace(settings, db=args.db)
    if args.worker_id:
        settings = dataclasses.replace(settings, worker_id=args.worker_id)
    if args.time_origin is not None:
        settings = dataclasses.replace(settings, time_origin=args.time_origin)
    if args.http:
        http = HttpConfig.from_address(args.http)
        if settings.http is not None:
            http = dataclasses.replace(settings.http, host=http.host, port=http.port)
        settings = dataclasses.replace(settings, http=http)
    if args.https:
        if settings.http is None:
            raise DrivesimError("--https needs --http (or an http setting)")
        settings = dataclasses.replace(
            settings, http=dataclasses.replace(settings.http, https=True)
        )

    def ready(broker: BrokerConfig, http: HttpConfig | None) -> None:
        console.print(
            f"worker [bold]{settings.worker_id}[/bold] serving on {broker.url} "
            f"({settings.speed:g} simulated seconds a second, store {store_name(settings.db)})"
        )
        console.print(
            escape(
                f"locations: {_served(settings.datacenter.locations)} "
                "(more in the [datacenter] locations of --config)"
            ),
            soft_wrap=True,
        )
        console.print(
            f"watch it: {watch_command(broker.host, broker.port)}"
            f"    or: drivesim watch --broker {broker.url}",
            soft_wrap=True,  # a command to copy: never broken across lines
        )
        if http is not None:
            console.print(f"Azure REST API (Microsoft.ImportExport) on {http.url}")
            if http.cert_file is not None:
                console.print(
                    f"its TLS certificate (trust it in clients): {http.cert_file}",
                    soft_wrap=True,
                )

    serve(settings, on_ready=ready)
    return EXIT_OK


def _run(args: argparse.Namespace, console: Console) -> int:
    from simulator.console.timeline import Timeline
    from simulator.run.runner import run_scenario
    from worker import MemoryStore, SQLiteStore

    scenario = load_scenario(args.scenario)
    if args.workers > 1 and not args.live:
        raise DrivesimError("--workers runs several worker processes: it needs --live")
    if args.live:
        if args.processes is not None and args.processes > 1:
            raise DrivesimError(
                "--processes splits a virtual-time run: a --live run is the worker's processes"
            )
        return _run_live(args, console, scenario)
    split = _split(args, scenario)
    if len(scenario.datacenter.locations) > 1 or split.processes > 1:
        console.print(escape(split.describe()), soft_wrap=True)
    if split.processes > 1:
        return _run_sharded(args, console, scenario, split)
    # The progress line stays up after the simulation: the history, the invariants and the
    # report of a long run take their time too (half a minute after load-10k).
    with _progress(scenario) as progress:
        with tempfile.TemporaryDirectory(prefix="drivesim-") as tmp:
            store: JobStore
            if args.db == ":memory:":
                store = MemoryStore()
            else:
                store = SQLiteStore(args.db or Path(tmp) / "run.db")
            try:
                _say_if_resuming(args, scenario, store)
                timeline = Timeline(console, scenario.epoch)
                result = run_scenario(
                    scenario,
                    store,
                    speed=args.speed,
                    seed=args.seed,
                    **_observers(args.quiet, progress, timeline),
                )
            except KeyboardInterrupt:
                _say_where_it_stopped(args, store)
                raise
            finally:
                store.close()
        result.split = split
        return _judge(args, console, result, progress)


def _judge(
    args: argparse.Namespace, console: Console, result: RunResult, progress: RunProgress
) -> int:
    """The history read back, the invariants, the reports and the summary of a run."""
    from simulator.report.history import History
    from simulator.report.invariants import check_run
    from simulator.report.json_report import build_report

    scenario = result.scenario
    with progress.phase("reading the history"):
        history = History(result.history, scenario.epoch)
    with progress.phase("checking the invariants"):
        checks = check_run(result, history)
    with progress.phase("building the report"):
        report = build_report(result, history, checks)
    return _finish(args, console, report, history, result, progress)


def _split(args: argparse.Namespace, scenario: Scenario) -> Split:
    """How a virtual-time run is split between processes: refused where it cannot be."""
    from simulator.run.split import plan_split

    one = None
    if args.speed is not None:
        one = "--speed runs in scaled real time, in one process"
    elif args.db == ":memory:":
        one = "--db keeps the run in one store"
    elif args.db is not None:
        one = "--db keeps the run in one store, to resume it"
    if one is not None and args.processes is not None and args.processes > 1:
        option = "--speed" if args.speed is not None else "--db"
        raise DrivesimError(
            f"--processes {args.processes} splits a virtual-time run into processes that keep "
            f"their stores in memory: it cannot go with {option} (use --processes 1)"
        )
    return plan_split(scenario, args.processes, why_one=one)


def _run_sharded(
    args: argparse.Namespace, console: Console, scenario: Scenario, split: Split
) -> int:
    """A virtual-time run in one process per shard of locations, judged as one run."""
    from simulator.console.timeline import Timeline
    from simulator.run.shards import run_sharded

    # The progress line counts what the shards tell as they run; the timeline is told
    # once they are all done, in simulated-time order.
    timeline = None if args.quiet else Timeline(console, scenario.epoch)
    with _progress(scenario) as progress:
        try:
            result = run_sharded(
                scenario,
                split,
                seed=args.seed,
                log_level=args.log_level,
                log_format=args.log_format,
                on_message=None if timeline is None else timeline.on_message,
                on_action=None if timeline is None else timeline.on_action,
                on_fault=None if timeline is None else timeline.on_fault,
                on_progress=progress.on_shard,
            )
        except KeyboardInterrupt:
            _tell(
                "stopped; a run split between processes keeps no database: run it with "
                "--processes 1 --db FILE to be able to resume"
            )
            raise
        return _judge(args, console, result, progress)


def _say_if_resuming(args: argparse.Namespace, scenario: Scenario, store: JobStore) -> None:
    """On stderr: the run in ``--db`` goes on, from when, and how often it has started."""
    from simulator.run.runner import STARTS_KEY

    starts = int(store.get_meta(STARTS_KEY) or 0)
    if starts:
        _tell(
            f"resuming {scenario.name} from {args.db} at simulated "
            f"{format_duration(stored_time(store)).strip()} (restart {starts} of this run)"
        )


def _say_where_it_stopped(args: argparse.Namespace, store: JobStore) -> None:
    """On stderr: where an interrupted run stopped and how to go on with it."""
    at = f"stopped at simulated {format_duration(stored_time(store)).strip()}"
    if args.db and args.db != ":memory:":
        how = f"resume it with: drivesim run {args.scenario} --db {args.db}"
    else:
        how = "it kept no database: run it with --db FILE to be able to resume"
    _tell(f"{at}; {how}")


def _run_live(args: argparse.Namespace, console: Console, scenario: Scenario) -> int:
    import anyio

    from simulator.console.timeline import Timeline
    from simulator.live.run import LiveResult, LiveRun

    if args.virtual or args.db:
        raise DrivesimError("--live runs in scaled real time on the worker's own store")
    if args.workers > 1:
        from simulator.live.postgres import find_postgres

        find_postgres()  # refused now, not after the broker has started
        store = f"{args.workers} workers on PostgreSQL"
    else:
        store = "one worker on SQLite"
    # Answers come back before the observer hears their events: held to keep time order.
    timeline = Timeline(console, scenario.epoch, hold=True)
    speed = args.speed or scenario.live_speed
    console.print(
        f"live run of [bold]{scenario.name}[/bold]: {speed:g} simulated seconds a second, "
        f"{store}, {len(scenario.faults)} faults planned"
    )
    with (
        tempfile.TemporaryDirectory(prefix="drivesim-live-") as tmp,
        _progress(scenario) as progress,
    ):
        live = LiveRun(
            scenario,
            args.workdir or Path(tmp),
            speed=speed,
            seed=args.seed,
            workers=args.workers,
            **_observers(args.quiet, progress, timeline),
        )
        outcome: LiveResult = anyio.run(live.run, backend="asyncio")
        timeline.flush()
        with progress.phase("checking the invariants and building the report"):
            report = outcome.report()
        return _finish(args, console, report, outcome.stored, outcome.run, progress)


def _progress(scenario: Scenario) -> RunProgress:
    """The progress line on stderr, with the time left: under the timeline on a terminal
    (which it keeps at the bottom), alone with --quiet; every ten seconds in a log file."""
    from simulator.console.progress import RunProgress

    return RunProgress(
        Console(stderr=True, highlight=False),
        scenario.epoch,
        jobs=len(scenario.jobs),
        until=scenario.until,
    )


def _observers(quiet: bool, progress: RunProgress, timeline: Timeline) -> dict[str, Any]:
    """What hears a run's messages, answered actions and faults: the progress line, and
    unless ``quiet`` the timeline."""
    if quiet:
        return {"on_message": progress.on_message, "on_action": None, "on_fault": progress.on_fault}

    def on_message(message: StatusMessage) -> None:
        timeline.on_message(message)
        progress.on_message(message)

    def on_fault(record: FaultRecord) -> None:
        timeline.on_fault(record)
        progress.on_fault(record)

    return {"on_message": on_message, "on_action": timeline.on_action, "on_fault": on_fault}


def _finish(
    args: argparse.Namespace,
    console: Console,
    report: dict[str, Any],
    history: History,
    run: RunResult,
    progress: RunProgress,
) -> int:
    from simulator.console.timeline import print_summary
    from simulator.report.html.page import write_html

    print_summary(console, report)
    if args.html is not None:
        with progress.phase("writing the HTML report"):
            write_html(args.html, report, history, run)
        console.print(f"html report: {args.html}")
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"report: {args.report}")
    return EXIT_OK if report["ok"] else EXIT_INVARIANT


if __name__ == "__main__":
    sys.exit(main())
