"""Odd signed webhooks end to end, on SQLite and PostgreSQL: never a 5xx, never a forged effect.

Each request here is signed as Twilio signs (twilio's own validator) unless a test
says otherwise, and carries something Twilio never sends or a table cannot hold:
a JSON body no body hash covers, NUL, values longer than their column, repeated
fields, nested JSON, another account's AccountSid. PostgreSQL is where these
failed (500): it refuses NUL in text and over-long values, where SQLite stores them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from app import create_app
from app.addresses import normalize
from app.consent import queries
from app.data.db import Database
from app.data.models import ConsentEvent, Line, LineGroup, Message, Organization, Receipt
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, inbound_form

LINE = "+14155550100"
CONTACT = "+14155550199"
MESSAGES = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"
BASE = "http://localhost"
SID = "SM" + "ab" * 16
PASSWORD_URL = "https://optgate:s3cret-pass@sms.example.com"
STORED = (Message, Line, LineGroup, ConsentEvent, Receipt)


def sign(url: str, form: Any = ()) -> str:
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(url, MultiDict(form)))


@dataclass
class Webhooks:
    """Posts to the webhooks as Twilio does; reads what was stored."""

    client: FlaskClient
    database: Database
    base: str = BASE

    def form(
        self, path: str, form: Any, *, signed_url: str | None = None, sign_it: bool = True
    ) -> TestResponse:
        headers = {"X-Twilio-Signature": sign(signed_url or self.base + path, form)}
        return self.client.post(path, data=MultiDict(form), headers=headers if sign_it else {})

    def json(self, path: str, body: bytes, *, hashed: bool = True) -> TestResponse:
        """A JSON body as Twilio posts it: its hash in the signed URL (unless not ``hashed``)."""
        if hashed:
            path += "?bodySHA256=" + hashlib.sha256(body).hexdigest()
        headers = {"X-Twilio-Signature": sign(self.base + path)}
        return self.client.post(path, data=body, content_type="application/json", headers=headers)

    def stored(self) -> dict[str, int]:
        with self.database.transaction() as session:
            return {
                table.__name__: int(session.scalar(sa.select(sa.func.count()).select_from(table)))
                for table in STORED
            }

    def status_of(self, number: str = CONTACT) -> str:
        with self.database.transaction() as session:
            organization = session.scalars(sa.select(Organization)).one()
            shown = queries.address_status(session, organization, normalize(number)).as_dict()
        return str(next(e for e in shown["lines"] if e["line"] == LINE)["status"])

    def bodies(self) -> list[str]:
        with self.database.transaction() as session:
            return list(session.scalars(sa.select(Message.body).order_by(Message.id)))


@pytest.fixture
def build(
    make_settings: Callable[..., Settings], clean_database_url: str
) -> Iterator[Callable[..., Webhooks]]:
    made: list[Webhooks] = []

    def make(**values: Any) -> Webhooks:
        app = create_app(make_settings(database_url=clean_database_url, **values))
        made.append(Webhooks(app.test_client(), Database(clean_database_url)))
        return made[-1]

    yield make
    for webhooks in made:
        webhooks.database.dispose()
        webhooks.client.application.extensions["optgate.database"].dispose()


@pytest.fixture
def twilio(build: Callable[..., Webhooks]) -> Webhooks:
    return build()


def nothing() -> dict[str, int]:
    return {table.__name__: 0 for table in STORED}


def stop(**fields: str) -> dict[str, str]:
    return inbound_form(SID, CONTACT, LINE, "STOP", **fields)


# -- 1. a JSON body counts only under its signed body hash ------------------------------------


def test_a_json_start_under_a_signature_without_body_hash_cannot_lift_a_stop(
    twilio: Webhooks,
) -> None:
    assert twilio.form(MESSAGES, stop()).status_code == 200
    assert twilio.status_of() == "opted_out"
    start = json.dumps(inbound_form("SM" + "cd" * 16, CONTACT, LINE, "START")).encode()

    # Signed as Twilio signs a request without parameters: the URL alone.
    response = twilio.json(MESSAGES, start, hashed=False)

    assert response.status_code == 403, response.get_data(as_text=True)
    assert "signature does not match" in response.get_json()["message"]
    assert twilio.status_of() == "opted_out"
    assert twilio.bodies() == ["STOP"]


def test_the_same_json_start_under_its_body_hash_is_taken(twilio: Webhooks) -> None:
    assert twilio.form(MESSAGES, stop()).status_code == 200
    start = json.dumps(inbound_form("SM" + "cd" * 16, CONTACT, LINE, "START")).encode()

    assert twilio.json(MESSAGES, start).status_code == 200
    assert twilio.status_of() == "opted_in"


# -- 2. NUL, over-long values, nested JSON: a 400 that says why, or taken; never a 500 -------


def test_a_stop_with_stray_nuls_still_opts_out(twilio: Webhooks) -> None:
    form = stop(Body="ST\x00OP\x00", FromCountry="U\x00S", OptOutType="STOP\x00", NumMedia="0\x00")

    response = twilio.form(MESSAGES, form)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert twilio.status_of() == "opted_out"
    assert twilio.bodies() == ["STOP"]


def test_a_json_stop_with_an_escaped_nul_still_opts_out(twilio: Webhooks) -> None:
    body = json.dumps(stop(Body="STOP\x00", ToCountry="\x00")).encode()
    assert b"\\u0000" in body

    assert twilio.json(MESSAGES, body).status_code == 200
    assert twilio.status_of() == "opted_out"


LONG = [
    pytest.param(MESSAGES, stop(MessageSid="SM" + "a" * 70), "MessageSid has 72", "64", id="sid"),
    pytest.param(
        MESSAGES,
        stop(MessagingServiceSid="MG" + "b" * 120),
        "MessagingServiceSid has 122",
        "100",
        id="service",
    ),
    pytest.param(MESSAGES, stop(NumMedia="1" * 65), "NumMedia has 65", "64", id="kept field"),
    pytest.param(
        STATUS,
        {"MessageSid": "SM" + "c" * 70, "MessageStatus": "delivered", "AccountSid": TWILIO_SID},
        "MessageSid has 72",
        "64",
        id="receipt sid",
    ),
    pytest.param(
        STATUS,
        {"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "3" * 20},
        "ErrorCode has 20",
        "16",
        id="error code",
    ),
    pytest.param(
        STATUS,
        {"MessageSid": SID, "MessageStatus": "delivered" * 3},
        "MessageStatus has 27",
        "20",
        id="status word",
    ),
]


@pytest.mark.parametrize(("path", "form", "says", "limit"), LONG)
def test_a_value_longer_than_its_column_is_a_400_naming_the_field_and_limit(
    twilio: Webhooks, path: str, form: dict[str, str], says: str, limit: str
) -> None:
    response = twilio.form(path, form)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["message"] == f"{says} characters; optgate keeps at most {limit}"
    assert twilio.stored() == nothing()


NOT_FLAT = [
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply nested lists"),
    pytest.param(b'{"Body":' * 50_000 + b'"STOP"' + b"}" * 50_000, id="deeply nested objects"),
    pytest.param(
        json.dumps(stop() | {"Body": {"text": "STOP"}}).encode(), id="an object for a value"
    ),
    pytest.param(json.dumps(stop() | {"Media": ["a", "b"]}).encode(), id="a list for a value"),
]


@pytest.mark.parametrize("body", NOT_FLAT)
@pytest.mark.parametrize("path", [MESSAGES, STATUS])
def test_json_that_is_not_one_flat_object_is_a_400(
    twilio: Webhooks, path: str, body: bytes
) -> None:
    response = twilio.json(path, body)

    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["message"].startswith("expected a flat JSON object")
    assert twilio.stored() == nothing()


# -- 4. repeated fields, another account ------------------------------------------------------


def test_a_repeated_body_is_a_400_not_a_guess(twilio: Webhooks) -> None:
    form = [*stop().items(), ("Body", "START")]

    response = twilio.form(MESSAGES, form)

    assert response.status_code == 400
    assert response.get_json()["message"] == "Body comes more than once; Twilio sends it once"
    assert twilio.stored() == nothing()


def test_a_repeated_key_in_json_is_a_400(twilio: Webhooks) -> None:
    body = json.dumps(stop())[:-1] + ', "Body": "START"}'

    response = twilio.json(MESSAGES, body.encode())

    assert response.status_code == 400
    assert response.get_json()["message"].startswith("Body comes more than once")
    assert twilio.stored() == nothing()


@pytest.mark.parametrize(
    ("path", "form"),
    [
        pytest.param(MESSAGES, stop(AccountSid="AC" + "f" * 32), id="inbound"),
        pytest.param(
            STATUS,
            {"MessageSid": SID, "MessageStatus": "failed", "AccountSid": "AC" + "f" * 32},
            id="receipt",
        ),
    ],
)
def test_a_webhook_for_another_account_is_a_403_naming_the_setting(
    twilio: Webhooks, path: str, form: dict[str, str]
) -> None:
    response = twilio.form(path, form)

    assert response.status_code == 403
    assert "TWILIO_ACCOUNT_SID" in response.get_json()["message"]
    assert twilio.stored() == nothing()


# -- 3. a basic-auth password in OPTGATE_PUBLIC_URL -------------------------------------------


@pytest.mark.parametrize(
    "signed_base",
    [PASSWORD_URL, "https://sms.example.com"],
    ids=["signed with the credentials", "signed without them"],
)
def test_a_public_url_with_a_password_takes_twilios_signature(
    build: Callable[..., Webhooks], signed_base: str
) -> None:
    twilio = build(public_url=PASSWORD_URL)

    response = twilio.form(MESSAGES, stop(), signed_url=signed_base + MESSAGES)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert twilio.status_of() == "opted_out"


def test_a_refused_signature_tells_the_caller_what_to_check_but_not_the_url(
    build: Callable[..., Webhooks], caplog: pytest.LogCaptureFixture
) -> None:
    twilio = build(public_url=PASSWORD_URL)
    path = MESSAGES + "?ref=%2B14155550123"

    with caplog.at_level(logging.WARNING, logger="optgate"):
        response = twilio.form(path, stop(), signed_url=BASE + path)  # the internal URL

    assert response.status_code == 403
    message = response.get_json()["message"]
    for setting in ("OPTGATE_PUBLIC_URL", "OPTGATE_TRUSTED_PROXIES", "auth token"):
        assert setting in message
    for secret in ("s3cret", "sms.example.com", "optgate:", "ref=", "http"):
        assert secret not in response.get_data(as_text=True)
    [line] = [r.getMessage() for r in caplog.records if r.name == "optgate.webhooks"]
    assert "https://optgate:***@sms.example.com/webhooks/twilio/messages?ref=" in line
    assert "s3cret" not in line
    assert "4155550123" not in line and "4155550199" not in line
    assert twilio.stored() == nothing()
