"""The fault proxy on real loopback sockets: each fault does what it says, and heals."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from simulator.live.proxy import FaultProxy


@pytest.fixture
def echo() -> Iterator[int]:
    """An echo server on loopback; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    p = FaultProxy(echo)
    yield p
    p.close()


def _connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_forwards_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _echo(sock, b"hello") == b"hello"
        assert proxy.connections == 1


def test_latency_delays_each_way_without_serialising(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _echo(sock, b"warm")
        proxy.latency = 0.2
        started = time.monotonic()
        for i in range(5):  # five chunks in flight at once: latency, not 5x latency
            sock.sendall(b"%d" % i)
        got = b""
        while len(got) < 5:
            got += sock.recv(100)
        took = time.monotonic() - started
        assert got == b"01234"
        assert took >= 0.4  # 0.2 s out, 0.2 s back
        assert took < 1.0 + 5 * 0.4  # far less than five round trips one after the other


def test_bandwidth_cap_paces_the_stream(proxy: FaultProxy) -> None:
    proxy.bandwidth = 100_000
    payload = b"x" * 150_000
    with _connect(proxy) as sock:
        started = time.monotonic()
        assert _echo(sock, payload) == payload
        assert time.monotonic() - started >= 1.0  # 150 kB at 100 kB/s, at least one way


def test_reset_drops_every_connection_with_rst(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _echo(sock, b"up")
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        assert proxy.connections == 0
    with _connect(proxy) as again:  # new connections are welcome
        assert _echo(again, b"back") == b"back"


def test_blackhole_holds_traffic_then_resets_survivors(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _echo(sock, b"up")
        proxy.blackhole()
        sock.sendall(b"lost?")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        proxy.lift_blackhole()
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):  # held data never arrives
            sock.recv(10)
    with _connect(proxy) as fresh:
        assert _echo(fresh, b"healed") == b"healed"


def test_cut_refuses_until_restored(proxy: FaultProxy) -> None:
    proxy.cut()
    with _connect(proxy) as sock:
        sock.settimeout(2)
        try:
            data = sock.recv(10)
        except OSError:
            data = b""
        assert data == b""  # closed by the proxy at once
    proxy.restore()
    with _connect(proxy) as sock:
        assert _echo(sock, b"open") == b"open"
