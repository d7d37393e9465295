"""The zero-install broker: amqtt inside the worker's own event loop, on loopback.

For demos and first steps only: amqtt speaks MQTT 3.1.1 (not 5), is several times slower
than Mosquitto, and does not notice dead clients. Give the worker ``--broker URL`` for
anything serious. Needs the ``embedded`` extra (``pip install drivesim[embedded]``).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from worker.errors import DrivesimError
from worker.mqtt.broker import BrokerConfig

__all__ = ["embedded_broker", "free_port"]

DEFAULT_PORT = 18830


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """``preferred`` if it is free on ``host``, else a port the system picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise DrivesimError(f"no free port on {host}")


@asynccontextmanager
async def embedded_broker(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> AsyncIterator[BrokerConfig]:
    """Run an amqtt broker on ``host`` (loopback) for the duration of the block."""
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise DrivesimError(
            "the embedded broker needs amqtt: pip install 'drivesim[embedded]', "
            "or pass --broker mqtt://HOST:PORT"
        ) from None
    port = free_port(host, port)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield BrokerConfig(host=host, port=port, protocol="3.1.1")
    finally:
        await broker.shutdown()
