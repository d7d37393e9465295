"""The terminal timeline: lines in simulated-time order when answers come from elsewhere."""

from __future__ import annotations

import io
import json

from rich.console import Console

from simulator.console.timeline import Timeline
from simulator.run.answers import ActionResult
from worker import StatusMessage
from worker.clock import DEFAULT_EPOCH, Clock


def _event(clock: Clock, at: float, job: str, to: str) -> StatusMessage:
    payload = {
        "type": "com.example.stateChanged",
        "time": clock.isoformat(at),
        "data": {"from": "Creating", "to": to},
    }
    return StatusMessage(
        topic=f"importexport/v1/jobs/{job}/events",
        payload=json.dumps(payload).encode(),
        qos=1,
        retain=False,
        job=job,
        seq=1,
    )


def _answer(at: float, job: str) -> ActionResult:
    return ActionResult(
        index=0, job=job, do="ship", at=at, outcome="ok", detail="", expect=None, state=None
    )


def _times(out: io.StringIO) -> list[str]:
    return [line.split()[0] + " " + line.split()[1] for line in out.getvalue().splitlines()]


def test_held_answers_wait_until_the_stream_has_passed_their_time() -> None:
    """A live run hears the answer (stamped 00:02:00) before the event its request caused
    (00:01:00): held, the answer prints after it, before the next later event, and the
    last one on flush."""
    clock = Clock(epoch=DEFAULT_EPOCH)
    out = io.StringIO()
    timeline = Timeline(Console(file=out, width=200), DEFAULT_EPOCH, hold=True)
    timeline.on_action(_answer(120.0, "a"))
    timeline.on_message(_event(clock, 60.0, "a", "Shipping"))
    timeline.on_action(_answer(200.0, "b"))
    timeline.on_message(_event(clock, 180.0, "b", "Shipping"))
    timeline.on_message(_event(clock, 240.0, "c", "Shipping"))
    timeline.on_action(_answer(300.0, "c"))
    assert _times(out) == [
        "0d 00:01:00",
        "0d 00:02:00",
        "0d 00:03:00",
        "0d 00:03:20",
        "0d 00:04:00",
    ]
    timeline.flush()
    assert _times(out)[-1] == "0d 00:05:00"
    assert "» ship: ok" in out.getvalue().splitlines()[1]


def test_without_hold_lines_print_as_they_come() -> None:
    """In-process runs answer in the same instant as the change: printed at once."""
    clock = Clock(epoch=DEFAULT_EPOCH)
    out = io.StringIO()
    timeline = Timeline(Console(file=out, width=200), DEFAULT_EPOCH)
    timeline.on_action(_answer(60.0, "a"))
    timeline.on_message(_event(clock, 60.0, "a", "Shipping"))
    assert "» ship: ok" in out.getvalue().splitlines()[0]
