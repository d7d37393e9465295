"""Customers as command payloads: scripted requests, and those of the customers' faults.

Whatever carries them (MQTT to a worker process, or the command handler in the run's own
process), a customer sends an operation and a JSON payload and reads the reply; the
answer becomes an :class:`~simulator.run.answers.ActionResult` the invariants can judge.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from simulator.faults.kinds import CustomerFault, Fault
from simulator.run.answers import ActionResult
from simulator.scenario.file import Scenario
from simulator.scenario.spec import Action, JobSpec
from worker import Clock, Planner, bitlocker_key

__all__ = ["Customer", "Send", "create_body", "ship_body"]

#: Send a command (operation, payload) and return the reply's JSON.
Send = Callable[[str, bytes], Awaitable[dict[str, Any]]]

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "drivesim"
#: Requests made by faults are numbered from here, apart from scripted ones.
FAULT_REQUESTS = 1_000_000


def create_body(spec: JobSpec, planner: Planner) -> dict[str, Any]:
    """The PutJobParameters a customer sends for ``spec`` (BitLocker keys from the seed)."""
    account = spec.name.replace("-", "").replace("_", "").lower()[:20] or "account"
    props: dict[str, Any] = {
        "jobType": spec.type,
        "storageAccountId": (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.Storage/storageAccounts/{account}"
        ),
        "returnAddress": {
            "recipientName": "Contoso Data Team",
            "streetAddress1": "1 Microsoft Way",
            "city": "Redmond",
            "stateOrProvince": "WA",
            "postalCode": "98052",
            "countryOrRegion": "USA",
            "phone": "4250000000",
            "email": "data@contoso.example",
        },
        "returnShipping": {"carrierName": "FedEx", "carrierAccountNumber": "989ffff"},
        "diagnosticsPath": "waimportexport",
        "logLevel": spec.log_level,
    }
    if spec.type == "Import":
        rng = planner.rng("keys", spec.name)
        props["driveList"] = [
            {
                "driveId": drive.id,
                "bitLockerKey": bitlocker_key(rng),
                "manifestFile": f"\\{drive.id}.manifest",
                "manifestHash": f"{rng.getrandbits(128):032X}",
            }
            for drive in spec.drives
        ]
    else:
        props["export"] = {"blobList": {"blobPathPrefix": ["/"]}}
    return {"location": spec.location, "properties": props}


def ship_body(spec: JobSpec, planner: Planner, ship_date: str) -> dict[str, Any]:
    """The UpdateJobParameters that moves ``spec`` to Shipping with its tracking info."""
    rng = planner.rng("tracking", spec.name)
    count = len(spec.drives) if spec.type == "Import" else spec.export_drives
    return {
        "properties": {
            "state": "Shipping",
            "deliveryPackage": {
                "carrierName": "FedEx",
                "trackingNumber": f"{rng.randrange(10**11, 10**12)}",
                "driveCount": count,
                "shipDate": ship_date,
            },
        }
    }


def _outcome(do: str, reply: dict[str, Any]) -> tuple[str, str, str | None]:
    """(outcome, detail, state when asked) of a reply, spelt as the in-process runner does."""
    if not reply.get("ok"):
        error = reply.get("error") or {}
        code = str(error.get("code", "Unknown"))
        state = next(
            (d.get("message") for d in error.get("details", []) if d.get("code") == "CurrentState"),
            None,
        )
        return (
            ("rejected-too-late" if code == "CancelTooLate" else code),
            error.get("message", ""),
            state,
        )
    result: Any = reply.get("result")
    match do:
        case "create":
            return ("created" if reply.get("status") == 201 else "replaced"), "", None
        case "ship":
            return "ok", "package handed to the carrier", None
        case "cancel":
            state = str(result["state"])
            return str(result["answer"]), f"in state {state}", state
        case "delete":
            return "ok", "deleted", None
        case "get":
            return "ok", f"state {result['properties']['state']}", None
        case _:
            return "ok", f"{len(result['value'])} keys listed", None


class Customer:
    """Builds and sends the requests of scripted actions and of the customers' faults."""

    def __init__(self, scenario: Scenario, seed: int, clock: Clock, send: Send) -> None:
        self.scenario = scenario
        self.seed = seed
        self.clock = clock
        self.send = send
        self.planner = Planner(scenario.datacenter, seed)
        #: Scripted requests still to be sent twice (a duplicate-commands fault).
        self.duplicates = 0
        self._numbers = iter(range(FAULT_REQUESTS, 2**62))

    def number(self) -> int:
        """A fresh index for a request no script asked for."""
        return next(self._numbers)

    def secrets(self) -> set[str]:
        """Every BitLocker key the customers send."""
        keys = set()
        for spec in self.scenario.jobs.values():
            for drive in create_body(spec, self.planner)["properties"].get("driveList", []):
                keys.add(drive["bitLockerKey"])
        return keys

    def request(self, do: str, job: str) -> tuple[str, dict[str, Any]]:
        """The command (operation, fields) of a scripted action."""
        spec = self.scenario.jobs[job]
        match do:
            case "create":
                return "create", {"job": job, "body": create_body(spec, self.planner)}
            case "ship":
                body = ship_body(spec, self.planner, self.clock.isoformat()[:10])
                return "update", {"job": job, "body": body}
            case "keys":
                return "list-bitlocker-keys", {"job": job}
            case _:
                return do, {"job": job}

    async def call(
        self, do: str, job: str, *, index: int, expect: str | None = None, note: str = ""
    ) -> ActionResult:
        op, fields = self.request(do, job)
        reply = await self.send(op, json.dumps(fields).encode())
        outcome, detail, state = _outcome(do, reply)
        return ActionResult(
            index=index,
            job=job,
            do=do,
            at=self.clock.now(),
            outcome=outcome,
            detail=f"{detail} ({note})" if note else detail,
            expect=expect,
            state=state,
        )

    async def perform(self, action: Action) -> list[ActionResult]:
        """A scripted action; under a duplicate-commands fault its copy goes first."""
        results: list[ActionResult] = []
        if self.duplicates > 0:
            self.duplicates -= 1
            results.append(await self.call(action.do, action.job, index=self.number(), note="copy"))
        results.append(
            await self.call(action.do, action.job, index=action.index, expect=action.expect)
        )
        return results

    @property
    def jobs(self) -> dict[str, JobSpec]:
        """The scenario's jobs, by name."""
        return self.scenario.jobs

    async def client_fault(self, fault: Fault, alive: list[str]) -> list[ActionResult]:
        """The requests of a customers' fault against the jobs ``alive`` now: its kind's
        injector, with a generator of the fault's own and the jobs it picked."""
        kind = fault.spec
        assert isinstance(kind, CustomerFault), f"{fault.kind} is not a customers' fault"
        rng = random.Random(f"{self.seed}/fault/{fault.index}")
        picked = rng.sample(sorted(alive), min(fault.count, len(alive)))
        return await kind.strike(self, fault, rng, picked)
