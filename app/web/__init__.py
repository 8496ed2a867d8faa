"""The web layer: blueprints and request plumbing only, no rules.

Handlers get the request's database session from ``session()``; it is closed
(and anything uncommitted rolled back) when the request ends.
"""

from __future__ import annotations

from typing import TypeVar

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from app.data.db import Database
from app.keywords.store import KeywordStore
from app.sending.outbox import Outbox
from app.settings import Settings
from workers.queue import RedisJobs

T = TypeVar("T")


def _extension(name: str, kind: type[T]) -> T:
    """The app extension ``name``: a ``kind``, set up by create_app and init_app."""
    value: T = current_app.extensions[name]
    return value


def settings() -> Settings:
    return _extension("optgate.settings", Settings)


def database() -> Database:
    return _extension("optgate.database", Database)


def keywords() -> KeywordStore:
    return _extension("optgate.keywords", KeywordStore)


def outbox() -> Outbox:
    """Queues messages (through ``jobs()``)."""
    return _extension("optgate.outbox", Outbox)


def jobs() -> RedisJobs:
    """The RQ queue; its Redis connection pool is shared by the outbox and /readyz."""
    return _extension("optgate.jobs", RedisJobs)


def session() -> Session:
    """The request's database session."""
    if "db_session" not in g:
        g.db_session = database().sessions()
    value: Session = g.db_session
    return value


def _close_session(_error: BaseException | None) -> None:
    db_session: Session | None = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def init_app(app: Flask) -> None:
    from app.web import api, console, errors, health, webhooks

    app.extensions["optgate.jobs"] = RedisJobs(app.extensions["optgate.settings"])
    app.extensions["optgate.outbox"] = Outbox(
        app.extensions["optgate.settings"],
        app.extensions["optgate.jobs"],
        app.extensions["optgate.database"],
        app.extensions["optgate.keywords"],
    )
    app.teardown_appcontext(_close_session)
    errors.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    api.init_app(app)
    console.init_app(app)
