"""The web layer: blueprints and request plumbing only, no rules.

Handlers get the request's database session from ``session()``; it is closed
(and anything uncommitted rolled back) when the request ends.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from app.db import Database
from app.keywords.store import KeywordStore
from app.settings import Settings
from workers.queue import Outbox


def settings() -> Settings:
    value: Settings = current_app.extensions["optgate.settings"]
    return value


def database() -> Database:
    value: Database = current_app.extensions["optgate.database"]
    return value


def keywords() -> KeywordStore:
    value: KeywordStore = current_app.extensions["optgate.keywords"]
    return value


def outbox() -> Outbox:
    """Queues messages; its Redis connection pool is shared by the API and /readyz."""
    value: Outbox = current_app.extensions["optgate.outbox"]
    return value


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
    from app.web import api, errors, health, webhooks

    app.extensions["optgate.outbox"] = Outbox(
        app.extensions["optgate.settings"],
        app.extensions["optgate.database"],
        app.extensions["optgate.keywords"],
    )
    app.teardown_appcontext(_close_session)
    errors.init_app(app)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    api.init_app(app)
