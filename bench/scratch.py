"""Scratch databases for the benchmarks, migrated, and removed afterwards.

SQLite in a temporary directory; PostgreSQL as a database of its own on the
server at ``admin_url`` (created, then dropped even when the benchmark fails).
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

# The benchmarks import the test helpers (tests/ is not an installed package).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.data import migrate
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"optgate_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(admin_url).set(database=name).render_as_string(False)
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def both(admin_url: str) -> Iterator[tuple[str, str]]:
    """(label, url) of a scratch SQLite, then of a scratch PostgreSQL database."""
    with sqlite_database() as url:
        yield "SQLite (WAL)", url
    with postgres_database(admin_url) as url:
        yield "PostgreSQL", url


def optgate_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of an ``optgate`` process under benchmark: this one's, without
    its OPTGATE_ settings, plus the scratch database, Redis, the shipped keywords,
    the test Twilio credentials, warnings only, and ``extra``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OPTGATE_")},
        "OPTGATE_DATABASE_URL": database_url,
        "OPTGATE_REDIS_URL": redis_url,
        "OPTGATE_KEYWORDS": str(SHIPPED_KEYWORDS),
        "OPTGATE_LOG_LEVEL": "WARNING",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        **extra,
    }
