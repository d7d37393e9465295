"""Job records: a clone shares what no change modifies in place, and drives are values."""

from __future__ import annotations

import pytest

from tests.worker import conftest
from worker.model import DriveState, DriveStatus, JobState
from worker.record import JobRecord, clone


def record() -> JobRecord:
    return conftest.record(
        state=JobState.RECEIVED,
        seq=0,
        drives=("D1", "D2", "D3"),
        drive_state=DriveState.RECEIVED,
        tags={"team": "a"},
    )


def test_a_clone_shares_the_drives_and_a_change_replaces_one() -> None:
    """The clone holds the same drive values; changing one on it leaves the original's."""
    committed = record()
    changed = clone(committed)
    assert all(a is b for a, b in zip(changed.drives, committed.drives, strict=True))
    drive = changed.set_drive(changed.drive("D2"), state=DriveState.TRANSFERRING)
    assert drive.state is DriveState.TRANSFERRING
    assert changed.drive("D2") is drive
    assert committed.drive("D2").state is DriveState.RECEIVED
    assert changed.drive("D1") is committed.drive("D1")
    assert changed.drive("D3") is committed.drive("D3")


def test_a_drive_sim_changed_on_a_clone_leaves_the_original_alone() -> None:
    committed = record()
    changed = clone(committed)
    changed.set_drive_sim("D1", started_at=5.0)
    assert changed.sim.drives["D1"].started_at == 5.0
    assert committed.sim.drives["D1"].started_at is None
    assert changed.sim.drives["D2"] is committed.sim.drives["D2"]


def test_what_a_change_modifies_in_place_is_the_clones_own() -> None:
    """Job state, tags, keys and the simulation's figures changed on a clone stay there."""
    committed = record()
    changed = clone(committed)
    changed.job.properties.state = JobState.TRANSFERRING
    assert changed.job.tags is not None
    changed.job.tags["team"] = "b"
    changed.keys["D1"] = "NEW"
    changed.sim.seq = 7
    changed.job.properties.drive_list = []
    assert committed.state is JobState.RECEIVED
    assert committed.job.tags == {"team": "a"}
    assert committed.keys["D1"] == "KEY-D1"
    assert committed.sim.seq == 0
    assert [d.drive_id for d in committed.drives] == ["D1", "D2", "D3"]


def test_drive_values_cannot_be_changed_in_place() -> None:
    """A change that wrote to a shared drive would change the committed record: refused."""
    committed = record()
    with pytest.raises(AttributeError):
        committed.drive("D1").state = DriveState.TRANSFERRING  # type: ignore[misc]
    with pytest.raises(AttributeError):
        committed.sim.drives["D1"].skipped = True  # type: ignore[misc]


def test_setting_a_drive_the_record_does_not_hold_is_an_error() -> None:
    committed = record()
    with pytest.raises(ValueError, match="not in list"):
        committed.set_drive(DriveStatus(drive_id="D9"), state=DriveState.RECEIVED)
    with pytest.raises(KeyError):
        committed.set_drive_sim("D9", skipped=True)
