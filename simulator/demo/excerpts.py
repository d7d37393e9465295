"""The docs' excerpts of the demo, generated from the demo itself.

README.md and docs/best-effort-cancel.md quote what ``drivesim demo --virtual`` prints and
publishes: narration lines, the summary, status messages, the answer key of
``--compare``, and figures in their prose (a seq number, the bytes after the cancel). Each
quote sits between markers, and this module rewrites what is between them from a fresh
virtual run::

    <!-- begin demo:summary -->          a block (its code fence is generated too)
    <!-- end demo:summary -->
    <!-- demo:cancel-seq -->30<!-- /demo -->   a figure in a sentence

``python -m simulator.demo.excerpts`` rewrites the files; ``--check`` only says which
quotes differ (exit 1). tests/simulator/demo/test_excerpts.py runs the check.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from simulator.demo.board import Board
from simulator.demo.command import play_virtual
from simulator.demo.narration import Narrator
from simulator.demo.outcome import DemoOutcome, size
from simulator.demo.story import StoryOptions, demo_scenario
from simulator.demo.summary import print_summary
from worker import JobState, StatusMessage, configure_logging, decode_payload
from worker.states import CancelWindow

__all__ = ["FILES", "Capture", "capture", "check", "render", "rewrite"]

ROOT = Path(__file__).parents[2]
#: The files whose quotes are generated, relative to the repository root.
FILES = ("README.md", "docs/best-effort-cancel.md")
#: The width the excerpts are printed at (the docs' code blocks).
WIDTH = 88
MAIN = "contoso-import"
OTHER = "fabrikam-backup"
INDENT = " " * 10

BLOCK = re.compile(
    r"(?P<open><!-- begin demo:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- end demo:(?P=name) -->)",
    re.S,
)
INLINE = re.compile(
    r"(?P<open><!-- demo:(?P<name>[a-z0-9-]+) -->)(?P<body>.*?)(?P<close><!-- /demo -->)"
)


@dataclass(slots=True)
class Capture:
    """One virtual run of the default story: what it printed and what it published."""

    narration: list[str]
    summary: list[str]
    messages: list[StatusMessage]
    outcome: DemoOutcome
    #: ``--compare --cancel-at STATE``'s outcomes, keyed by (cancel state, policy).
    compare: dict[tuple[JobState, CancelWindow], DemoOutcome] = field(default_factory=dict)


def _console() -> Console:
    return Console(width=WIDTH, record=True, file=io.StringIO(), color_system=None, highlight=False)


def capture() -> Capture:
    """Run the story as ``drivesim demo --virtual`` does, and every ``--compare`` cell."""
    options = StoryOptions()
    console = _console()
    board = Board(demo_scenario(options))
    narrator = Narrator(console, board, options)
    narrator.intro("virtual time (--virtual): the clock jumps whenever everything waits", None)
    messages: list[StatusMessage] = []

    def on_message(message: StatusMessage) -> None:
        messages.append(message)
        board.apply(message)
        board.on_published(message)
        narrator.on_message(message)

    def on_ended(when: float) -> None:
        narrator.fast_forward(when, "")

    outcome = play_virtual(
        options, on_message=on_message, on_action=narrator.on_action, on_ended=on_ended
    )
    narration = [line.rstrip() for line in console.export_text().splitlines()]
    console = _console()
    print_summary(console, outcome)
    summary = [line.rstrip() for line in console.export_text().splitlines()]
    compare = {
        (state, policy): play_virtual(StoryOptions(policy, state))
        for state in (
            JobState.CREATING,
            JobState.SHIPPING,
            JobState.RECEIVED,
            JobState.TRANSFERRING,
            JobState.PACKAGING,
        )
        for policy in CancelWindow
    }
    return Capture(narration, summary, messages, outcome, compare)


# -- the narration excerpt ----------------------------------------------------------------


def _entries(lines: Sequence[str]) -> list[list[str]]:
    """Narration lines grouped by entry: a line with a time starts one."""
    entries: list[list[str]] = []
    for line in lines:
        if re.match(r"^\d+d \d\d:\d\d", line) or not entries:
            entries.append([line])
        elif line.strip():
            entries[-1].append(line)
    return [e for e in entries if re.match(r"^\d+d \d\d:\d\d", e[0])]


#: The README's excerpt: (text in an entry's first line, how many of its lines to keep).
README_PICKS = (
    (f"{MAIN} asks to cancel in", 1),
    (f"{MAIN}: cancel recorded", 5),
    (f"{OTHER} asks to cancel", 2),
    ("finished after the cancel", 2),
    (f"{MAIN}: drive 9CA995B3 skipped", 1),
    ("the cancel takes effect", 1),
    (f"{MAIN} asks to delete", 2),
    (f"{MAIN}: Packaging → Completed", 2),
    ("every job has ended", 1),
    (f"{MAIN}: deleted", 1),
)


def narration_excerpt(lines: Sequence[str], picks: Iterable[tuple[str, int]]) -> str:
    """The entries picked, in order, with ``…`` where lines were left out."""
    entries = _entries(lines)
    out: list[str] = []
    start = 0
    for text, keep in picks:
        index = next(
            i
            for i, entry in enumerate(entries[start:], start)
            if text in " ".join(line.strip() for line in entry[:2])
        )
        if out and out[-1] != f"{INDENT}…" and index > start:
            out.append(f"{INDENT}…")
        entry = entries[index]
        out.extend(entry[:keep])
        if keep < len(entry):
            out.append(f"{INDENT}…")
        start = index + 1
    while out and out[-1] == f"{INDENT}…":
        out.pop()
    return "\n".join(out)


# -- status messages ------------------------------------------------------------------------


def _body(message: StatusMessage) -> dict[str, Any]:
    body: dict[str, Any] | None = decode_payload(message.payload)
    if body is None:
        raise ValueError(f"{message.topic} (seq {message.seq}) has no payload")
    return body


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _verbatim(message: StatusMessage) -> str:
    return message.payload.decode("utf-8")


def _pick(body: dict[str, Any], keys: Sequence[str]) -> str:
    """The keys of an object, in its order, with ``…`` for what is left out."""
    parts = [f"{_compact(k)}:{_compact(body[k])}" for k in body if k in keys]
    return ",".join(parts)


def _drive_line(drive: dict[str, Any]) -> str:
    rest = _pick(drive, ("state", "copyStatus", "percentComplete", "bytesSucceeded"))
    return f'{{"driveId":{_compact(drive["driveId"])},…,{rest}}}'


def _snapshot(message: StatusMessage, *, drives: bool = True) -> str:
    """A job snapshot cut down to what the page discusses; the cuts marked ``…``."""
    body = _body(message)
    props = body["properties"]
    head = _pick(props, ("state", "cancelRequested", "percentComplete"))
    if drives:
        listed = ",\n ".join(_drive_line(d) for d in props["driveList"])
        drive_list = f'"driveList":[\n {listed}]'
    else:
        drive_list = f'"driveList":[…{len(props["driveList"])} drives…]'
    tail = _pick(body, ("seq", "simTime", "outcome"))
    return (
        f'{{"id":"/subscriptions/…/jobs/{body["name"]}","name":{_compact(body["name"])},…,'
        f'"properties":{{…,\n {head},{drive_list},…}},…,{tail}}}'
    )


def _of(messages: Sequence[StatusMessage], job: str, suffix: str) -> list[StatusMessage]:
    return [m for m in messages if m.job == job and m.topic.endswith(suffix)]


def _event(message: StatusMessage) -> str:
    return str(_body(message)["type"]).rsplit(".", 1)[-1]


def _events(messages: Sequence[StatusMessage], seq: int) -> list[StatusMessage]:
    return [m for m in _of(messages, MAIN, "/events") if m.seq == seq]


def _first_event(messages: Sequence[StatusMessage], kind: str, **data: str) -> StatusMessage:
    for message in _of(messages, MAIN, "/events"):
        body = _body(message)
        if _event(message) == kind and all(body["data"].get(k) == v for k, v in data.items()):
            return message
    raise LookupError(f"no {kind} event with {data}")


def _quote(*messages: StatusMessage, render: Callable[[StatusMessage], str] = _verbatim) -> str:
    """Topic, then payload, as ``mosquitto_sub -v`` groups them by topic."""
    out: list[str] = []
    topic = None
    for message in messages:
        if not message.payload:
            out.append(f"{message.topic}  (empty payload)")
            topic = None
            continue
        if message.topic != topic:
            if out:
                out.append("")
            out.append(message.topic)
            topic = message.topic
        out.append(render(message))
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Moments:
    """The seq numbers and messages of the story's turns."""

    cancel: StatusMessage
    progress: StatusMessage
    drive_done: StatusMessage
    drive_done_event: StatusMessage
    effect: int
    completed: StatusMessage
    completed_event: StatusMessage
    deleted: list[StatusMessage]
    other_packaging: StatusMessage
    other_next: StatusMessage


def moments(messages: Sequence[StatusMessage]) -> Moments:
    cancel_event = _first_event(messages, "cancelRequested")
    seq = cancel_event.seq
    first_running = _body(cancel_event)["data"]["drivesInFlight"][0]
    progress = [
        m
        for m in _of(messages, MAIN, "/progress")
        if m.seq < seq and _body(m)["driveId"] == first_running
    ][-1]
    done_event = _first_event(messages, "driveStateChanged", to="Completed")
    drive = _body(done_event)["data"]["driveId"]
    drive_done = next(
        m for m in _of(messages, MAIN, f"/drives/{drive}/state") if m.seq == done_event.seq
    )
    effect = _first_event(messages, "stateChanged", to="Packaging").seq
    completed_event = _first_event(messages, "stateChanged", to="Completed")
    completed = next(
        m for m in _of(messages, MAIN, f"{MAIN}/state") if m.seq == completed_event.seq
    )
    deleted_event = _first_event(messages, "jobDeleted")
    deleted = [m for m in messages if m.job == MAIN and m.seq == deleted_event.seq]
    other_states = [m for m in _of(messages, OTHER, f"{OTHER}/state") if m.payload]
    packaging = next(m for m in other_states if _body(m)["properties"]["state"] == "Packaging")
    after = next(m for m in other_states if m.seq > packaging.seq)
    return Moments(
        cancel_event,
        progress,
        drive_done,
        done_event,
        effect,
        completed,
        completed_event,
        deleted,
        packaging,
        after,
    )


def _clock(message: StatusMessage) -> str:
    """The time of day of a message's simTime (hh:mm)."""
    return str(_body(message)["simTime"])[11:16]


# -- the answer key of --compare ------------------------------------------------------------


def _cell(outcome: DemoOutcome) -> str:
    cancel = outcome.cancel
    if cancel.outcome == "not-triggered":
        return "never asked"
    if outcome.cancel_recorded is None:
        copied = f"{outcome.drives_copied} of {len(outcome.drives)} copied"
        return f"CancelTooLate; {copied}; {outcome.outcome}"
    ran = len(outcome.finished_after)
    skipped = len(outcome.skipped)
    if ran == 0 and skipped == 0:
        what = "ends at once, nothing shipped"
    elif ran == 0:
        what = f"{skipped} drives skipped"
    else:
        what = f"{ran} ran on ({size(outcome.bytes_after)}), {skipped} skipped"
    return f"{cancel.outcome}; {what}; {outcome.outcome}"


def answer_key(compare: dict[tuple[JobState, CancelWindow], DemoOutcome]) -> str:
    policies = list(CancelWindow)
    rows = [
        "| cancel asked in | " + " | ".join(str(p) for p in policies) + " |",
        "|---|" + "---|" * len(policies),
    ]
    for state in dict.fromkeys(state for state, _ in compare):
        cells = [_cell(compare[state, policy]) for policy in policies]
        rows.append(f"| {state} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# -- rendering ------------------------------------------------------------------------------


def _fence(text: str) -> str:
    return f"```\n{text}\n```\n"


def render(cap: Capture) -> tuple[dict[str, str], dict[str, str]]:
    """The blocks and the inline figures, by name."""
    m = moments(cap.messages)
    outcome = cap.outcome
    after = {d.drive: d.after_cancel for d in outcome.drives}
    done_drive = _body(m.drive_done)["driveId"]
    blocks = {
        "narration": _fence(narration_excerpt(cap.narration, README_PICKS)),
        "summary": _fence("\n".join(cap.summary).strip("\n")),
        "progress": _fence(_quote(m.progress)),
        "cancel": _fence(
            _quote(
                next(
                    x
                    for x in cap.messages
                    if x.seq == m.cancel.seq and x.topic.endswith(f"{MAIN}/state")
                ),
                render=_snapshot,
            )
            + "\n\n"
            + _quote(m.cancel)
        ),
        "drive-done": _fence(_quote(m.drive_done) + "\n\n" + _quote(m.drive_done_event)),
        "effect": _fence(_quote(*_events(cap.messages, m.effect))),
        "completed": _fence(
            _quote(m.completed, render=lambda x: _snapshot(x, drives=False))
            + "\n\n"
            + _quote(m.completed_event)
        ),
        "deleted": _fence(_quote(*m.deleted)),
        "answer-key": answer_key(cap.compare) + "\n",
    }
    epoch = demo_scenario(outcome.options).epoch
    completed_at = str(_body(m.completed)["simTime"])
    deleted_at = str(_body(m.deleted[-1])["time"])
    inline = {
        "cancel-seq": str(m.cancel.seq),
        "drive-done-seq": str(m.drive_done.seq),
        "drive-done-after": size(after[done_drive]),
        "effect-seq": str(m.effect),
        "completed-seq": str(m.completed.seq),
        "deleted-seq": str(m.deleted[-1].seq),
        "bytes-after": size(outcome.bytes_after),
        "other-packaging-seq": str(m.other_packaging.seq),
        "other-packaging-at": _clock(m.other_packaging),
        "other-next-seq": str(m.other_next.seq),
        "other-next-at": _clock(m.other_next),
        "late-cancel-at": (epoch + timedelta(seconds=outcome.late_cancel.at)).strftime("%H:%M"),
        "deleted-at": deleted_at[11:16],
        "completed-at": completed_at[11:19],
    }
    return blocks, inline


def rewrite(text: str, blocks: dict[str, str], inline: dict[str, str]) -> str:
    """The text with every marked quote replaced; an unknown name is an error."""

    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in blocks:
            raise KeyError(f"no demo excerpt named {name!r}")
        return match["open"] + blocks[name] + match["close"]

    def figure(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in inline:
            raise KeyError(f"no demo figure named {name!r}")
        return match["open"] + inline[name] + match["close"]

    return INLINE.sub(figure, BLOCK.sub(block, text))


def check(root: Path = ROOT) -> list[str]:
    """The files whose quotes differ from a fresh run (empty: all agree)."""
    blocks, inline = render(capture())
    stale = []
    for name in FILES:
        text = (root / name).read_text(encoding="utf-8")
        if rewrite(text, blocks, inline) != text:
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.demo.excerpts",
        description="Rewrite the demo's excerpts in README.md and docs/best-effort-cancel.md "
        "from a fresh `drivesim demo --virtual` run.",
    )
    parser.add_argument("--check", action="store_true", help="only report the files that differ")
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    blocks, inline = render(capture())
    stale = []
    for name in FILES:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, blocks, inline)
        if new != text:
            stale.append(name)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    verb = "differ" if args.check else "rewritten"
    for name in stale:
        sys.stdout.write(f"{name}: {verb}\n")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
