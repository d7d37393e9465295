"""A private three-node NATS cluster speaking MQTT 3.1.1, for tests and chaos.

Each node is a ``nats-server`` started as a direct child with its own config file, client,
cluster-route, MQTT and HTTP-monitor ports on 127.0.0.1, and its own JetStream store (NATS
keeps MQTT retained messages and sessions in JetStream). :meth:`NatsCluster.kill` is a real
``SIGKILL`` of one node; :meth:`NatsCluster.start` brings it back on the same ports and store.

NATS refuses MQTT 5 at connect, so clients speak 3.1.1 (no response topics, no user
properties, no shared subscriptions). A node was seen refusing MQTT subscriptions (SUBACK
0x80) for a few seconds while the JetStream meta leader was re-elected after a node died.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.live.processes import free_port, terminate
from worker import DrivesimError

__all__ = ["NatsCluster", "NatsNode", "find_nats_server"]


def find_nats_server() -> str:
    """The ``nats-server`` binary."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found is None:
        raise DrivesimError(
            "nats-server is not installed: apt-get install nats-server (make test does this)"
        )
    return found


@dataclass
class NatsNode:
    """One node's ports, files and process."""

    name: str
    workdir: Path
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.name}.conf"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self, routes: list[int], extra: str = "") -> None:
        store = self.workdir / f"js-{self.name}"
        store.mkdir(parents=True, exist_ok=True)
        route_urls = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
        self.config_file.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{store}" }}\n'
            f"cluster {{ name: drivesim, listen: 127.0.0.1:{self.route_port},\n"
            f"  routes: [{route_urls}] }}\n"
            # Retained messages and sessions on every node: they outlive the loss of one.
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: {len(routes)} }}\n"
            + extra
        )


class NatsCluster:
    """Three ``nats-server`` nodes in one cluster with JetStream and MQTT, in ``workdir``."""

    def __init__(self, workdir: Path, *, size: int = 3, extra_config: str = "") -> None:
        """``extra_config``: appended to every node's config (e.g. an ``authorization``
        block); :meth:`reconfigure` changes it for the nodes' next start."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = [NatsNode(f"n{i + 1}", workdir) for i in range(size)]
        self.reconfigure(extra_config)

    @property
    def mqtt_urls(self) -> list[str]:
        return [node.mqtt_url for node in self.nodes]

    def reconfigure(self, extra_config: str) -> None:
        """Write every node's config with ``extra_config``, for its next start. No reload:
        nats-server 2.9 panics reloading ``authorization`` with MQTT enabled (SIGHUP)."""
        routes = [node.route_port for node in self.nodes]
        for node in self.nodes:
            node.write_config(routes, extra_config)

    def start(self, index: int | None = None) -> None:
        """Start every node (or node ``index``) and wait until the cluster is ready."""
        for i, node in enumerate(self.nodes):
            if (index is None or i == index) and not node.running:
                with node.log.open("ab") as log:
                    node.process = subprocess.Popen(
                        [find_nats_server(), "-c", str(node.config_file)],
                        stdout=log,
                        stderr=log,
                    )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Until every running node accepts MQTT connections and reports JetStream healthy
        (``/healthz?js-enabled-only=true`` on its monitor port) with a meta leader known."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.process is None:
                continue
            while not (_accepts(node.mqtt_port) and _js_ready(node.http_port)):
                if node.process.poll() is not None:
                    raise DrivesimError(f"{node.name} exited: {node.log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise DrivesimError(f"the NATS cluster was not ready within {timeout} s")
                time.sleep(0.1)

    def meta_leader(self) -> int | None:
        """The index of the JetStream meta leader, as a running node's ``/jsz`` reports it."""
        for node in self.nodes:
            if node.running:
                leader = _jsz(node.http_port).get("meta_cluster", {}).get("leader")
                names = [n.name for n in self.nodes]
                if leader in names:
                    return names.index(leader)
        return None

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``."""
        node = self.nodes[index]
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)
        node.process = None

    def stop(self) -> None:
        for node in self.nodes:
            terminate(node.process)
            node.process = None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _js_ready(http_port: int) -> bool:
    base = f"http://127.0.0.1:{http_port}"
    try:
        with urllib.request.urlopen(f"{base}/healthz?js-enabled-only=true", timeout=1) as r:
            if r.status != 200:
                return False
    except OSError:
        return False
    return bool(_jsz(http_port).get("meta_cluster", {}).get("leader"))


def _jsz(http_port: int) -> dict[str, Any]:
    """The node's JetStream report (``/jsz``), or {} when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/jsz", timeout=1) as r:
            info = json.loads(r.read())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
