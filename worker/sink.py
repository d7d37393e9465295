"""Where status goes: the sink protocols.

The :class:`~worker.relay.OutboxRelay` hands committed status messages to a
:class:`StatusSink`: the worker's MQTT link, or :class:`~worker.memory_bus.MemoryBus` in
a simulation or a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from worker.status import StatusMessage

__all__ = ["ImmediateSink", "StatusSink"]


class StatusSink(Protocol):
    """Something that publishes status messages (an MQTT broker, a list in memory)."""

    async def ready(self) -> None:
        """Return once the sink can take messages (at once for an in-memory sink)."""
        ...

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        """Publish ``messages`` in order; return once the sink holds them all.

        Raise :class:`~worker.errors.PublishError` naming the delivered ones if only some
        made it (or none, when the sink is not ready).
        """
        ...


@runtime_checkable
class ImmediateSink(StatusSink, Protocol):
    """A sink that takes messages at once and cannot fail (one in memory): the running
    relay hands it each burst of commits from one loop callback, with no task or await."""

    def deliver(self, messages: Sequence[StatusMessage]) -> None:
        """Take ``messages``, in order."""
        ...
