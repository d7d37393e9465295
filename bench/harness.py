"""The processes and folders a benchmark runs: child Pythons, a Mosquitto of its own (and
the worker's MQTT link to it), the worker from another tree or under a profiler, working
folders, files read as they grow.

A bench measures in a child process whatever must not share its interpreter (a peak RSS,
a start-up, a publisher's CPU): :func:`python` and :func:`python_code` build the command,
:func:`run` runs it from the repository's root, :func:`child_json` reads the JSON object
the child prints last. The broker is :class:`simulator.live.processes.Mosquitto` (a config of
its own, a free loopback port), started and stopped by :func:`mosquitto`.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from simulator.live.processes import DRIVESIM, Mosquitto

if TYPE_CHECKING:
    from worker.mqtt import MqttLink

__all__ = [
    "NO_INFLIGHT_CAP",
    "ROOT",
    "Tail",
    "child_json",
    "connected",
    "mosquitto",
    "python",
    "python_code",
    "render_profile",
    "run",
    "run_workdir",
    "workdir",
    "worker_program",
]

#: The repository: children run from here, so ``-m bench...`` and the configs resolve.
ROOT = Path(__file__).resolve().parents[1]

#: Mosquitto config for the throughput benches (the lab baseline): no in-flight cap.
NO_INFLIGHT_CAP = "max_inflight_messages 0\n"


# -- child processes ---------------------------------------------------------------------------


def python(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def python_code(code: str, *args: str) -> list[str]:
    """``python -c code args`` with this interpreter."""
    return [sys.executable, "-c", code, *args]


def run(command: Sequence[str]) -> tuple[str, float]:
    """Run ``command`` from the repository's root, a child that must succeed: its standard
    output, and the wall seconds from its spawn to its exit."""
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return done.stdout, time.perf_counter() - started


def child_json(command: Sequence[str]) -> tuple[dict[str, Any], float]:
    """:func:`run` ``command``: the JSON object on the last line it printed, and its wall
    seconds."""
    out, wall = run(command)
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data, wall


# -- folders and files -------------------------------------------------------------------------


def workdir(stack: contextlib.ExitStack, prefix: str, keep: Path | None = None) -> Path:
    """``keep`` (created, left in place), or a temporary folder that ``stack`` removes."""
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    keep.mkdir(parents=True, exist_ok=True)
    return keep


def run_workdir(stack: contextlib.ExitStack, keep: Path | None, temp: str, kept: str) -> Path:
    """A run's workdir: a temporary one (prefix ``temp``) that ``stack`` removes, or with
    ``keep`` a folder of its own (prefix ``kept``) under ``keep``, left in place."""
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=temp)))
    keep.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=kept, dir=keep))


class Tail:
    """The complete lines of a file another process writes, read as it grows: each
    :meth:`read` returns those completed since the last (from ``offset``; default: the
    file's end now)."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = path
        self.offset = path.stat().st_size if offset is None else offset
        self._partial = b""

    def read(self) -> list[bytes]:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return lines


# -- the broker --------------------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto(folder: Path, *, extra_config: str = "") -> Iterator[Mosquitto]:
    """A Mosquitto of its own on a free loopback port, its config and log in ``folder``
    (created), running for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(folder, extra_config=extra_config)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def connected(link: MqttLink, within: float = 10.0) -> AsyncIterator[MqttLink]:
    """The worker's MQTT ``link`` running and connected to its broker for the block (within
    ``within`` s, else TimeoutError); stopped after it, given as long to close."""
    async with anyio.create_task_group() as tg:
        await tg.start(link.run)
        with anyio.fail_after(within):
            await link.ready()
        yield link
        await link.stop()
        with anyio.move_on_after(within):
            await link.closed.wait()
        tg.cancel_scope.cancel()


# -- the worker, as another program ------------------------------------------------------------

#: The worker, as a script: its source tree first on sys.path.
WORKER_SCRIPT = """\
import sys
sys.path.insert(0, {tree!r})
from simulator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def worker_program(folder: Path, *, tree: Path | None, profile: Path | None) -> tuple[str, ...]:
    """The command that runs ``drivesim`` for a live run: this tree's (or ``tree``'s),
    under pyinstrument writing a session to ``profile``; a script in ``folder`` if needed."""
    if tree is None and profile is None:
        return DRIVESIM
    script = folder / "worker_main.py"
    script.write_text(WORKER_SCRIPT.format(tree=str(tree or ROOT)))
    if profile is None:
        return (sys.executable, str(script))
    return (
        *python("pyinstrument", "--renderer", "session", "--interval", "0.005"),
        *("--outfile", str(profile), str(script)),
    )


def render_profile(session: Path) -> None:
    """A saved pyinstrument session as text and HTML beside it."""
    for renderer, suffix in (("text", ".txt"), ("html", ".html")):
        subprocess.run(
            [
                *python("pyinstrument", "--load", str(session)),
                *("--renderer", renderer, "--outfile", str(session.with_suffix(suffix))),
            ],
            check=False,
        )
