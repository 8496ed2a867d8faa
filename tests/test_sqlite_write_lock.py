"""SQLite's write lock is waited for in short steps, and for no longer than busy_timeout.

app/data/db.py takes the lock with BEGIN IMMEDIATE, trying again every half
millisecond instead of SQLite's own growing sleeps; these tests hold the lock
from another connection and check what a writer then does.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.data.db import Database


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'lock.db'}")
    with database.transaction() as session:
        session.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    return database


def holder(database: Database) -> sqlite3.Connection:
    """Another connection, holding the write lock."""
    path = database.engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def busy_timeout(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


def test_a_writer_waits_for_the_lock_and_gets_it_once_released(database: Database) -> None:
    other = holder(database)
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    released.start()
    try:
        with database.transaction() as session:
            session.execute(sa.text("INSERT INTO t VALUES (1)"))
    finally:
        released.join()
        other.close()
    with database.reads() as session:
        assert session.scalar(sa.text("SELECT count(*) FROM t")) == 1
    # The wait set busy_timeout to 0 while it tried; it is back as it was.
    assert busy_timeout(database) == 30000


def test_a_writer_gives_up_after_the_connections_busy_timeout(database: Database) -> None:
    """A caller that shortened busy_timeout (as /readyz does) is not kept waiting longer."""
    other = holder(database)
    try:
        with database.engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout = 200")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                connection.begin()
            connection.rollback()
            assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 200
            raw.execute("PRAGMA busy_timeout = 30000")
    finally:
        other.execute("ROLLBACK")
        other.close()
    with database.transaction() as session:  # and the lock is taken again once free
        session.execute(sa.text("INSERT INTO t VALUES (2)"))
