"""What-if patches for the drivesim cases: candidate fixes of the drain, applied at run time.

Nothing in ``worker/`` is edited: :func:`apply` replaces a few attributes in the benchmark's
own process (``python -m bench.mqtt_cases --whatif ack-tx,workers``), so the benchmark can
show what a fix would gain before anyone writes it. Each patch keeps the behaviour the
relay relies on: commit order on the wire, the ``delivered`` list of a broken batch.

* ``ack-tx``: :meth:`SQLiteStore.ack` in one transaction. As written, ``executemany`` runs
  with ``isolation_level=None``, so every acknowledged row is its own WAL transaction.
* ``fast-sem``: the window as ``anyio.Semaphore(window, fast_acquire=True)``. The default
  ``acquire`` yields to the event loop even when a slot is free, so every message gets an
  event-loop iteration (and an ``epoll`` and a ``send`` call) of its own.
* ``workers``: :meth:`MqttLink.publish` with ``window`` long-lived tasks taking messages in
  order from one iterator, instead of one task (``start_soon``) and one semaphore round per
  message.
* ``no-props``: no MQTT 5 ``ContentType`` property on each publish (paho packs it for
  every message in pure Python).
* ``batch5000``: :class:`OutboxRelay` batches of 5000 instead of 500, so the window drains
  and the relay stops for ``ack`` + ``pending`` ten times less often.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aiomqtt
import anyio

import worker.mqtt
from worker.bus import OutboxRelay
from worker.errors import PublishError
from worker.mqtt import MqttLink
from worker.sqlite_store import SQLiteStore
from worker.status import StatusMessage

__all__ = ["NOTES", "PATCHES", "apply"]


def _ack_in_one_transaction() -> None:
    def ack(self: SQLiteStore, ids: Sequence[int]) -> None:
        db = self._db
        with self._errors("acknowledging outbox entries"):
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("UPDATE outbox SET acked = 1 WHERE id = ?", [(i,) for i in ids])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    SQLiteStore.ack = ack  # type: ignore[method-assign]


class _FastSemaphoreAnyio:
    """``worker.mqtt``'s view of anyio, with ``Semaphore`` on the fast path."""

    def __getattr__(self, name: str) -> object:
        return getattr(anyio, name)

    @staticmethod
    def Semaphore(initial_value: int) -> anyio.Semaphore:
        return anyio.Semaphore(initial_value, fast_acquire=True)


def _fast_semaphore() -> None:
    # worker.mqtt calls anyio.Semaphore(...) through its module global ``anyio``.
    setattr(worker.mqtt, "anyio", _FastSemaphoreAnyio())  # noqa: B010


def _worker_pool() -> None:
    with_epoch = worker.mqtt._with_epoch

    async def publish(self: MqttLink, messages: Sequence[StatusMessage]) -> None:
        client = self._client
        if client is None:
            raise PublishError("not connected", delivered=[])
        delivered: list[int] = []
        epoch = self.epoch
        queue = iter(enumerate(messages))

        async def worker() -> None:
            # Taking the next message and handing it to paho happen in one step, so
            # the packets leave in commit order, as with one task per message.
            for index, message in queue:
                await client.publish(
                    message.topic,
                    with_epoch(message, epoch),
                    qos=message.qos,
                    retain=message.retain,
                    properties=self._properties(message),
                    timeout=30,
                )
                delivered.append(index)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(self.window, len(messages))):
                    tg.start_soon(worker)
        except* aiomqtt.MqttError as group:
            raise PublishError(
                f"publishing failed after {len(delivered)} of {len(messages)} messages",
                delivered=sorted(delivered),
            ) from group.exceptions[0]

    MqttLink.publish = publish  # type: ignore[method-assign]


def _no_properties() -> None:
    MqttLink._properties = lambda self, message: None  # type: ignore[method-assign]


def _batch_5000() -> None:
    defaults = OutboxRelay.__init__.__kwdefaults__
    assert defaults is not None
    assert "batch" in defaults
    defaults["batch"] = 5000


PATCHES: dict[str, Callable[[], None]] = {
    "ack-tx": _ack_in_one_transaction,
    "fast-sem": _fast_semaphore,
    "workers": _worker_pool,
    "no-props": _no_properties,
    "batch5000": _batch_5000,
}


#: One line per patch, for the report.
NOTES: dict[str, str] = {
    "ack-tx": "`SQLiteStore.ack` in one transaction instead of one autocommit per row",
    "fast-sem": "`anyio.Semaphore(window, fast_acquire=True)` in `MqttLink.publish`",
    "workers": "`MqttLink.publish` with `window` long-lived tasks instead of a task per message",
    "no-props": "no MQTT 5 `ContentType` property packed into every PUBLISH",
    "batch5000": "`OutboxRelay` batches of 5000 instead of 500",
}


def apply(names: Sequence[str]) -> None:
    """Apply the named patches (see :data:`PATCHES`) to this process."""
    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise ValueError(f"unknown what-if patch(es) {unknown}; known: {', '.join(PATCHES)}")
    for name in names:
        PATCHES[name]()
