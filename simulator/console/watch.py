"""``drivesim watch``: the status stream as it happens, one readable line per change, stamped
with the simulated time the message carries."""

from __future__ import annotations

import json
from datetime import datetime

import aiomqtt
import anyio
from rich.console import Console
from rich.text import Text

from simulator.console.timeline import Timeline, format_size
from worker import TOPIC_PREFIX
from worker.mqtt import BrokerConfig, Version, connected, make_client

__all__ = ["watch"]


def _sim_time(payload: bytes) -> str | None:
    """The simulated time a status message carries (``simTime``, or an event's ``time``),
    as ``2026-01-05 09:30:00``; None when it carries none (a cleared retained message)."""
    if not payload:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    stamp = body.get("simTime") or body.get("time") if isinstance(body, dict) else None
    if not isinstance(stamp, str):
        return None
    return stamp.replace("T", " ")[:19]


def _describe(topic: str, payload: bytes, *, retained: bool = False) -> Text | None:
    parts = topic.split("/")
    if len(parts) == 5 and parts[2] == "workers":
        state = json.loads(payload)["state"] if payload else "(cleared)"
        style = {"online": "green", "offline": "yellow", "lost": "bold red"}.get(state, "")
        return Text(f"worker {parts[3]}: ", style="bold").append(state, style=style)
    if len(parts) < 5 or parts[2] != "jobs":
        return None
    job, leaf = parts[3], parts[4]
    line = Text(f"{job:<16} ", style="bold")
    if leaf == "events" and payload:
        event = json.loads(payload)
        text = Timeline.describe(event["type"].rsplit(".", 1)[-1], event["data"])
        return None if text is None else line.append(text)
    if leaf == "state" and not payload:
        return line.append("retained state cleared", style="dim")
    if leaf == "state" and retained:
        props = json.loads(payload)["properties"]
        cancel = " · cancel requested" if props.get("cancelRequested") else ""
        return line.append(f"is {props['state']}{cancel} (retained)", style="dim")
    if leaf == "progress" and payload:
        progress = json.loads(payload)
        return line.append(
            f"  drive {progress['driveId']}: {progress['percentComplete']}% "
            f"({format_size(progress['bytesSucceeded'])})",
            style="dim cyan",
        )
    return None


def _stamped(payload: bytes, text: Text) -> Text:
    """A line stamped with the simulated time its message carries, else (a worker's status,
    a cleared message) with the wall-clock time it arrived, marked as such."""
    stamp = _sim_time(payload)
    if stamp is None:
        stamp = f"{datetime.now():%H:%M:%S} (wall)".rjust(19)  # as wide as a simulated time
    return Text(f"{stamp}  ", style="dim").append(text)


def watch(broker: BrokerConfig, console: Console, *, job: str | None = None) -> None:
    """Print the stream until interrupted (Ctrl-C)."""
    topics = [f"{TOPIC_PREFIX}/jobs/{job or '+'}/#", f"{TOPIC_PREFIX}/workers/+/status"]

    async def main() -> None:
        def make(version: Version) -> aiomqtt.Client:
            return make_client(broker, version=version)

        while True:
            try:
                async with connected(broker, make, prefer="3.1.1") as (client, _):
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    console.print(f"watching {broker.url} · {', '.join(topics)}", style="dim")
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        text = _describe(message.topic.value, payload, retained=message.retain)
                        if text is not None:
                            console.print(_stamped(payload, text))
            except aiomqtt.MqttError as exc:
                console.print(f"connection lost ({exc}); reconnecting", style="yellow")
                await anyio.sleep(1)

    anyio.run(main)
