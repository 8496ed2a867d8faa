"""No phone number, email, message body or secret in a log line (app/logs.py): the
masks, the safety-net formatter, gunicorn's access atoms, and the sources that mask
(database errors in the web app, provider refusals in the worker) on real SQLite and
PostgreSQL. tests/processes/test_log_privacy.py runs the real processes."""

from __future__ import annotations

import io
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import logs
from app.addresses import normalize_line
from app.data.db import Database
from app.lines import add_line, get_or_create_organization
from app.logs import (
    MaskingFormatter,
    describe_database_error,
    mask_access_atoms,
    mask_address,
    mask_email,
    mask_phone,
    mask_text,
)
from app.providers.twilio import TwilioProvider
from app.sending.sender import Sender
from app.settings import Settings
from tests.conftest import free_port
from tests.twilio_stub import running_stub, twilio_error
from tests.web.admin import LINE_A, Admin, open_admin
from workers.queue import redis_outbox

NUMBER = "+14155550199"
#: Forms of NUMBER that must not survive a mask.
NUMBER_FORMS = ("14155550199", "4155550199", "5550199")


def plain(record: logging.LogRecord) -> str:
    """A record as a handler without the safety net writes it: what the source logged."""
    return logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record)


@contextmanager
def refused_body(database_url: str, body: str, *, on: str = "insert") -> Iterator[None]:
    """The database refuses a message with ``body``: on ``insert``, or on ``claim``
    (when a worker moves it from queued to sending). PostgreSQL refuses with a CHECK
    constraint, whose error quotes the whole row (DETAIL: Failing row contains ...);
    SQLite with a trigger. A real refusal, with the real statement and its values."""
    assert "'" not in body
    name = f"test_refuses_on_{on}"
    engine = sa.create_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        check = f"body <> '{body}'" if on == "insert" else f"status = 'queued' OR body <> '{body}'"
        create = f"ALTER TABLE messages ADD CONSTRAINT {name} CHECK ({check})"
        drop = f"ALTER TABLE messages DROP CONSTRAINT IF EXISTS {name}"
    else:
        when = f"NEW.body = '{body}'" + ("" if on == "insert" else " AND NEW.status <> 'queued'")
        event = "INSERT" if on == "insert" else "UPDATE"
        create = (
            f"CREATE TRIGGER {name} BEFORE {event} ON messages WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        drop = f"DROP TRIGGER IF EXISTS {name}"
    with engine.begin() as connection:
        connection.exec_driver_sql(create)
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(drop)
        engine.dispose()


@pytest.fixture
def no_secrets() -> Iterator[None]:
    """Whatever a test installs, the process's secrets are as they were afterwards."""
    before = logs._secrets
    yield
    logs._secrets = before


# -- the masks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550199", "+1********99"),
        ("+447911123456", "+44********56"),
        ("+85291234567", "+852******67"),
        # Other scripts' digits and the full-width plus are read as the same number.
        (
            "\uff0b\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0669\u0669",
            "+1********99",
        ),
        ("%2B14155550199", "+1********99"),
        ("+1 (415) 555-0199", "+1********99"),
    ],
)
def test_a_number_keeps_only_its_country_code_and_last_two_digits(number: str, masked: str) -> None:
    assert mask_text(f"to {number} now") == f"to {masked} now"
    assert mask_phone(number.replace("%2B", "+")) == masked


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        (NUMBER, "+1********99"),
        ("(415) 555-0199", "+1********99"),
        ("415.555.0199", "+1********99"),
        ("alice.private@example.com", "a***@e***.com"),
        ("Alice.Private@Example.COM", "a***@e***.com"),
        # A short code is a business's sender, not a person.
        ("12345", "12345"),
        # Not an address at all: perhaps a mistyped number, so all but two are hidden.
        ("+1415555019", "*********19"),
        ("", ""),
        (None, "-"),
    ],
)
def test_an_address_is_masked_in_every_written_form(address: str | None, masked: str) -> None:
    assert mask_address(address) == masked


def test_an_email_keeps_its_first_letters_and_top_level_domain() -> None:
    assert mask_email("bob@mail.example.org") == "b***@m***.org"
    assert mask_text("from bob%40example.org.") == "from b***@e***.org."


def test_masking_a_line_twice_changes_nothing_and_masks_every_repeat() -> None:
    line = f"{NUMBER} and {NUMBER}, bob@x.org and /api/v1/contacts/{NUMBER}/consent " * 50

    once = mask_text(line)

    assert mask_text(once) == once
    assert once.count("+1********99") == 150
    assert all(form not in once for form in (NUMBER, *NUMBER_FORMS, "bob@x.org"))


def test_what_is_no_number_is_left_alone() -> None:
    line = (
        '127.0.0.1 - - [22/Nov/2026:07:52:52 +0000] "GET /api/v1/messages/123 HTTP/1.1" 200 '
        "took 1234567 us SM0123456789abcdef0123456789abcdef 2026-11-22T07:52:52+00:00 \x00"
    )

    assert mask_text(line) == line


@pytest.mark.parametrize(
    "filler",
    [
        "word ",
        "+1",
        "%2B1",
        "a.",
        "a+",
        "1 ",
        "x@",
        "/contacts/",
        "Key (a)=(",
        "https://a:",
        "Failing row contains (",
    ],
)
def test_a_long_line_is_masked_quickly_whatever_it_repeats(filler: str) -> None:
    line = filler * (100_000 // len(filler)) + f" {NUMBER} bob@example.org"
    began = time.monotonic()

    masked = mask_text(line)

    assert NUMBER not in masked and "bob@" not in masked
    assert time.monotonic() - began < 1


def test_credentials_in_urls_and_the_settings_secrets_are_hidden(
    make_settings: Callable[..., Settings], no_secrets: None
) -> None:
    secret = "Zq9" * 12
    logs.install(
        make_settings(
            api_tokens=f"ops:agent:*:{secret}",
            redis_url="redis://:redis-password-1@cache.internal:6379/0",
        )
    )

    twilio_token = make_settings().twilio_auth_token
    masked = mask_text(
        f"token {secret}; postgresql://u:db-pass-99@db/x; twilio {twilio_token} redis-password-1"
    )

    assert secret not in masked and "db-pass-99" not in masked
    assert "redis-password-1" not in masked
    assert str(make_settings().twilio_auth_token) not in masked
    assert "postgresql://u:***@db/x" in masked


def test_the_values_postgresql_quotes_in_its_errors_are_hidden() -> None:
    text = (
        'new row for relation "messages" violates check constraint "c"\n'
        "DETAIL:  Failing row contains (1, 2, 0155550199, a private\nbody on two lines).\n"
        "[SQL: INSERT INTO messages ...]\n[parameters: {'body': 'a private body'}]\n"
        "Key (provider, provider_message_id)=(twilio, SM1) already exists.\n"
        'invalid input syntax for type integer: "a private body"'
    )

    masked = mask_text(text)

    assert "private" not in masked and "0155550199" not in masked and "SM1" not in masked
    assert 'violates check constraint "c"' in masked
    assert "Key (provider, provider_message_id)=(hidden)" in masked


# -- the safety net ---------------------------------------------------------------------


def test_the_formatter_masks_the_message_and_the_exception_text() -> None:
    try:
        raise ValueError(f"no contact {NUMBER} at alice.private@example.com")
    except ValueError:
        record = logging.LogRecord(
            "optgate", logging.ERROR, __file__, 1, "sending to %s", (NUMBER,), None
        )
        record.exc_info = sys.exc_info()

    line = MaskingFormatter(logging.Formatter("%(message)s")).format(record)

    assert NUMBER not in line and "alice.private" not in line
    assert "sending to +1********99" in line and "ValueError: no contact +1********99" in line
    # The record itself is left as it was (other handlers, a test's caplog).
    assert record.args == (NUMBER,)


def test_a_line_that_cannot_be_masked_is_dropped_not_leaked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(text: str, known: object = ()) -> str:
        raise RuntimeError("a bug in the masking")

    monkeypatch.setattr(logs, "mask_text", broken)
    record = logging.LogRecord("optgate", logging.INFO, __file__, 1, NUMBER, None, None)

    line = MaskingFormatter().format(record)

    assert NUMBER not in line and logs.UNMASKABLE in line


def test_handlers_rq_set_up_before_ours_are_masked_too(
    make_settings: Callable[..., Settings], no_secrets: None
) -> None:
    # RQ adds handlers of its own when the root logger has none (a job that ran
    # before optgate configured logging): install() wraps them as well.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    rq_log = logging.getLogger("rq.worker")
    rq_log.addHandler(handler)
    try:
        logs.install(make_settings())
        rq_log.warning("job for %s failed", NUMBER)
    finally:
        rq_log.removeHandler(handler)

    assert stream.getvalue() == "job for +1********99 failed\n"


def test_the_cli_names_an_error_without_the_number_it_quotes() -> None:
    from app.cli import _first_line

    said = _first_line(ValueError(f"no row for {NUMBER}\nDETAIL: more"))

    assert said == "no row for +1********99"


def test_the_access_log_masks_paths_queries_referers_and_credentials() -> None:
    atoms = {
        "r": "GET /api/v1/contacts/415-555-0199/history?to=4155550188&since=2026-11-01"
        "&email=bob%40example.org&token=x HTTP/1.1",
        "U": "/api/v1/contacts/415-555-0199/history",
        "q": "to=4155550188&since=2026-11-01",
        "f": "https://user:pw@example.com/api/v1/contacts/(415)%20555-0177",
        "u": "a-token-sent-as-a-basic-user",
        "s": 200,
        "{authorization}i": "Bearer s3cret",
        "{x-twilio-signature}i": "c2lnbmF0dXJl",
        "{user-agent}i": "curl/8 +14155550166",
    }

    masked = mask_access_atoms(atoms)

    text = " ".join(str(value) for value in masked.values())
    for leaked in ("5550199", "5550188", "555-0177", "bob", "pw@", "s3cret", "c2lnbmF0", "5550166"):
        assert leaked not in text
    assert masked["r"].startswith("GET /api/v1/contacts/+1********99/history?to=+1********88&")
    assert "since=2026-11-01" in masked["r"] and masked["s"] == 200
    assert masked["u"] == "-"


# -- the sources: database errors, provider refusals -------------------------------------


def test_database_errors_carry_no_bound_values(database: Database) -> None:
    with pytest.raises(sa.exc.DBAPIError) as caught, database.engine.connect() as connection:
        connection.execute(sa.text("SELECT * FROM no_such_table WHERE a = :a"), {"a": NUMBER})

    assert NUMBER not in str(caught.value)
    assert NUMBER not in describe_database_error(caught.value)
    assert "no_such_table" in describe_database_error(caught.value)


@pytest.fixture
def admin(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    yield from open_admin(make_settings, clean_database_url, redis_url)


def test_an_unexpected_database_error_is_logged_without_the_row_or_its_values(
    admin: Admin, clean_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = "the private words of a refused message"
    with refused_body(clean_database_url, body), caplog.at_level(logging.ERROR, "optgate.web"):
        response = admin.post(
            "/messages", {"line": LINE_A, "to": NUMBER, "body": body, "kind": "transactional"}
        )

    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.name == "optgate.web"]
    line = plain(record)
    assert body not in line and "private" not in line
    assert [form for form in (NUMBER, *NUMBER_FORMS) if form in line] == []
    assert "unexpected database error" in line and "INSERT INTO messages" in line
    assert 'File "' in line  # where it happened: the frames, without the exception's text


def test_a_provider_refusal_naming_the_recipient_is_logged_masked(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_stub(free_port()) as stub:
        # Twilio's text names the number, here in its national form.
        stub.answers[NUMBER] = twilio_error(21211, "The 'To' number 4155550199 is not valid")
        settings = make_settings(
            database_url=clean_database_url,
            redis_url=redis_url,
            twilio_api_url=stub.url,
            quiet_hours="off",
        )
        database = Database(clean_database_url)
        with database.transaction() as session:
            organization = get_or_create_organization(session, settings.default_organization)
            add_line(session, normalize_line(LINE_A), organization)
        message_id = redis_outbox(settings, database).message(LINE_A, NUMBER, "Hi", "transactional")
        sender = Sender(settings, database, TwilioProvider(settings), lambda *_: None)
        with caplog.at_level(logging.INFO, "optgate.sender"):
            assert sender.send_one(message_id) == "failed"
        sender.close()
        database.dispose()

    lines = [plain(r) for r in caplog.records if r.name == "optgate.sender"]
    assert any("failed: Twilio refused" in line for line in lines), lines
    assert any("bounced recorded for +1********99" in line for line in lines), lines
    assert not [line for line in lines if any(f in line for f in (NUMBER, *NUMBER_FORMS))]


def test_the_password_of_a_database_url_is_no_secret_left_in_a_line(
    make_settings: Callable[..., Settings], no_secrets: None
) -> None:
    url = make_url("postgresql+psycopg://optgate@db.internal/optgate")
    logs.install(
        make_settings(database_url=url.set(password="pg-password-77").render_as_string(False))
    )

    assert "pg-password-77" not in mask_text("connecting with password pg-password-77")
