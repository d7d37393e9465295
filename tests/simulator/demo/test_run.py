"""The demo's story in two phases: paced until every job has ended, then fast-forwarded in
virtual time on the same store."""

from __future__ import annotations

from simulator.demo.outcome import DemoOutcome
from simulator.demo.story import StoryOptions, demo_scenario
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from worker.memory_store import MemoryStore


def test_the_fast_forward_changes_nothing(default: tuple[RunResult, DemoOutcome]) -> None:
    """Stopping once every job has ended and resuming in virtual time gives the very stream
    of one uninterrupted run."""
    result, _ = default
    whole = run_scenario(demo_scenario(StoryOptions()), MemoryStore())
    assert [m.payload for m in result.history] == [m.payload for m in whole.history]
    assert [a.to_json() for a in result.actions] == [a.to_json() for a in whole.actions]
