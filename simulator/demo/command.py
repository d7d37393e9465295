"""``drivesim demo``: the teaching demo of best-effort cancel.

One import job with five drives shares a two-bay datacenter with another customer's job;
its customer asks to cancel while drives copy. The demo runs the whole worker in-process
(:mod:`simulator.demo.run`), explains each step as it happens, mirrors every status message
to an MQTT broker (the embedded one, or ``--broker``), then prints a summary. ``--virtual``
runs it instantly without a broker; ``--compare`` runs it under the three cancel windows and
prints them side by side; ``--html`` draws the picture (:mod:`simulator.demo.picture`).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console

from simulator.console import arguments
from simulator.demo.board import Board
from simulator.demo.mirror import BrokerMirror
from simulator.demo.narration import Narrator
from simulator.demo.outcome import DemoOutcome, outcome_of
from simulator.demo.picture import write_picture
from simulator.demo.run import StoryRun
from simulator.demo.story import CANCEL_STATES, DEFAULT_SPEED, StoryOptions, demo_scenario
from simulator.demo.summary import print_compare, print_summary
from simulator.demo.view import LiveView
from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from worker import DrivesimError, JobState, StatusMessage, virtual_loop, watch_command
from worker.mqtt import BrokerConfig, embedded_broker
from worker.states import CancelWindow

__all__ = ["add_demo_parser", "play_virtual", "run_demo", "run_virtual"]

EXIT_OK, EXIT_INVARIANT = 0, 1
#: Redraws of the live view a second.
FRAMES = 8
#: How long the demo waits for its broker before giving up.
CONNECT_TIMEOUT = 10.0
#: How long the end of the demo waits for the broker to take the last messages.
FLUSH_TIMEOUT = 10.0


def add_demo_parser(commands: Any) -> None:
    """The ``demo`` subcommand and its options."""
    demo = commands.add_parser(
        "demo",
        help="the teaching demo of best-effort cancel: a live story, the policies side by "
        "side, a picture",
        description="One import job, cancelled while its drives copy, explained step by step.",
    )
    policies = [str(w) for w in CancelWindow]
    demo.add_argument(
        "--policy",
        type=arguments.choice(policies),
        choices=policies,
        default=str(CancelWindow.BEFORE_PACKAGING),
        help="the cancel window (default: before-packaging, the classic REST docs)",
    )
    states = [str(s) for s in CANCEL_STATES]
    demo.add_argument(
        "--cancel-at",
        type=arguments.choice(states),
        choices=states,
        default=str(JobState.TRANSFERRING),
        metavar="STATE",
        help="the state the cancel is asked in: " + ", ".join(states) + " (default: Transferring)",
    )
    demo.add_argument(
        "--compare",
        action="store_true",
        help="the same story under the three cancel windows, side by side (virtual time)",
    )
    pace = demo.add_mutually_exclusive_group()
    pace.add_argument(
        "--virtual", action="store_true", help="virtual time: instant, no broker (tests, docs)"
    )
    pace.add_argument(
        "--speed",
        type=arguments.speed,
        metavar="N",
        help=f"simulated seconds a second, above 0 and up to {arguments.MAX_SPEED:,.0f} "
        f"(default {DEFAULT_SPEED:g}: about a minute)",
    )
    demo.add_argument(
        "--html",
        type=arguments.output_file,
        metavar="FILE",
        help="write the picture (self-contained HTML/SVG)",
    )
    demo.add_argument(
        "--broker",
        type=arguments.broker_url,
        metavar="URL",
        help="publish to this broker, e.g. mqtt://127.0.0.1:1883 (default: an embedded one)",
    )


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Run the demo as the command line asked; 1 if an invariant failed."""
    options = StoryOptions(CancelWindow(args.policy), JobState(args.cancel_at))
    if args.speed is not None and args.speed <= 0:
        raise DrivesimError("--speed must be a positive number of simulated seconds a second")
    if args.compare:
        if args.speed is not None or args.broker:
            raise DrivesimError("--compare runs in virtual time: leave out --speed and --broker")
        outcomes = [
            play_virtual(StoryOptions(policy, options.cancel_at)) for policy in CancelWindow
        ]
        print_compare(console, outcomes)
        _picture(args.html, outcomes, console)
        return EXIT_OK if all(o.ok for o in outcomes) else EXIT_INVARIANT
    if args.virtual:
        if args.broker:
            raise DrivesimError("--virtual runs without a broker: leave out --broker")
        outcome = _narrated_virtual(console, options)
    else:
        outcome = _live(console, options, args.speed or DEFAULT_SPEED, args.broker)
    console.print()
    print_summary(console, outcome)
    _picture(args.html, [outcome], console)
    return EXIT_OK if outcome.ok else EXIT_INVARIANT


def _picture(path: Path | None, outcomes: list[DemoOutcome], console: Console) -> None:
    if path is not None:
        write_picture(path, outcomes)
        console.print(f"picture: {path}")


def run_virtual(
    options: StoryOptions,
    *,
    on_message: Callable[[StatusMessage], None] | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
    on_ended: Callable[[float], None] | None = None,
) -> RunResult:
    """The story in virtual time (both phases)."""
    story = StoryRun(
        demo_scenario(options),
        None,
        on_message or (lambda _: None),
        on_action or (lambda _: None),
        on_ended,
    )
    result: RunResult = anyio.run(
        story.run, backend="asyncio", backend_options={"loop_factory": virtual_loop}
    )
    return result


def play_virtual(
    options: StoryOptions,
    *,
    on_message: Callable[[StatusMessage], None] | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
    on_ended: Callable[[float], None] | None = None,
) -> DemoOutcome:
    """The story in virtual time (both phases), and its figures."""
    result = run_virtual(options, on_message=on_message, on_action=on_action, on_ended=on_ended)
    return outcome_of(result, options)


def _narrated_virtual(console: Console, options: StoryOptions) -> DemoOutcome:
    board = Board(demo_scenario(options))
    narrator = Narrator(console, board, options)
    narrator.intro("virtual time (--virtual): the clock jumps whenever everything waits", None)

    def on_message(message: StatusMessage) -> None:
        board.apply(message)
        board.on_published(message)
        narrator.on_message(message)

    def on_ended(when: float) -> None:
        narrator.fast_forward(
            when,
            "Virtual time again: the worker resumes from its store on a clock that jumps to "
            "the next timer, so the 90 days pass at once; the retention sweeper deletes each "
            "job when it is due.",
        )

    return play_virtual(
        options, on_message=on_message, on_action=narrator.on_action, on_ended=on_ended
    )


def _pace(speed: float) -> str:
    return f"{speed / 60:.3g} minutes" if speed < 3600 else f"{speed / 3600:.3g} hours"


@asynccontextmanager
async def _broker(url: str | None) -> AsyncIterator[tuple[BrokerConfig, str]]:
    if url is not None:
        yield BrokerConfig.from_url(url), url
        return
    async with embedded_broker() as config:
        yield config, f"{config.url} (embedded amqtt, MQTT 3.1.1)"


def _live(console: Console, options: StoryOptions, speed: float, url: str | None) -> DemoOutcome:
    scenario = demo_scenario(options)
    board = Board(scenario)
    narrator = Narrator(console, board, options)
    retention_wall = scenario.policy.retention / speed / 3600

    async def main() -> DemoOutcome | None:
        async with _broker(url) as (config, label), anyio.create_task_group() as tg:
            mirror = BrokerMirror(config, on_published=board.on_published)
            await tg.start(mirror.run)
            with anyio.move_on_after(CONNECT_TIMEOUT):
                await mirror.link.ready()
            if not mirror.link.connected:
                tg.cancel_scope.cancel()
                return None
            narrator.intro(
                f"{speed:g} simulated seconds a second ({_pace(speed)} a second)",
                f"{label} · watch it: {watch_command(config.host, config.port)}",
            )

            def on_message(message: StatusMessage) -> None:
                board.apply(message)
                mirror.put(message)
                narrator.on_message(message)

            def on_ended(when: float) -> None:
                narrator.fast_forward(
                    when,
                    f"At this speed the 90 days would take {retention_wall:.1f} hours, so they "
                    "run in virtual time: the worker resumes from its store on a clock that "
                    "jumps to the next timer, and the retention sweeper deletes each job when "
                    "it is due. The messages go to the broker as soon as they are made.",
                )

            story = StoryRun(scenario, speed, on_message, narrator.on_action, on_ended)

            async def run() -> RunResult:
                result = await story.run()
                with anyio.move_on_after(FLUSH_TIMEOUT):
                    await mirror.flush()
                return result

            result = await _with_view(console, board, narrator, story, label, run)
            if mirror.pending:
                console.print(
                    f"[yellow]{mirror.pending} messages not published: the broker did not "
                    "take them in time[/yellow]"
                )
            await mirror.close()
            tg.cancel_scope.cancel()
        return outcome_of(result, options)

    outcome: DemoOutcome | None = anyio.run(main, backend="asyncio")
    if outcome is None:
        raise DrivesimError(f"no broker answered at {url} within {CONNECT_TIMEOUT:g} s")
    return outcome


async def _with_view(
    console: Console,
    board: Board,
    narrator: Narrator,
    story: StoryRun,
    label: str,
    run: Callable[[], Awaitable[RunResult]],
) -> RunResult:
    """``run()`` under a live view of the story when the console is a terminal."""
    if not console.is_terminal:
        return await run()
    title = f"drivesim demo · {story.scenario.policy.cancel_window} · {story.speed:g}×"
    view = LiveView(
        console,
        board,
        title=title,
        headline=lambda: narrator.headline,
        clock=story.now,
        broker=label.split(" ", 1)[0],
    )
    with view:
        async with anyio.create_task_group() as frames:

            async def redraw() -> None:
                while True:
                    view.refresh()
                    await anyio.sleep(1 / FRAMES)

            frames.start_soon(redraw)
            result = await run()
            frames.cancel_scope.cancel()
    return result
