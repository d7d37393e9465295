"""The zero-install broker: ``drivesim worker`` with no broker starts amqtt on loopback, and a
worker asked for MQTT 5 falls back to 3.1.1 on it. Real processes: amqtt leaves sockets and
interpreter state behind that must not leak into the test run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from simulator.client import JobsClient
from worker import watch_command
from worker.mqtt.broker import BrokerConfig

EXPORT = {
    "location": "West US",
    "properties": {
        "jobType": "Export",
        "storageAccountId": "/subscriptions/x/resourceGroups/rg/providers/"
        "Microsoft.Storage/storageAccounts/acct",
        "export": {"blobList": {"blobPathPrefix": ["/"]}},
    },
}


def _worker(tmp: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    config = tmp / f"{name}.toml"
    config.write_text(f'worker_id = "{name}"\nspeed = 3600\n')
    log = tmp / f"{name}.log"
    command = [sys.executable, "-m", "simulator.cli", "--log-level", "info", "--log-format"]
    command += ["json", "worker", "--config", str(config), "--db", str(tmp / f"{name}.db"), *args]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    return process, log


def _wait_for(log: Path, pattern: str, timeout: float = 30) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in {log}:\n{log.read_text(errors='replace')}")


def test_a_worker_without_a_broker_serves_on_an_embedded_one(tmp_path: Path) -> None:
    """No --broker: the worker starts amqtt on 127.0.0.1, says where, and answers commands
    there from the moment it says so; a second worker pointed at it asks for MQTT 5 and
    falls back to 3.1.1."""
    first, first_log = _worker(tmp_path, "embedded")
    second = None
    try:
        url = _wait_for(first_log, r"serving on (mqtt://127\.0\.0\.1:\d+)")[1]
        _wait_for(first_log, r"locations: West US \(2 bays\) \(more in the \[datacenter\]")
        text = first_log.read_text()
        broker = BrokerConfig.from_url(url)
        # The hint shows status only: no command, no reply, so no BitLocker key.
        assert watch_command(broker.host, broker.port) in text
        assert "importexport/v1/#" not in text
        # Said only once subscribed: a command sent on reading it is not dropped.
        assert text.index('"connected to broker"') < text.index("serving on")

        async def ask() -> tuple[int, str]:
            async with JobsClient(broker, timeout=20) as client:
                created = await client.request("create", job="emb", body=EXPORT)
                got = await client.call("get", job="emb")
                return created["status"], got["properties"]["state"]

        assert anyio.run(ask) == (201, "Creating")

        second, second_log = _worker(tmp_path, "fallback", "--broker", url)
        line = _wait_for(second_log, r'\{[^\n]*"connected to broker"[^\n]*\}')[0]
        assert json.loads(line)["mqtt"] == "3.1.1"
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
