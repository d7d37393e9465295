"""A store by where it is: a SQLite file's path, or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path

from worker.errors import DrivesimError
from worker.sqlite_store import SQLiteStore
from worker.store import JobStore

__all__ = ["is_postgresql", "open_store", "store_name"]

_SCHEMES = ("postgresql://", "postgres://")


def is_postgresql(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith(_SCHEMES)


def open_store(location: str | Path, *, worker_id: str | None = "dc-1") -> JobStore:
    """The store at ``location``: a ``postgresql://`` (or ``postgres://``) URL is a
    PostgreSQL database that workers share (this one as ``worker_id``; None: to read it,
    as no worker); anything else is a SQLite file."""
    if not is_postgresql(location):
        return SQLiteStore(location)
    try:
        from worker.postgres_store import PostgresStore
    except ImportError:
        raise DrivesimError(
            "the PostgreSQL store needs psycopg: pip install 'drivesim[postgresql]'"
        ) from None
    return PostgresStore(str(location), worker_id=worker_id)


def store_name(location: str | Path) -> str:
    """``location`` as logs and messages show it: a URL without its password."""
    if not is_postgresql(location):
        return str(location)
    from worker.postgres_store import display_url

    return display_url(str(location))
