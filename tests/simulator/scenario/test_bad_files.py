"""Every bad scenario or settings file is refused before any work: exit 2, one line on
stderr naming the file and the key, no traceback, and nothing written.

The corpus is ``tests/simulator/data/bad-input/``: each file says in a comment what it
breaks and, on an ``# error-key:`` line, the key the error must name. Scenario files run
through ``drivesim run``; the worker's settings files (``worker/``) through
``drivesim worker --config``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main

CORPUS = Path(__file__).parents[1] / "data" / "bad-input"
SCENARIOS = sorted(CORPUS.glob("*.toml"))
SETTINGS = sorted((CORPUS / "worker").glob("*.toml"))


def _key(path: Path) -> str:
    """The key the file says its error must name."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# error-key: "):
            return line.removeprefix("# error-key: ")
    raise AssertionError(f"{path} has no '# error-key:' line")


def _refused(path: Path, out: str, err: str, key: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}: {key}: "), lines[0]
    assert "Traceback" not in err + out
    assert out == ""


def test_the_corpus_is_large_and_each_file_names_its_key() -> None:
    """The corpus covers the classes (numbers, units, enumerations, names, typos)."""
    assert len(SCENARIOS) >= 40
    assert len(SETTINGS) >= 10
    for path in [*SCENARIOS, *SETTINGS]:
        assert path.read_text(encoding="utf-8").startswith("# Breaks: "), path
        assert _key(path)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_bad_scenario_is_refused_before_the_run(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``drivesim run BAD.toml --db FILE`` exits 2 with one line naming the key; the
    database is never created."""
    db = tmp_path / "run.db"
    code = main(["run", str(path), "--db", str(db)])
    captured = capsys.readouterr()
    assert code == 2
    _refused(path, captured.out, captured.err, _key(path))
    assert not db.exists()


@pytest.mark.parametrize("path", SETTINGS, ids=lambda p: p.stem)
def test_a_bad_worker_settings_file_is_refused_before_the_worker_starts(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``drivesim worker --config BAD.toml`` exits 2 with one line naming the key."""
    code = main(["worker", "--config", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    _refused(path, captured.out, captured.err, _key(path))


def test_the_real_command_refuses_an_overflowing_drive_size(tmp_path: Path) -> None:
    """As a process: the size that once overflowed the store's commit mid-run is refused
    up front, on one line, with exit 2."""
    path = CORPUS / "drive-size-overflow.toml"
    db = tmp_path / "run.db"
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", str(path), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {path}: jobs[0].drives[0].size: a size from 0B to 1PB, not '999999999999999TB'"
    ]
    assert not db.exists()
