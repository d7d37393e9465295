"""The benchmark's independent subscriber: ``mosquitto_sub`` (C) plus a counting wrapper.

Run as ``python -m bench.mqtt_subscriber --port P --count N``. It starts ``mosquitto_sub``
at QoS 1 on :data:`bench.messages.SUBSCRIPTION` and a probe topic, publishes probes with
``mosquitto_pub`` until one comes back (so the subscription is in place), and prints
``READY``. It then reads ``<unix time with ns> <payload>`` lines, counts unique payloads and
duplicates, and once all ``count`` unique messages are in, listens ``--linger`` seconds more
for late duplicates. It also checks that each job's ``seq`` never goes back. Finally it
prints one JSON line: ``received``, ``unique``, ``duplicates``, ``out_of_order``,
``first`` and ``last`` (receive times of the first and of the last new message: the one
that completed the set), ``timed_out``.

The C subscriber costs about 11 µs of CPU per message; this wrapper adds a line split, a set
lookup and two regex searches per message, in its own process, so nothing shares the
publisher's GIL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import subprocess
import sys
import time

from bench.messages import SUBSCRIPTION
from bench.subscriber import probe, sub_command

__all__ = ["PROBE_TOPIC", "main"]

PROBE_TOPIC = "bench/probe"
_PROBE = b"__probe__"
_JOB = re.compile(rb'"name":"([^"]*)"')
_SEQ = re.compile(rb'"seq":(\d+)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    parser.add_argument("--linger", type=float, default=0.3, help="listen for duplicates (s)")
    args = parser.parse_args(argv)

    version = "mqttv5" if args.protocol == "5" else "mqttv311"
    sub = subprocess.Popen(
        sub_command(args.port, [SUBSCRIPTION, PROBE_TOPIC], "%U %p", version=version),
        stdout=subprocess.PIPE,
    )
    assert sub.stdout is not None
    fd = sub.stdout.fileno()
    os.set_blocking(fd, False)
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)

    seen: set[bytes] = set()
    last_seq: dict[bytes, int] = {}
    received = duplicates = out_of_order = 0
    first = last = 0.0
    ready = False
    pending = b""
    start = time.monotonic()
    deadline = start + args.timeout
    linger_until: float | None = None
    next_probe = start
    try:
        while True:
            now = time.monotonic()
            if linger_until is not None and now >= linger_until:
                break
            if now >= deadline:
                break
            if not ready and now >= next_probe:
                probe(args.port, PROBE_TOPIC, _PROBE.decode(), version=version)
                next_probe = time.monotonic() + 0.1
            wake = linger_until if linger_until is not None else deadline
            if not ready:
                wake = min(wake, next_probe)
            if not selector.select(max(0.0, wake - time.monotonic())):
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                break  # mosquitto_sub exited
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                stamp, _, payload = line.partition(b" ")
                if payload == _PROBE:
                    if not ready:
                        ready = True
                        print("READY", flush=True)
                    continue
                received += 1
                if payload in seen:
                    duplicates += 1
                    continue
                seen.add(payload)
                last = float(stamp)
                job, seq = _JOB.search(payload), _SEQ.search(payload)
                if job and seq:
                    number = int(seq.group(1))
                    if number < last_seq.get(job.group(1), 0):
                        out_of_order += 1
                    last_seq[job.group(1)] = number
                if len(seen) == 1:
                    first = last
                if len(seen) == args.count:
                    linger_until = time.monotonic() + args.linger
    finally:
        sub.terminate()
        sub.wait(timeout=10)
    result = {
        "received": received,
        "unique": len(seen),
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "first": first,
        "last": last,
        "timed_out": len(seen) < args.count,
        "ready": ready,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
