"""/healthz, /readyz and the JSON error handlers, through Flask's test client."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from app import create_app
from app.settings import Settings
from tests.conftest import free_port


@pytest.fixture
def make_app() -> Iterator[Callable[[Settings], Flask]]:
    """create_app, with each app's database engine disposed after the test."""
    apps: list[Flask] = []

    def build(settings: Settings) -> Flask:
        app = create_app(settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["optgate.database"].dispose()


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
