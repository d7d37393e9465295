"""A worker with one planted bug: proof that a live run's invariant checks catch real faults.

Run as ``python -m tests.simulator.live.planted BUG [drivesim args...]``, which is what
:class:`~simulator.live.run.LiveRun` starts when given
``program=(sys.executable, "-m", "tests.simulator.live.planted", BUG)``. The bug is planted by
monkeypatching worker code in this process only; then ``drivesim`` runs as usual. Test-only:
nothing here is imported by the worker or the simulator.

Bugs:

``drop-status``
    The MQTT link silently drops one job snapshot on its way to the broker (the first
    ``.../jobs/<job>/state`` message with seq :data:`DROP_SEQ`) yet reports it delivered, so
    the outbox marks it sent and no subscriber ever gets it. Seq 5 is a change that does not
    move the job's state (a checkpoint of its first transfer, or the cancel), so the stream
    the observer receives still moves along legal edges: only the delivery checks
    (``observed/every-change``, ``observed/seq-without-gaps``) can tell.

``start-after-cancel``
    The copy step forgets an accepted cancel: :func:`worker.changes.start_drive` starts
    drives regardless of ``cancelRequested``. The rule has two more guards in front of it,
    which the bug must also take down for a waiting drive to reach ``start_drive`` at all:
    the pipeline stops the wait of a cancelled job's drives, and
    :func:`worker.changes.settle` skips the drives still waiting. Caught by
    ``no-start-after-cancel`` (on the store's history) and ``observed/no-start-after-cancel``.
"""

from __future__ import annotations

import os

# A bug is planted by patching Python functions: the worker runs its source, not the modules
# compiled by mypyc, whose calls to each other no patch reaches.
os.environ["DRIVESIM_PURE"] = "1"

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from simulator.cli import main
from worker import changes
from worker.errors import PublishError
from worker.mqtt.link import MqttLink
from worker.record import JobRecord
from worker.status import TOPIC_PREFIX, Event, StatusMessage

__all__ = ["BUGS", "DROP_SEQ", "run"]

#: ``drop-status`` drops the first job snapshot with this seq.
DROP_SEQ = 5

Change = TypeVar("Change", bound=Callable[..., list[Event]])


def plant_drop_status() -> None:
    publish = MqttLink.publish
    dropped: list[StatusMessage] = []

    def victim(messages: Sequence[StatusMessage]) -> int | None:
        if dropped:
            return None  # one message only
        for index, message in enumerate(messages):
            state = f"{TOPIC_PREFIX}/jobs/{message.job}/state"
            if message.topic == state and message.seq == DROP_SEQ and message.payload:
                return index
        return None

    async def lossy(self: MqttLink, messages: Sequence[StatusMessage]) -> None:
        index = victim(messages)
        if index is None:
            return await publish(self, messages)
        dropped.append(messages[index])
        print(f"planted bug: dropping {messages[index].topic} seq {DROP_SEQ}", file=sys.stderr)
        try:
            await publish(self, [*messages[:index], *messages[index + 1 :]])
        except PublishError as exc:
            # Indices into the shortened batch -> into the caller's; the dropped one "went".
            exc.delivered = sorted({i + (i >= index) for i in exc.delivered} | {index})
            raise

    MqttLink.publish = lossy  # type: ignore[method-assign]


def _blind_to_cancel(change: Change) -> Change:
    """``change`` run as if no cancel had been requested of the job."""

    @functools.wraps(change)
    def blind(record: JobRecord, *args: Any, **kwargs: Any) -> list[Event]:
        props = record.job.properties
        requested, props.cancel_requested = props.cancel_requested, False
        try:
            events: list[Event] = change(record, *args, **kwargs)
        finally:
            props.cancel_requested = requested
        return events

    return cast(Change, blind)


def plant_start_after_cancel() -> None:
    # The bug itself: a bay that comes free starts the next drive, cancel or not.
    changes.start_drive = _blind_to_cancel(changes.start_drive)
    # The guard behind it: drives still waiting are not skipped when the job settles (in
    # the cancel itself, and as each drive finishes).
    changes.settle = _blind_to_cancel(changes.settle)


BUGS: dict[str, Callable[[], None]] = {
    "drop-status": plant_drop_status,
    "start-after-cancel": plant_start_after_cancel,
}


def run(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in BUGS:
        bugs = ",".join(BUGS)
        usage = f"usage: python -m tests.simulator.live.planted {{{bugs}}} [drivesim args...]"
        print(usage, file=sys.stderr)
        return 2
    BUGS[argv[0]]()
    print(f"planted bug: {argv[0]}", file=sys.stderr)
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
