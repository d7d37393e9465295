"""bench/postgres_drivers.py commits through every driver (smoke size, so the bench never
rots), and each driver's commits are really in its database."""

from __future__ import annotations

import psycopg

from bench.postgres_drivers import DRIVERS, measure
from simulator.live.postgres import PostgreSQL


def test_every_driver_commits_the_workload(postgresql: PostgreSQL) -> None:
    results = measure(postgresql, 30, rounds=2)
    assert [r["driver"] for r in results] == list(DRIVERS)
    assert results[0]["ratio"] == 1.0
    for n, r in enumerate(results):
        assert len(r["rounds"]) == 2
        assert r["per_s"] > 0
        assert r["p50_ms"] <= r["p99_ms"]
        with psycopg.connect(postgresql.url(f"drivers_{n}")) as db:
            (outbox,) = db.execute("SELECT count(*) FROM outbox").fetchone() or (0,)
        assert outbox == 4 * (30 + 3)  # the last round's commits and its warm-up's
