"""A readable timeline of a run on the terminal, and the summary under it."""

from __future__ import annotations

import heapq
import itertools
import math
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator.faults.plan import FaultRecord
from simulator.run.answers import ActionResult
from worker import StatusMessage, decode_payload, format_duration

__all__ = ["Timeline", "format_size", "print_summary"]

STYLES = {
    "Completed": "green",
    "Closed": "red",
    "CompletedMoreInfo": "yellow",
    "Transferring": "cyan",
    "Packaging": "magenta",
}


def format_size(n: int) -> str:
    """Bytes as the command line prints them: ``"2.16 TB"``, ``"720.00 GB"``, ``"12 B"``
    (decimal units, as drive sizes are given)."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


class Timeline:
    """Prints one line per event and per scripted answer, stamped with simulated time.

    ``hold``: the answers and faults come from another clock and channel than the events
    (a live run: the customers' process hears an answer before the observer hears the
    events its request caused), so each is held until the stream has passed its time, and
    the lines stay in simulated-time order; :meth:`flush` prints what is still held.
    """

    def __init__(self, console: Console, epoch: datetime, *, hold: bool = False) -> None:
        self.console = console
        self.epoch = epoch
        self.hold = hold
        self.lines = 0
        self._held: list[tuple[float, int, str, Text]] = []
        self._seen = -math.inf
        self._order = itertools.count()  # held lines of one instant, in the order they came

    def _put(self, when: float, job: str, text: Text) -> None:
        """An answer's or a fault's line: now, or once the stream has passed ``when``."""
        if not self.hold or when <= self._seen:
            self._line(when, job, text)
        else:
            heapq.heappush(self._held, (when, next(self._order), job, text))

    def _release(self, until: float) -> None:
        while self._held and self._held[0][0] < until:
            when, _, job, text = heapq.heappop(self._held)
            self._line(when, job, text)

    def flush(self) -> None:
        """Print the lines still held (the run is over)."""
        self._release(math.inf)

    def _line(self, when: float, job: str, text: Text | str) -> None:
        line = Text(f"{format_duration(when)}  ", style="dim")
        line.append(f"{job:<16} ", style="bold")
        line.append(text if isinstance(text, Text) else Text(text))
        self.console.print(line, highlight=False, soft_wrap=True)
        self.lines += 1

    def on_action(self, result: ActionResult) -> None:
        ok = result.outcome in ("ok", "created", "replaced", "accepted", "already-requested")
        mark, style = ("»", "bold blue") if ok else ("✗", "bold red")
        text = Text(f"{mark} {result.do}: ", style=style)
        text.append(result.outcome, style="bold")
        if result.detail:
            text.append(f" · {result.detail}", style="dim" if ok else "")
        if result.expect is not None and not result.ok:
            text.append(f"  (expected {result.expect})", style="bold red")
        self._put(result.at, result.job, text)

    def on_fault(self, record: FaultRecord) -> None:
        if record.skipped is not None:
            text = Text(f"⚡ {record.fault.describe()}: skipped, {record.skipped}", style="dim")
            self._put(record.fault.at, "(fault)", text)
            return
        text = Text(f"⚡ {record.fault.describe()}", style="bold magenta")
        if record.detail:
            text.append(f" · {record.detail}", style="dim")
        self._put(record.struck if record.struck is not None else record.fault.at, "(fault)", text)

    def on_message(self, message: StatusMessage) -> None:
        if not message.topic.endswith("/events"):
            return
        event = decode_payload(message.payload)
        when = (datetime.fromisoformat(event["time"]) - self.epoch).total_seconds()
        self._release(when)
        self._seen = max(self._seen, when)
        text = self.describe(event["type"].rsplit(".", 1)[-1], event["data"])
        if text is not None:
            self._line(when, message.job, text)

    @staticmethod
    def describe(kind: str, data: dict[str, Any]) -> Text | None:
        match kind:
            case "jobCreated" | "jobReplaced":
                verb = "created" if kind == "jobCreated" else "replaced"
                n = data["drives"]
                return Text(f"{verb} · {data['jobType']} · {n} drive{'' if n == 1 else 's'}")
            case "jobUpdated":
                return Text(f"updated {', '.join(data['fields'])}", style="dim")
            case "stateChanged":
                text = Text(f"{data['from']} → ")
                text.append(data["to"], style=f"bold {STYLES.get(data['to'], '')}".strip())
                if "outcome" in data:
                    text.append(f"  outcome: {data['outcome']}", style="bold")
                return text
            case "driveStateChanged":
                text = Text(f"  drive {data['driveId']}: {data['from'] or 'new'} → ")
                text.append(data["to"], style=STYLES.get(data["to"], ""))
                if data.get("error"):
                    text.append(f" ({data['error']})", style="yellow")
                return text
            case "driveSkipped":
                return Text(
                    f"  drive {data['driveId']}: skipped, cancel requested before it started",
                    style="yellow",
                )
            case "cancelRequested":
                text = Text("cancel recorded in ", style="bold yellow")
                text.append(data["state"], style="bold yellow")
                flying = ", ".join(data["drivesInFlight"]) or "none"
                waiting = ", ".join(data["drivesNotStarted"]) or "none"
                text.append(f" · still copying: {flying} · will not start: {waiting}")
                return text
            case "jobDeleted":
                return Text(f"deleted ({data['reason']}, was {data['state']})", style="bold")
        return None


def print_summary(console: Console, report: dict[str, Any]) -> None:
    """The cancel figures and the invariants, as two small tables."""
    jobs = report["jobs"]
    states = ", ".join(f"{k} {v}" for k, v in jobs["finalStates"].items()) or "none"
    console.print(
        f"\n[bold]{report['scenario']}[/bold] · seed {report['seed']} · "
        f"{report['clock']['kind']} clock · {report['simulatedSeconds'] / 86400:.1f} simulated "
        f"days in {report['wallSeconds']:.2f} s · {report['messages']['published']} messages"
    )
    console.print(f"jobs: {jobs['created']} created · final states: {states}")
    for shard in report.get("processes", {}).get("shards", []):
        console.print(
            f"  shard {shard['shard']}: {', '.join(shard['locations'])} · {shard['jobs']} jobs · "
            f"{shard['messages']} messages · {shard['simulatedSeconds'] / 86400:.1f} simulated "
            f"days in {shard['wallSeconds']:.2f} s (process {shard['processSeconds']:.2f} s, "
            f"peak {shard['peakRssMiB']:.0f} MiB)",
            soft_wrap=True,
        )
    cancel = report["cancel"]
    if cancel["requested"] or cancel["accepted"]:
        table = Table(title="best-effort cancel", title_justify="left", show_header=False)
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("requested", str(cancel["requested"]))
        table.add_row("accepted", str(cancel["accepted"]))
        table.add_row("already requested", str(cancel["alreadyRequested"]))
        table.add_row("rejected, too late", str(cancel["rejectedTooLate"]))
        table.add_row("drives finished after the request", str(cancel["drivesFinishedAfterCancel"]))
        table.add_row("bytes copied after the request", format_size(cancel["bytesAfterCancel"]))
        table.add_row("drives skipped", str(cancel["drivesSkipped"]))
        console.print(table)
    table = Table(title="invariants", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    for inv in report["invariants"]:
        result = "[green]ok[/green]" if inv["ok"] else f"[red]{len(inv['violations'])} violations"
        table.add_row(inv["name"], result)
        for violation in inv["violations"][:5]:
            table.add_row("", f"[red]{violation}")
    console.print(table)
