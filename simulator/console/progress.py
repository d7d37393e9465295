"""Progress of a long run on the terminal: simulated time, jobs, messages, rate, time left;
then the phases that follow the simulation (history, invariants, report, HTML)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Self

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from simulator.faults.plan import FaultRecord
from simulator.run.split import ShardProgress
from worker import StatusMessage, format_duration

__all__ = ["LiveDisplay", "RunProgress", "format_wall"]


def format_wall(seconds: float) -> str:
    """Wall-clock seconds, short: ``"8 s"``, ``"2 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02} min"


class LiveDisplay:
    """Drawn in place on a terminal, from ``__rich__`` a few times a second and cleared at
    the end of the ``with`` block; elsewhere (a log file) nothing is drawn, and the
    subclass prints a line every :attr:`_every` seconds."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._every = 0.25 if console.is_terminal else 10.0
        self._live: Live | None = None

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, transient=True, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def __rich__(self) -> RenderableType:
        """What the live display draws at each refresh."""
        raise NotImplementedError


class RunProgress(LiveDisplay):
    """Counts the status stream as it goes by and shows one line: redrawn a few times a
    second on a terminal (it ticks even while no message comes), or printed every ten
    seconds in a log file.

    The time left is estimated from how far the run is: the larger of the simulated time
    over the scenario's ``until`` and the share of jobs deleted (a run ends once every job
    is gone, or at ``until``). After the simulation, :meth:`phase` names what runs (reading
    the history, checking the invariants...) with its time so far, so that no stretch of a
    long run is silent.
    """

    def __init__(
        self, console: Console, epoch: datetime, *, jobs: int, until: float | None = None
    ) -> None:
        super().__init__(console)
        self.epoch = epoch
        self.total_jobs = jobs
        self.until = until
        self.messages = self.created = self.ended = self.deleted = self.faults = 0
        self.sim_time = ""
        #: The latest event heard, its time read only when a line is drawn.
        self._last_event = b""
        #: What runs after the simulation, and since when (None: the simulation runs).
        self.current_phase: tuple[str, float] | None = None
        self._started = time.monotonic()
        self._shown = 0.0
        self._printed = False
        #: A run split between processes: how far each shard said it is.
        self._shards: dict[int, ShardProgress] = {}

    def __rich__(self) -> Text:
        """What the live display draws at each refresh: the line as it stands now."""
        return self._line()

    def on_fault(self, record: FaultRecord) -> None:
        if record.struck is not None:
            self.faults += 1
            self._show()

    def on_message(self, message: StatusMessage) -> None:
        self.messages += 1
        if message.topic.endswith("/events"):
            payload = message.payload
            if b".jobCreated" in payload:
                self.created += 1
            elif b".jobDeleted" in payload:
                self.deleted += 1
            elif b'"outcome":' in payload and b".stateChanged" in payload:
                self.ended += 1
            self._last_event = payload
            now = time.monotonic()
            if now - self._shown >= self._every:
                self._shown = now
                self._show()

    def on_shard(self, progress: ShardProgress) -> None:
        """How far a shard of a run split between processes is: the line counts the
        shards' streams together, at the simulated time of the one furthest behind."""
        self._shards[progress.index] = progress
        shards = self._shards.values()
        self.messages = sum(p.messages for p in shards)
        self.created = sum(p.created for p in shards)
        self.ended = sum(p.ended for p in shards)
        self.deleted = sum(p.deleted for p in shards)
        now = time.monotonic()
        if now - self._shown >= self._every:
            self._shown = now
            self._show()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Show ``name`` (``"checking the invariants"``) while the block runs. In a log file
        a phase is printed only after a run long enough to have printed progress."""
        self.current_phase = (name, time.monotonic())
        if self._live is not None:
            self._live.refresh()
        elif self._printed:
            self.console.print(Text(f"{name}…", style="dim"))
        try:
            yield
        finally:
            self.current_phase = None

    def simulated(self) -> float | None:
        """Simulated seconds the stream has reached, as last sampled (split between
        processes: the furthest behind of the shards still running)."""
        if self._shards:
            running = [p for p in self._shards.values() if not p.finished] or list(
                self._shards.values()
            )
            times = [p.simulated for p in running if p.simulated is not None]
            return min(times) if times else None
        if self._last_event:
            stamp = self._last_event.split(b'"time":"', 1)[-1][:24]
            self.sim_time = stamp.decode(errors="replace")
            self._last_event = b""
        if not self.sim_time:
            return None
        try:
            at = datetime.fromisoformat(self.sim_time.rstrip('"'))
        except ValueError:
            return None
        return (at - self.epoch).total_seconds()

    def done(self) -> float:
        """How far the run is, from 0 to 1 (see the class)."""
        share = self.deleted / self.total_jobs if self.total_jobs else 0.0
        simulated = self.simulated()
        if self.until and simulated is not None:
            share = max(share, simulated / self.until)
        return min(1.0, share)

    def eta(self) -> float | None:
        """Wall-clock seconds left, estimated; None until there is something to go on."""
        elapsed = self._elapsed()
        done = self.done()
        if done < 0.01 or elapsed < 2.0:
            return None
        return elapsed * (1 - done) / done

    def _elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self._started)

    def _line(self) -> Text:
        if self.current_phase is not None:
            name, since = self.current_phase
            return Text(
                f"{name}… {format_wall(time.monotonic() - since)} · "
                f"run {format_wall(self._elapsed())} so far",
                style="dim",
            )
        simulated = self.simulated()
        shown = format_duration(simulated).strip() if simulated is not None else self.sim_time
        rate = self.messages / self._elapsed()
        eta = self.eta()
        # The time left first: what a narrow terminal keeps when it cuts the line.
        left = "" if eta is None else f" · {self.done():.0%}, about {format_wall(eta)} left"
        return Text(
            f"simulated {shown or '0d'}{left} · jobs created {self.created:,}/{self.total_jobs:,}"
            f" · ended {self.ended:,} · messages {self.messages:,} ({rate:,.0f}/s)"
            + (f" · faults {self.faults}" if self.faults else ""),
            style="dim",
        )

    def _show(self) -> None:
        if self._live is not None:
            self._live.update(self)
        else:
            self.console.print(self._line())
            self._printed = True
