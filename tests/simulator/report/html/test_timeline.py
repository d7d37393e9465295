"""The timeline draws every state the model has, each in its own colour."""

from __future__ import annotations

import re

import pytest

from simulator.report.html.style import CSS
from simulator.report.html.timeline import DRIVE_STATES, JOB_STATES
from worker import DriveState, JobState


@pytest.mark.parametrize(
    ("prefix", "drawn", "model"),
    [("s", JOB_STATES, JobState), ("d", DRIVE_STATES, DriveState)],
    ids=["job", "drive"],
)
def test_every_state_of_the_model_has_its_own_colour(
    prefix: str, drawn: tuple[str, ...], model: type[JobState] | type[DriveState]
) -> None:
    assert drawn == tuple(str(s) for s in model)
    fills = {s: re.search(rf"\.{prefix}-{s}\{{fill:(#[0-9a-f]{{6}})", CSS) for s in drawn}
    assert [s for s, fill in fills.items() if fill is None] == []
    colours = [fill[1] for fill in fills.values() if fill is not None]
    assert len(set(colours)) == len(colours)
