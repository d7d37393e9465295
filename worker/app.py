"""The worker as a service: the datacenter in scaled real time, served over MQTT.

It runs until told to stop (SIGINT or SIGTERM from :func:`serve`), then shuts down in
order: the datacenter stops taking steps, the outbox is drained to the broker within a
deadline, ``offline`` is published and the connection closed. Whatever could not be
drained stays in the store and goes out on the next start.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from worker.clock import Clock
from worker.datacenter import Datacenter
from worker.errors import DrivesimError
from worker.heap import long_lived_heap, pause_for_start_up
from worker.ledger import stored_time
from worker.logs import get_logger
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.embedded import embedded_broker
from worker.mqtt.link import MqttLink
from worker.plan import Planner
from worker.service import JobService
from worker.settings import HttpConfig, WorkerSettings
from worker.store import SharedStore
from worker.stores import open_store, store_name

if TYPE_CHECKING:  # the REST API (starlette, uvicorn) is imported only when it is served
    from worker.http_server import HttpServer

__all__ = ["Worker", "serve"]

log = get_logger("drivesim.worker")


class Worker:
    """One datacenter worker: its datacenter over a SQLite store, served over MQTT (and
    the Azure REST API when asked)."""

    def __init__(self, settings: WorkerSettings, broker: BrokerConfig) -> None:
        self.settings = settings
        self.broker = broker
        self.stop = anyio.Event()
        self.link: MqttLink | None = None
        self.service: JobService | None = None
        #: The Azure REST API's server, when ``settings.http`` asks for one.
        self.http: HttpServer | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        settings = self.settings
        store = open_store(settings.db, worker_id=settings.worker_id)
        try:
            start = stored_time(store)
            if settings.time_origin is not None:
                # The one wall-clock read: a shared origin keeps the worker's simulated time
                # in step with whoever started it, across restarts.
                start = max(start, (time.time() - settings.time_origin) * settings.speed)
            datacenter = Datacenter(
                store,
                clock=Clock(epoch=settings.epoch, scale=settings.speed, start=start),
                planner=Planner(settings.datacenter, settings.seed, settings.pinned),
                policy=settings.policy,
                command_limit=settings.max_command_bytes,
                lease=settings.lease if isinstance(store, SharedStore) else None,
            )
            log.info("store loaded", jobs=len(datacenter.ledger), db=store_name(settings.db))
            link = MqttLink(
                self.broker,
                worker_id=settings.worker_id,
                meta=datacenter.ledger,
                window=settings.window,
                will_delay=settings.will_delay,
                commands=datacenter.commands,
                claim=store.claim_command if isinstance(store, SharedStore) else None,
            )
            api = http = None
            if settings.http is not None:
                from worker.http import ArmApi
                from worker.http_server import HttpServer

                api = ArmApi(
                    datacenter.service,
                    token=settings.http.token,
                    max_body=settings.max_command_bytes,
                )
                http = HttpServer(api.app, settings.http, shutdown_timeout=settings.drain_timeout)
            self.service, self.link, self.http = datacenter.service, link, http
            async with anyio.create_task_group() as outer:
                if http is not None:  # first: a port in use fails before MQTT connects
                    await outer.start(http.run)
                async with datacenter.running(link, replay_tail=settings.replay_tail) as relay:
                    link.on_connected = relay.connected
                    link.on_connection_lost = relay.connection_lost
                    await outer.start(link.run)
                    log.info(
                        "worker running", worker=settings.worker_id, jobs=len(datacenter.ledger)
                    )
                    task_status.started()
                    await self.stop.wait()
                    if api is not None and http is not None:
                        api.close()
                        with anyio.move_on_after(settings.drain_timeout):
                            await http.stop()
                    datacenter.halt()
                    log.info("worker stopping: draining the outbox")
                    with anyio.move_on_after(settings.drain_timeout) as draining:
                        await datacenter.drain()
                    if draining.cancelled_caught:
                        log.warning("outbox not drained in time; the rest goes out on next start")
                await link.stop()
                with anyio.move_on_after(settings.drain_timeout):
                    await link.closed.wait()
                outer.cancel_scope.cancel()
        finally:
            store.close()
            log.info("worker stopped")


@asynccontextmanager
async def _broker(settings: WorkerSettings) -> AsyncIterator[BrokerConfig]:
    if settings.broker is not None:
        yield settings.broker
    else:
        async with embedded_broker() as config:
            yield config


def serve(
    settings: WorkerSettings,
    *,
    on_ready: Callable[[BrokerConfig, HttpConfig | None], None],
) -> None:
    """Run a worker until SIGINT or SIGTERM; ``on_ready`` is told the broker it serves on,
    and the Azure REST API as served when there is one (its URL, its certificate). On the
    embedded broker it is told once the worker is subscribed to commands there."""
    log.info("worker starting", worker=settings.worker_id, db=store_name(settings.db))

    async def main() -> None:
        # With 10,000 jobs, full collections were most of the pipeline's start.
        resume_collector = pause_for_start_up()
        async with _broker(settings) as broker, anyio.create_task_group() as tg:
            worker = Worker(settings, broker)

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("signal received", signal=signal.Signals(signum).name)
                        worker.stop.set()
                        return

            tg.start_soon(stop_on_signal)
            try:
                await tg.start(worker.run)
            finally:
                resume_collector()
            if settings.broker is None and worker.link is not None:
                # Our own broker, in this loop: the link is subscribed within milliseconds,
                # and a command sent on seeing "serving on" must find it there. (An outside
                # broker may be down; the worker serves HTTP and keeps its outbox meanwhile.)
                await worker.link.ready()
            on_ready(broker, worker.http.bound if worker.http is not None else None)
            await worker.stop.wait()
            # worker.run returns once it has shut down; then the signal task is done too.

    try:
        with long_lived_heap():
            anyio.run(main, backend="asyncio")
    except BaseExceptionGroup as group:
        # A refusal raised inside the task groups (a port in use, say) reads as itself.
        cause: BaseException = group
        while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
            cause = cause.exceptions[0]
        if isinstance(cause, DrivesimError):
            raise cause from None
        raise
