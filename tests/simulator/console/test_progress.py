"""Progress of long runs: counts of the stream, shown as one line."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from simulator.console.progress import RunProgress
from simulator.run.runner import run_scenario
from simulator.run.split import ShardProgress
from simulator.scenario import parse_scenario
from worker.clock import DEFAULT_EPOCH
from worker.memory_store import MemoryStore

SCENARIO = {
    "name": "p",
    "seed": 1,
    "datacenter": {"carrier_delay": "1d", "return_delay": "1d", "drive_size": "100GB"},
    "workload": {"jobs": 5, "over": "1d", "ship_after": "1h"},
}


def test_progress_counts_jobs_and_messages_of_a_real_run() -> None:
    """Fed a run's stream, the line counts every job created and ended, and every message."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    scenario = parse_scenario(SCENARIO)
    with RunProgress(console, DEFAULT_EPOCH, jobs=len(scenario.jobs)) as progress:
        progress._every = 0.0  # print on every event, not every ten seconds
        result = run_scenario(scenario, MemoryStore(), on_message=progress.on_message)
    assert progress.messages == len(result.history)
    assert progress.created == 5
    assert progress.ended == 5
    last = out.getvalue().strip().splitlines()[-1]
    assert "jobs created 5/5" in last
    assert "ended" in last
    assert last.startswith("simulated ")


def test_a_line_drawn_for_a_fault_shows_the_latest_simulated_time() -> None:
    """Lines drawn between the timed ones (a fault struck) read the time of the latest
    event, not of the last timed line."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    scenario = parse_scenario(SCENARIO)
    with RunProgress(console, DEFAULT_EPOCH, jobs=len(scenario.jobs)) as progress:
        result = run_scenario(scenario, MemoryStore(), on_message=progress.on_message)
        drawn = progress._line().plain
    last = [m for m in result.history if m.topic.endswith("/events")][-1]
    stamp = last.payload.split(b'"time":"', 1)[1][:24].decode()
    assert progress.sim_time == stamp
    assert drawn.startswith("simulated ")


def test_the_line_estimates_the_time_left_from_how_far_the_run_is() -> None:
    """Half the jobs deleted after 10 s: about 10 s left; the simulated time over the
    scenario's until counts when it is further along."""
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    progress = RunProgress(console, DEFAULT_EPOCH, jobs=10, until=100 * 86400.0)
    progress._started -= 10.0
    assert progress.eta() is None  # nothing to go on yet
    progress.deleted = 5
    eta = progress.eta()
    assert eta is not None
    assert 9.5 < eta < 11
    assert "50%, about 10 s left" in progress._line().plain
    progress.sim_time = "2026-04-05T08:00:00.000Z"  # 90 of the 100 days
    assert progress.done() == pytest.approx(0.9)


def test_the_phases_after_the_simulation_are_shown() -> None:
    """After the run, the line names the phase that runs instead of freezing; in a log file
    a phase is printed once the run has printed progress (a short run stays quiet)."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with RunProgress(console, DEFAULT_EPOCH, jobs=1) as progress:
        with progress.phase("checking the invariants"):
            assert progress._line().plain.startswith("checking the invariants… 0 s")
        assert out.getvalue() == ""
        progress._show()  # a long run's periodic line
        with progress.phase("building the report"):
            pass
        assert progress._line().plain.startswith("simulated ")
    assert out.getvalue().splitlines()[-1] == "building the report…"


def test_a_run_on_a_terminal_shows_its_progress_and_phases_by_default(tmp_path: Path) -> None:
    """drivesim run, timeline and all, on a real pseudo-terminal: the progress line is drawn
    under the timeline, then each phase after the simulation."""
    drivesim = Path(sys.executable).parent / "drivesim"
    scenario = Path(__file__).parents[3] / "configs" / "cancel-mid-transfer.toml"
    main, side = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "xterm"}
    command = [str(drivesim), "run", str(scenario), "--html", str(tmp_path / "r.html")]
    with subprocess.Popen(command, stdin=side, stdout=side, stderr=side, env=env) as process:
        os.close(side)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(main)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert "cancel recorded in Transferring" in screen  # the timeline
    assert "jobs created 1/1" in screen  # the progress line, under it
    for phase in ("reading the history…", "checking the invariants…", "building the report…"):
        assert phase in screen
    assert "writing the HTML report…" in screen


def test_progress_of_a_run_split_between_processes_counts_every_shard() -> None:
    """The shards' counts add up; the simulated time is that of the shard furthest behind
    among those still running, then the last one's."""
    console = Console(file=io.StringIO(), width=200)
    progress = RunProgress(console, DEFAULT_EPOCH, jobs=100, until=100 * 86400.0)
    progress.on_shard(
        ShardProgress(0, messages=50, created=10, ended=2, deleted=1, simulated=86400.0)
    )
    progress.on_shard(ShardProgress(1, messages=70, created=20, ended=3, deleted=0, simulated=None))
    assert (progress.messages, progress.created, progress.ended, progress.deleted) == (
        120,
        30,
        5,
        1,
    )
    assert progress.simulated() == 86400.0
    progress.on_shard(
        ShardProgress(1, messages=90, created=25, ended=4, deleted=2, simulated=5 * 86400.0)
    )
    assert progress.simulated() == 86400.0
    progress.on_shard(ShardProgress(0, 60, 12, 3, 2, 3 * 86400.0, finished=True))
    assert progress.simulated() == 5 * 86400.0
    assert "jobs created 37/100 · ended 7 · messages 150" in progress._line().plain
