"""Which PostgreSQL driver the store uses: ``python -m bench.postgres_drivers``.

One private PostgreSQL (`fsync` on, as a worker's database would run), one fresh database
per driver, and the same workload through each: `--commits` transactions shaped like a
worker's typical commit (one job record upserted, four status messages appended to the
outbox, one metadata key set), one after another, each awaited before the next as the ledger
does, in `--rounds` rounds where each driver takes its turn. Reported per driver: commits a
second, the latency of one commit (p50, p99), this process's CPU time a commit, and the
ratio of its rate to the store's own. The store's row is the store's commit itself,
each commit also fenced by a lease, guarded by the job's seq and announced by NOTIFY as a
pipeline step's is, in one round trip; the others send the bare statements: psycopg with
BEGIN and COMMIT around a pipeline (three round trips, as the store did before), psycopg's
async connection and asyncpg (`executemany` in a transaction), the drivers an awaitable
commit could use.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from bench import cli
from bench.docs import finish
from bench.stats import nearest_rank
from bench.tables import header
from bench.tables import row as cells
from bench.workers import BODY, new_records
from simulator.live.postgres import PostgreSQL
from worker import Commit, SharedStore, StatusMessage, open_store

__all__ = ["main", "measure"]

_RECORD = b"x" * 2048
_PAYLOAD = b'{"seq":1,"properties":{"state":"Transferring"}}' + b" " * 200
_PUT = (
    "INSERT INTO jobs (name, record) VALUES ($1, $2) "
    "ON CONFLICT (name) DO UPDATE SET record = excluded.record"
)
_MESSAGE = (
    "INSERT INTO outbox (job, seq, topic, payload, qos, retain) VALUES ($1, $2, $3, $4, $5, $6)"
)
_META = (
    "INSERT INTO meta (key, value) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _rows(i: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    job = f"job{i % 500}"
    topics = ("state", "events", f"drives/D{i % 7}", "progress")
    messages = [(job, i, f"importexport/v1/jobs/{job}/{t}", _PAYLOAD, 1, True) for t in topics]
    return [(job, _RECORD)], messages, [("sim_now", repr(float(i)).encode())]


def _psycopg(sql: str) -> str:
    for n in range(6, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


def _timed(latencies: list[float], commit: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        commit(i)
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - started


async def _timed_async(
    latencies: list[float], commit: Callable[[int], Awaitable[None]], count: int
) -> float:
    started = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        await commit(i)
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - started


def _store(url: str, count: int, latencies: list[float]) -> float:
    """Through the PostgreSQL store itself, each commit as a step of the pipeline makes
    it: fenced by the location's lease, guarded by the job's seq, and announced."""
    store = open_store(url, worker_id="bench")
    assert isinstance(store, SharedStore)
    try:
        store.join([str(BODY["location"])], lease=3600.0)
        (lease,) = store.claim(1)
        records = new_records(500)
        stored = store.load_jobs()  # by the warm-up
        for record in records:
            record.sim.seq = stored[record.name].sim.seq if record.name in stored else 0

        def commit(i: int) -> None:
            _, rows, metas = _rows(i)
            record = records[i % 500]
            before = record.sim.seq or None  # 0: not stored yet, a create
            record.sim.seq += 1
            messages = [
                StatusMessage(
                    job=record.name,
                    seq=record.sim.seq,
                    topic=topic,
                    payload=payload,
                    qos=qos,
                    retain=retain,
                )
                for _, _, topic, payload, qos, retain in rows
            ]
            store.commit(
                Commit(
                    put=[record],
                    messages=messages,
                    meta=dict(metas),
                    guard=(record.name, before),
                    fence=lease,
                )
            )

        return _timed(latencies, commit, count)
    finally:
        store.leave()
        store.close()


def _psycopg_sync(url: str, count: int, latencies: list[float]) -> float:
    put, message, meta = (_psycopg(s) for s in (_PUT, _MESSAGE, _META))
    with psycopg.connect(url, autocommit=True) as db:

        def commit(i: int) -> None:
            puts, messages, metas = _rows(i)
            with db.transaction(), db.pipeline(), db.cursor() as cur:
                cur.executemany(put, puts)
                cur.executemany(message, messages)
                cur.executemany(meta, metas)

        return _timed(latencies, commit, count)


async def _psycopg_async(url: str, count: int, latencies: list[float]) -> float:
    put, message, meta = (_psycopg(s) for s in (_PUT, _MESSAGE, _META))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:

        async def commit(i: int) -> None:
            puts, messages, metas = _rows(i)
            async with db.transaction(), db.pipeline(), db.cursor() as cur:
                await cur.executemany(put, puts)
                await cur.executemany(message, messages)
                await cur.executemany(meta, metas)

        return await _timed_async(latencies, commit, count)


async def _asyncpg(url: str, count: int, latencies: list[float]) -> float:
    db = await asyncpg.connect(url)

    async def commit(i: int) -> None:
        puts, messages, metas = _rows(i)
        async with db.transaction():
            await db.executemany(_PUT, puts)
            await db.executemany(_MESSAGE, messages)
            await db.executemany(_META, metas)

    try:
        return await _timed_async(latencies, commit, count)
    finally:
        await db.close()


DRIVERS: dict[str, Callable[[str, int, list[float]], Any]] = {
    "the store (its commit: psycopg, one round trip)": _store,
    "psycopg, BEGIN and COMMIT around a pipeline (three round trips)": _psycopg_sync,
    "psycopg, async": lambda url, n, lat: asyncio.run(_psycopg_async(url, n, lat)),
    "asyncpg": lambda url, n, lat: asyncio.run(_asyncpg(url, n, lat)),
}


def _fresh(server: PostgreSQL, database: str) -> str:
    """The URL of ``database``, dropped and created anew with the store's schema."""
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.execute(f"CREATE DATABASE {database}")
    open_store(server.url(database)).close()
    return server.url(database)


def measure(server: PostgreSQL, commits: int, rounds: int = 1) -> list[dict[str, Any]]:
    """Each driver's figures, in :data:`DRIVERS` order: ``rounds`` rounds in which every
    driver takes its turn on a fresh database; the median round's rate, and the latencies of
    all rounds."""
    rates: dict[str, list[float]] = {name: [] for name in DRIVERS}
    latencies: dict[str, list[float]] = {name: [] for name in DRIVERS}
    cpu: dict[str, float] = dict.fromkeys(DRIVERS, 0.0)
    for _ in range(rounds):
        for n, (name, run) in enumerate(DRIVERS.items()):
            url = _fresh(server, f"drivers_{n}")
            run(url, max(commits // 10, 1), [])  # warm-up: the connection, the plans
            started = time.process_time()
            rates[name].append(commits / run(url, commits, latencies[name]))
            cpu[name] += time.process_time() - started
    results: list[dict[str, Any]] = [
        {
            "driver": name,
            "commits": commits,
            "rounds": rates[name],
            "per_s": statistics.median(rates[name]),
            "p50_ms": statistics.median(latencies[name]) * 1e3,
            "p99_ms": nearest_rank(sorted(latencies[name]), 0.99) * 1e3,
            "cpu_ms": cpu[name] / (commits * rounds) * 1e3,
        }
        for name in DRIVERS
    ]
    for r in results:
        r["ratio"] = r["per_s"] / results[0]["per_s"]
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = cli.parser("bench.postgres_drivers", __doc__)
    parser.add_argument("--commits", type=int, default=3000, help="commits per driver a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every driver")
    cli.add_outputs(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="drivesim-postgresql-") as tmp:
        Path(tmp).chmod(0o755)
        server = PostgreSQL(Path(tmp) / "server", durable=True)
        server.start()
        try:
            results = measure(server, args.commits, args.rounds)
        finally:
            server.stop()
    rows = [
        cells(
            r["driver"],
            f"{r['per_s']:,.0f} ({min(r['rounds']):,.0f}–{max(r['rounds']):,.0f})",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['cpu_ms']:.3f}",
            f"{r['ratio']:.2f}",
        )
        for r in results
    ]
    text = "\n".join(
        [
            "## PostgreSQL drivers: one commit's round trip (`bench/postgres_drivers.py`)",
            "",
            f"Command: `{cli.command_line('bench.postgres_drivers', cli.arguments(argv))}`. "
            + __doc__.split("\n\n")[1].replace("\n", " "),
            "",
            header(
                "driver | commits/s, median round (range) | p50 ms | p99 ms | "
                "CPU ms a commit (this process) | rate ÷ the store's",
                "lrrrrr",
            ),
            *rows,
        ]
    )
    report = {"commits": args.commits, "rounds": args.rounds, "drivers": results}
    finish("postgres_drivers", text, report, json_path=args.json, docs=args.docs)
    return report


if __name__ == "__main__":
    main()
