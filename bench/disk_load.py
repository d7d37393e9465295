"""A neighbour that keeps the disk busy: a child process writing a file and syncing it,
over and over, next to the store under test.

Shared VMs sometimes make an ``fdatasync`` wait a tenth of a second or more; this makes
such waits happen on demand, so that a change to what waits for the disk can be measured
against the code before it under the same load.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskLoad", "add_disk_load_option", "disk_load", "disk_load_sentence"]

#: The child: write ``sys.argv[2]`` MiB to ``sys.argv[1]``, fdatasync, start over; on
#: SIGTERM (or its stdin closing) print the MiB it synced, and remove the file.
_CHILD = """
import os, signal, sys, threading
path, mib = sys.argv[1], int(sys.argv[2])
block, synced, stop = b"\\0" * (1 << 20), 0, threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
try:
    while not stop.is_set():
        with open(path, "wb") as out:
            for _ in range(mib):
                out.write(block)
            out.flush()
            os.fdatasync(out.fileno())
        synced += mib
finally:
    print(synced, flush=True)
    os.remove(path)
"""


@dataclass
class DiskLoad:
    """What the neighbour did: MiB written and synced while it ran."""

    ran: bool
    synced_mib: int = 0

    @property
    def reported_mib(self) -> int | None:
        """:attr:`synced_mib` as a report holds it: ``None`` when no neighbour ran."""
        return self.synced_mib if self.ran else None


@contextmanager
def disk_load(directory: Path, mib: int = 256, *, enabled: bool = True) -> Iterator[DiskLoad]:
    """Keep the disk under ``directory`` busy for the duration of the block (unless not
    ``enabled``: then the block runs as it is)."""
    load = DiskLoad(ran=enabled)
    if not enabled:
        yield load
        return
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(directory / "disk-load.bin"), str(mib)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield load
    finally:
        child.terminate()
        out, _ = child.communicate(timeout=60)
        load.synced_mib = int(out.strip() or 0)


def disk_load_sentence(synced_mib: int | None) -> str:
    """What a report says of a run with ``--disk-load`` (``None``: a run without it)."""
    if synced_mib is None:
        return ""
    return (
        f" **Under disk load** (`--disk-load`): a child process wrote and synced "
        f"{synced_mib:,} MiB next to the store during the run."
    )


def add_disk_load_option(parser: argparse.ArgumentParser, during: str) -> None:
    """``--disk-load``: keep the disk busy ``during`` (``the run``, ``each phase``)."""
    parser.add_argument(
        "--disk-load",
        action="store_true",
        help=f"keep the disk busy during {during}: a child writing and syncing 256 MiB files",
    )
