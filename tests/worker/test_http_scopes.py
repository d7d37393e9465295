"""A user's own subscription and resource groups, through Microsoft's SDK 0.1.0 (msrest): any
well-formed subscription and group are served, a job lives in the group of its PUT, and
lists by group and by subscription hold exactly their jobs. Also: an export job with the
SDK's 2016-11-01 spelling ``blobListblobPath``, end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from azure.mgmt.storageimportexport import StorageImportExport, models
from msrest.authentication import BasicTokenAuthentication

from simulator.live.processes import Mosquitto
from tests.worker.test_http import (
    RG,
    SUB,
    VERSION,
    _arm_error,
    _code,
    _import_job,
    _put_body,
    _raw,
    _run,
    _url,
    _worker,
)
from worker.app import Worker
from worker.model import ArmScope

#: A user's own subscriptions, as their code and configs have them.
MINE = "3f2b6c1e-9d4a-4e8b-b1c7-5a0d2e9f4c13"
THEIRS = "B7E0C2D4-1A3F-4C5E-8D9B-0F1E2A3B4C5D"


def _client(url: str, subscription: str) -> StorageImportExport:
    auth = BasicTokenAuthentication({"access_token": "any-token"})
    return StorageImportExport(auth, subscription, base_url=url)


def _names(jobs: Any) -> list[str]:
    return [job.name for job in jobs]


def test_any_subscription_and_group_with_the_sdk(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def main() -> None:
        with anyio.fail_after(60):
            async with _worker(tmp_path, mosquitto) as worker:
                assert worker.service is not None
                # A job from MQTT or a scenario: the service's own group.
                await worker.service.create("m1", _put_body())
                await anyio.to_thread.run_sync(flow, worker)

    def flow(worker: Worker) -> None:
        url = _url(worker)
        with _client(url, MINE) as mine, _client(url, THEIRS) as theirs, _client(url, SUB) as own:
            a1 = mine.jobs.create("a1", "rg-east", _import_job())
            assert a1.id == (
                f"/subscriptions/{MINE}/resourceGroups/rg-east/providers/"
                "Microsoft.ImportExport/jobs/a1"
            )
            mine.jobs.create("a2", "Rg-West.(2)", _import_job())
            mine.jobs.create("b1", "rg-east", _import_job())
            theirs.jobs.create("c1", "rg-east", _import_job())  # same group name elsewhere

            # Lists: exactly the group's, or the subscription's, jobs (case-insensitive).
            assert _names(mine.jobs.list_by_resource_group("rg-east")) == ["a1", "b1"]
            assert _names(mine.jobs.list_by_resource_group("RG-EAST")) == ["a1", "b1"]
            assert _names(mine.jobs.list_by_resource_group("rg-west.(2)")) == ["a2"]
            assert _names(mine.jobs.list_by_resource_group("never-used")) == []
            assert _names(mine.jobs.list_by_subscription()) == ["a1", "a2", "b1"]
            assert _names(mine.jobs.list_by_subscription(top=2)) == ["a1", "a2"]
            assert _names(mine.jobs.list_by_subscription(filter="state eq 'Creating'", top=3)) == [
                "a1",
                "a2",
                "b1",
            ]
            assert _names(theirs.jobs.list_by_subscription()) == ["c1"]
            assert _names(theirs.jobs.list_by_resource_group("rg-east")) == ["c1"]
            assert _names(own.jobs.list_by_resource_group(RG)) == ["m1"]
            assert _names(own.jobs.list_by_subscription()) == ["m1"]

            # Found only in its own group, as in ARM; case-insensitively there.
            assert mine.jobs.get("a1", "RG-East").name == "a1"
            for call in (
                lambda: mine.jobs.get("a1", "rg-west.(2)"),
                lambda: theirs.jobs.get("a1", "rg-east"),
                lambda: mine.jobs.update(
                    "a1", "rg-west.(2)", models.UpdateJobParameters(log_level="Verbose")
                ),
                lambda: mine.jobs.delete("a1", "rg-west.(2)"),
                lambda: list(mine.bit_locker_keys.list("a1", "rg-west.(2)")),
                lambda: own.jobs.get("a1", RG),
            ):
                assert _code(_arm_error(call)) == (404, "ResourceNotFound")
            assert mine.jobs.get("a1", "rg-east").properties.log_level == "Error"

            # One name, one job: another group's PUT of it is refused (a documented deviation).
            error = _arm_error(lambda: mine.jobs.create("a1", "rg-west.(2)", _import_job()))
            assert _code(error) == (409, "JobNameInUse")
            assert "rg-east" in error.message
            error = _arm_error(lambda: theirs.jobs.create("a1", "rg-east", _import_job()))
            assert _code(error) == (409, "JobNameInUse")
            # Replacing it in its own group (spelt another way) keeps its id.
            replaced = mine.jobs.create("a1", "RG-EAST", _import_job(drives=3))
            assert replaced.id == a1.id
            assert len(replaced.properties.drive_list) == 3
            keys = list(mine.bit_locker_keys.list("a1", "rg-east"))
            assert len(keys) == 3
            mine.jobs.delete("a1", "rg-east")
            assert _names(mine.jobs.list_by_subscription()) == ["a2", "b1"]
            # Free again, for any group.
            assert mine.jobs.create("a1", "rg-west.(2)", _import_job()).id.endswith(
                "/resourceGroups/rg-west.(2)/providers/Microsoft.ImportExport/jobs/a1"
            )

    anyio.run(main, backend="asyncio")


def test_lists_by_group_page_within_the_group(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """nextLink pages count the group's jobs only, however the others interleave."""

    def flow(worker: Worker) -> None:
        v = {"api-version": VERSION}
        base = f"/subscriptions/{MINE}/resourceGroups"
        with _raw(worker) as http:
            for i in range(7):
                group = "odd" if i % 2 else "even"
                job = f"{base}/{group}/providers/Microsoft.ImportExport/jobs/j{i}"
                assert http.put(job, params=v, json=_put_body()).status_code == 201
            names: list[str] = []
            page = http.get(
                f"{base}/even/providers/Microsoft.ImportExport/jobs", params={**v, "$top": 3}
            ).json()
            names += [j["name"] for j in page["value"]]
            assert "nextLink" not in page
            assert names == ["j0", "j2", "j4"]
            listed = http.get(
                f"/subscriptions/{MINE}/providers/Microsoft.ImportExport/jobs", params=v
            ).json()
            assert [j["name"] for j in listed["value"]] == [f"j{i}" for i in range(7)]

    _run(tmp_path, mosquitto, flow)


def test_malformed_subscription_and_group_are_refused(tmp_path: Path, mosquitto: Mosquitto) -> None:
    def flow(worker: Worker) -> None:
        v = {"api-version": VERSION}
        jobs = "/providers/Microsoft.ImportExport/jobs"
        with httpx.Client(base_url=_url(worker), timeout=10) as http:
            for path, code in (
                (f"/subscriptions/not-a-guid{jobs}", "InvalidSubscriptionId"),
                (f"/subscriptions/{MINE}/resourceGroups/ends.{jobs}", "InvalidResourceGroup"),
                (
                    f"/subscriptions/{MINE}/resourceGroups/{'g' * 91}{jobs}",
                    "InvalidResourceGroup",
                ),
                (f"/subscriptions/{MINE}/resourceGroups/a%20b{jobs}/j", "InvalidResourceGroup"),
            ):
                answer = http.get(path, params=v)
                assert answer.status_code == 400, path
                assert answer.json()["error"]["code"] == code
            spaced = http.get(f"/subscriptions/{MINE}/resourceGroups/a b!{jobs}", params=v)
            assert "has these invalid characters: ' !'" in spaced.json()["error"]["message"]
            # 90 characters, letters of any script: served.
            fine = f"/subscriptions/{MINE}/resourceGroups/{'é' * 89}_{jobs}"
            assert http.get(fine, params=v).json() == {"value": []}

    _run(tmp_path, mosquitto, flow)


def test_an_export_job_through_sdk_0_1_0(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """SDK 0.1.0 sends the blob-list file as ``blobListblobPath``; the job runs to Completed."""

    def flow(worker: Worker) -> None:
        with _client(_url(worker), MINE) as client:
            job = _import_job()
            job.properties.job_type = "Export"
            job.properties.drive_list = None
            job.properties.export = models.Export(blob_listblob_path="/exports/list.xml")
            created = client.jobs.create("exp1", "my-rg", job)
            assert created.properties.state == "Creating"
            with _raw(worker) as http:
                raw = http.get(
                    f"/subscriptions/{MINE}/resourceGroups/my-rg/providers/"
                    "Microsoft.ImportExport/jobs/exp1",
                    params={"api-version": "2016-11-01"},
                ).json()
            assert raw["properties"]["export"] == {"blobListBlobPath": "/exports/list.xml"}
            # Answered in the current spelling, which 0.1.0 does not read back.
            assert client.jobs.get("exp1", "my-rg").properties.export.blob_listblob_path is None
            package = models.PackageInfomation(
                carrier_name="FedEx", tracking_number="9", drive_count=2, ship_date="2024-01-01"
            )
            client.jobs.update(
                "exp1",
                "my-rg",
                models.UpdateJobParameters(state="Shipping", delivery_package=package),
            )
            seen = set()
            end = time.monotonic() + 30
            while (got := client.jobs.get("exp1", "my-rg")).properties.state not in (
                "Completed",
                "Closed",
            ):
                seen.add(got.properties.state)
                assert time.monotonic() < end, f"still {got.properties.state}"
                time.sleep(0.05)
            assert got.properties.state == "Completed"
            assert "Transferring" in seen or "Packaging" in seen
            assert got.properties.drive_list
            assert {d.state for d in got.properties.drive_list} == {"ShippedBack"}

    _run(tmp_path, mosquitto, flow, speed=200_000)


def test_a_scope_holds_its_own_jobs_only() -> None:
    group = ArmScope(MINE, "rg")
    job = group.job_id("j1")
    assert (
        job == f"/subscriptions/{MINE}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/j1"
    )
    assert group.holds(job)
    assert ArmScope(MINE.upper(), "RG").holds(job)  # compared case-insensitively
    assert ArmScope(MINE).holds(job)  # the whole subscription
    assert not ArmScope(MINE, "r").holds(job)  # a prefix of the name is another group
    assert not group.holds(ArmScope(MINE, "rg2").job_id("j1"))  # nor a longer one
    assert not ArmScope(THEIRS, "rg").holds(job)
    assert not ArmScope(THEIRS).holds(job)
    assert ArmScope.of(job) == group
