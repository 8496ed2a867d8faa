"""Alembic environment: runs migrations through optgate's own engine factory
(so SQLite gets WAL, foreign keys and BEGIN IMMEDIATE like the service)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from app.data.db import make_engine
from app.data.models import Base, UTCDateTime

config = context.config


def _render_item(kind: str, item: Any, _context: AutogenContext) -> str | Literal[False]:
    """Write migrations in plain SQLAlchemy types: a migration must not change
    when model code (UTCDateTime, an enum's members) changes later."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, sa.Enum) and not item.native_enum:
        return f"sa.String(length={item.length})"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `optgate db upgrade`")
run_migrations_online()
