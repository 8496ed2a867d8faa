"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from app.data import migrate
from app.data.db import Database
from app.data.models import Base, Organization


def test_models_and_migrations_do_not_drift(database: Database) -> None:
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    assert migrate.drift(database.engine) == []


def test_a_model_change_without_a_migration_is_caught(database: Database) -> None:
    changed = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["organizations"].append_column(sa.Column("nickname", sa.String(20)))
    differences = migrate.drift(database.engine, changed)
    assert [difference[0] for difference in differences] == ["add_column"]  # type: ignore[index]


def test_migrations_go_down_to_nothing_and_up_again(clean_database_url: str) -> None:
    config = migrate.alembic_config(clean_database_url)
    command.downgrade(config, "base")
    engine = Database(clean_database_url).engine
    assert sa.inspect(engine).get_table_names() in ([], ["alembic_version"])
    command.upgrade(config, "head")
    assert migrate.drift(engine) == []
    engine.dispose()


def test_sqlite_runs_with_wal_normal_sync_and_foreign_keys(tmp_path: object) -> None:
    database = Database(f"sqlite:///{tmp_path}/pragmas.sqlite3")
    with database.engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 30000
    database.dispose()


def test_times_are_stored_and_read_as_utc(session: Session) -> None:
    local = datetime(2026, 11, 22, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    organization = Organization(name="acme", created_at=local)
    session.add(organization)
    session.flush()
    session.expire_all()
    stored = session.get(Organization, organization.id)
    assert stored is not None
    assert stored.created_at == local
    assert stored.created_at.tzinfo == UTC


def test_a_naive_time_is_refused(session: Session) -> None:
    session.add(Organization(name="acme", created_at=datetime(2026, 11, 22, 9, 30)))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        session.flush()
