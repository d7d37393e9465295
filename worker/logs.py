"""structlog set-up: JSON in production, a readable console in development, simulated time
in every event, job and drive bound through contextvars."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from worker.clock import Clock

__all__ = ["Logger", "SimTime", "configure_logging", "get_logger", "plain_paths"]


def plain_paths(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """A processor that logs every path as the plain path it is: both renderers would
    write ``PosixPath('...')``, a Python repr, for a field holding a ``Path``."""
    for key, value in event_dict.items():
        if isinstance(value, PurePath):
            event_dict[key] = str(value)
    return event_dict


class SimTime:
    """A processor that stamps each event with the simulated time of a clock.

    An event that brings its own ``sim_time`` keeps it: a committed change is logged at the
    time it was committed (the time its status messages carry), not at the moment the line
    is written, which in scaled real time is later. An event logged from another thread's
    event loop than the clock's (the demo's fast-forward runs on a loop of its own), or
    with no loop running, is not stamped: that clock's time means nothing there.

    A run's log never goes backwards in simulated time: lines are stamped in the order
    they are written, and a datacenter that stops records the time it stopped at
    (:meth:`worker.datacenter.Datacenter.running`), where a resumed run's clock starts.
    """

    __slots__ = ("clock",)

    def __init__(self) -> None:
        self.clock: Clock | None = None

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        clock = self.clock
        if clock is None or "sim_time" in event_dict:
            return event_dict
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running event loop (before or after a run)
            return event_dict
        if clock.loop is None or clock.loop is loop:
            event_dict["sim_time"] = clock.isoformat()
        return event_dict


#: The processor :func:`configure_logging` installs; point ``sim_time.clock`` at a run's clock.
sim_time = SimTime()


def configure_logging(
    *,
    level: str = "warning",
    fmt: Literal["console", "json", "auto"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the CLI: ``auto`` is the console on a terminal, else JSON."""
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels or level.upper() == "NOTSET":
        raise ValueError(f"expected a log level such as debug, info or warning, got {level!r}")
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            sim_time,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="wall_time"),
            structlog.processors.format_exc_info,
            plain_paths,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levels[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


class Logger:
    """A named structlog logger, bound once per structlog configuration.

    structlog's own lazy logger binds a new logger on every call (about 3 µs, filtered out
    or not): too much for a line logged with every committed change. This one keeps the
    bound logger until the configuration changes (:func:`configure_logging`, or a test's
    ``structlog.testing.capture_logs``), which it notices by the identity of the
    configured processors and wrapper class (each configuration makes new ones).
    """

    __slots__ = ("_bound", "_key", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._key: tuple[object, ...] = ()
        self._bound: FilteringBoundLogger | None = None

    def _logger(self) -> FilteringBoundLogger:
        config = structlog.get_config()
        processors, wrapper = config["processors"], config["wrapper_class"]
        bound = self._bound
        if bound is None or self._key[0] is not processors or self._key[1] is not wrapper:
            bound = self._bound = structlog.get_logger(self.name).bind()
            self._key = (processors, wrapper)
        return bound

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` would be logged: to skip building costly fields."""
        enabled: bool = self._logger().is_enabled_for(level)
        return enabled

    # Properties, so that a call passes its arguments once: ``log.info(...)`` calls the
    # bound logger's own method.
    @property
    def debug(self) -> Callable[..., Any]:
        return self._logger().debug

    @property
    def info(self) -> Callable[..., Any]:
        return self._logger().info

    @property
    def warning(self) -> Callable[..., Any]:
        return self._logger().warning

    @property
    def error(self) -> Callable[..., Any]:
        return self._logger().error

    @property
    def exception(self) -> Callable[..., Any]:
        return self._logger().exception


def get_logger(name: str) -> Logger:
    """The logger every drivesim module logs through."""
    return Logger(name)
