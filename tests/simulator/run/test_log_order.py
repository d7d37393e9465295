"""A run's log never goes backwards in simulated time: not across the demo's fast-forward
(a run resumed from its store), not in scaled real time, not in virtual time."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import anyio
import pytest

from simulator.cli import main
from simulator.demo.run import StoryRun
from simulator.demo.story import StoryOptions, demo_scenario
from worker import JobState, configure_logging
from worker.states import CancelWindow

CONFIGS = Path(__file__).parents[3] / "configs"


def _stamps(text: str) -> list[str]:
    """The sim_time of each JSON log line, in the order written (unstamped lines skipped)."""
    stamps = []
    for line in text.splitlines():
        if line.startswith("{"):
            stamp = json.loads(line).get("sim_time")
            if stamp is not None:
                stamps.append(stamp)
    return stamps


def _backwards(stamps: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in itertools.pairwise(stamps) if b < a]


def test_the_demo_log_never_goes_back_when_it_fast_forwards() -> None:
    """Phase one in scaled real time, then phase two resumed from the store in virtual time:
    the resumed clock starts where phase one stopped, not back at its last commit (whose
    own log lines were written later, in real time)."""
    stream = io.StringIO()
    configure_logging(level="info", fmt="json", stream=stream)
    options = StoryOptions(CancelWindow.BEFORE_PACKAGING, JobState.TRANSFERRING)
    story = StoryRun(demo_scenario(options), 50_000.0, lambda _: None, lambda _: None)
    result = anyio.run(story.run)
    assert result.starts == 2  # it did resume
    stamps = _stamps(stream.getvalue())
    assert len(stamps) > 50
    assert _backwards(stamps) == []


def test_a_run_logs_in_simulated_time_order(capsys: pytest.CaptureFixture[str]) -> None:
    """drivesim run with its log as JSON (the global options after the subcommand)."""
    scenario = str(CONFIGS / "cancel-mid-transfer.toml")
    argv = ["run", scenario, "--quiet", "--db", ":memory:"]
    assert main([*argv, "--log-level", "info", "--log-format", "json"]) == 0
    stamps = _stamps(capsys.readouterr().err)
    assert len(stamps) > 20
    assert _backwards(stamps) == []
