"""A sweep's folder: the grid it runs (``grid.json``) and each cell's result, appended as it
comes (``cells.jsonl``), so that an interrupted sweep goes on from the cells already done.

A rerun in the same folder must be of the same grid (same scenario content, keys, values
and seeds); another grid is refused, and nothing in the folder changes.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from simulator.sweep.grid import Grid
from worker import ConfigError

__all__ = ["CELLS_FILE", "GRID_FILE", "Results"]

GRID_FILE = "grid.json"
CELLS_FILE = "cells.jsonl"


class Results:
    """The cells done in a sweep's folder, and the file new ones are appended to."""

    def __init__(self, folder: Path, grid: Grid) -> None:
        self.folder = folder
        self.grid = grid
        self.done: dict[int, dict[str, Any]] = {}
        self._file: TextIO | None = None

    def open(self) -> Results:
        """Check the folder's grid and read the cells already done. Nothing is written
        until the first cell is done: a sweep that fails to start leaves no folder."""
        identity = self.grid.identity()
        grid_file = self.folder / GRID_FILE
        if grid_file.exists():
            try:
                found = json.loads(grid_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(str(grid_file), "(file)", f"a sweep's grid ({exc})") from None
            if found != identity:
                raise ConfigError(
                    str(self.folder),
                    "--out",
                    "a folder of this grid, but it holds another sweep "
                    f"({_differs(found, identity)}): give another --out, or remove the "
                    "folder to start again",
                )
            cells_file = self.folder / CELLS_FILE
            if cells_file.exists():
                self._read(cells_file)
        return self

    def _append(self) -> TextIO:
        """The file cells are appended to, the folder and its grid recorded first."""
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            grid_file = self.folder / GRID_FILE
            cells_file = self.folder / CELLS_FILE
            if grid_file.exists():
                self._file = cells_file.open("a", encoding="utf-8")
            else:  # a new sweep: no cells of another are kept
                text = json.dumps(self.grid.identity(), indent=2) + "\n"
                grid_file.write_text(text, encoding="utf-8")
                self._file = cells_file.open("w", encoding="utf-8")
        return self._file

    def _read(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            # Cut off mid-line when the sweep was killed: that cell runs again.
            kept = text[: text.rfind("\n") + 1]
            path.write_text(kept, encoding="utf-8")
            text = kept
        cells = {cell.index: cell for cell in self.grid.cells()}
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                row = json.loads(line)
                cell = cells[row["index"]]
                ok = row["seed"] == cell.seed
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise ConfigError(str(path), f"line {number}", "a cell of this sweep's grid")
            self.done[cell.index] = row

    def add(self, row: dict[str, Any]) -> None:
        """Keep a cell's result: one line, on disk before the next cell is counted. A
        Ctrl-C meanwhile waits until the line is written and the cell counted."""
        with _sigint_deferred():
            file = self._append()
            file.write(json.dumps(row, sort_keys=True, default=str) + "\n")
            file.flush()
            os.fsync(file.fileno())
            self.done[int(row["index"])] = row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Results:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """SIGINT held back while the block runs (in the main thread), then raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _differs(found: Any, wanted: dict[str, Any]) -> str:
    """Which part of the grid differs, in words."""
    if not isinstance(found, dict):
        return "an unreadable grid"
    for key, words in (
        ("scenario", "another scenario"),
        ("document", "another version of the scenario file"),
        ("vary", "other keys or values"),
        ("seeds", "other seeds"),
    ):
        if found.get(key) != wanted[key]:
            return words
    return "another grid"
