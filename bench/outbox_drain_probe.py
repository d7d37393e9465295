"""Where the drain's time goes: a timeline of OutboxRelay + MqttLink, batch by batch.

``python -m bench.outbox_drain_probe [--messages N] [--batch B]``

Commits N snapshot messages into a SQLiteStore, starts a Mosquitto of its own (no
subscriber: this looks at the publisher only), and drains the outbox through the real
:class:`~worker.relay.OutboxRelay` (its default batch unless ``--batch``) and
:class:`~worker.mqtt.MqttLink` (window 100), with thin timing wrappers around
``store.pending``, ``store.ack`` and ``link.publish`` of this one store and link. It prints:

* per batch: how long ``publish`` took, and the **tail**: the time from the last PUBLISH
  handed to paho (of any batch) until the batch's last PUBACK. The relay hands the next
  batch over while one awaits its PUBACKs, so only a batch with none behind it (the last)
  shows a tail: the window running dry;
* total time in ``ack`` and ``pending`` (``pending`` and ``pending_after``); the SQLite
  transactions and UPDATE statements ``ack`` ran and the rows they marked (a SQL trace; it
  adds a little to the ``ack`` time), and the bytes the process wrote during ``ack``
  (``/proc/self/io``: the WAL traffic of the acknowledgements);
* event-loop iterations per message, and the process CPU per message.

``worker/`` runs as it is: the wrappers are instance attributes of this one store, link,
paho client and event loop. They and the trace cost CPU of their own, so take CPU per
message from :mod:`bench.mqtt_throughput` rather than from here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from bench import cli
from bench.harness import NO_INFLIGHT_CAP, connected, mosquitto
from bench.messages import make_messages
from bench.procfs import bytes_written, own_cpu
from worker import (
    Clock,
    Commit,
    Ledger,
    OutboxEntry,
    OutboxRelay,
    SQLiteStore,
    StatusMessage,
    configure_logging,
)
from worker.mqtt import BrokerConfig, MqttLink

__all__ = ["main"]


class Probe:
    def __init__(self) -> None:
        self.publish: list[float] = []
        self.tail: list[float] = []
        self.ack: list[float] = []
        self.ack_bytes = 0
        self.acking = False
        self.ack_rows = 0
        self.ack_statements = 0
        self.ack_transactions = 0
        self.pending = 0.0
        self.last_handed = 0.0
        self.iterations = 0


def _count_transactions(db: sqlite3.Connection, probe: Probe) -> None:
    """Count, while ``probe.acking``, the transactions and UPDATE statements the connection
    runs: an explicit ``COMMIT``, or a write statement outside a transaction (autocommit)."""

    def trace(statement: str) -> None:
        if not probe.acking:
            return
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb == "UPDATE":
            probe.ack_statements += 1
        if verb == "COMMIT" or (verb in {"UPDATE", "INSERT", "DELETE"} and not db.in_transaction):
            probe.ack_transactions += 1

    db.set_trace_callback(trace)


async def _drain(
    port: int, workdir: Path, messages: list[StatusMessage], batch: int | None, probe: Probe
) -> None:
    store = SQLiteStore(workdir / "outbox.db")
    for start in range(0, len(messages), 3):
        store.commit(Commit(messages=messages[start : start + 3]))
    ledger = Ledger(store, Clock())
    link = MqttLink(
        BrokerConfig(host="127.0.0.1", port=port, protocol="5"), worker_id="probe", meta=ledger
    )
    pending_after = store.pending_after
    ack, publish = store.ack, link.publish
    _count_transactions(store._db, probe)

    def timed_pending_after(after: int, limit: int) -> list[OutboxEntry]:
        started = time.perf_counter()
        try:
            return pending_after(after, limit)
        finally:
            probe.pending += time.perf_counter() - started

    def timed_ack(ids: Sequence[int]) -> None:
        probe.acking = True
        started, written = time.perf_counter(), bytes_written()
        changes = store._db.total_changes
        try:
            ack(ids)
        finally:
            probe.ack.append(time.perf_counter() - started)
            probe.ack_bytes += bytes_written() - written
            probe.ack_rows += store._db.total_changes - changes
            probe.acking = False

    async def timed_publish(batch: Sequence[StatusMessage]) -> None:
        started = time.perf_counter()
        await publish(batch)
        done = time.perf_counter()
        probe.publish.append(done - started)
        probe.tail.append(done - probe.last_handed)

    # Instance attributes shadow the methods for this one store and link only
    # (``SQLiteStore.pending`` reads through ``pending_after``, so timing that one covers both).
    setattr(store, "pending_after", timed_pending_after)  # noqa: B010
    setattr(store, "ack", timed_ack)  # noqa: B010
    setattr(link, "publish", timed_publish)  # noqa: B010
    relay = OutboxRelay(ledger, link) if batch is None else OutboxRelay(ledger, link, batch=batch)
    async with connected(link):
        client = link._client
        assert client is not None
        paho = client._client
        paho_publish = paho.publish

        def handed(*args: object, **kwargs: object) -> object:
            probe.last_handed = time.perf_counter()
            return paho_publish(*args, **kwargs)  # type: ignore[arg-type]

        setattr(paho, "publish", handed)  # noqa: B010
        loop = asyncio.get_running_loop()
        run_once = loop._run_once  # type: ignore[attr-defined]

        def counted() -> None:
            probe.iterations += 1
            run_once()

        setattr(loop, "_run_once", counted)  # noqa: B010
        started, cpu = time.perf_counter(), own_cpu()
        sent = await relay.drain()
        elapsed, cpu = time.perf_counter() - started, own_cpu() - cpu
        setattr(loop, "_run_once", run_once)  # noqa: B010
    store.close()

    def ms(values: list[float]) -> str:
        return " ".join(f"{v * 1e3:.0f}" for v in values[:10])

    print(f"{sent:,} messages in {elapsed:.2f} s = {sent / elapsed:,.0f} acked msg/s")
    print(
        f"  CPU {cpu / sent * 1e6:.1f} µs/msg ({cpu / elapsed:.0%} of a core); "
        f"event-loop iterations {probe.iterations / sent:.2f} per message"
    )
    print(
        f"  {len(probe.publish)} batches of up to {relay.batch:,}; publish per batch: median "
        f"{statistics.median(probe.publish) * 1e3:.1f} ms (first: {ms(probe.publish)})"
    )
    print(
        f"  tail, last PUBLISH handed to paho -> batch acknowledged: median "
        f"{statistics.median(probe.tail) * 1e3:.1f} ms, total {sum(probe.tail):.2f} s "
        f"(first: {ms(probe.tail)})"
    )
    transactions = probe.ack_transactions
    print(
        f"  store.ack: {sum(probe.ack):.2f} s = {sum(probe.ack) / sent * 1e6:.1f} µs/msg, "
        f"median {statistics.median(probe.ack) * 1e3:.1f} ms per batch; "
        f"{len(probe.ack)} calls, {transactions} transactions, "
        f"{probe.ack_statements:,} UPDATE statements, {probe.ack_rows:,} rows "
        f"({probe.ack_rows / max(transactions, 1):,.0f} acks per transaction); "
        f"{probe.ack_bytes / 1e6:.1f} MB written ({probe.ack_bytes / sent:,.0f} B/msg)"
    )
    print(f"  store.pending: {probe.pending:.2f} s = {probe.pending / sent * 1e6:.1f} µs/msg")


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("bench.outbox_drain_probe", __doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--payload", type=int, default=300)
    parser.add_argument("--batch", type=int, help="OutboxRelay batch (default: the relay's)")
    args = parser.parse_args(argv)
    configure_logging(level="warning", fmt="json", stream=sys.stderr)
    messages = make_messages(args.messages, args.payload)
    with (
        tempfile.TemporaryDirectory(prefix="drivesim-probe-") as scratch,
        mosquitto(Path(scratch) / "broker", extra_config=NO_INFLIGHT_CAP) as broker,
    ):
        anyio.run(_drain, broker.port, Path(scratch), messages, args.batch, Probe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
