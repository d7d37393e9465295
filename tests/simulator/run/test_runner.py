"""The shipped scenarios run end to end in virtual time and report what they promise."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.report.history import History
from simulator.report.json_report import without_wall_clock
from simulator.scenario import load_scenario
from tests.simulator.conftest import run_to_report
from worker.model import JobState
from worker.sqlite_store import SQLiteStore

Runner = Callable[..., tuple[Any, dict[str, Any]]]

DAY = 86400.0


def _invariants(report: dict[str, object]) -> dict[str, bool]:
    return {i["name"]: i["ok"] for i in report["invariants"]}  # type: ignore[attr-defined]


def test_cancel_mid_transfer_finishes_in_flight_drives_and_skips_the_rest(
    run_config: Runner,
) -> None:
    """Two drives copying at the cancel finish, two waiting are skipped, job Completed, deleted."""
    result, report = run_config("cancel-mid-transfer")
    assert report["ok"], report["invariants"]
    assert all(_invariants(report).values())
    cancel = report["cancel"]
    assert cancel["accepted"] == 1
    assert cancel["drivesFinishedAfterCancel"] == 2
    assert cancel["drivesSkipped"] == 2
    assert cancel["bytesAfterCancel"] > 0
    assert report["jobs"]["finalStates"] == {"Completed": 1}
    assert report["jobs"]["deleted"] == {"retention": 1}
    # The last Completed snapshot says cancelled, and the drives tell the story.
    snapshots = [
        json.loads(m.payload)
        for m in result.history
        if m.topic.endswith("contoso-import/state") and m.payload
    ]
    final = snapshots[-1]
    assert final["properties"]["state"] == "Completed"
    assert final["properties"]["cancelRequested"] is True
    assert final["outcome"] == "cancelled"
    drives = {d["driveId"]: d for d in final["properties"]["driveList"]}
    copied = [d for d in drives.values() if d.get("copyStatus") == "Completed"]
    skipped = [d for d in drives.values() if "copyStatus" not in d]
    assert len(copied) == 2
    assert len(skipped) == 2
    assert all(d["state"] == "ShippedBack" for d in drives.values())
    # Deleted 90 days (plus at most one sweep) after it ended.
    ended = final["simTime"]
    deletion = [
        m for m in result.history if m.topic.endswith("/events") and b"jobDeleted" in m.payload
    ]
    deleted_at = json.loads(deletion[-1].payload)["time"]
    gap = (datetime.fromisoformat(deleted_at) - datetime.fromisoformat(ended)).total_seconds()
    assert 90 * DAY <= gap <= 90 * DAY + 3600


def test_cancel_too_late_refuses_and_deletes_as_documented(run_config: Runner) -> None:
    """Cancel in Packaging and delete in Transferring refused; allowed deletes make it 404."""
    _, report = run_config("cancel-too-late")
    assert report["ok"], report["invariants"]
    answers = [(a["job"], a["do"], a["outcome"]) for a in report["actions"]]
    assert ("fabrikam-import", "delete", "DeleteNotAllowed") in answers
    assert ("fabrikam-import", "cancel", "rejected-too-late") in answers
    assert ("fabrikam-import", "delete", "ok") in answers
    assert ("fabrikam-import", "get", "ResourceNotFound") in answers
    assert ("fabrikam-draft", "delete", "ok") in answers
    assert ("fabrikam-draft", "get", "ResourceNotFound") in answers
    late = next(a for a in report["actions"] if a["outcome"] == "rejected-too-late")
    assert "Packaging" in late["detail"]
    assert report["cancel"]["rejectedTooLate"] == 1
    assert report["cancel"]["accepted"] == 0
    assert report["jobs"]["deleted"] == {"customer": 2}


def test_export_job_registers_drives_on_receipt_and_reports_incomplete_blobs(
    run_config: Runner,
) -> None:
    """Export: drives appear at receipt as Received, the overflow is listed, keys come out."""
    result, report = run_config("export-job")
    assert report["ok"], report["invariants"]
    keys = next(a for a in report["actions"] if a["do"] == "keys")
    assert keys["detail"] == "3 keys listed"
    snapshots = [
        json.loads(m.payload)
        for m in result.history
        if m.topic.endswith("export/state") and m.payload
    ]
    assert snapshots[0]["properties"]["driveList"] == []
    received = next(s for s in snapshots if s["properties"]["state"] == JobState.RECEIVED)
    assert [d["state"] for d in received["properties"]["driveList"]] == ["Received"] * 3
    final = snapshots[-1]["properties"]
    assert final["state"] == "Completed"
    assert final["incompleteBlobListUri"].endswith("northwind-export_incomplete.xml")
    assert sum(d["bytesSucceeded"] for d in final["driveList"]) == 6 * 10**12
    assert final["returnPackage"]["driveCount"] == 3


def test_same_seed_gives_the_same_report(run_config: Runner) -> None:
    """Two runs of one seed agree byte for byte, apart from wall-clock time."""
    _, first = run_config("cancel-mid-transfer")
    _, second = run_config("cancel-mid-transfer")
    assert without_wall_clock(first) == without_wall_clock(second)


def test_same_seed_gives_the_same_history_on_sqlite(run_config: Runner, tmp_path: Path) -> None:
    """The SQLite store (called in the loop, not on a thread) keeps virtual time exact."""
    memory, _ = run_config("export-job")
    store = SQLiteStore(tmp_path / "run.db")
    on_disk, _ = run_config("export-job", store=store)
    assert [(m.topic, m.payload) for m in memory.history] == [
        (m.topic, m.payload) for m in on_disk.history
    ]


def test_another_seed_draws_another_plan(run_config: Runner) -> None:
    """The seed reaches the draws: return delays differ between seeds."""
    _, first = run_config("cancel-mid-transfer", seed=1)
    _, second = run_config("cancel-mid-transfer", seed=2)
    assert first["simulatedSeconds"] != second["simulatedSeconds"]


LATE = """
name = "late-drive"
until = "30d"
[policy]
retention = "1d"
[datacenter]
locations = { "West US" = 2 }
carrier_delay = "1d"
return_delay = "1d"
[[jobs]]
name = "late"
drives = [{ id = "L0", size = "1TB" }, { id = "L1", size = "1TB", late_by = "2d" }]
[[jobs]]
name = "cancelled"
drives = [
  { id = "C0", size = "2TB" },
  { id = "C1", size = "1TB", late_by = "2d" },
  { id = "C2", size = "1TB" },
]
[[actions]]
job = "late"
do = "create"
at = "0s"
[[actions]]
job = "late"
do = "ship"
at = "1h"
[[actions]]
job = "cancelled"
do = "create"
at = "0s"
[[actions]]
job = "cancelled"
do = "ship"
at = "1h"
[[actions]]
job = "cancelled"
do = "cancel"
when = "Transferring"
after = "30m"
expect = "accepted"
"""


def test_a_late_drive_is_received_after_its_package_and_waited_for(tmp_path: Path) -> None:
    """A drive missing from its package is NeverReceived when the package is opened, then
    Received when it arrives; the job copies what came, waits for the late drive (cancel or
    not: it has to go back), then copies it, or skips it after a cancel."""
    path = tmp_path / "late.toml"
    path.write_text(LATE, encoding="utf-8")
    result, report = run_to_report(load_scenario(path))
    assert report["ok"], report["invariants"]
    history = History(result.history, result.scenario.epoch)
    lives = {life.job: life for life in history.incarnations}

    def moves(job: str, drive: str) -> list[tuple[float, str]]:
        return [
            (e.time, e.data["to"])
            for e in lives[job].events_of("driveStateChanged")
            if e.data["driveId"] == drive
        ]

    def entered(job: str, state: str) -> float:
        return next(e.time for e in lives[job].events_of("stateChanged") if e.data["to"] == state)

    received = entered("late", "Received")
    # Missing from its package: NeverReceived as it is opened, Received when it arrives.
    assert moves("late", "L1")[:2] == [
        (received, "NeverReceived"),
        (received + 2 * DAY, "Received"),
    ]
    assert [to for _, to in moves("late", "L1")] == [
        "NeverReceived",
        "Received",
        "Transferring",
        "Completed",
        "ShippedBack",
    ]
    assert entered("late", "Packaging") > received + 2 * DAY
    # After the cancel, the late drive is still received, then skipped with the waiting one.
    arrived = entered("cancelled", "Received") + 2 * DAY
    assert moves("cancelled", "C1")[1] == (arrived, "Received")
    assert "Transferring" not in [to for _, to in moves("cancelled", "C1")]
    assert report["cancel"]["drivesSkipped"] == 2
    assert entered("cancelled", "Packaging") == arrived
    assert report["sometimes"]["drive arrived after its package"] == 2
    assert "drive never received" not in report["sometimes"]


def test_a_run_result_repr_counts_instead_of_listing(run_config: Runner) -> None:
    """A run's result reprs as one short line of counts, not its history and jobs."""
    result, _ = run_config("cancel-mid-transfer")
    text = repr(result)
    assert text.startswith("RunResult(scenario='cancel-mid-transfer', ")
    assert f"history={len(result.history)})" in text
    assert f"actions={len(result.actions)}, " in text
    assert len(text) < 300
