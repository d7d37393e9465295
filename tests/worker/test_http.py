"""The Azure REST API, served by a real worker on loopback, driven by Microsoft's own SDK
(``azure-mgmt-storageimportexport`` 0.1.0, msrest) and by raw HTTP, against a real Mosquitto."""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from aiomqtt import Client as MqttClient
from azure.mgmt.storageimportexport import StorageImportExport, models
from msrest.authentication import BasicTokenAuthentication

from simulator.client import JobsClient
from simulator.live.processes import Mosquitto, WorkerProcess, free_port
from worker.app import Worker
from worker.errors import ConfigError
from worker.mqtt.broker import BrokerConfig
from worker.settings import HttpConfig, load_worker_settings
from worker.status import TOPIC_PREFIX

T = TypeVar("T")

SUB = "00000000-0000-0000-0000-000000000000"
RG = "drivesim"
ACCOUNT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
SETTINGS = """
worker_id = "{worker_id}"
speed = 2000
seed = 5
drain_timeout = 5.0

[datacenter]
locations = {{ "West US" = 2 }}
carrier_delay = "1d"
return_delay = "1d"
"""
VERSION = "2021-01-01"
JOBS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ImportExport/jobs"


@asynccontextmanager
async def _worker(
    tmp_path: Path,
    broker: Mosquitto,
    *,
    token: str | None = None,
    worker_id: str = "http",
    speed: float | None = None,
    **https: Any,
) -> AsyncIterator[Worker]:
    """A worker with the HTTP API on a free loopback port (``https``: HttpConfig's TLS fields)."""
    config = tmp_path / "worker.toml"
    config.write_text(SETTINGS.format(worker_id=worker_id))
    loaded = load_worker_settings(config)
    settings = dataclasses.replace(
        loaded,
        speed=speed or loaded.speed,
        db=tmp_path / "worker.db",
        http=HttpConfig(host="127.0.0.1", port=0, token=token, **https),
    )
    worker = Worker(settings, BrokerConfig.from_url(broker.url))
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        try:
            yield worker
        finally:
            worker.stop.set()


def _url(worker: Worker) -> str:
    assert worker.http is not None
    return worker.http.url


def _run(tmp_path: Path, broker: Mosquitto, body: Callable[[Worker], Any], **kw: Any) -> Any:
    """Run a worker, then ``body(worker)`` in a thread (the SDK is synchronous)."""

    async def main() -> Any:
        with anyio.fail_after(60):
            async with _worker(tmp_path, broker, **kw) as worker:
                return await anyio.to_thread.run_sync(body, worker)

    return anyio.run(main, backend="asyncio")


def _sdk(url: str, token: str = "any-token") -> StorageImportExport:
    return StorageImportExport(BasicTokenAuthentication({"access_token": token}), SUB, base_url=url)


def _import_job(drives: int = 2) -> models.PutJobParameters:
    return models.PutJobParameters(
        location="West US",
        properties=models.JobDetails(
            storage_account_id=ACCOUNT,
            job_type="Import",
            return_address=models.ReturnAddress(
                recipient_name="Ada",
                street_address1="1 Main Street",
                city="Redmond",
                postal_code="98007",
                country_or_region="USA",
                phone="4250000000",
                email="ada@example.com",
            ),
            drive_list=[
                models.DriveStatus(drive_id=f"DRV{i}", bit_locker_key=f"KEY-{i}")
                for i in range(drives)
            ],
        ),
    )


def _export_job() -> models.PutJobParameters:
    job = _import_job()
    job.properties.job_type = "Export"
    job.properties.drive_list = None
    job.properties.export = models.Export(blob_path_prefix=["/"])
    return job


def _arm_error(call: Callable[[], Any]) -> models.ErrorResponseException:
    with pytest.raises(models.ErrorResponseException) as info:
        call()
    return info.value


def _code(exc: models.ErrorResponseException) -> tuple[int, str]:
    return exc.response.status_code, exc.error.code


def test_sdk_drives_a_job_through_its_life(tmp_path: Path, mosquitto: Mosquitto) -> None:
    def flow(worker: Worker) -> None:
        with _sdk(_url(worker)) as client:
            job = client.jobs.create("imp1", RG, _import_job())
            assert job.name == "imp1"
            assert job.properties.state == "Creating"
            assert job.properties.drive_list[0].state == "Specified"
            assert job.id == f"{JOBS}/imp1"
            replaced = client.jobs.create("imp1", RG, _import_job(drives=3))
            assert len(replaced.properties.drive_list) == 3
            client.jobs.create("exp1", RG, _export_job())
            client.jobs.create("imp2", RG, _import_job())

            got = client.jobs.get("imp1", RG)
            assert got.properties.job_type == "Import"
            assert [j.name for j in client.jobs.list_by_subscription(top=2)] == ["imp1", "exp1"]
            assert [j.name for j in client.jobs.list_by_resource_group(RG)] == [
                "imp1",
                "exp1",
                "imp2",
            ]
            shipped = [
                j.name for j in client.jobs.list_by_subscription(filter="state eq 'Creating'")
            ]
            assert shipped == ["imp1", "exp1", "imp2"]

            keys = list(client.bit_locker_keys.list("imp1", RG))
            assert {(k.drive_id, k.bit_locker_key) for k in keys} == {
                (f"DRV{i}", f"KEY-{i}") for i in range(3)
            }

            package = models.PackageInfomation(
                carrier_name="FedEx", tracking_number="123", drive_count=3, ship_date="2024-01-01"
            )
            moved = client.jobs.update(
                "imp1", RG, models.UpdateJobParameters(state="Shipping", delivery_package=package)
            )
            assert moved.properties.state == "Shipping"
            assert moved.properties.delivery_package.tracking_number == "123"

            cancelled = client.jobs.update(
                "imp2", RG, models.UpdateJobParameters(cancel_requested=True)
            )
            assert cancelled.properties.cancel_requested is True

            # Delete: only in Creating or Completed.
            refused = _arm_error(lambda: client.jobs.delete("imp1", RG))
            assert _code(refused) == (409, "DeleteNotAllowed")
            client.jobs.delete("exp1", RG)
            gone = _arm_error(lambda: client.jobs.get("exp1", RG))
            assert _code(gone) == (404, "ResourceNotFound")
            assert "exp1" not in [j.name for j in client.jobs.list_by_subscription()]

            missing = _arm_error(lambda: list(client.bit_locker_keys.list("nope", RG)))
            assert _code(missing) == (404, "ResourceNotFound")
            bad = _arm_error(lambda: client.jobs.create("bad name!", RG, _import_job()))
            assert _code(bad) == (400, "InvalidResourceName")

            locations = list(client.locations.list())
            assert [loc.name for loc in locations] == ["West US"]
            assert client.locations.get("westus").id.endswith("/locations/westus")
            operations = [op.name for op in client.operations.list()]
            assert "Microsoft.ImportExport/jobs/write" in operations

    _run(tmp_path, mosquitto, flow)


def _raw(worker: Worker, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=_url(worker), headers=headers, timeout=10)


def _put_body() -> dict[str, Any]:
    body: dict[str, Any] = _import_job().serialize()
    return body


def test_bad_requests_get_an_error_response_and_change_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    def flow(worker: Worker) -> None:
        job = f"{JOBS}/j1"
        v = {"api-version": VERSION}
        with _raw(worker) as http:
            assert http.put(job, params=v, json=_put_body()).status_code == 201
            before = http.get(job, params=v).json()

            def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
                assert response.status_code == status, response.text
                assert response.headers["content-type"] == "application/json"
                error: dict[str, Any] = response.json()["error"]
                assert error["code"] == code
                assert error["message"]
                return error

            headers = {"content-type": "application/json"}
            refused(
                http.put(job, params=v, content=b"{not json", headers=headers),
                400,
                "InvalidRequestContent",
            )
            wrong_type = _put_body()
            wrong_type["properties"]["driveList"] = "DRV0"
            error = refused(http.put(job, params=v, json=wrong_type), 400, "InvalidRequestContent")
            assert error["target"] == "properties.driveList"
            unknown = _put_body()
            unknown["properties"]["colour"] = "blue"
            refused(http.put(job, params=v, json=unknown), 400, "InvalidRequestContent")
            refused(
                http.patch(job, params=v, json={"properties": {"state": "Received"}}),
                400,
                "InvalidRequestContent",
            )
            refused(
                http.patch(job, params=v, json={"properties": {"cancelRequested": "yes"}}),
                400,
                "InvalidRequestContent",
            )
            refused(
                http.put(f"{JOBS}/-bad", params=v, json=_put_body()), 400, "InvalidResourceName"
            )
            huge = _put_body()
            huge["tags"] = {"pad": "x" * 70_000}
            refused(http.put(job, params=v, json=huge), 413, "PayloadTooLarge")
            refused(http.get(JOBS, params={**v, "$top": "101"}), 400, "InvalidQueryParameterValue")
            refused(http.get(JOBS, params={**v, "$top": "x"}), 400, "InvalidQueryParameterValue")
            refused(http.get(JOBS, params={**v, "$filter": "name eq 'a'"}), 400, "InvalidFilter")
            refused(http.get(job), 400, "MissingApiVersionParameter")
            error = refused(
                http.get(job, params={"api-version": "2019-01-01"}),
                400,
                "InvalidApiVersionParameter",
            )
            assert "2016-11-01" in error["message"]
            refused(
                http.put(f"{JOBS}/j2", params={"api-version": "2099-01-01"}, json=_put_body()),
                400,
                "InvalidApiVersionParameter",
            )
            other_rg = job.replace(f"/resourceGroups/{RG}/", "/resourceGroups/other/")
            refused(http.get(other_rg, params=v), 404, "ResourceNotFound")
            bad_sub = job.replace(SUB, "my-subscription")
            refused(http.get(bad_sub, params=v), 400, "InvalidSubscriptionId")
            bad_group = job.replace(f"/resourceGroups/{RG}/", "/resourceGroups/ends-in-dot./")
            refused(http.get(bad_group, params=v), 400, "InvalidResourceGroup")
            refused(
                http.get(JOBS, params={**v, "$skiptoken": "1000000000"}),
                400,
                "InvalidQueryParameterValue",
            )
            refused(http.get("/nowhere", params=v), 404, "NotFound")
            refused(http.post(job, params=v), 405, "MethodNotAllowed")
            refused(http.delete(f"{JOBS}/j2", params=v), 404, "ResourceNotFound")

            assert http.get(job, params=v).json() == before
            listed = http.get(JOBS, params=v).json()
            assert [j["name"] for j in listed["value"]] == ["j1"]
            for version in ("2016-11-01", "2020-08-01", "2021-01-01"):
                assert http.get(job, params={"api-version": version}).status_code == 200

    _run(tmp_path, mosquitto, flow)


def test_delete_answers_200_with_an_empty_body(tmp_path: Path, mosquitto: Mosquitto) -> None:
    def flow(worker: Worker) -> None:
        v = {"api-version": VERSION}
        with _raw(worker) as http:
            assert http.put(f"{JOBS}/d1", params=v, json=_put_body()).status_code == 201
            assert http.put(f"{JOBS}/d1", params=v, json=_put_body()).status_code == 200
            deleted = http.delete(f"{JOBS}/d1", params=v)
            assert (deleted.status_code, deleted.content) == (200, b"")

    _run(tmp_path, mosquitto, flow)


def test_lists_page_with_next_links(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async def main() -> None:
        with anyio.fail_after(60):
            async with _worker(tmp_path, mosquitto) as worker:
                assert worker.service is not None
                for i in range(105):
                    await worker.service.create(f"p{i:03d}", _put_body())

                def flow() -> None:
                    with _sdk(_url(worker)) as client:
                        names = [j.name for j in client.jobs.list_by_subscription()]
                        assert names == [f"p{i:03d}" for i in range(105)]
                        top = [j.name for j in client.jobs.list_by_resource_group(RG, top=100)]
                        assert len(top) == 100
                    with _raw(worker) as http:
                        first = http.get(JOBS, params={"api-version": VERSION}).json()
                        assert len(first["value"]) == 100
                        second = http.get(first["nextLink"]).json()
                        assert [j["name"] for j in second["value"]] == [
                            f"p{i:03d}" for i in range(100, 105)
                        ]
                        assert "nextLink" not in second

                await anyio.to_thread.run_sync(flow)

    anyio.run(main, backend="asyncio")


def test_a_configured_token_is_required(tmp_path: Path, mosquitto: Mosquitto) -> None:
    def flow(worker: Worker) -> None:
        v = {"api-version": VERSION}
        with _raw(worker) as http:
            response = http.get(JOBS, params=v)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "AuthenticationFailed"
        with _raw(worker, token="wrong") as http:
            response = http.get(JOBS, params=v)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
        with _sdk(_url(worker), token="s3cret") as client:
            assert list(client.jobs.list_by_subscription()) == []

    _run(tmp_path, mosquitto, flow, token="s3cret")


async def _retry(call: Callable[[], T], check: Callable[[T], bool]) -> T:
    with anyio.fail_after(20):
        while True:
            value = await anyio.to_thread.run_sync(call)
            if check(value):
                return value
            await anyio.sleep(0.1)


def test_http_and_mqtt_share_one_service(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A job created over HTTP is published over MQTT; a cancel over MQTT shows in a GET."""

    async def main() -> None:
        with anyio.fail_after(60):
            async with (
                _worker(tmp_path, mosquitto, worker_id="both") as worker,
                MqttClient("127.0.0.1", mosquitto.port, identifier="http-test-sub") as sub,
            ):
                await sub.subscribe(f"{TOPIC_PREFIX}/#")
                client = _sdk(_url(worker))
                try:
                    await anyio.to_thread.run_sync(
                        lambda: client.jobs.create("shared", RG, _import_job())
                    )
                    async for message in sub.messages:
                        if not str(message.topic).endswith("/events"):
                            continue
                        assert isinstance(message.payload, bytes)
                        event = json.loads(message.payload)
                        if event["subject"] == "shared" and event["type"].endswith(".jobCreated"):
                            break

                    async with JobsClient(BrokerConfig.from_url(mosquitto.url), timeout=20) as jc:
                        reply = await jc.request("cancel", job="shared")
                    assert reply["ok"], reply
                    job = await _retry(
                        lambda: client.jobs.get("shared", RG),
                        lambda j: bool(j.properties.cancel_requested),
                    )
                    assert job.properties.cancel_requested is True
                finally:
                    client.close()

    anyio.run(main, backend="asyncio")


def test_drivesim_worker_serves_http_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(SETTINGS.format(worker_id="cli"))
    port = free_port()
    args = ["--config", str(config), "--broker", mosquitto.url, "--http", f"127.0.0.1:{port}"]
    worker = WorkerProcess(args, log=tmp_path / "worker.log", db=tmp_path / "worker.db")
    worker.start()
    try:
        worker.wait_connected()
        v = {"api-version": "2016-11-01"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.put(f"{JOBS}/cli1", params=v, json=_put_body()).status_code == 201
            assert http.get(f"{JOBS}/cli1", params=v).json()["name"] == "cli1"
        assert worker.signal(signal.SIGTERM) == 0
        assert "worker stopped" in (tmp_path / "worker.log").read_text()
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=2) as http:
            http.get(f"http://127.0.0.1:{port}{JOBS}", params=v)
    finally:
        worker.stop()


def test_sdk_watches_a_shipped_job_finish(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """At 200,000 simulated seconds a second the job arrives, copies, goes back and ends
    Completed within seconds; the SDK sees each drive shipped back."""

    def body(worker: Worker) -> None:
        client = _sdk(_url(worker))
        client.jobs.create("watched", RG, _import_job(2))
        package = models.PackageInfomation(
            carrier_name="FedEx", tracking_number="123", drive_count=2, ship_date="2024-01-01"
        )
        client.jobs.update(
            "watched", RG, models.UpdateJobParameters(state="Shipping", delivery_package=package)
        )
        seen = []
        deadline = time.monotonic() + 30
        while (job := client.jobs.get("watched", RG)).properties.state != "Completed":
            seen.append(job.properties.state)
            assert time.monotonic() < deadline, f"still {job.properties.state} after 30 s"
            time.sleep(0.05)
        assert {"Shipping", "Completed"} <= {*seen, job.properties.state}
        assert [d.state for d in job.properties.drive_list] == ["ShippedBack", "ShippedBack"]
        assert job.properties.return_package.tracking_number

    _run(tmp_path, mosquitto, body, speed=200_000)


def test_a_port_in_use_is_a_clear_error(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Exit status 2 and one line naming the address, not a traceback."""
    config = tmp_path / "worker.toml"
    config.write_text(SETTINGS.format(worker_id="busy"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = ["--config", str(config), "--broker", mosquitto.url, "--http", f"127.0.0.1:{port}"]
        worker = WorkerProcess(args, log=tmp_path / "worker.log", db=tmp_path / "worker.db")
        worker.start()
        try:
            assert worker.process is not None
            assert worker.process.wait(timeout=30) == 2
        finally:
            worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log
    assert f"127.0.0.1:{port}" in log


def test_the_http_setting(tmp_path: Path) -> None:
    config = tmp_path / "worker.toml"
    config.write_text('http = "127.0.0.1:8080"\nhttp_token = "t"\n')
    assert load_worker_settings(config).http == HttpConfig("127.0.0.1", 8080, "t")
    assert load_worker_settings(None).http is None
    assert HttpConfig.from_address("9000") == HttpConfig("127.0.0.1", 9000)
    assert HttpConfig.from_address("[::1]:9000").url == "http://[::1]:9000"
    config.write_text('http = "localhost:http"\n')
    with pytest.raises(ConfigError, match="http"):
        load_worker_settings(config)
