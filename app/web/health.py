"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.data import migrate
from app.web import database, jobs, keywords

blueprint = Blueprint("health", __name__)

#: How long the write probe may wait for a lock or a statement, in milliseconds. A webhook
#: holds SQLite's write lock for milliseconds, so only a stuck lock or a stuck server waits
#: this long; and it is well under the 1 s a load balancer commonly allows an answer
#: (Kubernetes' default probe timeout), so /readyz answers 503 instead of timing out.
PROBE_TIMEOUT_MS = 500

#: The write probe. Readiness must fail when the database cannot take writes (a read-only
#: file or mount, a full disk, a read-only PostgreSQL: a standby after a failover, or
#: default_transaction_read_only), because every STOP webhook then answers 503. Only a
#: committed write proves that: a rolled-back one never reaches SQLite's WAL or PostgreSQL's
#: disk. The alembic_version row is the one row every migrated database has, that the
#: schema check reads anyway, and that no request path reads or locks, so rewriting it with
#: its own value needs no table or migration of its own and changes nothing anyone can
#: see. It costs one WAL frame (SQLite) or one row version and a WAL flush (PostgreSQL,
#: cleaned up by autovacuum; the one-page table stays small) per probe. RETURNING reads
#: the revision in the same statement, so the write lock is held for one statement.
_WRITE_PROBE = sa.text("UPDATE alembic_version SET version_num = version_num RETURNING version_num")

#: What a failed probe means, by SQLSTATE (PostgreSQL) or SQLite error name (a prefix: the
#: extended names, such as SQLITE_READONLY_DBMOVED, mean the same): (codes, kind, advice
#: for SQLite, advice for PostgreSQL).
_FAILURES: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (
        ("SQLITE_READONLY", "25006"),
        "read-only",
        "make the database file, its directory and their file system writable",
        "point OPTGATE_DATABASE_URL at the primary (a standby takes no writes) and check "
        "default_transaction_read_only",
    ),
    (
        ("SQLITE_FULL", "53100"),
        "disk full",
        "free space on the database's disk",
        "free space on the database server's disk",
    ),
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED", "55P03", "57014"),
        "locked",
        f"a one-row write waited {PROBE_TIMEOUT_MS} ms for the write lock: a long transaction "
        "or a migration holds it",
        f"a one-row write did not finish in {PROBE_TIMEOUT_MS} ms: a long transaction or a "
        "migration holds its lock, or the server is overloaded",
    ),
    (
        ("SQLITE_CANTOPEN",),
        "cannot open",
        "check the path, and that its directory and file system are writable (WAL mode "
        "creates -wal and -shm files beside the database)",
        "check OPTGATE_DATABASE_URL",
    ),
    (
        ("SQLITE_IOERR",),
        "disk I/O error",
        "check the disk and the file system that hold the database file",
        "check the database server's disk",
    ),
)
_TIMEOUTS = _FAILURES[2][0]


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when the database (at the current schema) takes a write and Redis answers; 503
    naming what does not.

    A bad edit of keywords.yaml shows as "degraded" but stays 200: the last
    good rules answer, and taking every web process out of the load balancer
    for a typo would stop opt-outs from being recorded at all.
    """
    checks = {
        "database": _check_database(),
        "redis": _check_redis(),
        "keywords": keywords().status(),
    }
    ready = checks["database"] == "ok" and checks["redis"] == "ok"
    status = ("ready" if checks["keywords"] == "ok" else "degraded") if ready else "unavailable"
    return jsonify({"status": status, "checks": checks}), 200 if ready else 503


def _check_database() -> str:
    engine = database().engine
    try:
        connection = engine.connect()
    except SQLAlchemyError as error:
        # SQLite opens (and sets WAL up) here: a read-only mount already fails at this step.
        return _failure(error, engine.dialect.name, otherwise="unreachable")
    with connection:
        try:
            with _short_sqlite_busy_timeout(connection):
                current = _write_probe(connection)
        except (SQLAlchemyError, sqlite3.Error) as error:
            # A PostgreSQL connection keeps what it was born with (its session keeps
            # default_transaction_read_only; after a failover a pooled connection may still
            # reach the old primary, now a standby). Replace it, so the next probe sees the
            # database as it is now and /readyz recovers by itself. A busy database says
            # nothing about the connection: that one stays. A SQLite connection sees the
            # file as it is now, and closing the last one deletes the -wal and -shm files:
            # on a full disk that frees just enough for the next probe, which would then
            # pass, and readiness would flap.
            if engine.dialect.name != "sqlite" and not _code(error).startswith(_TIMEOUTS):
                connection.invalidate()
            return _failure(error, engine.dialect.name, otherwise="cannot write")
    if current != migrate.head_revision():
        return (
            f"schema is at {current or 'nothing'}, expected {migrate.head_revision()}: "
            "run `optgate db upgrade`"
        )
    return "ok"


def _write_probe(connection: Connection) -> str | None:
    """Commit the no-op write; the schema revision (None before the first migration)."""
    # On SQLite this begins with BEGIN IMMEDIATE (app.data.db): the wait for the write lock
    # happens here, bounded by the probe's busy timeout.
    with connection.begin():
        if connection.dialect.name == "postgresql":
            # For this transaction only (SET LOCAL): the pool's connections keep their own.
            connection.execute(
                sa.text(
                    "SELECT set_config('lock_timeout', :timeout, true), "
                    "set_config('statement_timeout', :timeout, true)"
                ),
                {"timeout": f"{PROBE_TIMEOUT_MS}ms"},
            )
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        revision: str | None = connection.execute(_WRITE_PROBE).scalar()
        return revision


@contextmanager
def _short_sqlite_busy_timeout(connection: Connection) -> Iterator[None]:
    """SQLite waits PROBE_TIMEOUT_MS for the write lock during the probe, not the 30 s of
    app.data.db; the connection goes back to the pool with its own timeout."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    usual = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute(f"PRAGMA busy_timeout = {PROBE_TIMEOUT_MS}")
    try:
        yield
    finally:
        try:
            raw.execute(f"PRAGMA busy_timeout = {usual}")
        except sqlite3.Error:
            # Left with the probe's short wait, a pooled connection would make webhooks
            # fail instead of waiting their turn for the lock: drop it instead.
            connection.invalidate()


def _failure(error: BaseException, dialect: str, *, otherwise: str) -> str:
    """One line for a person: what is wrong with the database and what to do."""
    code = _code(error)
    for codes, kind, sqlite_advice, postgres_advice in _FAILURES:
        if code and code.startswith(codes):
            advice = sqlite_advice if dialect == "sqlite" else postgres_advice
            return f"{kind}: {_first_line(error)}; {advice}"
    return f"{otherwise}: {_first_line(error)}"


def _code(error: BaseException) -> str:
    """The SQLSTATE (psycopg) or the SQLite error name of ``error``, else ""."""
    cause = getattr(error, "orig", None) or error
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None)
    return str(code or "")


def _check_redis() -> str:
    try:
        # The queue's connection pool: a probe every few seconds opens no new connection.
        jobs().queue.connection.ping()
    except Exception as error:  # redis raises several unrelated types; all mean "not ready"
        return f"unreachable: {_first_line(error)}"
    return "ok"


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
