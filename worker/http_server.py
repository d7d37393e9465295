"""The HTTP server of the Azure REST API: uvicorn, inside the worker's anyio task group.

The worker binds the socket itself (so a busy port is a clean error, not uvicorn's
``sys.exit``) and keeps its own signal handling: uvicorn's is switched off, and the server
stops when :meth:`HttpServer.stop` is called.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator

import anyio
import structlog
import uvicorn
from anyio.abc import TaskStatus
from starlette.types import ASGIApp

from worker.errors import DrivesimError
from worker.settings import HttpConfig

__all__ = ["HttpServer"]

log = structlog.get_logger("drivesim.http")


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

    @property
    def url(self) -> str:
        assert self.address is not None, "not running"
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        try:
            sock = socket.create_server((self.config.host, self.config.port), family=family)
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
                log.info("http api serving", url=self.url)
                task_status.started()
        finally:
            sock.close()
            self.done.set()

    async def stop(self) -> None:
        """Stop taking connections, finish the requests in flight, and return."""
        self.server.should_exit = True
        await self.done.wait()
