"""A store by where it is: a path is a SQLite file, a postgresql:// URL a PostgreSQL
database, and neither shows a password."""

from __future__ import annotations

from pathlib import Path

from worker.postgres_store import PostgresStore
from worker.sqlite_store import SQLiteStore
from worker.stores import open_store, store_name


def test_a_path_opens_a_sqlite_file(tmp_path: Path) -> None:
    store = open_store(tmp_path / "jobs.db")
    try:
        assert isinstance(store, SQLiteStore)
    finally:
        store.close()
    assert (tmp_path / "jobs.db").exists()


def test_a_postgresql_url_opens_that_database(postgresql_url: str) -> None:
    store = open_store(postgresql_url)
    try:
        assert isinstance(store, PostgresStore)
        assert store.url == postgresql_url
    finally:
        store.close()


def test_names_show_no_password(tmp_path: Path) -> None:
    assert store_name(tmp_path / "jobs.db") == str(tmp_path / "jobs.db")
    shown = store_name("postgresql://drivesim:s3cret@db.example:5433/sim")
    assert "s3cret" not in shown
    assert "user=drivesim" in shown
    assert "host=db.example port=5433" in shown
    assert "dbname=sim" in shown
