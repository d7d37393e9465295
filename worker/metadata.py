"""A little durable metadata beside the jobs: the protocol, and one kept in memory.

A part that must remember something across restarts, and needs nothing else of the
store, takes a :class:`Metadata`: the MQTT link keeps its connection epoch and the protocol
version each broker took. The :class:`~worker.ledger.Ledger` is the worker's (it commits
a note with the simulated time); :class:`MemoryMetadata` serves a link that publishes for
a process that keeps nothing (a demo, a benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["MemoryMetadata", "Metadata"]


class Metadata(Protocol):
    """Keys and values that outlive a connection, and, where durable, the process."""

    def get_meta(self, key: str) -> bytes | None:
        """The value noted under ``key``, or None."""
        ...

    def note(self, meta: Mapping[str, bytes]) -> None:
        """Set every key of ``meta`` at once."""
        ...


class MemoryMetadata:
    """Metadata in a dict, for the life of the process."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    def get_meta(self, key: str) -> bytes | None:
        return self._values.get(key)

    def note(self, meta: Mapping[str, bytes]) -> None:
        self._values.update(meta)
