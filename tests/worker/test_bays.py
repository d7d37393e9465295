"""A transfer's arithmetic: its target, its deadline and where each step ends."""

from __future__ import annotations

import contextvars

import pytest

from worker.bays import Bays, Transfer
from worker.config import DatacenterConfig
from worker.record import DrivePlan

CONFIG = DatacenterConfig(throughput=100.0, checkpoint_interval=10.0, transfer_deadline_factor=2.0)


def transfer(plan: DrivePlan, *, copied: int = 0, started_at: float = 0.0) -> Transfer:
    return Transfer(
        "job1",
        "D1",
        Bays(1),
        contextvars.Context(),
        plan=plan,
        config=CONFIG,
        started_at=started_at,
        copied=copied,
    )


def test_a_whole_copy_checkpoints_then_ends_on_its_last_step() -> None:
    """2,500 bytes at 100 a second: steps of 10 s, the last one 5 s, none cut."""
    t = transfer(DrivePlan(size_bytes=2500))
    assert (t.target, t.rate, t.deadline, t.fails) == (2500, 100.0, 50.0, False)
    assert t.next_step(0.0, 10.0) == 10.0
    assert (t.last, t.cut) == (False, False)
    t.copied = 2000
    assert t.next_step(20.0, 10.0) == 25.0
    assert (t.last, t.cut) == (True, False)


def test_a_failing_drive_stops_at_its_error() -> None:
    """A drive that fails at 40 % has 40 % of its bytes as its target."""
    t = transfer(DrivePlan(size_bytes=2500, fails_at=0.4))
    assert (t.target, t.fails) == (1000, True)


@pytest.mark.parametrize(
    ("speed", "now", "end", "cut"), [(1.0, 30.0, 39.0, False), (0.2, 45.0, 50.0, True)]
)
def test_a_slow_drive_is_cut_off_by_its_deadline(
    speed: float, now: float, end: float, cut: bool
) -> None:
    """The deadline is twice the nominal duration from the start (50 s): at full speed the
    last 900 bytes end before it; at a fifth of the speed the step ends at the deadline."""
    t = transfer(DrivePlan(size_bytes=2500, speed=speed), copied=1600)
    assert t.next_step(now, 10.0) == end
    assert t.cut is cut


def test_a_resumed_transfer_keeps_its_deadline_and_its_bytes() -> None:
    """Resumed from a checkpoint, a transfer counts from its start and its copied bytes."""
    t = transfer(DrivePlan(size_bytes=2500), copied=1200, started_at=100.0)
    assert (t.copied, t.deadline) == (1200, 150.0)
