"""One publisher run of the MQTT throughput benchmark, in a process of its own.

``python -m bench.mqtt_cases --case CASE --port P --messages N --payload B --workdir D
--result FILE`` connects to the broker, then starts the clock (``t0``, Unix time) and
publishes the N messages of :func:`bench.messages.make_messages` at QoS 1, and writes a JSON
result: ``t0``, ``t_acked`` (every PUBACK in), the CPU seconds of this process over the timed
phase and what it published. :mod:`bench.mqtt_throughput` runs it; the independent
subscriber tells when the last message arrived.

Cases (see :data:`CASES`):

* ``drivesim``: the real path. N messages are committed into a :class:`~worker.SQLiteStore`
  (WAL file in ``workdir``) before the clock starts; then :meth:`OutboxRelay.drain` moves
  them through :class:`~worker.mqtt.MqttLink` (window 100) and acknowledges them.
* ``drivesim-live``: the same relay and link, while a producer task commits the messages
  (``--per-commit`` per transaction, one transaction per event-loop turn, as the
  pipeline's tasks commit one change at a time); committing is inside the timed phase.
* ``aiomqtt``: one aiomqtt client, ``max_inflight_messages=100``, ``pending_calls_threshold``
  raised, an ``asyncio.Semaphore(100)`` and one task per publish.
* ``paho``: paho-mqtt with its ``loop_start`` network thread, inflight 100, counting
  ``on_publish``.
* ``paho-nothread``: paho-mqtt without a thread: ``publish`` writes to the socket and the
  main thread runs ``loop(0)`` every 32 publishes.

The plain publishers send byte-identical packets to the drivesim ones: same topics, same
retained flag, same payloads with the epoch field :class:`~worker.mqtt.MqttLink` adds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import anyio.lowlevel
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.harness import connected
from bench.messages import DEFAULT_JOBS, make_messages, wire_payload
from bench.procfs import own_cpu
from worker import Clock, Commit, Ledger, OutboxRelay, SQLiteStore, StatusMessage, configure_logging
from worker.ledger import SIM_NOW
from worker.mqtt import BrokerConfig, MqttLink

__all__ = ["CASES", "main"]

#: Case name -> one-line description, in the order the benchmark runs them.
CASES: dict[str, str] = {
    "drivesim": "(a) SQLite outbox, pre-committed → OutboxRelay.drain → MqttLink, window 100",
    "drivesim-live": "(a2) as (a), while a producer commits 3 messages per transaction",
    "aiomqtt": "(b) plain aiomqtt: 1 client, Semaphore(100) + a task per publish, inflight 100",
    "paho": "(c) raw paho: loop_start thread, inflight 100, counting on_publish",
    "paho-nothread": "(c2) raw paho, no thread: publish + loop(0) every 32, inflight 100",
}

WINDOW = 100
#: The epoch of the first connection of a fresh store: what MqttLink stamps on snapshots.
FIRST_EPOCH = 1


class Timer:
    """Wall-clock start (Unix time, comparable with the subscriber's) and CPU of the process
    over the timed phase, with an optional cProfile of it."""

    def __init__(self, profile: str | None) -> None:
        self.profile_path = profile
        self.profiler = cProfile.Profile() if profile else None
        self.t0 = self.t_end = 0.0
        self.cpu = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        cpu0 = own_cpu()
        if self.profiler is not None:
            self.profiler.enable()
        self.t0 = time.time()
        try:
            yield
        finally:
            self.t_end = time.time()
            if self.profiler is not None:
                self.profiler.disable()
            self.cpu = own_cpu() - cpu0
            if self.profiler is not None and self.profile_path:
                self.profiler.dump_stats(self.profile_path)


def _chunks(items: Sequence[StatusMessage], size: int) -> Iterator[Sequence[StatusMessage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _commit(store: SQLiteStore, clock: Clock, chunk: Sequence[StatusMessage]) -> None:
    """One transaction as :meth:`Ledger._commit` writes it: the messages and ``sim_now``."""
    store.commit(Commit(messages=chunk, meta={SIM_NOW: repr(clock.now()).encode()}))


async def _drivesim(args: argparse.Namespace, timer: Timer, *, live: bool) -> dict[str, Any]:
    messages = make_messages(args.messages, args.payload, jobs=args.jobs)
    store = SQLiteStore(Path(args.workdir) / "outbox.db")
    clock = Clock()
    ledger = Ledger(store, clock)
    commit_s = 0.0
    if not live:
        started = time.perf_counter()
        for chunk in _chunks(messages, args.per_commit):
            _commit(store, clock, chunk)
        commit_s = time.perf_counter() - started
    config = BrokerConfig(host="127.0.0.1", port=args.port, protocol=args.protocol)
    link = MqttLink(config, worker_id="bench", meta=ledger, window=WINDOW)
    relay = OutboxRelay(ledger, link)
    sent = 0
    async with connected(link):
        epoch = link.epoch

        if live:
            committed = [anyio.Event()]

            async def produce() -> None:
                for chunk in _chunks(messages, args.per_commit):
                    _commit(store, clock, chunk)
                    committed[0].set()
                    await anyio.lowlevel.checkpoint()

            with timer.timed():
                async with anyio.create_task_group() as inner:
                    inner.start_soon(produce)
                    # OutboxRelay.run's loop, woken by the producer instead of the Ledger
                    # (the producer commits through the store, not through Ledger.update).
                    while True:
                        sent += await relay.drain()
                        if sent >= len(messages):
                            break
                        await committed[0].wait()
                        committed[0] = anyio.Event()
        else:
            with timer.timed():
                sent = await relay.drain()
    left = len(store.pending(len(messages) + 1))
    store.close()
    return {
        "published": sent,
        "left_in_outbox": left,
        "epoch": epoch,
        "precommit_s": commit_s,
    }


async def _aiomqtt(args: argparse.Namespace, timer: Timer) -> dict[str, Any]:
    messages = make_messages(args.messages, args.payload, jobs=args.jobs)
    packets = [(m.topic, wire_payload(m, FIRST_EPOCH)) for m in messages]
    protocol = aiomqtt.ProtocolVersion.V5 if args.protocol == "5" else aiomqtt.ProtocolVersion.V311
    client = aiomqtt.Client(
        "127.0.0.1",
        args.port,
        identifier="bench-aiomqtt",
        protocol=protocol,
        max_inflight_messages=WINDOW,
    )
    client.pending_calls_threshold = 10**9
    published = 0
    async with client:
        window = asyncio.Semaphore(WINDOW)

        async def one(topic: str, payload: bytes) -> None:
            nonlocal published
            try:
                await client.publish(topic, payload, qos=1, retain=True)
                published += 1
            finally:
                window.release()

        tasks: set[asyncio.Task[None]] = set()
        with timer.timed():
            for topic, payload in packets:
                await window.acquire()
                task = asyncio.create_task(one(topic, payload))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
    return {"published": published}


def _paho(args: argparse.Namespace, timer: Timer, *, thread: bool) -> dict[str, Any]:
    messages = make_messages(args.messages, args.payload, jobs=args.jobs)
    packets = [(m.topic, wire_payload(m, FIRST_EPOCH)) for m in messages]
    protocol = MQTTProtocolVersion.MQTTv5 if args.protocol == "5" else MQTTProtocolVersion.MQTTv311
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=protocol)
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    done = threading.Event()
    total = len(packets)
    acked = 0

    def on_connect(*_: Any) -> None:
        connected.set()

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == total:
            done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port, keepalive=60)
    if thread:
        client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("paho did not connect")
        with timer.timed():
            for topic, payload in packets:
                client.publish(topic, payload, qos=1, retain=True)
            if not done.wait(300):
                raise RuntimeError(f"only {acked} of {total} PUBACKs")
        client.disconnect()
        client.loop_stop()
    else:
        deadline = time.monotonic() + 10
        while not connected.is_set():
            client.loop(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError("paho did not connect")
        with timer.timed():
            for i, (topic, payload) in enumerate(packets):
                client.publish(topic, payload, qos=1, retain=True)
                if i % 32 == 31:
                    client.loop(0)
            deadline = time.monotonic() + 300
            while acked < total and time.monotonic() < deadline:
                client.loop(0.01)
        client.disconnect()
    return {"published": acked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One publisher run of bench.mqtt_throughput.")
    parser.add_argument("--case", choices=list(CASES), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--payload", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--per-commit", type=int, default=3, help="messages per transaction")
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--result", required=True, help="write the JSON result here")
    parser.add_argument("--profile", help="write a cProfile of the timed phase here")
    args = parser.parse_args(argv)
    # As the worker runs by default: warnings and errors only, as JSON on stderr.
    configure_logging(level="warning", fmt="json", stream=sys.stderr)

    timer = Timer(args.profile)
    extra: dict[str, Any]
    if args.case == "drivesim":
        extra = anyio.run(lambda: _drivesim(args, timer, live=False))
    elif args.case == "drivesim-live":
        extra = anyio.run(lambda: _drivesim(args, timer, live=True))
    elif args.case == "aiomqtt":
        extra = asyncio.run(_aiomqtt(args, timer))
    else:
        extra = _paho(args, timer, thread=args.case == "paho")
    result = {
        "case": args.case,
        "t0": timer.t0,
        "t_acked": timer.t_end,
        "cpu_s": timer.cpu,
        **extra,
    }
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
