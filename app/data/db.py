"""Engine and sessions.

SQLite is the zero-setup default and PostgreSQL the production database;
both go through the same engine factory. For SQLite we set what makes it fit
for a multi-process service: WAL (readers never block the writer),
synchronous=NORMAL (about 3x the write rate of FULL, still durable across a
process crash), foreign keys on, a generous busy timeout, and BEGIN IMMEDIATE
so that a read-then-write transaction takes the write lock up front instead
of failing with SQLITE_BUSY when it tries to upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def dialect_insert(session: Session) -> Any:
    """The INSERT of the session's database, which has ``on_conflict_do_nothing``
    (PostgreSQL's and SQLite's, which write the same ON CONFLICT clause)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


#: Execution option of read-only sessions (see ``Database.reads``).
READ_ONLY = "optgate_read_only"


def make_engine(database_url: str, **options: Any) -> Engine:
    """An engine for ``database_url`` with optgate's connection settings."""
    url = make_url(database_url)
    # An error's text would otherwise carry the statement's values (numbers,
    # message bodies) into every log line and traceback that shows it.
    options.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, url.database, **options)
    # pool_pre_ping: after the database restarts, the first checkout replaces
    # dead connections instead of failing a request, so we recover by ourselves.
    options.setdefault("pool_pre_ping", True)
    # A host that drops packets must not hang a request (or /readyz) for the
    # operating system's minutes-long connect timeout.
    options.setdefault("connect_args", {}).setdefault("connect_timeout", 5)
    return create_engine(database_url, **options)


def _sqlite_engine(database_url: str, database: str | None, **options: Any) -> Engine:
    # A "file:" URI (sqlite:///file:PATH?mode=ro&uri=true) names its file after the
    # prefix; making the directory of "file:PATH" would create a stray folder here.
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, **options)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # transaction handling would defer it and break SAVEPOINTs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # A read-only session (Database.reads) must not take the write lock: a
        # long export would stop every webhook. WAL gives it a snapshot anyway.
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


class Database:
    """One engine and its session factory."""

    def __init__(self, database_url: str, **options: Any) -> None:
        self.url = database_url
        self.engine = make_engine(database_url, **options)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: Sessions for long reads (exports, reports) that never write. Their
        #: transaction sees one snapshot however long it runs (SQLite's WAL read
        #: snapshot; PostgreSQL's REPEATABLE READ, READ ONLY) and blocks no writer:
        #: on SQLite it does not take the write lock.
        reading: dict[str, Any] = {READ_ONLY: True}
        if self.engine.dialect.name == "postgresql":
            reading.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self.reads = sessionmaker(self.engine.execution_options(**reading), expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
