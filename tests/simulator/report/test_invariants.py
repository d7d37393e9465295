"""Each invariant catches the fault it names: a real run's history, tampered with one fault."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from simulator.report.history import History
from simulator.report.invariants import check_owners, check_run
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario, parse_scenario
from worker.memory_store import MemoryStore
from worker.status import StatusMessage

CONFIG = Path(__file__).parents[3] / "configs" / "cancel-mid-transfer.toml"


@pytest.fixture(scope="module")
def clean_run() -> RunResult:
    return run_scenario(load_scenario(CONFIG), MemoryStore())


def _violations(run: RunResult) -> dict[str, list[str]]:
    history = History(run.history, run.scenario.epoch)
    return {c.name: c.violations for c in check_run(run, history)}


def _edit(message: StatusMessage, change: Callable[[dict[str, Any]], None]) -> StatusMessage:
    body = json.loads(message.payload)
    change(body)
    return msgspec.structs.replace(message, payload=json.dumps(body).encode())


def _index(run: RunResult, predicate: Callable[[StatusMessage, Any], bool]) -> int:
    for i, message in enumerate(run.history):
        body = json.loads(message.payload) if message.payload else None
        if predicate(message, body):
            return i
    raise AssertionError("no such message")


def _only(run: RunResult, name: str) -> list[str]:
    violations = _violations(run)
    others = {k: v for k, v in violations.items() if v and k != name}
    assert not others, f"unexpected violations besides {name}: {others}"
    assert violations[name], f"{name} did not catch the fault"
    return violations[name]


def test_a_clean_run_violates_nothing(clean_run: RunResult) -> None:
    """The untouched run passes every check (the baseline for the faults below)."""
    assert not any(_violations(clean_run).values())


def test_a_dropped_change_is_a_seq_gap(clean_run: RunResult) -> None:
    """Dropping every message of one change shows as a gap in the job's seq."""
    run = copy.copy(clean_run)
    victim = next(m.seq for m in clean_run.history if m.topic.endswith("/progress"))
    run.history = [m for m in clean_run.history if m.seq != victim]
    (violation,) = _only(run, "seq-without-gaps")
    assert f"seq {victim - 1} followed by {victim + 1}" in violation


def test_an_illegal_transition_is_named(clean_run: RunResult) -> None:
    """A snapshot that jumps from Received to Packaging is an illegal transition."""
    run = copy.copy(clean_run)
    i = _index(
        run,
        lambda m, b: (
            m.topic.endswith("/state")
            and b is not None
            and "properties" in b
            and b["properties"]["state"] == "Transferring"
        ),
    )

    def jump(body: dict[str, Any]) -> None:
        body["properties"]["state"] = "Completed"

    run.history = [
        *clean_run.history[:i],
        _edit(clean_run.history[i], jump),
        *clean_run.history[i + 1 :],
    ]
    violations = _violations(run)["legal-transitions"]
    assert any("Received -> Completed" in v for v in violations)


def test_a_drive_started_after_the_cancel_is_caught(clean_run: RunResult) -> None:
    """A worker that starts a drive after an accepted cancel is named with both seqs."""
    run = copy.copy(clean_run)
    i = _index(run, lambda m, b: m.topic.endswith("/events") and "cancelRequested" in b["type"])
    cancel = clean_run.history[i]
    later = next(
        j
        for j in range(i + 1, len(clean_run.history))
        if clean_run.history[j].topic.endswith("/events")
        and b"driveStateChanged" in clean_run.history[j].payload
    )

    def start(body: dict[str, Any]) -> None:
        body["data"].update({"driveId": "9CA995BD", "from": "Received", "to": "Transferring"})

    history = list(clean_run.history)
    history[later] = _edit(history[later], start)
    run.history = history
    violations = _violations(run)["no-start-after-cancel"]
    assert violations == [
        f"contoso-import: drive 9CA995BD started (seq {history[later].seq}) "
        f"after the cancel (seq {cancel.seq})"
    ]


def test_progress_going_back_is_caught(clean_run: RunResult) -> None:
    """A drive snapshot whose bytes fall below an earlier one is reported."""
    run = copy.copy(clean_run)
    drive_states = [
        j
        for j, m in enumerate(clean_run.history)
        if "/drives/9CA995BB/" in m.topic and m.payload and b'"bytesSucceeded":' in m.payload
    ]
    j = drive_states[-2]

    def shrink(body: dict[str, Any]) -> None:
        body["bytesSucceeded"] = 1

    history = list(clean_run.history)
    history[j] = _edit(history[j], shrink)
    run.history = history
    assert any("9CA995BB: bytes" in v for v in _violations(run)["progress-monotonic"])


def test_a_leaked_key_is_caught_without_repeating_it(clean_run: RunResult) -> None:
    """A BitLocker key in any payload is a violation; the report does not print the key."""
    run = copy.copy(clean_run)
    secret = sorted(clean_run.secrets)[0]

    def leak(body: dict[str, Any]) -> None:
        body["properties"]["driveList"][0]["bitLockerKey"] = secret

    i = _index(run, lambda m, b: m.topic.endswith("contoso-import/state") and b is not None)
    history = list(clean_run.history)
    history[i] = _edit(history[i], leak)
    run.history = history
    (violation,) = _only(run, "no-secret-published")
    assert secret not in violation


def test_a_run_that_stops_early_leaves_jobs_unfinished(clean_run: RunResult) -> None:
    """Cut before Packaging: the job never reached a terminal state and the run did not finish."""
    run = copy.copy(clean_run)
    i = _index(run, lambda m, b: m.topic.endswith("/events") and "cancelRequested" in b["type"])
    run.history = clean_run.history[: i + 1]
    run.finished = False
    violations = _violations(run)["terminal-or-deleted"]
    assert "contoso-import: still Transferring when the run ended" in violations


def test_a_late_retention_delete_is_caught(clean_run: RunResult) -> None:
    """A deletion two hours past its due time is outside the one-sweep window."""
    run = copy.copy(clean_run)
    i = _index(run, lambda m, b: m.topic.endswith("/events") and "jobDeleted" in b["type"])

    def later(body: dict[str, Any]) -> None:
        when = datetime.fromisoformat(body["time"]) + timedelta(hours=2)
        body["time"] = when.isoformat().replace("+00:00", "Z")

    history = list(clean_run.history)
    history[i] = _edit(history[i], later)
    run.history = history
    (violation,) = _only(run, "retention-window")
    assert "allowed 0 to 3600 s" in violation


def test_an_unexpected_answer_fails_the_expectations(clean_run: RunResult) -> None:
    """A scripted action that got another answer than the scenario expects is a violation."""
    run = copy.copy(clean_run)
    cancel = next(a for a in clean_run.actions if a.do == "cancel")
    run.actions = [
        dataclasses.replace(a, outcome="rejected-too-late") if a is cancel else a
        for a in clean_run.actions
    ]
    (violation,) = _violations(run)["scripted-expectations"]
    assert "expected accepted, got rejected-too-late" in violation


def test_a_cancel_accepted_outside_its_window_is_caught(clean_run: RunResult) -> None:
    """A cancel answered 'accepted' for a job already in Packaging breaks the window."""
    run = copy.copy(clean_run)
    run.actions = [
        dataclasses.replace(a, state="Packaging") if a.do == "cancel" else a
        for a in clean_run.actions
    ]
    (violation,) = _only(run, "cancel-window-respected")
    assert "accepted in Packaging" in violation


def test_a_retained_snapshot_of_a_gone_job_is_caught(clean_run: RunResult) -> None:
    """A snapshot left retained for a job no longer in the store is reported."""
    run = copy.copy(clean_run)
    topic = "importexport/v1/jobs/contoso-import/state"
    run.retained = {**clean_run.retained, topic: b'{"seq": 3}'}
    (violation,) = _only(run, "retained-equals-store")
    assert violation == f"{topic}: retained for a job not in the store"


def test_a_job_created_again_after_its_deletion_has_no_seq_gap() -> None:
    """The deletion takes a seq without a snapshot; the new job goes on after it."""
    scenario = parse_scenario(
        {
            "name": "again",
            "jobs": [{"name": "again", "drives": [{"id": "D1"}]}],
            "actions": [
                {"job": "again", "do": "create", "at": "0s"},
                {"job": "again", "do": "delete", "at": "1m", "expect": "ok"},
                {"job": "again", "do": "create", "at": "2m", "expect": "created"},
            ],
            "until": "20d",
        }
    )
    result = run_scenario(scenario, MemoryStore())
    history = History(result.history, scenario.epoch)
    assert [life.number for life in history.incarnations] == [1, 2]
    assert {c.name: c.violations for c in check_run(result, history)}["seq-without-gaps"] == []
    assert history.seqs["again"][:3] == [1, 2, 3]


def test_more_drives_copying_than_bays_is_caught(clean_run: RunResult) -> None:
    """Told its location had one bay fewer than it has, the run's own transfers overflow."""
    scenario = clean_run.scenario
    (location, bays) = next(iter(scenario.datacenter.locations.items()))
    fewer = dataclasses.replace(scenario.datacenter, locations={location: bays - 1})
    run = copy.copy(clean_run)
    run.scenario = dataclasses.replace(scenario, datacenter=fewer)
    # cancel-mid-transfer keeps every bay of its location busy at one moment.
    assert _only(run, "bays-never-exceeded") == [
        f"{location}: {bays} drives copying at once in {bays - 1} bays"
    ]


def _owners(*entries: tuple[str, str, int | None]) -> list[tuple[int, str, str | None, int | None]]:
    return [(i, location, worker, epoch) for i, (location, worker, epoch) in enumerate(entries)]


def test_one_holder_per_location_follows_the_epochs() -> None:
    fine = _owners(
        ("West US", "w1", 1),
        ("East US", "w2", 1),
        ("West US", "w3", None),  # a customer's request through another worker
        ("West US", "w2", 2),  # taken over
        ("West US", "w2", 2),
    )
    assert check_owners(fine).violations == []
    stale = _owners(("West US", "w1", 1), ("West US", "w2", 2), ("West US", "w1", 1))
    assert check_owners(stale).violations == [
        "West US: entry 2 committed by w1 under lease epoch 1 after epoch 2 (w2) had committed"
    ]
    shared = _owners(("West US", "w1", 3), ("West US", "w2", 3))
    assert check_owners(shared).violations == ["West US: lease epoch 3 used by w1 and w2"]
