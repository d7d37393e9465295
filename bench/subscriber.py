"""The benchmarks' independent subscriber: Mosquitto's own C client, ``mosquitto_sub``, in a
process of its own, stamping each message with its receive time.

:func:`sub_command` builds its command line, :func:`wait_subscribed` publishes probes with
``mosquitto_pub`` until one comes back (so the subscription is in place before anything is
measured), and :class:`Subscriber` runs it with a line per message into a file that the
bench reads as it grows.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import Tail
from simulator.live.processes import terminate

__all__ = ["Subscriber", "probe", "sub_command", "wait_subscribed"]


def _tool(name: str) -> str:
    """``name`` (a mosquitto client) on PATH, else beside the broker's binary."""
    found = shutil.which(name)
    if found is None:
        broker = shutil.which("mosquitto") or shutil.which(
            "mosquitto", path="/usr/sbin:/usr/local/sbin"
        )
        beside = Path(broker or "").parent
        if broker is not None and (beside / name).is_file():
            return str(beside / name)
        raise SystemExit(f"{name} is not installed: apt-get install -y mosquitto-clients")
    return found


def _common(port: int, version: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", version]


def sub_command(
    port: int, topics: Sequence[str], output: str, *, version: str = "mqttv5"
) -> list[str]:
    """``mosquitto_sub`` at QoS 1 on ``topics``, a line per message in format ``output``
    (its ``-F``); ``version``: ``mqttv5`` or ``mqttv311``."""
    subscriptions = [arg for topic in topics for arg in ("-t", topic)]
    return [_tool("mosquitto_sub"), *_common(port, version), *subscriptions, "-F", output]


def probe(port: int, topic: str, payload: str = "probe", *, version: str = "mqttv5") -> None:
    """Publish ``payload`` once on ``topic`` with ``mosquitto_pub`` (QoS 1): once a
    subscriber on ``topic`` sees it come back, its subscription is in place."""
    subprocess.run(
        [_tool("mosquitto_pub"), *_common(port, version), "-t", topic, "-m", payload],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_subscribed(
    seen: Callable[[], bool],
    port: int,
    topic: str,
    *,
    process: subprocess.Popen[bytes] | None = None,
    version: str = "mqttv5",
    timeout: float = 10.0,
    interval: float = 0.05,
) -> None:
    """:func:`probe` ``topic`` every ``interval`` s until ``seen()`` (the caller's reader
    got a probe back); RuntimeError after ``timeout`` s or if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not seen():
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            raise RuntimeError("mosquitto_sub did not subscribe in time")
        probe(port, topic, version=version)
        time.sleep(interval)


class Subscriber:
    """``mosquitto_sub -q 1`` on ``topics`` in its own process, a line per message into
    ``path``: its receive time (Unix, ns), its topic, then ``fields`` (a ``-F`` format,
    e.g. ``%q`` for the QoS, ``%p`` for the payload). :meth:`start` returns once a probe on
    ``probe_topic`` came back; :meth:`lines` leaves the probes out."""

    def __init__(
        self,
        port: int,
        topics: Sequence[str],
        fields: str,
        path: Path,
        *,
        probe_topic: str,
        version: str = "mqttv5",
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> None:
        self.port = port
        self.topics = [*topics, probe_topic]
        self.output = "%U %t " + fields
        self.path = path
        self.probe_topic = probe_topic
        self.version = version
        self.timeout = timeout
        self.interval = interval
        self.process: subprocess.Popen[bytes] | None = None
        self._lines: list[tuple[float, str, str]] = []
        self._probed = False
        self._tail: Tail | None = None

    def start(self) -> None:
        with self.path.open("wb") as out:
            self.process = subprocess.Popen(
                sub_command(self.port, self.topics, self.output, version=self.version),
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        self._tail = Tail(self.path, 0)
        wait_subscribed(
            self._subscribed,
            self.port,
            self.probe_topic,
            process=self.process,
            version=self.version,
            timeout=self.timeout,
            interval=self.interval,
        )

    def _subscribed(self) -> bool:
        self._read()
        return self._probed

    def _read(self) -> None:
        if self._tail is None:
            return
        for raw in self._tail.read():
            parts = raw.decode("utf-8", "replace").split(" ", 2)
            if len(parts) != 3:
                continue
            stamp, topic, rest = parts
            if topic == self.probe_topic:
                self._probed = True
            else:
                self._lines.append((float(stamp), topic, rest))

    def lines(self) -> list[tuple[float, str, str]]:
        """``(receive Unix time, topic, the fields)`` of every message received so far,
        probes left out, in the order received."""
        self._read()
        return self._lines

    def wait_for(self, count: int, timeout: float, linger: float = 0.3) -> None:
        """Until ``count`` messages are in (or ``timeout`` s), then ``linger`` s more."""
        deadline = time.monotonic() + timeout
        while len(self.lines()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(linger)

    def stop(self) -> None:
        terminate(self.process)
