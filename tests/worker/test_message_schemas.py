"""The MQTT contract (docs/asyncapi.yaml and docs/schemas): real messages match it.

Messages are routed the way a consumer reading the document would: the topic picks the
channel (its address, with each ``{parameter}`` one topic level), the channel's messages give
the payload schemas, and the send operation's MQTT binding gives QoS and retain.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import pytest
import yaml  # type: ignore[import-untyped]
from jsonschema import Draft7Validator, Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from simulator.client import JobsClient
from simulator.live.processes import Mosquitto
from simulator.run.result import RunResult
from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker import (
    Clock,
    Datacenter,
    DatacenterConfig,
    JobState,
    Ledger,
    MemoryStore,
    PlanHints,
    Planner,
    Range,
)
from worker.commands import OPERATIONS
from worker.config import GB, HOUR
from worker.mqtt.broker import BrokerConfig
from worker.mqtt.link import MqttLink
from worker.mqtt.publisher import with_epoch
from worker.status import TOPIC_PREFIX

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
ASYNCAPI = DOCS / "asyncapi.yaml"
SCHEMAS = DOCS / "schemas"
CONFIGS = ROOT / "configs"
SCENARIOS = ("cancel-mid-transfer", "cancel-too-late", "export-job")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
REPLIES = f"{TOPIC_PREFIX}/replies/"

Json = Any
Body = Callable[..., dict[str, Any]]


# -- the contract, read from the documents -------------------------------------------------


def _pointer(document: Json, pointer: str) -> Json:
    """The value at a JSON pointer (``/a/b``) in ``document``."""
    node = document
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _refs(node: Json) -> Iterator[str]:
    """Every ``$ref`` value anywhere in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _decode(payload: bytes) -> Json:
    """A payload as the document describes it: JSON, or the zero-byte clear as ``""``."""
    return "" if payload == b"" else json.loads(payload)


@dataclass
class Channel:
    name: str
    address: str | None
    pattern: re.Pattern[str] | None
    enums: dict[str, list[str]]
    messages: dict[str, dict[str, Any]]
    qos: int | None = None
    retain: bool | None = None


@dataclass
class Contract:
    """docs/asyncapi.yaml with its schemas loaded: routes topics and validates payloads."""

    document: dict[str, Any]
    schemas: dict[str, dict[str, Any]]  # file name -> schema
    registry: Registry[Any]
    channels: dict[str, Channel] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Contract:
        document = yaml.safe_load(ASYNCAPI.read_text())
        schemas = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))}
        registry: Registry[Any] = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
            for schema in schemas.values()
        )
        contract = cls(document, schemas, registry)
        for name, channel in document["channels"].items():
            contract.channels[name] = contract._channel(name, channel)
        for operation in document["operations"].values():
            if operation["action"] == "send":
                channel = contract.channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]
                binding = operation.get("bindings", {}).get("mqtt", {})
                channel.qos, channel.retain = binding.get("qos"), binding.get("retain")
        return contract

    def resolve(self, node: Json) -> Json:
        """``node`` itself, or what its internal ``$ref`` points to."""
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"not an internal reference: {ref}"
            node = _pointer(self.document, ref[1:])
        return node

    def message(self, node: Json) -> dict[str, Any]:
        """A message object with its traits applied (the message's own fields win)."""
        message = dict(self.resolve(node))
        for trait in message.pop("traits", []):
            for key, value in self.resolve(trait).items():
                message.setdefault(key, value)
        return message

    def _channel(self, name: str, node: Json) -> Channel:
        address = node["address"]
        pattern = None
        enums: dict[str, list[str]] = {}
        if address is not None:
            regex = "".join(
                f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", address)
            )
            pattern = re.compile(regex)
            for param, spec in node.get("parameters", {}).items():
                spec = self.resolve(spec)
                if "enum" in spec:
                    enums[param] = spec["enum"]
        messages = {key: self.message(m) for key, m in node["messages"].items()}
        return Channel(name, address, pattern, enums, messages)

    def route(self, topic: str) -> tuple[Channel, dict[str, str]] | None:
        """The channel whose address matches ``topic``, and its parameters."""
        for channel in self.channels.values():
            match = channel.pattern.fullmatch(topic) if channel.pattern else None
            if match is None:
                continue
            params = match.groupdict()
            if all(params[p] in values for p, values in channel.enums.items()):
                return channel, params
        return None

    def validator(self, message: dict[str, Any]) -> Any:
        payload = message["payload"]
        if "schemaFormat" in payload:
            assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
            ref = payload["schema"]["$ref"]
            schema = self.schemas[Path(ref).name]
            return Draft202012Validator(schema, registry=self.registry)
        return Draft7Validator(payload)  # an inline AsyncAPI (draft-07) schema

    def errors(self, message: dict[str, Any], value: Json) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in self.validator(message).iter_errors(value)
        ]

    def check(self, topic: str, payload: bytes) -> tuple[Channel, dict[str, str], str, Json]:
        """Route ``topic``, decode ``payload`` and find the channel message it is; fail if none.

        On the commands channel only the message named after the operation applies.
        """
        routed = self.route(topic)
        assert routed is not None, f"{topic}: no channel in the contract"
        channel, params = routed
        value = _decode(payload)
        candidates = channel.messages
        if "op" in params:
            candidates = {k: m for k, m in candidates.items() if m["name"] == params["op"]}
            assert len(candidates) == 1, f"{topic}: no single message for the operation"
        failures = {}
        for key, message in candidates.items():
            errors = self.errors(message, value)
            if not errors:
                return channel, params, key, value
            failures[key] = errors
        raise AssertionError(f"{topic} {payload[:200]!r} matches no message: {failures}")

    def reply_errors(self, payload: bytes, op: str | None) -> list[str]:
        """What is wrong with a command reply (against the operation's reply when known)."""
        reply = self.channels["commandReplies"].messages["commandReply"]
        errors = self.errors(reply, json.loads(payload))
        if op in OPERATIONS:
            schema = {"$ref": f"command-reply.schema.json#/$defs/{op}"}
            schema["$id"] = "https://drivesim.example/schemas/importexport/v1/reply-of-op"
            validator = Draft202012Validator(schema, registry=self.registry)
            errors += [e.message for e in validator.iter_errors(json.loads(payload))]
        return errors


@pytest.fixture(scope="module")
def contract() -> Contract:
    """The AsyncAPI document and its JSON Schemas, loaded once."""
    return Contract.load()


@pytest.fixture(scope="module")
def scenario_runs() -> dict[str, RunResult]:
    """The shipped scenarios, each run once in virtual time on an in-memory store."""
    return {
        name: run_scenario(load_scenario(CONFIGS / f"{name}.toml"), MemoryStore())
        for name in SCENARIOS
    }


def _job_of(params: dict[str, str]) -> str | None:
    return params.get("job")


def _check_ids(channel: Channel, params: dict[str, str], value: Json) -> None:
    """A payload names the same job and drive as its topic levels."""
    if value == "":
        return
    match channel.name:
        case "jobState":
            assert value["name"] == params["job"]
        case "driveState":
            assert (value["job"], value["driveId"]) == (params["job"], params["drive"])
        case "jobEvents":
            assert value["subject"] == params["job"]
            job, seq, index = value["id"].split(":")
            assert (job, int(seq)) == (params["job"], value["data"]["seq"])
            assert index.isdigit()
        case "jobProgress":
            assert value["job"] == params["job"]
        case "workerStatus":
            assert value["workerId"] == params["workerId"]


# -- (a) the shipped scenarios, in virtual time ------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_message_of_a_shipped_scenario_matches_its_topics_schema(
    name: str, contract: Contract, scenario_runs: dict[str, RunResult]
) -> None:
    """Every message a shipped scenario publishes matches its channel's schema, QoS and retain."""
    result = scenario_runs[name]
    assert result.finished
    assert result.history
    kinds: Counter[str] = Counter()
    for message in result.history:
        wire = with_epoch(message, 1)  # the epoch MqttLink adds to retained snapshots
        channel, params, key, value = contract.check(message.topic, wire)
        assert (message.qos, message.retain) == (channel.qos, channel.retain), message.topic
        assert _job_of(params) == message.job
        _check_ids(channel, params, value)
        if isinstance(value, dict):
            assert value.get("seq", value.get("data", {}).get("seq")) == message.seq
        kinds[key] += 1
    assert {"jobSnapshot", "driveSnapshot", "jobEvent", "progress"} <= set(kinds)
    assert {"jobCleared", "driveCleared"} <= set(kinds)  # every scenario deletes its jobs


def test_shipped_scenarios_publish_every_event_type_but_replacement(
    contract: Contract, scenario_runs: dict[str, RunResult]
) -> None:
    """Between them the shipped scenarios publish every documented event type but jobReplaced."""
    schema = contract.schemas["event.schema.json"]
    documented = set(schema["properties"]["type"]["enum"])
    seen = {
        json.loads(m.payload)["type"]
        for run in scenario_runs.values()
        for m in run.history
        if m.topic.endswith("/events")
    }
    assert seen <= documented
    assert documented - seen == {"com.drivesim.importexport.jobReplaced"}


def test_seq_rises_by_one_per_change_and_the_clear_is_the_deleting_change(
    scenario_runs: dict[str, RunResult],
) -> None:
    """Each job's snapshots carry seq 1, 2, 3...; the clear and jobDeleted share the next seq."""
    for run in scenario_runs.values():
        states: dict[str, list[int]] = defaultdict(list)
        deletions: dict[str, list[int]] = defaultdict(list)
        for message in run.history:
            if message.topic == f"{TOPIC_PREFIX}/jobs/{message.job}/state":
                states[message.job].append(message.seq)
                if not message.payload:
                    deletions[message.job].append(message.seq)
            elif message.topic.endswith("/events") and b"jobDeleted" in message.payload:
                assert message.seq in deletions[message.job]
        for job, seqs in states.items():
            assert seqs == list(range(1, len(seqs) + 1)), job
            assert deletions[job] == [seqs[-1]], job


def test_scenario_messages_carry_no_bitlocker_key(scenario_runs: dict[str, RunResult]) -> None:
    """No status message of a scenario contains a BitLocker key or a bitLockerKey field."""
    for run in scenario_runs.values():
        assert run.secrets
        for message in run.history:
            assert b"bitLockerKey" not in message.payload
            assert not any(secret.encode() in message.payload for secret in run.secrets)


def _wire(run: RunResult, predicate: Callable[[str, Json], bool]) -> Json:
    """The first non-empty message of ``run`` for which ``predicate(topic, value)`` holds, as
    MqttLink would publish it."""
    for message in run.history:
        if message.payload and predicate(message.topic, json.loads(message.payload)):
            return json.loads(with_epoch(message, 1))
    raise AssertionError("no such message")


def _snapshot(run: RunResult, state: str) -> Json:
    return _wire(run, lambda t, v: "name" in v and v["properties"]["state"] == state)


def _event(run: RunResult, event: str) -> Json:
    return _wire(run, lambda t, v: v.get("type") == f"com.drivesim.importexport.{event}")


def _drop(key: str) -> Callable[[Json], None]:
    return lambda value: value.pop(key) and None


def _set(**fields: Any) -> Callable[[Json], None]:
    return lambda value: value.update(fields)


def _in(part: str, change: Callable[[Json], None]) -> Callable[[Json], None]:
    return lambda value: change(value[part])


def _drive_key(value: Json) -> None:
    value["properties"]["driveList"][0]["bitLockerKey"] = "123456-123456"


MUTATIONS = [
    pytest.param("job", _drive_key, id="job snapshot with a drive's bitLockerKey"),
    pytest.param("job", _drop("seq"), id="job snapshot without seq"),
    pytest.param("job", _drop("epoch"), id="job snapshot without epoch"),
    pytest.param("job", _drop("simTime"), id="job snapshot without simTime"),
    pytest.param("job", _set(outcome="cancelled"), id="running job snapshot with an outcome"),
    pytest.param("job", _in("properties", _set(state="Lost")), id="job in an unknown state"),
    pytest.param("job", _in("properties", _set(bitLockerKey="k")), id="job with a key field"),
    pytest.param("job", _set(extra=1), id="job snapshot with an unknown field"),
    pytest.param("ended", _drop("outcome"), id="ended job snapshot without outcome"),
    pytest.param("drive", _set(bitLockerKey="k"), id="drive snapshot with its bitLockerKey"),
    pytest.param("drive", _set(state="Lost"), id="drive snapshot in an unknown state"),
    pytest.param("drive", _drop("job"), id="drive snapshot without job"),
    pytest.param("event", _set(type="com.drivesim.importexport.x"), id="unknown event type"),
    pytest.param("event", _set(specversion="0.3"), id="event of another CloudEvents version"),
    pytest.param("event", _in("data", _drop("seq")), id="event data without seq"),
    pytest.param("event", _in("data", _set(to="Lost")), id="stateChanged to an unknown state"),
    pytest.param("event", _in("data", _set(driveId="D1")), id="stateChanged with a drive field"),
    pytest.param(
        "cancel", _in("data", _drop("drivesInFlight")), id="cancel without drivesInFlight"
    ),
    pytest.param("progress", _set(percentComplete=101), id="progress over 100 percent"),
    pytest.param("progress", _set(bytesSucceeded=-1), id="progress with negative bytes"),
]


@pytest.mark.parametrize(("kind", "mutate"), MUTATIONS)
def test_schemas_reject_real_mistakes(
    kind: str,
    mutate: Callable[[Json], None],
    contract: Contract,
    scenario_runs: dict[str, RunResult],
) -> None:
    """A real message passes its schema, and the same message with one mistake fails it."""
    run = scenario_runs["cancel-mid-transfer"]
    samples: dict[str, tuple[Callable[[], Json], str, str]] = {
        "job": (lambda: _snapshot(run, "Transferring"), "jobState", "jobSnapshot"),
        "ended": (lambda: _snapshot(run, "Completed"), "jobState", "jobSnapshot"),
        "drive": (lambda: _wire(run, lambda t, v: "/drives/" in t), "driveState", "driveSnapshot"),
        "event": (lambda: _event(run, "stateChanged"), "jobEvents", "jobEvent"),
        "cancel": (lambda: _event(run, "cancelRequested"), "jobEvents", "jobEvent"),
        "progress": (
            lambda: _wire(run, lambda t, v: t.endswith("/progress")),
            "jobProgress",
            "progress",
        ),
    }
    sample, channel, key = samples[kind]
    message = contract.channels[channel].messages[key]
    value = sample()
    assert contract.errors(message, value) == []
    mutate(value)
    assert contract.errors(message, value)


# -- (b) live, through Mosquitto ---------------------------------------------------------------

#: Short delays: a job runs through the datacenter in about half a second at SCALE. The
#: generous deadline keeps a busy machine's scheduling delays from cutting a transfer short.
DATACENTER = DatacenterConfig(
    locations={"West US": 2},
    carrier_delay=Range(HOUR, HOUR),
    return_delay=Range(HOUR, HOUR),
    drive_size=Range(1800 * GB, 1800 * GB),
    transfer_deadline_factor=100.0,
)
SCALE = 36_000.0
MAX_BYTES = 4096


@dataclass
class Sent:
    """A request the test sent and what it expects of it."""

    op: str
    status: int
    valid: bool  # whether the request itself matches the contract
    code: str | None = None
    reply: dict[str, Any] | None = None


@dataclass
class Requester:
    """Sends requests through a JobsClient and remembers each by its correlation key."""

    client: JobsClient
    sent: dict[str, Sent]

    async def __call__(
        self,
        op: str,
        payload: dict[str, Any] | bytes,
        *,
        status: int,
        valid: bool = True,
        code: str | None = None,
    ) -> dict[str, Any]:
        key = uuid.uuid4().hex
        if isinstance(payload, dict):
            if self.client.version != "5":
                payload = {**payload, "replyTo": self.client.reply_topic, "correlationId": key}
            raw = json.dumps(payload).encode()
        else:
            raw = payload
        self.sent[key] = record = Sent(op, status, valid, code)
        reply = await self.client.send(op, raw, correlation=key)
        record.reply = reply
        assert reply["status"] == status, (op, payload, reply)
        if code is not None:
            assert reply["error"]["code"] == code, reply
        return reply


async def _until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until ``predicate()`` holds: it reads other components' state (the outbox, the
    observer's list, the ledger), so polling is the simplest honest wait."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.01)


def _ended(ledger: Ledger, name: str) -> bool:
    record = ledger.get(name)
    return record is not None and record.state in (JobState.COMPLETED, JobState.CLOSED)


def _correlation(message: aiomqtt.Message) -> str | None:
    data = getattr(message.properties, "CorrelationData", None) if message.properties else None
    if data:
        return bytes(data).decode()
    try:
        value = json.loads(message.payload) if isinstance(message.payload, bytes) else None
    except ValueError:
        return None
    return value.get("correlationId") if isinstance(value, dict) else None


@pytest.mark.asyncio
async def test_live_worker_messages_match_the_contract(
    own_mosquitto: Mosquitto,
    contract: Contract,
    import_body: Body,
    ship_body: Body,
) -> None:
    """Through Mosquitto, every status, event, liveness, request and reply matches the contract."""
    broker = BrokerConfig.from_url(own_mosquitto.url)
    store = MemoryStore()
    # alpha's package is ten simulated hours (a second) on its way: it is still Shipping
    # when its delete is refused.
    planner = Planner(DATACENTER, seed=5, pinned={"alpha": PlanHints(carrier_delay=10 * HOUR)})
    datacenter = Datacenter(
        store, clock=Clock(scale=SCALE), planner=planner, command_limit=MAX_BYTES
    )
    ledger = datacenter.ledger
    worker_id = f"schemas-{uuid.uuid4().hex[:8]}"
    received: list[aiomqtt.Message] = []
    sent: dict[str, Sent] = {}
    epochs: dict[str, int] = {}  # job -> epoch its snapshots must carry

    def observed_status() -> int:
        return sum(m.topic.value.startswith(f"{TOPIC_PREFIX}/jobs/") for m in received)

    async def drained() -> None:
        await _until(lambda: not store.pending(1))
        await _until(lambda: observed_status() == len(list(store.history())))

    async def collect(observer: aiomqtt.Client) -> None:
        async for message in observer.messages:
            received.append(message)

    observer = aiomqtt.Client(
        "127.0.0.1",
        own_mosquitto.port,
        identifier="schemas-observer",
        protocol=aiomqtt.ProtocolVersion.V5,
    )
    v5 = JobsClient(BrokerConfig.from_url(own_mosquitto.url, protocol="5"))
    v311 = JobsClient(BrokerConfig.from_url(own_mosquitto.url, protocol="3.1.1"))
    async with observer, anyio.create_task_group() as tg, v5, v311:
        await observer.subscribe(f"{TOPIC_PREFIX}/#", qos=1)
        tg.start_soon(collect, observer)
        assert (v5.version, v311.version) == ("5", "3.1.1")
        ask, ask311 = Requester(v5, sent), Requester(v311, sent)

        # First connection: epoch 1.
        link = MqttLink(broker, worker_id=worker_id, meta=ledger, commands=datacenter.commands)
        await tg.start(link.run)
        async with datacenter.running(link):
            await link.ready()
            assert link.epoch == 1
            epochs.update(alpha=1, bravo=1)

            # alpha: created, replaced, read, updated, keys listed, shipped, not deletable.
            await ask("create", {"job": "alpha", "body": import_body(2)}, status=201)
            await ask("create", {"job": "alpha", "body": import_body(2)}, status=200)
            await ask("get", {"job": "alpha"}, status=200)
            await ask311("get", {"job": "alpha"}, status=200)
            await ask("list", {"top": 10, "state": "Creating"}, status=200)
            await ask(
                "update",
                {"job": "alpha", "body": {"properties": {"logLevel": "Verbose"}}},
                status=200,
            )
            keys = await ask("list-bitlocker-keys", {"job": "alpha"}, status=200)
            assert len(keys["result"]["value"]) == 2
            package = ship_body()["properties"]["deliveryPackage"]
            await ask("ship", {"job": "alpha", "deliveryPackage": package}, status=200)
            await ask("delete", {"job": "alpha"}, status=409, code="DeleteNotAllowed")

            # bravo: created, cancelled in Creating (so Completed at once), refused, deleted.
            await ask311("create", {"job": "bravo", "body": import_body(1)}, status=201)
            first = await ask("cancel", {"job": "bravo"}, status=200)
            again = await ask311("cancel", {"job": "bravo"}, status=200)
            assert (first["result"]["answer"], again["result"]["answer"]) == (
                "accepted",
                "already-requested",
            )
            await ask(
                "update",
                {"job": "bravo", "body": {"properties": {"logLevel": "Verbose"}}},
                status=409,
                code="InvalidJobState",
            )
            await ask311(
                "ship",
                {"job": "bravo", "deliveryPackage": package},
                status=409,
                code="InvalidJobState",
            )
            await ask("delete", {"job": "bravo"}, status=200)
            await ask311("get", {"job": "bravo"}, status=404, code="ResourceNotFound")

            # Bad requests: each gets an error reply and changes nothing.
            await ask("get", b'{"job": ', status=400, valid=False, code="InvalidRequestContent")
            await ask("get", {"job": 42}, status=400, valid=False, code="InvalidRequestContent")
            await ask("explode", {"job": "alpha"}, status=400, valid=False, code="UnknownOperation")
            await ask(
                "get",
                {"job": "alpha", "force": True},
                status=400,
                valid=False,
                code="InvalidRequestContent",
            )
            await ask("list", {"top": 0}, status=400, valid=False, code="InvalidRequestContent")
            await ask(
                "create",
                {"job": "bad name", "body": import_body(1)},
                status=400,
                valid=False,
                code="InvalidResourceName",
            )
            mars = import_body(1)
            mars["location"] = "Mars"
            await ask("create", {"job": "delta", "body": mars}, status=400, code="InvalidLocation")
            big = import_body(1)
            big["tags"] = {"note": "x" * MAX_BYTES}
            await ask("create", {"job": "delta", "body": big}, status=413, code="PayloadTooLarge")
            await ask("get", {"job": "nope"}, status=404, code="ResourceNotFound")
            await ask311("get", {"job": "nope"}, status=404, code="ResourceNotFound")

            # The datacenter takes alpha through Received, Transferring, Packaging, Completed.
            await _until(lambda: _ended(ledger, "alpha"))
            record = ledger.get("alpha")
            assert record is not None
            assert record.state is JobState.COMPLETED
            await ask("cancel", {"job": "alpha"}, status=409, code="CancelTooLate")
            await ask("delete", {"job": "alpha"}, status=200)
            await ask("get", {"job": "alpha"}, status=404, code="ResourceNotFound")
            await drained()

        # A clean stop, then a new connection: epoch 2.
        await link.stop()
        await link.closed.wait()
        link = MqttLink(broker, worker_id=worker_id, meta=ledger, commands=datacenter.commands)
        await tg.start(link.run)
        async with datacenter.running(link):
            await link.ready()
            assert link.epoch == 2
            epochs["charlie"] = 2
            await ask("create", {"job": "charlie", "body": import_body(1)}, status=201)
            await drained()
        await link.stop()
        await link.closed.wait()
        will = link.liveness.will(link.version, link.epoch)
        await _until(lambda: sum(m.topic.value.endswith("/status") for m in received) == 4)
        await _until(lambda: sum(m.topic.value.startswith(REPLIES) for m in received) == len(sent))
        await _until(lambda: sum("/commands/" in m.topic.value for m in received) == len(sent))
        tg.cancel_scope.cancel()

    # Every message the observer saw, by channel.
    seen: Counter[str] = Counter()
    liveness: list[tuple[str, int]] = []
    replies: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    secrets = {k["bitLockerKey"] for k in keys["result"]["value"]}
    for message in received:
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        key = _correlation(message)
        if topic.startswith(REPLIES):
            assert key in sent, topic
            request = sent[key]
            assert contract.reply_errors(payload, request.op) == [], payload
            assert json.loads(payload) == request.reply
            content_type = getattr(message.properties, "ContentType", None)
            if b"correlationId" not in payload:  # MQTT 5: the properties carry the correlation
                assert content_type == "application/json"
            replies[key] += 1
            leaks = any(s.encode() in payload for s in secrets)
            assert leaks == (request.op == "list-bitlocker-keys" and request.status == 200)
            continue
        if topic.startswith(f"{TOPIC_PREFIX}/commands/"):
            assert key in sent, topic
            request = sent[key]
            assert request.op == topic.rsplit("/", 1)[-1]
            try:
                contract.check(topic, payload)
            except (AssertionError, ValueError):
                assert not request.valid, (topic, payload)
            else:
                assert request.valid, (topic, payload)
            requests[key] += 1
            continue
        channel, params, name, value = contract.check(topic, payload)
        _check_ids(channel, params, value)
        assert not any(s.encode() in payload for s in secrets), topic
        assert message.qos == channel.qos, topic
        if payload:
            binding = channel.messages[name].get("bindings", {}).get("mqtt", {})
            if "contentType" in binding:
                assert getattr(message.properties, "ContentType", None) == binding["contentType"]
        if channel.name == "workerStatus":
            liveness.append((value["state"], value["epoch"]))
        elif channel.name in ("jobState", "driveState") and value != "":
            assert value["epoch"] == epochs[params["job"]], topic
        seen[name] += 1

    assert set(replies) == set(requests) == set(sent)
    assert set(replies.values()) == set(requests.values()) == {1}
    assert liveness == [("online", 1), ("offline", 1), ("online", 2), ("offline", 2)]
    assert {
        "jobSnapshot",
        "driveSnapshot",
        "jobEvent",
        "progress",
        "jobCleared",
        "driveCleared",
    } <= set(seen)
    events = {
        json.loads(m.payload)["type"].rsplit(".", 1)[-1]
        for m in received
        if m.topic.value.endswith("/events") and isinstance(m.payload, bytes)
    }
    assert {
        "jobCreated",
        "jobReplaced",
        "jobUpdated",
        "stateChanged",
        "cancelRequested",
        "jobDeleted",
    } <= events

    # The Last Will the link registers is a valid liveness message on its status topic.
    server = contract.document["servers"]["broker"]["bindings"]["mqtt"]["lastWill"]
    assert will.topic == server["topic"].replace("{workerId}", worker_id)
    assert (will.qos, will.retain) == (server["qos"], server["retain"])
    assert getattr(will.properties, "WillDelayInterval", None) == link.liveness.will_delay
    will_message = contract.channels["workerStatus"].messages["workerStatus"]
    assert isinstance(will.payload, bytes)
    lost = json.loads(will.payload)
    assert contract.errors(will_message, lost) == []
    assert (lost["state"], lost["workerId"], lost["epoch"]) == ("lost", worker_id, 2)


# -- (c) the document itself -------------------------------------------------------------------


def test_asyncapi_document_is_asyncapi_3_and_every_schema_ref_resolves() -> None:
    """asyncapi.yaml is AsyncAPI 3.0.x; each $ref to a file names a valid Draft 2020-12 schema."""
    document = yaml.safe_load(ASYNCAPI.read_text())
    assert re.fullmatch(r"3\.0\.\d+", document["asyncapi"])
    assert {"info", "servers", "channels", "operations", "components"} <= set(document)
    file_refs = [ref for ref in _refs(document) if not ref.startswith("#")]
    assert file_refs
    for ref in file_refs:
        path, _, pointer = ref.partition("#")
        target = (ASYNCAPI.parent / path).resolve()
        assert target.is_file(), ref
        assert target.parent == SCHEMAS.resolve(), ref
        schema = json.loads(target.read_text())
        assert schema["$schema"] == DRAFT_2020_12, ref
        Draft202012Validator.check_schema(schema)
        if pointer:
            _pointer(schema, pointer)
    for ref in _refs(document):
        if ref.startswith("#"):
            assert _pointer(document, ref[1:]) is not None, ref


def test_every_schema_file_is_valid_used_and_its_refs_resolve(contract: Contract) -> None:
    """Each schema file is valid Draft 2020-12, reached from the document, with resolvable $refs."""
    reached: set[str] = set()
    todo = [Path(ref).name for ref in _refs(contract.document) if not ref.startswith("#")]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        schema = contract.schemas[name]
        Draft202012Validator.check_schema(schema)
        resolver = contract.registry.resolver(base_uri=schema["$id"])
        for ref in _refs(schema):
            resolver.lookup(ref)  # raises if it does not resolve
            target = ref.partition("#")[0]
            if target:
                todo.append(target)
    assert reached == set(contract.schemas)


def test_document_structure_is_consistent(contract: Contract) -> None:
    """Parameters match addresses, operations use their channel's messages, ops match the code."""
    document = contract.document
    for name, channel in document["channels"].items():
        address = channel["address"]
        placeholders = set(re.findall(r"\{([^}]+)\}", address or ""))
        assert placeholders == set(channel.get("parameters", {})), name
        if address is not None:
            assert address.startswith(TOPIC_PREFIX + "/"), name
    for name, operation in document["operations"].items():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
        if "reply" in operation:
            reply = operation["reply"]
            for message in reply["messages"]:
                assert message["$ref"].startswith(reply["channel"]["$ref"] + "/messages/")
    assert tuple(contract.channels["commands"].enums["op"]) == OPERATIONS
    assert sorted(m["name"] for m in contract.channels["commands"].messages.values()) == sorted(
        OPERATIONS
    )
    for op in OPERATIONS:
        assert op in contract.schemas["command-reply.schema.json"]["$defs"], op
        assert f"command-request-{op}.schema.json" in contract.schemas, op


def test_document_examples_match_their_schemas(contract: Contract) -> None:
    """Every example payload in the document matches its message's schema."""
    examples = 0
    for channel in contract.channels.values():
        for key, message in channel.messages.items():
            for example in message.get("examples", []):
                assert contract.errors(message, example["payload"]) == [], (key, example["name"])
                examples += 1
    assert examples >= 5
