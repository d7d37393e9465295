"""``drivesim jobs ...``: the job service over MQTT, from the shell."""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import aiomqtt
import anyio
from rich.console import Console
from rich.table import Table

from simulator.client import JobsClient
from simulator.console import arguments
from worker import CommandFailed, JobState, NoAnswer, bitlocker_key
from worker.mqtt import BrokerConfig

__all__ = ["add_jobs_parser", "run_jobs"]

DEFAULT_BROKER = "mqtt://127.0.0.1:18830"


def add_jobs_parser(commands: Any) -> None:
    """The ``jobs`` subcommand, its operations and their options."""
    jobs = commands.add_parser(
        "jobs",
        help="create, inspect, ship, cancel and delete jobs",
        description="Send one command to a worker over MQTT and print its answer: exit 0 on "
        "success, 1 on an error answer.",
    )
    jobs.add_argument(
        "--broker",
        type=arguments.broker_url,
        default=DEFAULT_BROKER,
        metavar="URL",
        help=f"broker URL (default: {DEFAULT_BROKER})",
    )
    jobs.add_argument("--json", action="store_true", help="print the raw JSON answer")
    jobs.add_argument(
        "--timeout",
        type=arguments.number(low=0, high=3600, open_low=True),
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for a reply (default: 10)",
    )
    ops = jobs.add_subparsers(dest="op", required=True, metavar="OPERATION")

    create = ops.add_parser(
        "create",
        help="create an import or export job",
        description="Create (or replace) a job: an import with random drives and keys, an "
        "export of every blob, or the PUT body of a JSON file.",
    )
    create.add_argument("name", type=arguments.job_name, help="the job's name")
    create.add_argument(
        "--type",
        type=arguments.choice(("Import", "Export")),
        choices=("Import", "Export"),
        default="Import",
        help="the job type (default: Import)",
    )
    create.add_argument(
        "--drives",
        type=arguments.count(1, 10),
        default=4,
        metavar="N",
        help="import drives, 1 to 10 (default: 4)",
    )
    create.add_argument(
        "--location",
        type=arguments.nonempty,
        default="West US",
        help="the datacenter location (default: West US)",
    )
    create.add_argument(
        "--body",
        type=arguments.json_file,
        metavar="FILE",
        help="a JSON file with the full PUT body instead",
    )

    for op, text in (
        ("get", "show a job"),
        ("cancel", "request cancellation (best effort)"),
        ("delete", "delete a job (Creating or Completed only)"),
        ("keys", "list the BitLocker keys of a job's drives"),
    ):
        ops.add_parser(op, help=text, description=text[0].upper() + text[1:] + ".").add_argument(
            "name", type=arguments.job_name, help="the job's name"
        )

    ship = ops.add_parser(
        "ship",
        help="tell the service the package is on its way",
        description="Move a job to Shipping with its delivery package (carrier and tracking).",
    )
    ship.add_argument("name", type=arguments.job_name, help="the job's name")
    ship.add_argument(
        "--carrier", type=arguments.nonempty, default="FedEx", help="carrier (default: FedEx)"
    )
    ship.add_argument(
        "--tracking",
        type=arguments.nonempty,
        default=None,
        help="tracking number (default: random)",
    )
    ship.add_argument(
        "--drive-count",
        type=arguments.count(0, 1000),  # what the service takes (worker.model.DriveCount)
        default=None,
        metavar="N",
        help="drives in the package, 0 to 1000 (default: not sent)",
    )

    listing = ops.add_parser(
        "list", help="list jobs", description="List jobs, optionally in one state."
    )
    listing.add_argument(
        "--top",
        type=arguments.count(1, 100),
        default=None,
        metavar="N",
        help="at most N jobs, 1 to 100",
    )
    listing.add_argument(
        "--state",
        type=arguments.choice(str(s) for s in JobState),
        choices=[str(s) for s in JobState],
        default=None,
        metavar="STATE",
        help="only jobs in this state: " + ", ".join(str(s) for s in JobState),
    )


def _create_request(args: argparse.Namespace) -> dict[str, Any]:
    if args.body is not None:  # read and parsed by the parser (arguments.json_file)
        return {"job": args.name, "body": args.body}
    rng = random.Random()
    props: dict[str, Any] = {
        "jobType": args.type,
        "storageAccountId": "/subscriptions/00000000-0000-0000-0000-000000000000/"
        "resourceGroups/drivesim/providers/Microsoft.Storage/storageAccounts/drivesimdata",
        "returnAddress": {
            "recipientName": "Drivesim User",
            "streetAddress1": "1 Main Street",
            "city": "Redmond",
            "postalCode": "98052",
            "countryOrRegion": "USA",
            "phone": "4250000000",
            "email": "user@example.com",
        },
        "returnShipping": {"carrierName": "FedEx", "carrierAccountNumber": "000000"},
    }
    if args.type == "Import":
        props["driveList"] = [
            {
                "driveId": f"{rng.getrandbits(32):08X}",
                "bitLockerKey": bitlocker_key(rng),
            }
            for _ in range(args.drives)
        ]
    else:
        props["export"] = {"blobList": {"blobPathPrefix": ["/"]}}
    return {"job": args.name, "body": {"location": args.location, "properties": props}}


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    match args.op:
        case "create":
            return "create", _create_request(args)
        case "list":
            fields = {k: v for k, v in (("top", args.top), ("state", args.state)) if v is not None}
            return "list", fields
        case "keys":
            return "list-bitlocker-keys", {"job": args.name}
        case "ship":
            tracking = args.tracking or f"{random.randrange(10**11, 10**12)}"
            package: dict[str, Any] = {"carrierName": args.carrier, "trackingNumber": tracking}
            if args.drive_count is not None:
                package["driveCount"] = args.drive_count
            return "ship", {"job": args.name, "deliveryPackage": package}
        case op:
            return str(op), {"job": args.name}


def run_jobs(args: argparse.Namespace, console: Console) -> int:
    """Send one command; print the answer. Exit 0 on success, 1 on an error answer; raises
    :class:`~worker.errors.NoAnswer` when no worker answers or the broker is out of reach."""
    broker = BrokerConfig.from_url(args.broker)
    op, fields = _request(args)

    async def main() -> dict[str, Any]:
        try:
            client = JobsClient(broker, timeout=args.timeout)
            async with client:
                return await client.request(op, **fields)
        except TimeoutError:
            raise NoAnswer(
                f"no worker answered on {broker.url} within {args.timeout:g} s: is one "
                f"running there? drivesim watch --broker {broker.url} shows the workers "
                "online (a longer --timeout waits more)"
            ) from None
        except (aiomqtt.MqttError, OSError) as exc:
            raise NoAnswer(f"cannot reach the broker at {broker.url}: {exc}") from None

    reply = anyio.run(main)
    if args.json:
        console.print_json(json.dumps(reply))
    elif not reply.get("ok"):
        failure = CommandFailed(reply)
        console.print(f"[bold red]{failure.code}[/bold red] ({failure.status}): {failure.message}")
    else:
        if op == "create":
            console.print(_created(reply))
        _show(console, op, reply.get("result"))
    return 0 if reply.get("ok") else 1


def _created(reply: dict[str, Any]) -> str:
    """What a create did: the service answers 201 for a new job and 200 when it replaced
    one of that name still in Creating (its drives, keys and fields are the new ones)."""
    name = reply["result"]["name"]
    if reply.get("status") == 201:
        return f"created job {name}"
    return f"replaced existing job {name} (it was still Creating; the new body replaces it)"


def _show(console: Console, op: str, result: Any) -> None:
    if op == "delete":
        console.print("deleted")
    elif op == "list":
        table = Table("name", "type", "state", "cancel", "%", "drives")
        for job in result["value"]:
            props = job["properties"]
            table.add_row(
                job["name"],
                props.get("jobType", ""),
                props.get("state", ""),
                "yes" if props.get("cancelRequested") else "",
                str(props.get("percentComplete", "")),
                str(len(props.get("driveList") or [])),
            )
        console.print(table)
    elif op == "list-bitlocker-keys":
        for key in result["value"]:
            console.print(f"{key['driveId']}  {key['bitLockerKey']}")
    else:
        if op == "cancel":
            console.print(f"cancel: [bold]{result['answer']}[/bold]")
            result = result["job"]
        props = result["properties"]
        console.print(
            f"[bold]{result['name']}[/bold] · {props.get('jobType')} · {props.get('state')}"
            + (" · cancel requested" if props.get("cancelRequested") else "")
        )
        for drive in props.get("driveList") or []:
            done = drive.get("percentComplete")
            console.print(
                f"  {drive['driveId']:<12} {drive.get('state', ''):<18}"
                + (f" {done}%" if done is not None else "")
            )
