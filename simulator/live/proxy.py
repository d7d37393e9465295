"""A TCP fault proxy on loopback, in the spirit of Toxiproxy.

It forwards ``127.0.0.1:port`` to an upstream port and can, at any moment, add latency,
cap the bandwidth, blackhole the traffic, reset every connection, or refuse new ones.
Each direction of each connection has a reader and a writer thread joined by a queue,
so latency delays every chunk without serialising them (chunks sent together arrive
together, late), and a bandwidth cap paces the writer.

A blackhole holds data back instead of dropping it, so no stream is ever corrupted; when
it lifts, the connections that lived through it are reset, as a TCP stack gives up on a
peer that stopped answering.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time

__all__ = ["FaultProxy"]

_CHUNK = 65536


class _Link:
    """One proxied connection: a client socket and its upstream socket."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.sockets = (client, upstream)
        self.closed = threading.Event()
        self.through_blackhole = False

    def start(self) -> None:
        client, upstream = self.sockets
        for source, target in ((client, upstream), (upstream, client)):
            pipe: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
            threading.Thread(target=self._read, args=(source, pipe), daemon=True).start()
            threading.Thread(target=self._write, args=(target, pipe), daemon=True).start()

    def _read(self, source: socket.socket, pipe: queue.Queue[tuple[float, bytes] | None]) -> None:
        try:
            while data := source.recv(_CHUNK):
                pipe.put((time.monotonic() + self.proxy.latency, data))
        except OSError:
            pass
        pipe.put(None)

    def _write(self, target: socket.socket, pipe: queue.Queue[tuple[float, bytes] | None]) -> None:
        proxy = self.proxy
        try:
            while (item := pipe.get()) is not None:
                due, data = item
                while proxy.blackholed.is_set() and not self.closed.is_set():
                    self.through_blackhole = True
                    time.sleep(0.01)
                if self.closed.is_set():
                    return
                if (delay := due - time.monotonic()) > 0:
                    time.sleep(delay)
                if proxy.bandwidth:  # before: a chunk arrives once its bytes have crossed
                    time.sleep(len(data) / proxy.bandwidth)
                target.sendall(data)
        except OSError:
            pass
        finally:
            self.close()

    def close(self, *, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                if reset:
                    # Linger 0 makes close send RST instead of FIN; SHUT_RD (which sends
                    # nothing) wakes the reader blocked on the socket, so close really closes.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.proxy._forget(self)


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream_port``, faults on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        #: Seconds added to every chunk, each way.
        self.latency = 0.0
        #: Bytes a second, each way and per connection (None: no cap).
        self.bandwidth: int | None = None
        self.blackholed = threading.Event()
        self._refusing = threading.Event()
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream)
            with self._lock:  # known before it forwards a byte: reset() can always reach it
                self._links.add(link)
            link.start()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _take_links(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._links)

    def reset(self) -> int:
        """Reset every connection now (RST both ways); returns how many there were."""
        links = self._take_links()
        for link in links:
            link.close(reset=True)
        return len(links)

    def blackhole(self) -> None:
        """Hold back all traffic until :meth:`lift_blackhole`."""
        self.blackholed.set()

    def lift_blackhole(self) -> None:
        """Let traffic through again; connections that lived through the blackhole are reset."""
        if self.blackholed.is_set():
            self.blackholed.clear()
            for link in self._take_links():
                if link.through_blackhole:
                    link.close(reset=True)

    def cut(self) -> None:
        """Reset every connection and refuse new ones until :meth:`restore`."""
        self._refusing.set()
        self.reset()

    def restore(self) -> None:
        """Accept connections again."""
        self._refusing.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()
