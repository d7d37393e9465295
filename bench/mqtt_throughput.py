"""End-to-end MQTT status throughput: drivesim's outbox path against plain clients.

``python -m bench.mqtt_throughput [--messages N] [--reps R] [--payload BYTES]``

Every run starts a fresh Mosquitto (its own config on a free 127.0.0.1 port, no queue or
in-flight caps, no persistence), an independent subscriber process
(:mod:`bench.mqtt_subscriber`: ``mosquitto_sub`` at QoS 1 plus a counter) and a publisher
process (:mod:`bench.mqtt_cases`) that connects, starts the clock and publishes N QoS 1
snapshot messages. The rate is messages received by the subscriber divided by the time
from the publisher's start (``t0``) to the last message received.

Cases run interleaved (repetition 1 of every case, then repetition 2, ...). The table
gives medians over repetitions, and ratios computed within each repetition (then their
median), so slow drift of a shared machine cancels out. ``--smoke`` runs a few hundred
messages once, writes no docs, and exits non-zero if a message was lost.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import cli
from bench.docs import DOCS, write_section
from bench.harness import NO_INFLIGHT_CAP, ROOT, mosquitto, python
from bench.machine import load_average, machine, machine_line
from bench.messages import make_messages, wire_payload
from bench.mqtt_cases import CASES, FIRST_EPOCH
from bench.procfs import process_cpu
from bench.stats import median
from bench.tables import header
from bench.tables import row as cells

__all__ = ["Case", "Run", "main"]

REFERENCES = ("aiomqtt", "paho")
SMOKE_MESSAGES = 300


@dataclass(frozen=True)
class Case:
    """A publisher case: one of :data:`CASES`."""

    name: str

    @property
    def description(self) -> str:
        return CASES[self.name]


@dataclass
class Run:
    """One publisher run: what was sent, what the subscriber got, and when."""

    case: str
    rep: int
    messages: int
    published: int
    received: int
    unique: int
    duplicates: int
    out_of_order: int
    t0: float
    t_acked: float
    t_last: float
    pub_cpu_s: float
    broker_cpu_s: float
    left_in_outbox: int | None = None
    error: str | None = None

    @property
    def lost(self) -> int:
        return self.messages - self.unique

    @property
    def rate(self) -> float:
        """End to end: messages received / (last received - publisher start)."""
        span = self.t_last - self.t0
        return self.unique / span if self.unique and span > 0 else 0.0

    @property
    def ack_rate(self) -> float:
        """Publisher side: messages / (last PUBACK - publisher start)."""
        span = self.t_acked - self.t0
        return self.published / span if span > 0 else 0.0


def _broker_cpu(pid: int) -> float:
    """User + system CPU seconds of the broker (0 when /proc has it no more)."""
    cpu = process_cpu(pid)
    return 0.0 if cpu is None else cpu


def run_once(
    case: Case, rep: int, args: argparse.Namespace, scratch: Path, profile_dir: Path | None
) -> Run:
    """Broker, subscriber and publisher for one run of ``case``; everything stopped after."""
    workdir = scratch / f"{case.name}-{rep}"
    timeout = 60 + args.messages / 500
    with (
        mosquitto(workdir / "broker", extra_config=NO_INFLIGHT_CAP) as broker,
        _counting_subscriber(broker.port, args, timeout) as sub,
    ):
        assert broker.process is not None
        assert sub.stdout is not None
        broker_cpu = _broker_cpu(broker.process.pid)
        result_file = workdir / "result.json"
        command = python(
            "bench.mqtt_cases",
            *("--case", case.name, "--port", str(broker.port), "--messages", str(args.messages)),
            *("--payload", str(args.payload), "--protocol", args.protocol),
            *("--workdir", str(workdir), "--result", str(result_file)),
        )
        if profile_dir is not None:
            command += ["--profile", str(profile_dir / f"{case.name}-rep{rep}.prof")]
        publisher = subprocess.run(command, cwd=ROOT, timeout=timeout, check=False)
        received = json.loads(sub.stdout.readline() or "{}")
        sub.wait(timeout=30)
        broker_cpu = _broker_cpu(broker.process.pid) - broker_cpu
    if publisher.returncode != 0 or not result_file.exists():
        published: dict[str, float] = {}
        error: str | None = f"publisher exited with {publisher.returncode}"
    else:
        published = json.loads(result_file.read_text())
        error = None
    return Run(
        case=case.name,
        rep=rep,
        messages=args.messages,
        published=int(published.get("published", 0)),
        received=int(received.get("received", 0)),
        unique=int(received.get("unique", 0)),
        duplicates=int(received.get("duplicates", 0)),
        out_of_order=int(received.get("out_of_order", 0)),
        t0=float(published.get("t0", 0.0)),
        t_acked=float(published.get("t_acked", 0.0)),
        t_last=float(received.get("last", 0.0)),
        pub_cpu_s=float(published.get("cpu_s", 0.0)),
        broker_cpu_s=broker_cpu,
        left_in_outbox=(
            int(published["left_in_outbox"]) if "left_in_outbox" in published else None
        ),
        error=error,
    )


@contextmanager
def _counting_subscriber(
    port: int, args: argparse.Namespace, timeout: float
) -> Iterator[subprocess.Popen[str]]:
    """:mod:`bench.mqtt_subscriber` on the broker at ``port``, subscribed (it said READY);
    killed after the block if it has not finished by then."""
    sub = subprocess.Popen(
        python(
            "bench.mqtt_subscriber",
            *("--port", str(port), "--count", str(args.messages)),
            *("--protocol", args.protocol, "--timeout", str(timeout)),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None
        first = sub.stdout.readline().strip()
        if first != "READY":
            raise RuntimeError(f"the subscriber did not get ready: {first!r}")
        yield sub
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


# -- summary ---------------------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    rates: list[float]
    ack_rates: list[float]
    ratios: dict[str, list[float]]
    pub_cpu_us: float
    broker_cpu_us: float
    delivered_min: int
    duplicates: int
    out_of_order: int
    lost: int


def summarize(runs: list[Run], cases: list[Case], reps: int) -> list[Row]:
    by = {(r.case, r.rep): r for r in runs}
    rows = []
    for case in cases:
        mine = [by[case.name, rep] for rep in range(1, reps + 1) if (case.name, rep) in by]
        ratios: dict[str, list[float]] = {}
        for ref in REFERENCES:
            per_rep = []
            for run in mine:
                other = by.get((ref, run.rep))
                if other is not None and other.rate > 0:
                    per_rep.append(run.rate / other.rate)
            ratios[ref] = per_rep
        rows.append(
            Row(
                case=case,
                rates=[r.rate for r in mine],
                ack_rates=[r.ack_rate for r in mine],
                ratios=ratios,
                pub_cpu_us=statistics.median(r.pub_cpu_s / r.messages * 1e6 for r in mine),
                broker_cpu_us=statistics.median(r.broker_cpu_s / r.messages * 1e6 for r in mine),
                delivered_min=min(r.unique for r in mine),
                duplicates=sum(r.duplicates for r in mine),
                out_of_order=sum(r.out_of_order for r in mine),
                lost=sum(r.lost for r in mine),
            )
        )
    return rows


def _ratio_cell(values: list[float]) -> str:
    if not values:
        return "–"
    each = " / ".join(f"{v:.2f}" for v in values)
    return f"**{median(values, 0.0):.2f}** ({each})" if len(values) > 1 else f"{values[0]:.2f}"


HEAD = header(
    "case | end-to-end msg/s (median) | min – max | ratio vs aiomqtt (b) | ratio vs paho (c) "
    "| PUBACK msg/s | publisher CPU µs/msg | broker CPU µs/msg | delivered (min) | duplicates "
    "| out of order",
    "lrrllrrrrrr",
)


def table(rows: list[Row], messages: int) -> str:
    lines = [
        cells(
            f"**{row.case.name}**: {row.case.description}",
            f"{median(row.rates, math.nan):,.0f}",
            f"{min(row.rates):,.0f} – {max(row.rates):,.0f}",
            _ratio_cell(row.ratios["aiomqtt"]),
            _ratio_cell(row.ratios["paho"]),
            f"{median(row.ack_rates, math.nan):,.0f}",
            f"{row.pub_cpu_us:.1f}",
            f"{row.broker_cpu_us:.1f}",
            f"{row.delivered_min:,} / {messages:,}",
            row.duplicates,
            row.out_of_order,
        )
        for row in rows
    ]
    return HEAD + "\n" + "\n".join(lines) + "\n"


# -- the docs section ------------------------------------------------------------------------


def section(
    rows: list[Row],
    args: argparse.Namespace,
    facts: dict[str, str],
    loads: tuple[float, float],
    wire_bytes: int,
    elapsed: float,
) -> str:
    command = ".venv/bin/python -m bench.mqtt_throughput " + shlex.join(
        [
            *("--messages", str(args.messages), "--reps", str(args.reps)),
            *("--payload", str(args.payload)),
            *(["--protocol", args.protocol] if args.protocol != "5" else []),
        ]
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "## MQTT status throughput, end to end (`bench/mqtt_throughput.py`)\n\n"
        f"Run {when}, {elapsed:.0f} s in all: `{command}`\n\n"
        f"* **Machine:** {machine_line(facts)}.\n"
        f"* **Load:** 1-minute load average {loads[0]:.2f} before, {loads[1]:.2f} after.\n"
        f"* **Messages:** {args.messages:,} per run, QoS 1, retained job snapshots on "
        f"{min(args.jobs, args.messages)} topics `importexport/v1/jobs/<job>/state`, "
        f"{args.payload} B as stored ({wire_bytes} B on the wire with the epoch field), "
        f"MQTT {args.protocol}.\n"
        "* **Broker:** mosquitto started by the script on a free 127.0.0.1 port with its own "
        "config: `persistence false`, `max_queued_messages 0`, `max_inflight_messages 0`, "
        "`set_tcp_nodelay true`.\n"
        "* **Subscriber:** `mosquitto_sub -q 1` (C) in its own process, counted by "
        "`bench/mqtt_subscriber.py`, which checks every message arrived once "
        "(unique payloads; it listens 0.3 s more for duplicates). "
        "**Rate** = messages received ÷ (last message received − publisher start); the "
        "publisher connects first, then starts the clock.\n"
        "* **Same packets in every case:** the plain publishers send the exact topics, "
        "retained flag and payload bytes (with the epoch field) that `MqttLink` sends.\n"
        f"* **Repetitions:** {args.reps}, interleaved (rep 1 of every case, then rep 2, …); "
        "each run has a fresh broker, subscriber and publisher process.\n\n"
        + table(rows, args.messages)
        + "\n*Ratios* are computed within each repetition, case ÷ reference of the same "
        "repetition; the bold figure is their median, the ones in brackets are per "
        "repetition. *PUBACK msg/s*: messages ÷ (last PUBACK − start), the publisher's view. "
        "*Publisher CPU*: user + system CPU of the publisher process over the timed phase "
        "(for `drivesim-live` this includes the commits). *Broker CPU* is read from "
        "`/proc` for the whole run."
    )


HEADER = """# drivesim benchmarks

Figures measured on the development VM: **2 vCPUs shared with other workloads**, so every
number here is noisy. The benchmarks therefore run each case several times, interleaved
(repetition 1 of every case, then repetition 2, …), report **medians**, and compare cases
through **ratios taken within one repetition** (both runs saw the same machine state).
Trust the ratios and large factors; do not read much into differences of 10 to 20 %
between rows, or into absolute rates from another machine.
"""


def write_docs(path: Path, text: str) -> None:
    """Put the generated section into ``path``, replacing an earlier one (a new file starts
    with :data:`HEADER`)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER)
    write_section("mqtt_throughput", text, path)


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("bench.mqtt_throughput", __doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every case")
    parser.add_argument("--payload", type=int, default=300, help="payload bytes (as stored)")
    parser.add_argument("--jobs", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny N, 1 rep, no docs")
    parser.add_argument("--no-docs", action="store_true", help="do not write the docs section")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown file to update")
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    parser.add_argument("--profile-dir", type=Path, help="cProfile each publisher's timed phase")
    args = parser.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    cases = [Case(name) for name in names]
    if args.smoke:
        args.messages, args.reps = min(args.messages, SMOKE_MESSAGES), 1
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)

    sample = make_messages(1, args.payload, jobs=args.jobs)[0]
    wire_bytes = len(wire_payload(sample, FIRST_EPOCH))
    print(
        f"{len(cases)} cases x {args.reps} reps, {args.messages:,} QoS 1 messages of "
        f"{args.payload} B each, MQTT {args.protocol}",
        flush=True,
    )
    started = time.monotonic()
    load_before = load_average()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="drivesim-bench-") as scratch:
        for rep in range(1, args.reps + 1):
            for case in cases:
                run = run_once(case, rep, args, Path(scratch), args.profile_dir)
                runs.append(run)
                note = f" ERROR {run.error}" if run.error else ""
                if run.lost or run.duplicates or run.out_of_order:
                    note += (
                        f" LOST {run.lost} DUPLICATES {run.duplicates}"
                        f" OUT OF ORDER {run.out_of_order}"
                    )
                print(
                    f"rep {rep} {case.name:14} {run.rate:9,.0f} msg/s end to end, "
                    f"{run.ack_rate:9,.0f} acked/s, {run.unique:,}/{run.messages:,} received, "
                    f"pub CPU {run.pub_cpu_s / run.messages * 1e6:5.1f} µs/msg{note}",
                    flush=True,
                )
    elapsed = time.monotonic() - started
    loads = (load_before, load_average())
    rows = summarize(runs, cases, args.reps)
    print()
    print(table(rows, args.messages))
    if args.json is not None:
        rows_json = [
            asdict(r) | {"rate": r.rate, "ack_rate": r.ack_rate, "lost": r.lost} for r in runs
        ]
        args.json.write_text(json.dumps(rows_json, indent=1))
    failed = [r for r in runs if r.error or r.lost]
    if not args.smoke and not args.no_docs:
        write_docs(args.docs, section(rows, args, machine(), loads, wire_bytes, elapsed))
        print(f"wrote {args.docs}")
    if failed:
        print(f"{len(failed)} run(s) failed or lost messages", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
