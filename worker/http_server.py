"""The HTTP server of the Azure REST API: uvicorn, inside the worker's anyio task group.

The worker binds the socket itself (so a busy port is a clean error, not uvicorn's
``sys.exit``) and keeps its own signal handling: uvicorn's is switched off, and the server
stops when :meth:`HttpServer.stop` is called.

With ``https``, it serves TLS: with the configured PEM certificate and key, or else with a
self-signed certificate (ECDSA P-256, ``CA:TRUE`` so a client can trust the file itself,
names ``localhost``, 127.0.0.1, ::1 and the host) generated at start into a temporary
directory that is removed at stop (:attr:`HttpServer.cert_file` while running). The
azure-core SDK line refuses bearer tokens over plain http; point it at the certificate with
``connection_verify=cert_file`` (or ``REQUESTS_CA_BUNDLE``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import shutil
import socket
import tempfile
from collections.abc import Generator
from pathlib import Path

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from worker.errors import DrivesimError
from worker.logs import get_logger
from worker.settings import HttpConfig

__all__ = ["HttpServer", "self_signed_certificate"]

log = get_logger("drivesim.http")


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem``: a self-signed server certificate for ``host``."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise DrivesimError(
            "HTTPS with a generated certificate needs the cryptography package "
            "(pip install 'drivesim[https]'), or set https_cert and https_key"
        ) from None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drivesim worker")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    addresses = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        addresses.add(ipaddress.ip_address(host))
    except ValueError:
        names.append(x509.DNSName(host))
    names += [x509.IPAddress(a) for a in sorted(addresses, key=str)]
    # Certificates live in wall-clock time, not the simulation's.
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the worker owns SIGINT and SIGTERM), telling
    when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Serves an ASGI app on ``config.host:config.port`` until :meth:`stop`."""

    def __init__(self, app: ASGIApp, config: HttpConfig, *, shutdown_timeout: float = 5.0):
        self.config = config
        self.server = _Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                http="h11",
                ws="none",
                timeout_graceful_shutdown=max(1, int(shutdown_timeout)),
            )
        )
        self.done = anyio.Event()
        #: The address actually bound (port 0 picks one), once running.
        self.address: tuple[str, int] | None = None
        #: The PEM certificate served, with ``https`` (generated: only while running).
        self.cert_file: Path | None = Path(config.cert_file) if config.cert_file else None

    @property
    def bound(self) -> HttpConfig:
        """The configuration as served: the port bound and the certificate in use."""
        assert self.address is not None, "not running"
        host, port = self.address
        cert_file = str(self.cert_file) if self.cert_file is not None else None
        return dataclasses.replace(self.config, host=host, port=port, cert_file=cert_file)

    @property
    def url(self) -> str:
        return self.bound.url

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        generated: Path | None = None
        if self.config.https:
            if self.config.cert_file is not None:
                self.server.config.ssl_certfile = self.config.cert_file
                self.server.config.ssl_keyfile = self.config.key_file
            else:
                generated = Path(tempfile.mkdtemp(prefix="drivesim-https-"))
                try:
                    self.cert_file, key_file = self_signed_certificate(generated, self.config.host)
                except BaseException:
                    shutil.rmtree(generated, ignore_errors=True)
                    raise
                self.server.config.ssl_certfile = str(self.cert_file)
                self.server.config.ssl_keyfile = str(key_file)
        try:
            await self._serve(task_status)
        finally:
            if generated is not None:
                shutil.rmtree(generated, ignore_errors=True)
                self.cert_file = None

    async def _serve(self, task_status: TaskStatus[None]) -> None:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        try:
            sock = socket.create_server((self.config.host, self.config.port), family=family)
            # Accepted connections inherit TCP_NODELAY. asyncio sets it only on sockets whose
            # proto is IPPROTO_TCP, and create_server's is 0: without this, Nagle holds back
            # the body (written after the headers) until the client's delayed ACK, ~40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise DrivesimError(
                f"cannot serve HTTP on {self.config.host}:{self.config.port}: {exc}"
            ) from None
        try:
            host, port = sock.getsockname()[:2]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.server.serve, [sock])
                await self.server.listening.wait()
                self.address = (host, port)
                log.info("http api serving", url=self.url, cert_file=self.cert_file)
                task_status.started()
        finally:
            sock.close()
            self.done.set()

    async def stop(self) -> None:
        """Stop taking connections, finish the requests in flight, and return."""
        self.server.should_exit = True
        await self.done.wait()
