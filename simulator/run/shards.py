"""A virtual-time run as one process per shard of locations, merged into one result.

Each shard is a fresh process (the ``spawn`` start method): it is given the scenario
file's text as the run read it, the seed and its locations, expands the scenario itself
(checking it is the one the run read) and runs it as
:func:`~simulator.run.runner.run_scenario` would, on an in-memory store, performing only
the actions of its own locations' jobs (:class:`~simulator.run.runner.ScenarioRun`'s
``locations``). Its result comes back as one msgspec-encoded message, far cheaper to pass
between processes than as objects.

The shards' results merge into one :class:`~simulator.run.result.RunResult`, which the
invariants, the reports and the timeline read as that of a run in one process:

* every job's own status messages are those the run in one process gives it, byte for
  byte (same topics, payloads, ``seq`` and simulated times): a job's history depends
  only on its location's bays and its own draws, whatever else the datacenter does;
* the whole stream is ordered by the simulated time of each commit, the shards' messages
  of one instant taking turns shard by shard: messages of different locations committed
  at the same instant may come in another order than in one process;
* the jobs left, the retained topics and the secrets are the shards' together; the
  answers are in the scenario's order; the faults are the first shard's (a run is split
  only when every fault is one the virtual-time run skips, in each shard alike);
* the simulated time is the latest shard's (a run ends when its last job is gone), the
  wall-clock time the whole of it, from the first process started to the result merged.
"""

from __future__ import annotations

import io
import multiprocessing
import resource
import signal
import struct
import time
import tomllib
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal

import anyio
import msgspec

from simulator.faults.plan import FaultRecord
from simulator.run.answers import ActionResult
from simulator.run.result import RunResult
from simulator.run.runner import ScenarioRun
from simulator.run.split import ShardProgress, ShardRun, Split, coupling, weights
from simulator.scenario.file import Scenario, parse_scenario
from worker import (
    Commit,
    ConfigError,
    DrivesimError,
    JobRecord,
    MemoryStore,
    StatusMessage,
    configure_logging,
    long_lived_heap,
    virtual_loop,
)

__all__ = ["PROGRESS_EVERY", "ShardFailed", "run_sharded"]

LogFormat = Literal["console", "json", "auto"]

#: The first byte of what a shard sends: its result, its error, a traceback, its progress.
_OK, _REFUSED, _CRASHED, _PROGRESS = b"\x00", b"\x01", b"\x02", b"\x03"


class ShardFailed(DrivesimError):
    """A shard's process failed (its error, or the traceback of what went wrong) or ended
    without its result."""


class _Task(msgspec.Struct, array_like=True):
    """What a shard's process is told: the scenario file (its text, as the run read it),
    the seed, its locations."""

    index: int
    path: str
    text: str
    fingerprint: str
    seed: int | None
    locations: tuple[str, ...]
    history: bool
    log_level: str
    log_format: LogFormat
    #: Seconds between the shard's progress reports (0: none).
    every: float = 0.0


class _Output(msgspec.Struct, array_like=True):
    """What a shard's process hands back."""

    history: list[StatusMessage]
    #: The simulated time each message of ``history`` was committed at.
    times: list[float]
    jobs: list[JobRecord]
    retained: dict[str, bytes]
    actions: list[ActionResult]
    secrets: list[str]
    faults: list[FaultRecord]
    sim_seconds: float
    wall_seconds: float
    finished: bool
    missing_after_delete: dict[str, str]
    changes: int
    messages: int
    #: Set by the parent: the process's peak, taken once its result was encoded.
    peak_rss_mib: float = 0.0


_encoder = msgspec.msgpack.Encoder()
_task_decoder = msgspec.msgpack.Decoder(_Task)
_output_decoder = msgspec.msgpack.Decoder(_Output)
_progress_decoder = msgspec.msgpack.Decoder(ShardProgress)

#: A shard's peak resident memory in MiB, ahead of its encoded result.
_PEAK = struct.Struct("<d")

#: Seconds between a shard's reports of how far it is, when they are asked for.
PROGRESS_EVERY = 0.5


class _TimedStore(MemoryStore):
    """A shard's store: notes the simulated time each status message is committed at (for
    the merge) and counts the changes and the messages."""

    def __init__(self, *, history: bool) -> None:
        super().__init__(history=history)
        self.now: Callable[[], float] = lambda: 0.0
        self.times: list[float] = []
        self.changes = 0
        self.messages = 0

    def commit(self, commit: Commit) -> None:
        super().commit(commit)
        count = len(commit.messages)
        if count:
            self.changes += 1
            self.messages += count
            if self._keep:
                self.times.extend([self.now()] * count)


def fingerprint(scenario: Scenario) -> str:
    """What every shard checks it runs the scenario the run read: its name, file, seed,
    counts of jobs, actions and faults, end and epoch."""
    return f"{scenario!r} until {scenario.until!r} from {scenario.epoch.isoformat()}"


class _Teller:
    """Counts a shard's status stream (as the progress line does) and tells the parent how
    far it is every ``task.every`` seconds."""

    def __init__(self, scenario: Scenario, task: _Task, send: Callable[[bytes], None]) -> None:
        from rich.console import Console

        from simulator.console.progress import RunProgress

        # The counts only: its line goes nowhere.
        self.counts = RunProgress(Console(file=io.StringIO()), scenario.epoch, jobs=0)
        self.index = task.index
        self.every = task.every
        self.send = send
        self._told = time.monotonic()

    def on_message(self, message: StatusMessage) -> None:
        self.counts.on_message(message)
        if message.topic.endswith("/events"):
            now = time.monotonic()
            if now - self._told >= self.every:
                self._told = now
                self.tell()

    def tell(self, *, finished: bool = False) -> None:
        counts = self.counts
        progress = ShardProgress(
            index=self.index,
            messages=counts.messages,
            created=counts.created,
            ended=counts.ended,
            deleted=counts.deleted,
            simulated=counts.simulated(),
            finished=finished,
        )
        self.send(_PROGRESS + _encoder.encode(progress))


def run_shard(task: _Task, send: Callable[[bytes], None] | None = None) -> bytes:
    """Run one shard in this process; its result, encoded. With ``send`` and
    ``task.every``, how far it is goes there now and then, as it runs."""
    try:
        raw = tomllib.loads(task.text)
    except tomllib.TOMLDecodeError as exc:  # the file changed between two reads
        raise ConfigError(task.path, "(file)", f"valid TOML ({exc})") from None
    scenario = parse_scenario(raw, task.path)
    if fingerprint(scenario) != task.fingerprint:
        raise DrivesimError(
            f"{task.path} changed after the run read it: now {fingerprint(scenario)}, "
            f"not {task.fingerprint}"
        )
    store = _TimedStore(history=task.history)
    teller = _Teller(scenario, task, send) if send is not None and task.every > 0 else None
    run = ScenarioRun(
        scenario,
        store,
        seed=task.seed,
        locations=task.locations,
        on_message=None if teller is None else teller.on_message,
    )
    store.now = lambda: run.clock.now()
    options = {"loop_factory": virtual_loop}
    with long_lived_heap():
        result: RunResult = anyio.run(run.run, backend="asyncio", backend_options=options)
    if teller is not None:
        teller.tell(finished=True)
    return _encoder.encode(
        _Output(
            history=result.history,
            times=store.times,
            jobs=list(result.jobs.values()),
            retained=result.retained,
            actions=result.actions,
            secrets=sorted(result.secrets),
            faults=result.faults if task.index == 0 else [],
            sim_seconds=result.sim_seconds,
            wall_seconds=result.wall_seconds,
            finished=result.finished,
            missing_after_delete=result.missing_after_delete,
            changes=store.changes,
            messages=store.messages,
        )
    )


def _child(conn: Connection, task: bytes) -> None:
    """A shard's process: run it, send back its result (or what went wrong)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    try:
        decoded = _task_decoder.decode(task)
        configure_logging(level=decoded.log_level, fmt=decoded.log_format)
        result = run_shard(decoded, conn.send_bytes)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        payload = _OK + _PEAK.pack(peak) + result
        del result
    except DrivesimError as exc:
        payload = _REFUSED + str(exc).encode()
    except BaseException:  # whatever it is, the parent reports it
        payload = _CRASHED + traceback.format_exc().encode()
    conn.send_bytes(payload)
    conn.close()


def run_sharded(
    scenario: Scenario,
    split: Split,
    *,
    seed: int | None = None,
    history: bool = True,
    log_level: str = "warning",
    log_format: LogFormat = "auto",
    on_message: Callable[[StatusMessage], None] | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
    on_fault: Callable[[FaultRecord], None] | None = None,
    on_progress: Callable[[ShardProgress], None] | None = None,
) -> RunResult:
    """Run ``scenario`` (read from its file, ``scenario.path``) in virtual time, one process
    per shard of ``split``, and merge the results. The observers hear the merged run once
    every shard is done: faults, then answers and messages in simulated-time order.
    ``history=False`` keeps no status messages (a benchmark's run: counts only).
    ``on_progress`` hears how far each shard is while they run (every half second, and
    once as each ends)."""
    reason = coupling(scenario)
    if split.processes > 1 and reason is not None:
        raise ValueError(f"{scenario.name} cannot be split: {reason}")
    started = time.perf_counter()
    path = scenario.path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", f"the scenario file the run read ({exc})") from None
    every = PROGRESS_EVERY if on_progress is not None else 0.0
    task = _Task(
        0, path, text, fingerprint(scenario), seed, (), history, log_level, log_format, every
    )
    outputs, ended = _gather(task, split, on_progress)
    result, times = _merge(scenario, split, outputs, ended, seed)
    del outputs  # the merged run holds what it needs of them
    for record in result.faults:
        if on_fault is not None:
            on_fault(record)
    _replay(result, times, on_message, on_action)
    result.wall_seconds = time.perf_counter() - started
    return result


def _gather(
    task: _Task, split: Split, on_progress: Callable[[ShardProgress], None] | None
) -> tuple[list[_Output], list[float]]:
    """Start a process per shard; each one's result and when it came (seconds since the
    first was started). Every process still running is stopped on the way out."""
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    processes: list[tuple[BaseProcess, Connection]] = []
    try:
        for index, locations in enumerate(split.shards):
            receive, send = context.Pipe(duplex=False)
            mine = msgspec.structs.replace(task, index=index, locations=locations)
            process: BaseProcess = context.Process(
                target=_child,
                args=(send, _encoder.encode(mine)),
                name=f"drivesim-shard-{index + 1}",
                daemon=True,
            )
            process.start()
            send.close()
            processes.append((process, receive))
        outputs: list[_Output | None] = [None] * len(processes)
        ended = [0.0] * len(processes)
        pending = {conn: index for index, (_, conn) in enumerate(processes)}
        while pending:
            for conn in wait(list(pending)):
                assert isinstance(conn, Connection)
                index = pending.pop(conn)
                payload = _receive(conn, index, split.shards[index], processes[index][0])
                if payload[:1] == _PROGRESS:
                    pending[conn] = index  # it goes on
                    if on_progress is not None:
                        on_progress(_progress_decoder.decode(payload[1:]))
                    continue
                ended[index] = time.perf_counter() - started
                # Decoded as it comes (while the others run), its bytes let go at once.
                (peak,) = _PEAK.unpack_from(payload, 1)
                out = outputs[index] = _output_decoder.decode(memoryview(payload)[1 + _PEAK.size :])
                out.peak_rss_mib = peak
                del payload
        for process, _ in processes:
            process.join()
        return [out for out in outputs if out is not None], ended
    finally:
        for process, conn in processes:
            conn.close()
            if process.is_alive():
                process.terminate()
                process.join()


def _receive(conn: Connection, index: int, locations: Sequence[str], process: BaseProcess) -> bytes:
    where = f"shard {index + 1} ({', '.join(locations)})"
    try:
        data = conn.recv_bytes()
    except EOFError:
        process.join()
        raise ShardFailed(
            f"{where} ended without its result (exit code {process.exitcode})"
        ) from None
    if data[:1] == _REFUSED:
        raise ShardFailed(f"{where}: {data[1:].decode(errors='replace')}")
    if data[:1] == _CRASHED:
        raise ShardFailed(f"{where} failed:\n{data[1:].decode(errors='replace')}")
    return data


def _merge(
    scenario: Scenario,
    split: Split,
    outputs: list[_Output],
    ended: list[float],
    seed: int | None,
) -> tuple[RunResult, list[float]]:
    """The shards' results as one run's, and the time each message of its stream was
    committed at."""
    load = weights(scenario)
    shards = [
        ShardRun(
            index=index + 1,
            locations=locations,
            jobs=sum(load.get(name, (0, 0))[0] for name in locations),
            drives=sum(load.get(name, (0, 0))[1] for name in locations),
            changes=out.changes,
            messages=out.messages,
            sim_seconds=out.sim_seconds,
            wall_seconds=out.wall_seconds,
            process_seconds=ended[index],
            peak_rss_mib=out.peak_rss_mib,
        )
        for index, (locations, out) in enumerate(zip(split.shards, outputs, strict=True))
    ]
    merged, times = _by_time(outputs)
    result = RunResult(
        scenario=scenario,
        seed=scenario.seed if seed is None else seed,
        clock_kind="virtual",
        speed=None,
        history=merged,
        jobs={record.name: record for out in outputs for record in out.jobs},
        retained={topic: payload for out in outputs for topic, payload in out.retained.items()},
        actions=sorted((a for out in outputs for a in out.actions), key=lambda a: a.index),
        secrets={key for out in outputs for key in out.secrets},
        sim_seconds=max(out.sim_seconds for out in outputs),
        wall_seconds=0.0,
        finished=all(out.finished for out in outputs),
        starts=1,
        missing_after_delete={
            job: answer for out in outputs for job, answer in out.missing_after_delete.items()
        },
        faults=outputs[0].faults,
        split=split,
        shards=shards,
    )
    return result, times


def _by_time(outputs: list[_Output]) -> tuple[list[StatusMessage], list[float]]:
    """Every shard's messages, and the time each was committed at, by time; at one
    instant, shard after shard (each in its own order). Each shard's are in time order
    already: a stable sort of them all merges the runs in C."""
    times = [when for out in outputs for when in out.times]
    messages = [message for out in outputs for message in out.history]
    order = sorted(range(len(times)), key=times.__getitem__)
    return [messages[i] for i in order], [times[i] for i in order]


def _replay(
    result: RunResult,
    times: list[float],
    on_message: Callable[[StatusMessage], None] | None,
    on_action: Callable[[ActionResult], None] | None,
) -> None:
    """Tell the observers the merged run in simulated-time order: each answer before the
    messages committed from its time on (as a run in one process tells them)."""
    if on_message is None and on_action is None:
        return
    answers = sorted(result.actions, key=lambda a: (a.at, a.index))
    next_answer = 0
    for when, message in zip(times, result.history, strict=True):
        while next_answer < len(answers) and answers[next_answer].at <= when:
            if on_action is not None:
                on_action(answers[next_answer])
            next_answer += 1
        if on_message is not None:
            on_message(message)
    if on_action is not None:
        for answer in answers[next_answer:]:
            on_action(answer)
