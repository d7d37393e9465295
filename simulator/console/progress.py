"""Progress of a long run on the terminal: simulated time, jobs, messages, rate."""

from __future__ import annotations

import time
from datetime import datetime

from rich.console import Console
from rich.live import Live
from rich.text import Text

from simulator.faults.plan import FaultRecord
from worker import StatusMessage, format_duration

__all__ = ["RunProgress"]


class RunProgress:
    """Counts the status stream as it goes by and redraws one line a few times a second
    (a terminal) or prints a line every ten seconds (a log file)."""

    def __init__(self, console: Console, epoch: datetime, *, jobs: int) -> None:
        self.console = console
        self.epoch = epoch
        self.total_jobs = jobs
        self.messages = self.created = self.ended = self.faults = 0
        self.sim_time = ""
        self._started = time.monotonic()
        self._shown = 0.0
        self._every = 0.25 if console.is_terminal else 10.0
        self._live: Live | None = None

    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            self._live = Live(self._line(), console=self.console, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

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
            elif b'"outcome":' in payload and b".stateChanged" in payload:
                self.ended += 1
            now = time.monotonic()
            if now - self._shown >= self._every:
                self._shown = now
                stamp = payload.split(b'"time":"', 1)[-1][:24].decode(errors="replace")
                self.sim_time = stamp
                self._show()

    def _elapsed(self) -> float:
        return max(1e-9, time.monotonic() - self._started)

    def _line(self) -> Text:
        simulated = ""
        if self.sim_time:
            try:
                at = datetime.fromisoformat(self.sim_time.rstrip('"'))
                simulated = format_duration((at - self.epoch).total_seconds()).strip()
            except ValueError:
                simulated = self.sim_time
        rate = self.messages / self._elapsed()
        return Text(
            f"simulated {simulated or '0d'} · jobs created {self.created:,}/{self.total_jobs:,}"
            f" · ended {self.ended:,} · messages {self.messages:,} ({rate:,.0f}/s)"
            + (f" · faults {self.faults}" if self.faults else ""),
            style="dim",
        )

    def _show(self) -> None:
        if self._live is not None:
            self._live.update(self._line())
        else:
            self.console.print(self._line())
