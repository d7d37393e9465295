"""The demo's commentary: one line per thing that happens in the story, and why it happens.

Lines are printed as they come, simulated time first and the text wrapped under it with a
hanging indent, so they fit any width and read the same in a terminal, a narrow window or
a file.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from simulator.demo.board import Board, describe_message
from simulator.demo.outcome import at, size
from simulator.demo.story import CARRIER, MAIN, OTHER, StoryOptions
from simulator.run.answers import ActionResult
from worker import JobState, StatusMessage, decode_payload, parse_duration
from worker.states import CANCEL_WINDOWS, CancelWindow

__all__ = ["SOURCES", "Narrator", "window_text"]

#: Width of the time column.
INDENT = 10

#: Where each cancel window comes from (docs/lifecycle.md has the full quotes).
SOURCES: dict[CancelWindow, str] = {
    CancelWindow.BEFORE_PACKAGING: 'classic REST docs: "before it is in the Packaging state"',
    CancelWindow.CREATING_OR_SHIPPING: 'service FAQ: "when its status is Creating or Shipping"',
    CancelWindow.CREATING_ONLY: "portal docs: \"You can only cancel a job while it's in "
    'Creating state"',
}


def window_text(policy: CancelWindow) -> str:
    """The states a policy accepts a cancel in, in lifecycle order."""
    return ", ".join(str(s) for s in JobState if s in CANCEL_WINDOWS[policy])


class Narrator:
    """Turns the story's status messages and request answers into explained lines."""

    def __init__(self, console: Console, board: Board, options: StoryOptions) -> None:
        self.console = console
        self.board = board
        self.options = options
        #: The latest line, for the live view.
        self.headline = Text("")
        self._snapshots: dict[str, StatusMessage] = {}
        #: Reasons already given once (each is given the first time only).
        self._explained: set[str] = set()

    def _once(self, key: str, why: str) -> str | None:
        if key in self._explained:
            return None
        self._explained.add(key)
        return why

    # -- printing ------------------------------------------------------------------------

    def say(
        self,
        when: float | None,
        text: Text | str,
        *,
        why: str | None = None,
        wire: Sequence[StatusMessage | None] = (),
    ) -> None:
        """One line, with its reason and the messages that announced it under it.

        Wrapped here, with a hanging indent under the time column, so no line is longer
        than the console and none ends in padding.
        """
        line = text if isinstance(text, Text) else Text(text)
        indent = 0 if when is None else INDENT
        self._print(at(when) if when is not None else "", line, indent)
        if why:
            self._print("", Text(why, style="italic"), indent)
        for message in wire:
            if message is None:
                continue
            flags = f"qos {message.qos}" + (", retained" if message.retain else "")
            text_ = (
                f"mqtt {message.topic} · seq {message.seq} · {flags} · {describe_message(message)}"
            )
            self._print("", Text(text_, style="cyan"), indent)
        self.headline = line

    def _print(self, head: str, text: Text, indent: int) -> None:
        width = max(20, self.console.width - indent)
        for i, piece in enumerate(text.wrap(self.console, width)):
            piece.rstrip()
            prefix = Text((head if i == 0 else "").ljust(indent), style="dim")
            self.console.print(Text.assemble(prefix, piece), soft_wrap=True)

    def intro(self, clock: str, broker: str | None) -> None:
        """What the story is, under which rules, on which clock."""
        options = self.options
        scenario = self.board.scenario
        main, other = self.board.jobs[MAIN], self.board.jobs[OTHER]
        bays = sum(scenario.datacenter.locations.values())
        location = ", ".join(scenario.datacenter.locations)
        self.console.print(Text("drivesim demo · best-effort cancel", style="bold"))
        self.say(
            None,
            Text(f"policy {options.policy}: ", style="bold").append(
                f"a cancel is accepted in {window_text(options.policy)}",
            ),
            why=f"({SOURCES[options.policy]})",
        )
        self.say(
            None,
            f"story: {main.name} ({len(main.drives)} drives) and {other.name} "
            f"({len(other.drives)} drives) share {bays} bays in {location}. {main.name} asks "
            f"to cancel in {options.cancel_at}; {other.name} asks to cancel in Packaging; "
            f"{main.name} tries to delete its job in Packaging.",
            why=f"The carrier and the return trip take {_hours(CARRIER)} each here (days in "
            "reality); the rules are the real ones.",
        )
        self.say(None, f"clock: {clock}")
        if broker is not None:
            self.say(None, f"broker: {broker}")
        self.console.print()

    # -- requests ------------------------------------------------------------------------

    def on_action(self, result: ActionResult) -> None:
        """Explain the answer a scripted request got."""
        if result.do == "cancel":
            self._cancel(result)
        elif result.do == "delete":
            self._delete(result)
        elif result.do == "ship" and result.outcome != "ok":
            self.say(
                result.at,
                Text(f"✗ {result.job} ships its drives: refused, {result.outcome}", style="red"),
                why="The job already ended: cancelled in Creating, it went straight to "
                "Completed, so there is nothing to ship.",
            )

    def _cancel(self, result: ActionResult) -> None:
        policy, state = self.options.policy, result.state or "?"
        ask = f"{result.job} asks to cancel in {state}: "
        if result.outcome == "accepted":
            self.say(
                result.at,
                Text(f"» {ask}", style="bold").append("accepted", style="bold green"),
                why=f"{state} is inside the {policy} window. {_accepted_why(state)} The flag "
                "cancelRequested is committed to the store, with its status message, before "
                "the answer goes back.",
            )
        elif result.outcome == "already-requested":
            self.say(
                result.at,
                Text(f"» {ask}already requested", style="bold"),
                why="The flag was set by an earlier request: nothing changes.",
            )
        elif result.outcome == "rejected-too-late":
            self.say(
                result.at,
                Text(f"✗ {ask}", style="bold").append(
                    "rejected: CancelTooLate (HTTP 409)", style="bold red"
                ),
                why=f"{state} is outside the {policy} window ({window_text(policy)}). A refused "
                "request changes nothing, so nothing is published: the job carries on as if "
                f"never asked. The error: {result.detail}",
            )
        else:
            self.say(result.at, Text(f"✗ {ask}{result.outcome}", style="red"), why=result.detail)

    def _delete(self, result: ActionResult) -> None:
        if result.outcome == "DeleteNotAllowed":
            self.say(
                result.at,
                Text(
                    f"✗ {result.job} asks to delete its job in {result.state}: ", style="bold"
                ).append("refused: DeleteNotAllowed (HTTP 409)", style="bold red"),
                why="Jobs_Delete: only jobs in Creating or Completed can be deleted. A cancel is "
                "not a delete: the job must reach Completed first (or wait for retention). "
                f"The error: {result.detail}",
            )
        elif result.outcome == "not-triggered":
            self.say(
                result.at,
                Text(f"{result.job}: the delete was never asked", style="dim"),
                why="The job never reached Packaging: cancelled in Creating, it ended at once.",
            )
        else:
            self.say(result.at, f"{result.job} asks to delete its job: {result.outcome}")

    # -- the status stream ---------------------------------------------------------------

    def on_message(self, message: StatusMessage) -> None:
        """Explain an event of the stream (call after the board has taken the message)."""
        if message.topic.endswith(f"/{message.job}/state"):
            self._snapshots[message.job] = message
            return
        if not message.topic.endswith("/events"):
            return
        event = decode_payload(message.payload)
        kind = str(event["type"]).rsplit(".", 1)[-1]
        when = self.board.time(event["time"])
        job = self.board.jobs[message.job]
        main = message.job == MAIN
        data = event["data"]
        match kind:
            case "jobCreated":
                self.say(when, f"{job.name}: created · {data['drives']} drives")
            case "stateChanged":
                self._state(when, message.job, data)
            case "driveStateChanged":
                self._drive(when, message.job, data)
            case "driveSkipped":
                self.say(
                    when,
                    Text(f"  {job.name}: drive {data['driveId']} skipped", style="yellow"),
                    why=self._once(
                        "skipped",
                        "The cancel came before it started: it never will, and goes back unread.",
                    ),
                )
            case "cancelRequested":
                flying = ", ".join(data["drivesInFlight"]) or "none"
                waiting = ", ".join(data["drivesNotStarted"]) or "none"
                self.say(
                    when,
                    Text(f"{job.name}: cancel recorded in {data['state']}", style="yellow"),
                    why=f"Still copying (they keep going): {flying}. Not started (they never "
                    f"will): {waiting}.",
                    wire=(self._snapshots.get(message.job), message),
                )
            case "jobDeleted":
                self.say(
                    when,
                    Text(f"{job.name}: deleted ({data['reason']}, was {data['state']})"),
                    why=self._once(
                        "deleted",
                        "Kept 90 days after it ended, then removed: its retained topics are "
                        "cleared with empty retained payloads, and a get now answers "
                        "ResourceNotFound.",
                    ),
                    wire=(self._snapshots.get(message.job), message) if main else (),
                )

    def _state(self, when: float, name: str, data: dict[str, object]) -> None:
        job = self.board.jobs[name]
        move = f"{name}: {data['from']} → {data['to']}"
        wire = (self._snapshots.get(name),)
        match data["from"], data["to"]:
            case "Creating", "Shipping":
                self.say(when, f"{move} · the drives are with the carrier ({_hours(CARRIER)})")
            case "Shipping", "Received":
                free = self.board.free_bays(job.location)
                waiting = sum(1 for d in job.drives.values() if d.state == "Received")
                note = "the package is in"
                if job.cancel_requested:
                    note += "; the cancel came first, so no drive will start"
                elif free == 0 and waiting:
                    busy = {b.split("/")[0] for b in self.board.bays()[job.location]}
                    note += f"; every bay is busy with {', '.join(sorted(busy))}: its drives wait"
                self.say(when, f"{move} · {note}")
            case "Received", "Transferring":
                self.say(when, f"{move} · copying has begun")
            case (("Received" | "Transferring"), "Packaging"):
                if job.cancel_requested:
                    self.say(
                        when,
                        Text(f"{move} · the cancel takes effect here", style="bold yellow"),
                        why="The next state boundary: the copy step is over, nothing more will "
                        "start, and the drives are packed to go back.",
                        wire=wire,
                    )
                else:
                    self.say(when, f"{move} · every drive copied")
            case _, ("Completed" | "Closed"):
                text = Text(f"{move} · cancelRequested {str(job.cancel_requested).lower()}")
                text.append(f" · outcome {data.get('outcome')}", style="bold")
                why = "Kept 90 days, then deleted."
                if job.cancel_requested:
                    why = (
                        "A cancelled job has no state of its own: it ends Completed with the "
                        "flag set (and outcome cancelled), and is kept 90 days like any other."
                    )
                why_once = self._once(f"ended-{job.cancel_requested}", why)
                self.say(when, text, why=why_once, wire=wire if name == MAIN else ())
            case _:
                self.say(when, move)

    def _drive(self, when: float, name: str, data: dict[str, object]) -> None:
        job = self.board.jobs[name]
        drive = job.drives[str(data["driveId"])]
        label = f"  {name}: drive {drive.drive}"
        if data["to"] == "Transferring":
            self.say(when, Text(f"{label} starts copying ({size(drive.size)})", style="dim"))
        elif data["to"] in ("Completed", "CompletedMoreInfo"):
            if drive.at_cancel is not None:
                after = size(max(0, drive.copied - drive.at_cancel))
                self.say(
                    when,
                    Text(f"{label} finished after the cancel: {after} copied since the request"),
                    why=self._once(
                        "ran-on", "Best effort: a transfer in flight is never interrupted."
                    ),
                )
            else:
                self.say(when, Text(f"{label} copied ({size(drive.copied)})", style="dim"))

    def fast_forward(self, when: float, how: str) -> None:
        """Every job has ended: say how the 90 days of retention are passed."""
        self.say(
            when,
            Text("every job has ended: fast-forward to the end of retention", style="bold"),
            why=how,
        )


def _hours(duration: str) -> str:
    return f"{parse_duration(duration) / 3600:g} h"


def _accepted_why(state: str) -> str:
    match state:
        case "Creating":
            return "Nothing has shipped yet: the job ends at once, Creating → Completed."
        case "Shipping":
            return (
                "The package is already with the carrier: it still arrives, then the copy "
                "step is skipped and the drives go back unread."
            )
        case "Received":
            return "No drive has started: none will, and the copy step is skipped."
        case _:
            return "Best effort: drives already copying keep going; drives not started never will."
