"""The cancel probe of :mod:`bench.commands`: an MQTT 5 customer of its own, in a process of
its own, timing request sent → reply received.

``python -m bench.cancel_probe --url URL --rate R --timeout S --out FILE [--seed N]`` reads
job names from stdin (one JSON list a line, each replacing the last) and sends ``R`` cancel
requests a second, open loop (a slow answer does not hold up the next request), each to a
name picked at random, until stdin closes; then it writes every sample, in the order
answered, to ``FILE`` as JSON: ``at`` (seconds since the first request could go), ``unix``,
``latency`` (seconds, ``None`` for a request unanswered after ``--timeout``), ``status``,
``answer`` (the reply's answer or error code, or ``timeout``) and ``job``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from simulator.client import JobsClient
from worker import configure_logging
from worker.mqtt import BrokerConfig

__all__ = ["main", "probe"]


async def probe(url: str, rate: float, reply_within: float, seed: int) -> list[dict[str, Any]]:
    """Send ``rate`` cancels a second to names read from stdin (one JSON list a line,
    each replacing the last) until stdin closes; every sample, in the order answered."""
    names: list[str] = []
    samples: list[dict[str, Any]] = []
    rng = random.Random(seed)
    stdin_closed = anyio.Event()

    async def read_names() -> None:
        async for line in anyio.wrap_file(sys.stdin):
            with contextlib.suppress(ValueError):
                names[:] = json.loads(line)
        stdin_closed.set()

    async with JobsClient(BrokerConfig.from_url(url), timeout=reply_within, prefer="5") as client:
        if client.version != "5":
            raise SystemExit("the broker did not take MQTT 5")
        origin = time.perf_counter()
        unix_origin = time.time()

        async def cancel(job: str) -> None:
            payload = json.dumps({"job": job}).encode()
            sent = time.perf_counter()
            try:
                reply = await client.send("cancel", payload)
            except TimeoutError:
                samples.append(
                    {
                        "at": sent - origin,
                        "latency": None,
                        "status": 0,
                        "answer": "timeout",
                        "job": job,
                    }
                )
                return
            latency = time.perf_counter() - sent
            status = int(reply.get("status", 0))
            if reply.get("ok"):
                answer = str((reply.get("result") or {}).get("answer", "ok"))
            else:
                answer = str((reply.get("error") or {}).get("code", "error"))
            samples.append(
                {
                    "at": sent - origin,
                    "unix": unix_origin + (sent - origin),
                    "latency": latency,
                    "status": status,
                    "answer": answer,
                    "job": job,
                }
            )

        async with anyio.create_task_group() as readers:
            readers.start_soon(read_names)
            async with anyio.create_task_group() as requests:
                period = 1.0 / rate
                due = time.perf_counter()
                while not stdin_closed.is_set():
                    if names:
                        requests.start_soon(cancel, rng.choice(names))
                    due += period
                    with anyio.move_on_after(max(0.0, due - time.perf_counter())):
                        await stdin_closed.wait()
            readers.cancel_scope.cancel()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cancel_probe")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    configure_logging(level="error", fmt="json", stream=sys.stderr)
    samples = anyio.run(probe, args.url, args.rate, args.timeout, args.seed)
    args.out.write_text(json.dumps(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
