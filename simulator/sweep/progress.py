"""A sweep's progress on stderr: a bar of the cells done, the rate and the time left.

Redrawn a few times a second on a terminal; in a log file, a line every ten seconds and
one at the end. The time left is the cells still to run times the wall time per cell
this session has taken so far (cells done before a resume do not count in the rate).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from simulator.console.progress import LiveDisplay, format_wall

__all__ = ["SweepProgress"]


class SweepProgress(LiveDisplay):
    def __init__(self, console: Console, *, total: int, done: int, where: str) -> None:
        super().__init__(console)
        self.total = total
        self.resumed = done
        self.done = done
        self.where = where
        self._started = time.monotonic()
        self._shown = self._started

    def __rich__(self) -> Table:
        """What the live display draws at each refresh: the bar, then the line."""
        view = Table.grid(padding=(0, 1))
        view.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.done, width=30), self.line()
        )
        return view

    def eta(self) -> float | None:
        """Wall-clock seconds left; None until a cell of this session is done."""
        ran = self.done - self.resumed
        if ran <= 0:
            return None
        return (time.monotonic() - self._started) / ran * (self.total - self.done)

    def line(self) -> Text:
        elapsed = time.monotonic() - self._started
        ran = self.done - self.resumed
        rate = f" · {ran / elapsed * 60:,.1f} cells a minute" if ran and elapsed > 0 else ""
        eta = self.eta()
        left = "" if eta is None else f" · about {format_wall(eta)} left"
        share = self.done / self.total if self.total else 1.0
        return Text(
            f"cells {self.done:,}/{self.total:,} ({share:.0%}){left}{rate} · "
            f"{format_wall(elapsed)} so far on {self.where}",
            style="dim",
        )

    def advance(self) -> None:
        """One more cell done."""
        self.done += 1
        if self._live is not None:
            self._live.refresh()
            return
        now = time.monotonic()
        if now - self._shown >= self._every or self.done == self.total:
            self._shown = now
            self.console.print(self.line(), soft_wrap=True)
