"""A three-node NATS cluster with JetStream and MQTT listeners, on loopback, for tests.

Each node is a ``nats-server`` child process with its own client, route, monitoring and
MQTT ports and its own JetStream folder; the nodes route to each other as one cluster.
NATS speaks MQTT 3.1.1 (it refuses MQTT 5 at connect) and keeps retained messages and
sessions in JetStream, so a retained message published on one node is read on another;
with ``stream_replicas`` at the cluster's size they outlive the loss of a node.
A node can be SIGKILLed and started again; while the JetStream leader is re-elected, a
subscription may be refused for a few seconds ("All subscription requests were denied"),
which MQTT clients retry.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from simulator.live.processes import free_port
from worker import DrivesimError

__all__ = ["NatsCluster", "NatsNode", "find_nats_server"]


def find_nats_server() -> str:
    """The ``nats-server`` binary (Debian's package puts it in /usr/sbin)."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found is None:
        raise DrivesimError("nats-server is not installed: apt-get install nats-server")
    return found


class NatsNode:
    """One node of a :class:`NatsCluster`."""

    def __init__(self, workdir: Path, name: str, routes: list[int]) -> None:
        self.workdir = workdir
        self.name = name
        self.port, self.route, self.monitor, self.mqtt_port = (free_port() for _ in range(4))
        self.routes = routes
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def write_config(self) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
        config = self.workdir / f"{self.name}.conf"
        config.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor}\n"
            f'jetstream {{ store_dir: "{self.workdir / ("js-" + self.name)}" }}\n'
            f"cluster {{ name: drivesim, listen: 127.0.0.1:{self.route}, routes: [{routes}] }}\n"
            # Retained messages and sessions on every node: they survive the loss of one.
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: {len(self.routes)} }}\n"
        )
        return config

    def start(self) -> None:
        config = self.write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [find_nats_server(), "-c", str(config)], stdout=log, stderr=log
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """Whether the node says it is healthy, JetStream (its meta leader) included."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.monitor}/healthz", timeout=2
            ) as answer:
                return bool(json.loads(answer.read()).get("status") == "ok")
        except (urllib.error.URLError, OSError, ValueError):
            return False


class NatsCluster:
    """Three NATS nodes routed as one cluster, with JetStream and MQTT, in ``workdir``."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        routes = [free_port() for _ in range(nodes)]
        self.nodes = [NatsNode(workdir, f"n{i + 1}", routes) for i in range(nodes)]
        for node, route in zip(self.nodes, routes, strict=True):
            node.route = route

    def start(self, timeout: float = 60.0) -> None:
        """Start every node and wait until each is healthy."""
        for node in self.nodes:
            node.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(node.healthy() for node in self.nodes if node.running):
                return
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise DrivesimError(f"nats-server {node.name} exited: {node.log.read_text()}")
            time.sleep(0.1)
        raise DrivesimError(f"the NATS cluster was not healthy within {timeout:g} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
