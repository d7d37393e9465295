"""Fixtures for the demo's tests: the default story, played once per module."""

from __future__ import annotations

import pytest

from simulator.demo.command import run_virtual
from simulator.demo.outcome import DemoOutcome, outcome_of
from simulator.demo.story import StoryOptions
from simulator.run.result import RunResult


@pytest.fixture(scope="module")
def default() -> tuple[RunResult, DemoOutcome]:
    """The default story in virtual time, and what became of it."""
    result = run_virtual(StoryOptions())
    return result, outcome_of(result, StoryOptions())
