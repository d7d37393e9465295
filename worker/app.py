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

from worker.broker import BrokerConfig
from worker.bus import OutboxRelay
from worker.clock import Clock
from worker.commands import CommandHandler
from worker.embedded import embedded_broker
from worker.errors import DrivesimError
from worker.heap import long_lived_heap, pause_for_start_up
from worker.ledger import SIM_NOW, Ledger
from worker.logs import get_logger, sim_time
from worker.mqtt import MqttLink
from worker.pipeline import DatacenterPipeline
from worker.plan import Planner
from worker.retention import RetentionSweeper
from worker.service import JobService
from worker.settings import WorkerSettings
from worker.sqlite_store import SQLiteStore

if TYPE_CHECKING:  # the REST API (starlette, uvicorn) is imported only when it is served
    from worker.http_server import HttpServer

__all__ = ["Worker", "serve"]

log = get_logger("drivesim.worker")


class Worker:
    """One datacenter worker: store, clock, service, pipeline, retention, MQTT link."""

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
        store = SQLiteStore(settings.db)
        try:
            start = float(store.get_meta(SIM_NOW) or 0.0)
            if settings.time_origin is not None:
                # The one wall-clock read: a shared origin keeps the worker's simulated time
                # in step with whoever started it, across restarts.
                start = max(start, (time.time() - settings.time_origin) * settings.speed)
            clock = Clock(epoch=settings.epoch, scale=settings.speed, start=start)
            sim_time.clock = clock
            ledger = Ledger(store, clock)
            log.info("store loaded", jobs=len(ledger), db=str(settings.db))
            service = JobService(
                ledger,
                Planner(settings.datacenter, settings.seed, settings.pinned),
                policy=settings.policy,
            )
            commands = CommandHandler(service, max_bytes=settings.max_command_bytes)
            link = MqttLink(
                self.broker,
                worker_id=settings.worker_id,
                ledger=ledger,
                window=settings.window,
                will_delay=settings.will_delay,
                commands=commands,
            )
            api = http = None
            if settings.http is not None:
                from worker.http import ArmApi
                from worker.http_server import HttpServer

                api = ArmApi(
                    service, token=settings.http.token, max_body=settings.max_command_bytes
                )
                http = HttpServer(api.app, settings.http, shutdown_timeout=settings.drain_timeout)
            relay = OutboxRelay(ledger, link, replay_tail=settings.replay_tail)
            link.on_connected = relay.connected
            link.on_connection_lost = relay.connection_lost
            self.service, self.link, self.http = service, link, http
            async with anyio.create_task_group() as outer:
                if http is not None:  # first: a port in use fails before MQTT connects
                    await outer.start(http.run)
                await outer.start(link.run)
                relaying = anyio.CancelScope()

                async def relay_until_stopped() -> None:
                    with relaying:
                        await relay.run()

                outer.start_soon(relay_until_stopped)
                async with anyio.create_task_group() as datacenter:
                    await datacenter.start(DatacenterPipeline(service).run)
                    await datacenter.start(RetentionSweeper(service).run)
                    log.info("worker running", worker=settings.worker_id, jobs=len(ledger))
                    task_status.started()
                    await self.stop.wait()
                    if api is not None and http is not None:
                        api.close()
                        with anyio.move_on_after(settings.drain_timeout):
                            await http.stop()
                    commands.close()
                    datacenter.cancel_scope.cancel()
                log.info("worker stopping: draining the outbox")
                relaying.cancel()
                with anyio.move_on_after(settings.drain_timeout) as drain:
                    await relay.drain()
                if drain.cancelled_caught:
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
    on_ready: Callable[[BrokerConfig, HttpServer | None], None],
) -> None:
    """Run a worker until SIGINT or SIGTERM; ``on_ready`` is told the broker it serves on,
    and the Azure REST API's server when there is one (its URL, its certificate). On the
    embedded broker it is told once the worker is subscribed to commands there."""
    log.info("worker starting", worker=settings.worker_id, db=str(settings.db))

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
            on_ready(broker, worker.http)
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
