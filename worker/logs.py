"""structlog set-up: JSON in production, a readable console in development, simulated time
in every event, job and drive bound through contextvars."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from worker.clock import Clock

__all__ = ["SimTime", "configure_logging"]


class SimTime:
    """A processor that stamps each event with the simulated time of a clock."""

    __slots__ = ("clock",)

    def __init__(self) -> None:
        self.clock: Clock | None = None

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        if self.clock is not None:
            # No running event loop (before or after a run): no simulated time to stamp.
            with contextlib.suppress(RuntimeError):
                event_dict["sim_time"] = self.clock.isoformat()
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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
