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
from time import monotonic, sleep
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
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
    # A host that drops packets must not hang a request (or /readyz) for the
    # operating system's minutes-long connect timeout.
    options.setdefault("connect_args", {}).setdefault("connect_timeout", 5)
    engine = create_engine(database_url, **options)
    _ping_when_idle(engine)
    return engine


#: Seconds a pooled connection may rest before it is pinged on its next checkout.
PING_IDLE_AFTER = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it has rested for a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one round trip more
    per request, a quarter of a webhook's on PostgreSQL. A connection that
    served a request a moment ago is as good as the ping would prove; one that
    rested (across a database restart, say) is pinged, and a dead one is
    replaced before the request uses it (the pool retries the checkout on
    DisconnectionError). A connection that dies in the moment between two
    requests fails that request with a 503, which the provider retries, and
    the disconnect makes the pool replace every connection older than it.
    """

    @event.listens_for(engine, "checkin")
    def _rested_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None or monotonic() - since < PING_IDLE_AFTER:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the pooled connection is gone") from error


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
        if connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
        else:
            _take_write_lock(connection)

    return engine


#: Seconds between two tries for SQLite's write lock.
WRITE_LOCK_POLL = 0.0005


def _take_write_lock(connection: Any) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in short, even steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between tries,
    so under load a waiting writer oversleeps the lock's release again and again,
    while the process that held it takes it straight back for its next request: a
    webhook's p99 grew to several times its median. Trying every half millisecond,
    for as long as the connection's busy_timeout allows (PRAGMA busy_timeout, which a
    caller such as /readyz may shorten), takes the lock soon after it is free.
    """
    raw = connection.connection.driver_connection
    waited_ms = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute("PRAGMA busy_timeout = 0")
    deadline = monotonic() + waited_ms / 1000
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as error:
                if "locked" not in str(error.orig) or monotonic() >= deadline:
                    raise
            sleep(WRITE_LOCK_POLL)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {waited_ms}")


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

    @contextmanager
    def glance(self) -> Iterator[Connection]:
        """A connection for a read or two that need no transaction of their own: each
        statement sees what is committed when it starts. On PostgreSQL in autocommit
        (no BEGIN and COMMIT round trips); on SQLite a read-only transaction, which
        takes no write lock and costs no round trip anyway."""
        if self.engine.dialect.name == "postgresql":
            options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        else:
            options = {READ_ONLY: True}
        with self.engine.connect().execution_options(**options) as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()
