"""The demo's live view on a terminal: the clock, each job and drive with a progress bar, the
bays, the latest explanation and the messages as they are published.

Redrawn from the event loop (never from rich's refresh thread), so it reads the board
between two changes. The commentary lines print above it and stay on screen.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from simulator.demo.board import Board, JobView
from simulator.demo.outcome import at, size

__all__ = ["LiveView"]

STATE_STYLE = {
    "Transferring": "cyan",
    "Completed": "green",
    "Packaging": "magenta",
    "Received": "yellow",
}


def bar_width_for(columns: int) -> int:
    """A drive's progress bar: a third of what the name and state leave, 6 to 24 cells."""
    return max(6, min(24, (columns - 26) // 3))


class LiveView:
    """A rich ``Live`` display of the board; :meth:`refresh` redraws it."""

    def __init__(
        self,
        console: Console,
        board: Board,
        *,
        title: str,
        headline: Callable[[], Text],
        clock: Callable[[], float | None],
        broker: str,
    ) -> None:
        self.console = console
        self.board = board
        self.title = title
        self.headline = headline
        self.clock = clock
        self.broker = broker
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self._live.__exit__(None, None, None)

    def refresh(self) -> None:
        self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        now = self.clock()
        shown = self.board.now if now is None else max(now, self.board.now)
        parts: list[RenderableType] = [
            Rule(Text(f"{self.title} · clock {at(shown)}", style="bold"), align="left")
        ]
        for job in self.board.jobs.values():
            parts.append(self._job(job, shown))
        bays = self.board.bays()
        for location, drives in bays.items():
            total = self.board.scenario.datacenter.locations[location]
            cells = [*drives, *["idle"] * (total - len(drives))]
            parts.append(Text(f"bays {location}: ", style="bold").append(" · ".join(cells)))
        parts.append(Text("now: ", style="bold").append(self.headline()))
        parts.append(Text(f"mqtt · {self.board.published} published to {self.broker}", "bold"))
        wire = Table.grid(padding=(0, 1))
        wire.add_column(no_wrap=True, style="dim", min_width=11)
        wire.add_column(overflow="ellipsis", no_wrap=True)
        for item in self.board.wire:
            flags = "r" if item.retain else " "
            wire.add_row(f"seq {item.seq:>3} q{item.qos}{flags}", f"{item.topic}  {item.summary}")
        parts.append(wire)
        return Group(*parts)

    def _job(self, job: JobView, now: float) -> RenderableType:
        head = Text(f"{job.name} ", style="bold").append(
            job.state, style=STATE_STYLE.get(job.state, "")
        )
        if job.cancel_requested:
            head.append(" · cancelRequested true", style="yellow")
        if job.outcome:
            head.append(f" · outcome {job.outcome}")
        if job.ended_at is not None and job.deleted_at is None:
            due = job.ended_at + self.board.scenario.policy.retention
            head.append(f" · deleted in {at(max(0.0, due - now))}", style="dim")
        # The bar keeps a width of its own and the bytes wrap under themselves: on a narrow
        # terminal neither is squeezed out (the figures after the cancel are the point).
        bar_width = bar_width_for(self.console.width)
        room = self.console.width - 2 - 10 - 12 - bar_width - 3
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=10)
        grid.add_column(no_wrap=True, min_width=12)
        grid.add_column(no_wrap=True, width=bar_width)
        grid.add_column(overflow="fold")
        for drive in job.drives.values():
            note = f"{size(drive.copied)} of {size(drive.size)}"
            if drive.at_cancel is not None:
                after = f"+{size(max(0, drive.copied - drive.at_cancel))} after cancel"
                # One line where it fits, else a line of its own (never a figure cut in two).
                one_line = len(note) + 3 + len(after) <= room
                note = f"{note} · {after}" if one_line else f"{note}\n{after}"
            if drive.skipped:
                note = "skipped: the cancel came first"
            bar = ProgressBar(total=drive.size, completed=drive.copied, width=bar_width)
            state = Text(drive.state, style=STATE_STYLE.get(drive.state, ""))
            grid.add_row(f"  {drive.drive}", state, bar, note)
        return Group(head, grid)
