"""/healthz, /readyz and the JSON error handlers, through Flask's test client."""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from app.data.db import Database
from app.settings import Settings
from app.web.health import PROBE_TIMEOUT_MS
from tests.conftest import free_port


@pytest.fixture
def app(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
) -> Flask:
    return make_app(make_settings(database_url=clean_database_url, redis_url=redis_url))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def readyz(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    assert response.is_json, response.data
    return response.status_code, response.get_json()


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.redis
def test_readyz_is_ready_when_the_database_and_redis_answer(client: FlaskClient) -> None:
    status, body = readyz(client)

    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "keywords": "ok"},
    }


@pytest.mark.redis
def test_readiness_probes_reuse_one_redis_connection(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    def connections() -> int:
        return int(redis_client.info("stats")["total_connections_received"])

    readyz(client)  # the first probe may open the app's connection
    before = connections()
    for _ in range(10):
        assert readyz(client)[0] == 200
    assert connections() - before == 0


@pytest.mark.redis
def test_a_readiness_probe_logs_nothing_but_the_request(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Load balancers probe every few seconds: the log must not fill up with it.
    with caplog.at_level(logging.INFO):
        assert readyz(client)[0] == 200
    assert [record.getMessage() for record in caplog.records] == []


def test_readyz_is_unavailable_when_redis_is_unreachable(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    clean_database_url: str,
) -> None:
    settings = make_settings(
        database_url=clean_database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )

    status, body = readyz(make_app(settings).test_client())

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("unreachable")
    assert body["checks"]["database"] == "ok"


@pytest.mark.redis
def test_readyz_is_unavailable_when_postgres_is_unreachable(
    make_app: Callable[[Settings], Flask], make_settings: Callable[..., Settings], redis_url: str
) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/optgate"

    status, body = readyz(
        make_app(make_settings(database_url=closed, redis_url=redis_url)).test_client()
    )

    assert status == 503
    assert body["checks"]["database"].startswith("unreachable")
    assert body["checks"]["redis"] == "ok"


@pytest.mark.redis
def test_readyz_tells_to_run_db_upgrade_on_an_unmigrated_database(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    redis_url: str,
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    settings = make_settings(database_url=f"sqlite:///{empty}", redis_url=redis_url)

    status, body = readyz(make_app(settings).test_client())

    assert status == 503
    assert "run `optgate db upgrade`" in body["checks"]["database"]
    assert body["checks"]["redis"] == "ok"


# -- the database must take writes ------------------------------------------------------


def database_of(app: Flask) -> Database:
    value: Database = app.extensions["optgate.database"]
    return value


@pytest.mark.redis
def test_a_readiness_probe_commits_one_write_on_a_connection_of_the_pool(
    client: FlaskClient, app: Flask
) -> None:
    engine = database_of(app).engine
    readyz(client)  # the first probe opens the pool's connection
    seen: list[str] = []
    sa.event.listen(engine, "connect", lambda *_: seen.append("connect"))
    sa.event.listen(engine, "commit", lambda *_: seen.append("commit"))
    sa.event.listen(engine, "rollback", lambda *_: seen.append("rollback"))
    sa.event.listen(
        engine, "before_cursor_execute", lambda _c, _r, statement, *_: seen.append(statement)
    )

    for _ in range(3):
        assert readyz(client)[0] == 200

    writes = [s for s in seen if s.split()[0].upper() in ("UPDATE", "INSERT", "DELETE")]
    assert (
        writes == ["UPDATE alembic_version SET version_num = version_num RETURNING version_num"] * 3
    )
    assert seen.count("commit") == 3
    assert "rollback" not in seen and "connect" not in seen
    # Each probe is one short transaction: the write lock is held for the UPDATE and no more
    # than a catalogue look-up (and, on PostgreSQL, the SET LOCAL of its timeouts) before it.
    per_probe = "".join(s if s in ("commit",) else "." for s in seen).split("commit")[:-1]
    assert all(len(statements) <= 3 for statements in per_probe), seen


@pytest.mark.redis
def test_readyz_is_unavailable_on_a_sqlite_file_opened_read_only(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    redis_url: str,
    sqlite_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "optgate.sqlite3"
    shutil.copy(sqlite_template, path)
    before = path.read_bytes()
    # app.data.db makes the "parent directory" of a file: URI relative to the working directory.
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///file:{path}?mode=ro&uri=true"

    status, body = readyz(
        make_app(make_settings(database_url=url, redis_url=redis_url)).test_client()
    )

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == (
        "read-only: attempt to write a readonly database; "
        "make the database file, its directory and their file system writable"
    )
    assert body["checks"]["redis"] == "ok"
    assert path.read_bytes() == before


@pytest.fixture
def small_file_system(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of the test's own, to fill up or to remount read-only.

    chmod proves nothing here: the tests run as root, and root ignores file permissions.
    """
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a real read-only or full file system cannot be made")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    yield mount_point
    # Lazily: the app's engine may still hold the file open until its fixture disposes it.
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)


def fill_up(directory: Path) -> Path:
    filler = directory / "filler"
    # Unbuffered: a buffered file would raise ENOSPC again when closed.
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    assert shutil.disk_usage(directory).free == 0
    return filler


@pytest.fixture
def app_on_small_file_system(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    redis_url: str,
    sqlite_template: Path,
    small_file_system: Path,
) -> Flask:
    path = small_file_system / "optgate.sqlite3"
    shutil.copy(sqlite_template, path)
    return make_app(make_settings(database_url=f"sqlite:///{path}", redis_url=redis_url))


@pytest.mark.redis
def test_readyz_is_unavailable_on_a_read_only_file_system_and_recovers(
    app_on_small_file_system: Flask, small_file_system: Path
) -> None:
    client = app_on_small_file_system.test_client()
    assert readyz(client)[0] == 200
    # Linux refuses to remount a file system read-only while a file on it is open for
    # writing, so the app's connections go first (as in a restart, or when the file system
    # went read-only while the process was down).
    database_of(app_on_small_file_system).engine.dispose()
    remount(small_file_system, "ro")

    for _ in range(2):
        status, body = readyz(client)
        assert status == 503
        assert body["checks"]["database"].startswith(
            "cannot open: unable to open database file; check the path, and that its "
            "directory and file system are writable"
        )

    remount(small_file_system, "rw")
    assert readyz(client) == (
        200,
        {"status": "ready", "checks": {"database": "ok", "redis": "ok", "keywords": "ok"}},
    )


@pytest.mark.redis
def test_readyz_is_unavailable_on_a_full_disk_and_recovers(
    app_on_small_file_system: Flask, small_file_system: Path
) -> None:
    client = app_on_small_file_system.test_client()
    assert readyz(client)[0] == 200

    filler = fill_up(small_file_system)
    for _ in range(3):
        status, body = readyz(client)
        assert status == 503
        assert body["checks"]["database"] == (
            "disk full: database or disk is full; free space on the database's disk"
        )

    filler.unlink()
    assert readyz(client)[0] == 200


@pytest.mark.postgres
@pytest.mark.redis
def test_readyz_is_unavailable_on_a_read_only_postgres_and_recovers(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    redis_url: str,
    postgres_url: str,
) -> None:
    app = make_app(make_settings(database_url=postgres_url, redis_url=redis_url))
    client = app.test_client()
    assert readyz(client)[0] == 200
    name = sa.make_url(postgres_url).database
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def default_read_only(setting: str) -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" {setting}')

    try:
        # For new connections, as after a failover to a standby: the app's are replaced.
        default_read_only("SET default_transaction_read_only = on")
        database_of(app).engine.dispose()
        for _ in range(2):
            status, body = readyz(client)
            assert status == 503
            assert body["checks"]["database"] == (
                "read-only: cannot execute UPDATE in a read-only transaction; point "
                "OPTGATE_DATABASE_URL at the primary (a standby takes no writes) and check "
                "default_transaction_read_only"
            )
        # Writable again: the next probe says so, without a restart (the probe replaced the
        # connection that was born read-only).
        default_read_only("RESET default_transaction_read_only")
        assert readyz(client)[0] == 200
    finally:
        default_read_only("RESET default_transaction_read_only")
        admin.dispose()


#: How long hold_the_write_lock holds at most: a probe without its own timeout then waits
#: this long (and the test fails) instead of hanging on a lock its own test holds.
HOLD_AT_MOST = 5.0


@contextmanager
def hold_the_write_lock(url: str) -> Iterator[None]:
    """Another connection's open write transaction, in a thread: SQLite's write lock; on
    PostgreSQL the alembic_version row, as a migration that has not committed yet holds it.
    """
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        if url.startswith("sqlite"):
            other = sqlite3.connect(str(sa.make_url(url).database), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            done.wait(HOLD_AT_MOST)
            other.execute("ROLLBACK")
            other.close()
            return
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT version_num FROM alembic_version FOR UPDATE")
            held.set()
            done.wait(HOLD_AT_MOST)
            connection.rollback()
        engine.dispose()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10), "the lock was not taken"
    try:
        yield
    finally:
        done.set()
        holder.join(10)


@pytest.mark.redis
def test_a_locked_database_fails_readiness_quickly_and_recovers(
    client: FlaskClient, app: Flask, clean_database_url: str
) -> None:
    engine = database_of(app).engine
    assert readyz(client)[0] == 200

    with hold_the_write_lock(clean_database_url):
        started = time.monotonic()
        status, body = readyz(client)
        took = time.monotonic() - started

    assert status == 503
    message = body["checks"]["database"]
    assert message.startswith("locked: ") and f"{PROBE_TIMEOUT_MS} ms" in message, message
    assert "\n" not in message
    # Bounded by the probe's own timeout, not the 30 s a webhook waits for SQLite's lock.
    assert PROBE_TIMEOUT_MS / 1000 * 0.8 <= took < 3
    assert readyz(client)[0] == 200
    # The short waits were the probe's only: the pooled connection a webhook gets next
    # still waits as app.data.db says.
    assert engine.pool.checkedin() == 1
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            raw = connection.connection.driver_connection
            assert raw is not None
            assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
        else:
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"


def test_inline_redis_is_ready_and_warned_about(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(database_url=clean_database_url, redis_url="inline")

    with caplog.at_level(logging.WARNING, logger="optgate"):
        app = make_app(settings)
    status, body = readyz(app.test_client())

    assert status == 200
    assert body["checks"] == {"database": "ok", "redis": "ok", "keywords": "ok"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "OPTGATE_REDIS_URL=inline" in w] == [warnings[0]]


def test_an_unknown_route_answers_404_json(client: FlaskClient) -> None:
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert response.is_json
    assert set(response.get_json()) == {"error", "message"}
    assert b"<html" not in response.data.lower()


def test_an_unexpected_exception_answers_500_json_without_a_traceback(app: Flask) -> None:

    @app.get("/test-only/boom")
    def boom() -> str:
        raise RuntimeError("secret internal detail")

    response = app.test_client().get("/test-only/boom")

    assert response.status_code == 500
    assert response.is_json
    assert set(response.get_json()) == {"error", "message"}
    assert b"Traceback" not in response.data
    assert b"secret internal detail" not in response.data
    assert b"RuntimeError" not in response.data


def test_a_database_operational_error_answers_503_json(app: Flask) -> None:

    @app.get("/test-only/database-down")
    def database_down() -> str:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    response = app.test_client().get("/test-only/database-down")

    assert response.status_code == 503
    assert response.is_json
    assert response.get_json()["error"] == "ServiceUnavailable"
    assert b"Traceback" not in response.data
