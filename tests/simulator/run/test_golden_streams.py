"""The status streams of the shipped scenarios, pinned by digest: a change that alters a
single byte a consumer would receive fails here, so a refactoring can prove it changed
nothing. A change meant to alter the stream regenerates the digests with
``.venv/bin/python -m tests.simulator.run.test_golden_streams --write`` and says why in its
commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from simulator.run.runner import run_scenario
from simulator.scenario import load_scenario
from worker.logs import configure_logging
from worker.memory_store import MemoryStore
from worker.status import StatusMessage

ROOT = Path(__file__).parents[3]
GOLDEN = Path(__file__).parent / "data" / "golden-streams.json"
SCENARIOS = (
    "cancel-mid-transfer",
    "cancel-too-late",
    "export-job",
    "chaos-everything",
    "load-small",
)


def digest(name: str) -> dict[str, object]:
    """How many messages ``configs/<name>.toml`` publishes in virtual time, and the
    SHA-256 of each one's topic, QoS, retain flag and payload, in order."""
    sha = hashlib.sha256()
    count = 0

    def take(message: StatusMessage) -> None:
        nonlocal count
        count += 1
        sha.update(repr((message.topic, message.qos, message.retain)).encode())
        sha.update(len(message.payload).to_bytes(8, "big"))
        sha.update(message.payload)

    run_scenario(
        load_scenario(ROOT / "configs" / f"{name}.toml"),
        MemoryStore(history=False),
        on_message=take,
    )
    return {"messages": count, "sha256": sha.hexdigest()}


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_stream_is_the_one_pinned(name: str) -> None:
    """The scenario publishes exactly the stream whose digest is pinned."""
    assert digest(name) == json.loads(GOLDEN.read_text())[name]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    configure_logging(level="warning")
    GOLDEN.write_text(json.dumps({name: digest(name) for name in SCENARIOS}, indent=2) + "\n")
