"""bench/disk_load.py: the neighbour writes and syncs next to the store, then tidies up."""

from __future__ import annotations

import time
from pathlib import Path

from bench.disk_load import disk_load, disk_load_sentence


def test_the_neighbour_syncs_files_while_it_runs_and_removes_them(tmp_path: Path) -> None:
    written = tmp_path / "disk-load.bin"
    with disk_load(tmp_path, mib=2) as load:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            written.exists() and written.stat().st_size == 2 << 20
        ):
            time.sleep(0.01)
        time.sleep(1.0)  # a whole file written: its sync, and likely more, within a second
    assert load.synced_mib >= 2
    assert list(tmp_path.iterdir()) == []


def test_a_run_under_disk_load_says_so_and_one_without_says_nothing() -> None:
    assert "wrote and synced 1,024 MiB" in disk_load_sentence(1024)
    assert disk_load_sentence(None) == ""
