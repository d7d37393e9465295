"""A broker in memory: the status sink of simulations and tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from worker.status import StatusMessage

__all__ = ["MemoryBus"]


class MemoryBus:
    """A broker in memory: every message in order, plus the retained map.

    ``keep=False`` keeps only the retained map (and tells subscribers): ``messages`` stays
    empty, so a long simulation does not hold its whole stream.
    """

    def __init__(self, *, keep: bool = True) -> None:
        self.messages: list[StatusMessage] = []
        self.retained: dict[str, bytes] = {}
        self._keep = keep
        self._subscribers: list[Callable[[StatusMessage], None]] = []

    async def ready(self) -> None:
        pass

    def subscribe(self, callback: Callable[[StatusMessage], None]) -> None:
        """Call ``callback`` with each message as it is published."""
        self._subscribers.append(callback)

    async def publish(self, messages: Sequence[StatusMessage]) -> None:
        self.deliver(messages)

    def deliver(self, messages: Sequence[StatusMessage]) -> None:
        if self._keep:
            self.messages.extend(messages)
        for message in messages:
            if message.retain:
                if message.payload:
                    self.retained[message.topic] = message.payload
                else:
                    self.retained.pop(message.topic, None)
            for callback in self._subscribers:
                callback(message)
