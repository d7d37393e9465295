"""Where a sweep's cells run: a pool of local processes, or a Dask distributed cluster.

Either way each cell is :func:`~simulator.sweep.cells.run_cell` on its own task, and each
result is handed to ``on_done`` as it arrives (in any order); the same task gives the same
result wherever it runs, because a cell runs in virtual time from its seed alone.
"""

from __future__ import annotations

import multiprocessing
import signal
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from simulator.sweep.cells import CellTask, run_cell
from worker import DrivesimError

__all__ = ["connect_timeout", "run_dask", "run_local"]

OnDone = Callable[[dict[str, Any]], None]

#: Seconds to wait for a Dask scheduler to answer before giving up.
connect_timeout = 20.0


def _ignore_sigint() -> None:
    """In a pool's process: Ctrl-C is the parent's to handle (it ends the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local(tasks: Sequence[CellTask], processes: int, on_done: OnDone) -> None:
    """Run ``tasks`` in ``processes`` fresh processes (spawned, not forked: the parent's
    threads and state stay its own). Interrupted, the pool is ended at once: cells under
    way are lost, those done are already with ``on_done``."""
    if not tasks:
        return
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(processes, len(tasks)), initializer=_ignore_sigint)
    try:
        for row in pool.imap_unordered(run_cell, tasks, chunksize=1):
            on_done(row)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def run_dask(tasks: Sequence[CellTask], address: str, on_done: OnDone) -> int:
    """Run ``tasks`` on the Dask scheduler at ``address`` (``tcp://HOST:PORT``), one task a
    cell; the workers need drivesim installed. Returns the number of workers seen at start."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DrivesimError(
            "--dask needs the distributed package: pip install 'drivesim[dask]'"
        ) from None
    try:
        client = Client(address, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        raise DrivesimError(f"no Dask scheduler answered at {address} ({exc})") from None
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        if not tasks:
            return workers
        # Keys of this sweep's own: another sweep on the cluster never shares a result.
        token = uuid.uuid4().hex[:12]
        futures = [
            client.submit(run_cell, task, key=f"drivesim-cell-{task.index}-{token}", pure=False)
            for task in tasks
        ]
        try:
            for future in as_completed(futures):
                on_done(future.result())
        except BaseException:
            client.cancel(futures)
            raise
    return workers
