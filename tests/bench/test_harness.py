"""bench/harness.py: child processes, working folders, growing files, a broker of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from bench.harness import (
    ROOT,
    Tail,
    child_json,
    connected,
    mosquitto,
    python,
    python_code,
    run,
    run_workdir,
    workdir,
)
from worker.metadata import MemoryMetadata
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.link import MqttLink


def test_children_run_from_the_repository_with_this_interpreter() -> None:
    assert python("bench.load", "--smoke") == [sys.executable, "-m", "bench.load", "--smoke"]
    out, wall = run(python_code("import os; print(os.getcwd())"))
    assert Path(out.strip()) == ROOT
    assert wall > 0
    with pytest.raises(subprocess.CalledProcessError):
        run(python_code("raise SystemExit(3)"))


def test_a_child_s_figures_are_the_json_it_prints_last() -> None:
    data, wall = child_json(python_code("print('warming up'); print('{\"wall\": 1.5}')"))
    assert data == {"wall": 1.5}
    assert wall > 0


def test_a_workdir_is_kept_when_asked_and_removed_otherwise(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        temporary = workdir(stack, "bench-test-")
        kept = workdir(stack, "bench-test-", tmp_path / "keep")
        assert temporary.is_dir()
        assert kept == tmp_path / "keep"
        assert kept.is_dir()
    assert not temporary.exists()
    assert kept.exists()


def test_a_run_workdir_is_a_folder_of_its_own_under_keep(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        first = run_workdir(stack, tmp_path, "t-", "run-")
        second = run_workdir(stack, tmp_path, "t-", "run-")
        temporary = run_workdir(stack, None, "t-", "run-")
        assert first.parent == second.parent == tmp_path
        assert first != second
        assert first.name.startswith("run-")
    assert first.exists()
    assert not temporary.exists()


def test_a_tail_returns_the_lines_completed_since_its_last_read(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"before\n")
    tail = Tail(path)  # from the end: what was there is not read
    assert tail.read() == []
    with path.open("ab") as log:
        log.write(b"one\ntw")
        log.flush()
        assert tail.read() == [b"one"]
        log.write(b"o\nthree\n")
    assert tail.read() == [b"two", b"three"]
    assert tail.read() == []
    assert Tail(path, 0).read() == [b"before", b"one", b"two", b"three"]


@pytest.mark.slow
def test_a_broker_of_its_own_listens_for_the_block(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker", extra_config="max_inflight_messages 0\n") as broker:
        assert broker.running
        assert "max_inflight_messages 0" in broker.config.read_text()
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
        port = broker.port
    assert not broker.running
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


@pytest.mark.slow
def test_the_worker_s_link_is_connected_for_the_block(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        link = MqttLink(BrokerConfig.from_url(broker.url), worker_id="t", meta=MemoryMetadata())

        async def main() -> None:
            async with connected(link) as inside:
                assert inside is link
                assert link.connects == 1
            assert link.closed.is_set()

        anyio.run(main)
