"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from app import migrate
from app.web import database, keywords, outbox

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when the database (at the current schema) and Redis answer; 503 naming what does not.

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
    try:
        current = migrate.current_revision(database().engine)
    except SQLAlchemyError as error:
        return f"unreachable: {_first_line(error)}"
    if current != migrate.head_revision():
        return (
            f"schema is at {current or 'nothing'}, expected {migrate.head_revision()}: "
            "run `optgate db upgrade`"
        )
    return "ok"


def _check_redis() -> str:
    try:
        # The outbox's connection pool: a probe every few seconds opens no new connection.
        outbox().queue.connection.ping()
    except Exception as error:  # redis raises several unrelated types; all mean "not ready"
        return f"unreachable: {_first_line(error)}"
    return "ok"


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
