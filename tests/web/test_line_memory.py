"""A web process remembers the lines it has seen (app/messages/arrival.py), and is never
fooled by what it remembers.

The memory saves an ordinary text its line look-up; the INSERT that records the
text checks that the line is still as remembered. These tests change a line
behind the process's back — moved to another Messaging Service by another
connection (as `optgate lines move` in another process would), registered by a
transaction that rolled back, the database emptied under it — and check that the
next text is read with the line as it is now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.addresses import normalize_line
from app.consent import moves
from app.data.db import Database
from app.data.models import Base, Line, Message
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.messages import arrival
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS
from tests.web.test_webhooks import Twilio, reply_of

LINE = "+14155550100"
OLD, NEW = "MG" + "a" * 32, "MG" + "b" * 32
CONTACT = "+14155550199"


@pytest.fixture
def keywords(tmp_path: Path) -> Path:
    """The shipped rules, with another brand for Messaging Service NEW."""
    path = tmp_path / "keywords.yaml"
    shipped = SHIPPED_KEYWORDS.read_text(encoding="utf-8")
    path.write_text(shipped + f"  - groups: [{NEW}]\n    brand: Other Motors\n", encoding="utf-8")
    return path


@pytest.fixture
def served(
    make_settings: Callable[..., Settings], clean_database_url: str, keywords: Path
) -> Iterator[tuple[Flask, Twilio, Database]]:
    database = Database(clean_database_url)
    with database.transaction() as session:
        organization = get_or_create_organization(session, "default")
        add_line(
            session,
            normalize_line(LINE),
            organization,
            get_or_create_group(session, organization, OLD),
        )
    app = create_app(make_settings(database_url=clean_database_url, keywords_path=keywords))
    yield app, Twilio(app.test_client(), database), database
    app.extensions["optgate.database"].dispose()
    database.dispose()


def help_reply(twilio: Twilio, group: str | None, body: str = "HELP!") -> str:
    """The answer to a HELP that Twilio's own filter does not take (so optgate answers),
    sent through Messaging Service ``group`` (None: the text names none)."""
    fields = {"MessagingServiceSid": group} if group else {}
    reply = reply_of(twilio.text(body, to=LINE, **fields))
    assert reply is not None
    return reply


def remembered(app: Flask) -> arrival.LineFacts | None:
    database = app.extensions["optgate.database"]
    with database.sessions() as session:
        return arrival.remembered(session, LINE)


def test_a_line_moved_by_another_process_is_read_afresh_by_the_next_text(
    served: tuple[Flask, Twilio, Database],
) -> None:
    app, twilio, database = served
    assert help_reply(twilio, OLD).startswith("Acme Motors:")
    assert help_reply(twilio, OLD).startswith("Acme Motors:")  # from memory now
    old = remembered(app)
    assert old is not None and old.group_name == OLD

    # Another connection moves the line: the web process is not told.
    moves.move_line(database, LINE, NEW, actor="ops")

    # The very next text is answered with the rules of the group the line is in now:
    # an answer decided before the insert (HELP), and one decided after it (HOURS).
    # It names no Messaging Service, so only the insert's check can tell the line moved.
    assert help_reply(twilio, None).startswith("Other Motors:")
    assert help_reply(twilio, None, "HOURS").startswith("Other Motors:")
    # A text that names the new service agrees.
    assert help_reply(twilio, NEW).startswith("Other Motors:")
    new = remembered(app)
    assert new is not None and new.group_name == NEW and new.group_id != old.group_id
    with database.transaction() as session:
        line = session.scalars(sa.select(Line).where(Line.address == LINE)).one()
        rows = session.execute(
            sa.select(Message.line_id, Message.intent, Message.reply).order_by(Message.id)
        ).all()
    assert {row.line_id for row in rows} == {line.id}
    assert [row.intent for row in rows] == ["help"] * 3 + ["responder", "help"]
    # The row keeps the answer given, so that Twilio's retry gets the same one.
    assert rows[-1].reply is not None and rows[-1].reply.startswith("Other Motors:")


def test_an_ordinary_text_costs_one_statement_once_its_line_is_remembered(
    served: tuple[Flask, Twilio, Database],
) -> None:
    app, twilio, _database = served
    statements: list[str] = []
    engine = app.extensions["optgate.database"].engine

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0].upper())

    assert reply_of(twilio.text("hello", to=LINE, MessagingServiceSid=OLD)) is None
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert reply_of(twilio.text("see you at 5", to=LINE, MessagingServiceSid=OLD)) is None
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["INSERT"]


def test_a_line_registered_by_a_transaction_that_rolled_back_is_not_remembered(
    make_settings: Callable[..., Settings], clean_database_url: str
) -> None:
    """A text to a new line whose transaction fails: the retry registers it again."""
    app = create_app(make_settings(database_url=clean_database_url))
    database = app.extensions["optgate.database"]
    twilio = Twilio(app.test_client(), database)
    engine = database.engine
    fail = {"now": True}

    def refuse_the_message(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
        if fail["now"] and statement.lstrip().startswith("INSERT INTO messages"):
            raise RuntimeError("the database refused the row")

    sa.event.listen(engine, "before_cursor_execute", refuse_the_message)
    try:
        refused = twilio.text("STOP", to="+14155550111", message_id="SM" + "1" * 32)
        assert refused.status_code == 500
    finally:
        sa.event.remove(engine, "before_cursor_execute", refuse_the_message)
    with database.sessions() as session:
        assert arrival.remembered(session, "+14155550111") is None
        assert session.scalar(sa.select(sa.func.count()).select_from(Line)) == 0

    # Twilio's retry registers the line and records the STOP.
    retried = twilio.text("STOP", to="+14155550111", message_id="SM" + "1" * 32)
    assert retried.status_code == 200, retried.get_data(as_text=True)
    with database.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Line)) == 1
        assert session.scalar(sa.select(Message.intent)) == "opt_out"
        assert arrival.remembered(session, "+14155550111") is not None
    database.dispose()


def empty(database: Database) -> None:
    with database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


def test_a_database_emptied_under_the_process_costs_one_failed_text_and_no_more(
    served: tuple[Flask, Twilio, Database],
) -> None:
    """The remembered line id is gone (a restore, a reset): the insert fails once on its
    foreign key, the memory is dropped, and the provider's retry registers the line anew."""
    app, twilio, database = served
    assert help_reply(twilio, OLD)
    assert remembered(app) is not None
    empty(database)

    # The insert names a line id the database no longer has: refused by its foreign key.
    first = twilio.text("HELP!", to=LINE, MessagingServiceSid=OLD, message_id="SM" + "2" * 32)
    assert first.status_code == 500, first.get_data(as_text=True)
    assert remembered(app) is None
    retried = twilio.text("HELP!", to=LINE, MessagingServiceSid=OLD, message_id="SM" + "2" * 32)
    assert reply_of(retried)
