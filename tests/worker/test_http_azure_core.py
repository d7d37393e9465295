"""HTTPS with a generated self-signed certificate, and the azure-core SDK line
(``azure-mgmt-storageimportexport==1.0.0b2``) against it.

1.0.0b2 cannot share an environment with 0.1.0 (the dev extra's client of ``test_http.py``):
both are the distribution ``azure-mgmt-storageimportexport`` and the module
``azure.mgmt.storageimportexport``. So a session fixture installs 1.0.0b2 (and
``azure-mgmt-core``, the one dependency the venv lacks) with ``pip install --no-deps
--target`` into a temporary directory, and the client runs in a subprocess with that
directory first on ``PYTHONPATH`` (``azure`` and ``azure.mgmt`` are namespace packages, so
the target's ``storageimportexport`` shadows the venv's). Without a package index the SDK
test is skipped; the HTTPS tests do not need one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from simulator.live.processes import Mosquitto, WorkerProcess, free_port
from tests.worker.test_http import ACCOUNT, JOBS, RG, SUB, VERSION, _put_body, _url, _worker
from worker.app import Worker
from worker.errors import ConfigError
from worker.http_server import self_signed_certificate
from worker.settings import HttpConfig, load_worker_settings

SDK = ["azure-mgmt-storageimportexport==1.0.0b2", "azure-mgmt-core>=1.3.2,<2"]
#: A user's own subscription.
MINE = "5c0ffee0-1234-4abc-8def-0123456789ab"


def _run_https(tmp_path: Path, broker: Mosquitto, body: Any, **http: Any) -> Any:
    async def main() -> Any:
        with anyio.fail_after(120):
            async with _worker(tmp_path, broker, worker_id="https", https=True, **http) as worker:
                return await anyio.to_thread.run_sync(body, worker)

    return anyio.run(main, backend="asyncio")


def _cert(worker: Worker) -> str:
    assert worker.http is not None
    assert worker.http.cert_file is not None
    return str(worker.http.cert_file)


def test_https_with_a_generated_certificate(tmp_path: Path, mosquitto: Mosquitto) -> None:
    seen: dict[str, Any] = {}

    def flow(worker: Worker) -> None:
        url = _url(worker)
        assert url.startswith("https://127.0.0.1:")
        seen["cert"] = cert = _cert(worker)
        v = {"api-version": VERSION}
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cert)) as http:
            assert http.put(f"{JOBS}/tls1", params=v, json=_put_body()).status_code == 201
            assert http.get(f"{JOBS}/tls1", params=v).json()["name"] == "tls1"
            # localhost is in the certificate too.
            local = url.replace("127.0.0.1", "localhost")
            assert http.get(f"{local}/openapi.json").status_code == 200
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=url) as http:
            http.get("/openapi.json")  # not trusted without the certificate
        with pytest.raises(httpx.RemoteProtocolError), httpx.Client() as http:
            http.get(url.replace("https://", "http://") + "/openapi.json")

    _run_https(tmp_path, mosquitto, flow)
    assert not Path(seen["cert"]).exists()  # removed at stop


def test_https_with_a_configured_certificate(tmp_path: Path, mosquitto: Mosquitto) -> None:
    (tmp_path / "tls").mkdir()
    cert, key = self_signed_certificate(tmp_path / "tls", "127.0.0.1")

    def flow(worker: Worker) -> None:
        assert _cert(worker) == str(cert)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as http:
            assert http.get(f"{_url(worker)}/openapi.json").status_code == 200

    _run_https(tmp_path, mosquitto, flow, cert_file=str(cert), key_file=str(key))
    assert cert.exists()


def test_the_https_settings(tmp_path: Path) -> None:
    config = tmp_path / "worker.toml"
    config.write_text('http = "8443"\nhttps = true\n')
    http = load_worker_settings(config).http
    assert http == HttpConfig("127.0.0.1", 8443, https=True)
    assert http.url == "https://127.0.0.1:8443"
    config.write_text('http = "8443"\nhttps_cert = "c.pem"\nhttps_key = "k.pem"\n')
    assert load_worker_settings(config).http == HttpConfig(
        "127.0.0.1", 8443, https=True, cert_file="c.pem", key_file="k.pem"
    )
    config.write_text('http = "8443"\nhttps_cert = "c.pem"\n')
    with pytest.raises(ConfigError, match="https_cert"):
        load_worker_settings(config)


@pytest.fixture(scope="session")
def sdk_1_0_0b2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("azure-sdk-1.0.0b2")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            *SDK,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # No skip: without a package index `make test` could not have installed the rest either.
    assert done.returncode == 0, f"cannot install {SDK[0]}: {done.stderr[-500:]}"
    return target


def _client(
    script: str, sdk: Path, subscription: str = SUB, group: str = RG
) -> Callable[[Worker], dict[str, Any]]:
    """Run ``script`` with the 1.0.0b2 SDK against the worker (in ``subscription`` and
    resource group ``group``); its last line of JSON."""

    def flow(worker: Worker) -> dict[str, Any]:
        args = [_url(worker), _cert(worker), subscription, group, ACCOUNT]
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(sdk)},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return result

    return flow


CLIENT = r"""
import json, sys, time
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
import azure.mgmt.storageimportexport as sdk
from azure.mgmt.storageimportexport import StorageImportExport, models

url, cert, sub, rg, account = sys.argv[1:]

class Credential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("any-token", int(time.time()) + 3600)

def job(kind):
    return models.PutJobParameters(
        location="West US",
        properties=models.JobDetails(
            storage_account_id=account,
            job_type=kind,
            return_address=models.ReturnAddress(
                recipient_name="Ada", street_address1="1 Main Street", city="Redmond",
                postal_code="98007", country_or_region="USA", phone="4250000000",
                email="ada@example.com",
            ),
            drive_list=[models.DriveStatus(drive_id="DRV0", bit_locker_key="KEY-0")]
            if kind == "Import" else None,
            export=models.Export(blob_path_prefix=["/"]) if kind == "Export" else None,
        ),
    )

out = {"version": sdk.VERSION}
client = StorageImportExport(Credential(), sub, base_url=url, connection_verify=cert)
with client:
    out["created"] = client.jobs.create("imp1", rg, job("Import")).properties.state
    client.jobs.create("exp1", rg, job("Export"))
    out["got"] = client.jobs.get("exp1", rg).properties.job_type
    out["top"] = [j.name for j in client.jobs.list_by_subscription(top=1)]
    out["listed"] = [j.name for j in client.jobs.list_by_resource_group(rg)]
    client.jobs.create("elsewhere", rg + "-2", job("Import"))
    out["by_group"] = [j.name for j in client.jobs.list_by_resource_group(rg + "-2")]
    out["by_subscription"] = [j.name for j in client.jobs.list_by_subscription()]
    out["id"] = client.jobs.get("elsewhere", rg + "-2").id
    try:
        client.jobs.get("elsewhere", rg)
    except ResourceNotFoundError as exc:
        out["other_group"] = [exc.status_code, exc.error.code]
    package = models.DeliveryPackageInformation(
        carrier_name="FedEx", tracking_number="123", drive_count=1, ship_date="2024-01-01"
    )
    moved = client.jobs.update(
        "imp1", rg, models.UpdateJobParameters(state="Shipping", delivery_package=package)
    )
    out["moved"] = [moved.properties.state, moved.properties.delivery_package.tracking_number]
    cancelled = client.jobs.update("exp1", rg, models.UpdateJobParameters(cancel_requested=True))
    out["cancelled"] = cancelled.properties.cancel_requested
    out["keys"] = [[k.drive_id, k.bit_locker_key] for k in client.bit_locker_keys.list("imp1", rg)]
    try:
        client.jobs.delete("imp1", rg)
    except HttpResponseError as exc:
        out["refused"] = [exc.status_code, exc.error.code]
    client.jobs.create("gone", rg, job("Import"))
    client.jobs.delete("gone", rg)
    try:
        client.jobs.get("gone", rg)
    except ResourceNotFoundError as exc:
        out["missing"] = [exc.status_code, exc.error.code]
    out["locations"] = [loc.name for loc in client.locations.list()]
    out["operations"] = len(list(client.operations.list()))
print(json.dumps(out))
"""


def test_the_azure_core_sdk_over_https(
    tmp_path: Path, mosquitto: Mosquitto, sdk_1_0_0b2: Path
) -> None:

    # The user's own subscription and resource group, as their code has them.
    client = _client(CLIENT, sdk_1_0_0b2, subscription=MINE, group="My-Resource-Group")
    out = _run_https(tmp_path, mosquitto, client)
    assert out == {
        "version": "1.0.0b2",
        "created": "Creating",
        "got": "Export",
        "top": ["imp1"],
        "listed": ["imp1", "exp1"],
        "by_group": ["elsewhere"],
        "by_subscription": ["imp1", "exp1", "elsewhere"],
        "id": f"/subscriptions/{MINE}/resourceGroups/My-Resource-Group-2/providers/"
        "Microsoft.ImportExport/jobs/elsewhere",
        "other_group": [404, "ResourceNotFound"],
        "moved": ["Shipping", "123"],
        "cancelled": True,
        "keys": [["DRV0", "KEY-0"]],
        "refused": [409, "DeleteNotAllowed"],
        "missing": [404, "ResourceNotFound"],
        "locations": ["West US"],
        "operations": 6,
    }


def test_the_azure_core_sdk_refuses_plain_http(
    tmp_path: Path, mosquitto: Mosquitto, sdk_1_0_0b2: Path
) -> None:
    """Why HTTPS exists here: azure-core will not send a bearer token over http."""

    async def main() -> str:
        with anyio.fail_after(60):
            async with _worker(tmp_path, mosquitto, worker_id="plain") as worker:
                # (no retries: azure-core retries this refusal with back-off, ~5 s)
                script = CLIENT.replace(
                    "connection_verify=cert", "connection_verify=False, retry_total=0"
                )
                env = {**os.environ, "PYTHONPATH": str(sdk_1_0_0b2)}
                done = await anyio.run_process(
                    [sys.executable, "-c", script, _url(worker), "-", SUB, RG, "acct"],
                    env=env,
                    check=False,
                )
                assert done.returncode != 0
                return done.stderr.decode()

    stderr = anyio.run(main, backend="asyncio")
    assert "Bearer token authentication is not permitted for non-TLS" in stderr


def test_drivesim_worker_https_prints_its_certificate(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = tmp_path / "worker.toml"
    config.write_text('worker_id = "clitls"\nspeed = 100\n')
    port = free_port()
    args = ["--config", str(config), "--broker", mosquitto.url]
    args += ["--http", f"127.0.0.1:{port}", "--https"]
    log = tmp_path / "worker.log"
    worker = WorkerProcess(args, log=log, db=tmp_path / "worker.db")
    worker.start()
    try:
        worker.wait_connected()
        found = re.search(r"trust it in clients\): (\S+)", log.read_text())
        assert found, log.read_text()
        cert = Path(found[1])
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as http:
            assert http.get(f"https://localhost:{port}/openapi.json").status_code == 200
        assert worker.signal(signal.SIGTERM) == 0
        assert not cert.parent.exists()
    finally:
        worker.stop()


WATCH = r"""
import json, sys, time
from azure.core.credentials import AccessToken
from azure.mgmt.storageimportexport import StorageImportExport, models

url, cert, sub, rg, account = sys.argv[1:]

class Credential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("any-token", int(time.time()) + 3600)

address = models.ReturnAddress(
    recipient_name="Ada", street_address1="1 Main Street", city="Redmond",
    postal_code="98007", country_or_region="USA", phone="4250000000", email="ada@example.com",
)
client = StorageImportExport(Credential(), sub, base_url=url, connection_verify=cert)
with client:
    client.jobs.create("watched", rg, models.PutJobParameters(
        location="West US",
        properties=models.JobDetails(
            storage_account_id=account, job_type="Import", return_address=address,
            drive_list=[models.DriveStatus(drive_id="DRV0", bit_locker_key="KEY-0")],
        ),
    ))
    package = models.DeliveryPackageInformation(
        carrier_name="FedEx", tracking_number="123", drive_count=1, ship_date="2024-01-01"
    )
    client.jobs.update(
        "watched", rg, models.UpdateJobParameters(state="Shipping", delivery_package=package)
    )
    seen, deadline = [], time.monotonic() + 30
    while (job := client.jobs.get("watched", rg)).properties.state != "Completed":
        seen.append(job.properties.state)
        if time.monotonic() > deadline:
            raise SystemExit(f"still {job.properties.state} after 30 s")
        time.sleep(0.05)
    print(json.dumps({
        "seen": sorted(set(seen)),
        "drives": [d.state for d in job.properties.drive_list],
        "returned": job.properties.return_package.tracking_number is not None,
    }))
"""


def test_the_azure_core_sdk_watches_a_job_finish(
    tmp_path: Path, mosquitto: Mosquitto, sdk_1_0_0b2: Path
) -> None:
    """At 200,000 simulated seconds a second a shipped job ends Completed within seconds."""

    out = _run_https(tmp_path, mosquitto, _client(WATCH, sdk_1_0_0b2), speed=200_000)
    assert "Shipping" in out["seen"]
    assert out["drives"] == ["ShippedBack"]
    assert out["returned"] is True
