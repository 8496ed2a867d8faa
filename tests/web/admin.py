"""What the admin API tests share: an app with tokens and three lines, and ways to look
at what the requests left in the database.

default (organization)
├── line A +14155550100 "Main", standalone
├── line B +14155550101, group "west"
└── line C +14155550102, standalone
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from app import create_app
from app.addresses import normalize, normalize_line
from app.consent import ledger
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import (
    ConsentEvent,
    Direction,
    Line,
    LineGroup,
    Message,
    MessageStatus,
    Organization,
    utcnow,
)
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.settings import Settings
from tests.conftest import TWILIO_TOKEN, add_inbound, add_message, consent_events, inbound_form

LINE_A = "+14155550100"
LINE_B = "+14155550101"
LINE_C = "+14155550102"
LINES = (LINE_A, LINE_B, LINE_C)
GROUP = "west"
CONTACT = "+14155550199"
#: Operator tokens (every organisation, as every token reached before tokens had one):
#: the agent agent1 and the manager boss.
AGENT_SECRET = "a" * 32
MANAGER_SECRET = "b" * 32
#: Tokens of the organisation "default" only: the agent default-agent and the manager
#: default-boss.
DEFAULT_AGENT_SECRET = "d" * 32
DEFAULT_MANAGER_SECRET = "e" * 32
API_TOKENS = ",".join(
    [
        f"agent1:agent:*:{AGENT_SECRET}",
        f"boss:manager:*:{MANAGER_SECRET}",
        f"default-agent:agent:default:{DEFAULT_AGENT_SECRET}",
        f"default-boss:manager:default:{DEFAULT_MANAGER_SECRET}",
    ]
)
API = "/api/v1"
_sids = count(1)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def refusal(response: TestResponse, status: int, error: str) -> str:
    """The message of a JSON refusal, after checking its status and error name."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= {"error", "message"}
    assert body["error"] == error, body
    assert body["message"], body
    message: str = body["message"]
    return message


def ok(response: TestResponse) -> Any:
    """The JSON body of a 200 answer."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.is_json
    return response.get_json()


@dataclass
class Admin:
    """The app's test client with the tokens, and what the requests left behind."""

    app: Flask
    client: FlaskClient
    database: Database

    # -- requests --------------------------------------------------------------------

    def post(self, path: str, payload: Any, secret: str = AGENT_SECRET) -> TestResponse:
        return self.client.post(API + path, json=payload, headers=bearer(secret))

    def get(self, path: str, secret: str = AGENT_SECRET) -> TestResponse:
        return self.client.get(path if path.startswith(API) else API + path, headers=bearer(secret))

    def text(self, body: str, *, sender: str = CONTACT, to: str = LINE_A) -> TestResponse:
        """An inbound text, as Twilio posts it (signed)."""
        form = MultiDict(inbound_form(f"SM{next(_sids):032x}", sender, to, body))
        path = "/webhooks/twilio/messages"
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(
            "http://localhost" + path, form
        )
        response = self.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    # -- the database ----------------------------------------------------------------

    def count(self, table: type[Any]) -> int:
        with self.database.transaction() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)

    def events(self, address: str = CONTACT) -> list[ConsentEvent]:
        return consent_events(self.database, address)

    def line_id(self, number: str) -> int:
        with self.database.transaction() as session:
            return int(session.scalars(sa.select(Line.id).where(Line.address == number)).one())

    def group_id(self, name: str = GROUP) -> int:
        with self.database.transaction() as session:
            return int(session.scalars(sa.select(LineGroup.id).where(LineGroup.name == name)).one())

    def org_id(self, name: str = "default") -> int:
        with self.database.transaction() as session:
            return int(
                session.scalars(sa.select(Organization.id).where(Organization.name == name)).one()
            )

    def message(self, message_id: int) -> Message:
        with self.database.transaction() as session:
            message = session.get(Message, message_id)
            assert message is not None
            return message

    def messages(self, direction: Direction = Direction.INBOUND) -> list[Message]:
        with self.database.transaction() as session:
            return list(
                session.scalars(
                    sa.select(Message).where(Message.direction == direction).order_by(Message.id)
                )
            )

    # -- changes made as optgate itself would make them --------------------------------

    def contact_stop(
        self,
        line: str = LINE_A,
        *,
        address: str = CONTACT,
        source: Source = Source.KEYWORD,
        topic: str | None = None,
        scope: str = "line",
    ) -> None:
        """The contact's STOP on ``line`` (or, with Source.CARRIER, the carrier's report),
        applying to that line, its group or the organization (``scope``)."""
        line_id, org_id = self.line_id(line), self.org_id()
        where = {
            "line": Scope.line(line_id),
            "group": Scope.group(self.group_id()) if scope == "group" else None,
            "organization": Scope.organization(),
        }[scope]
        assert where is not None
        with self.database.transaction() as session:
            ledger.apply(
                session,
                ledger.Change(
                    organization_id=org_id,
                    address=normalize(address),
                    scope=where,
                    status=Status.OPTED_OUT,
                    source=source,
                    actor=address if source is Source.KEYWORD else "twilio",
                    channel=Channel.SMS,
                    topic=topic,
                    reason=f"texted 'STOP' to {line}",
                    via_line_id=line_id,
                ),
            )

    def set_flag(self, flag: Flag, source: Source = Source.SYSTEM, address: str = CONTACT) -> None:
        org_id = self.org_id()
        with self.database.transaction() as session:
            ledger.set_flag(
                session,
                ledger.FlagChange(
                    organization_id=org_id,
                    address=normalize(address),
                    flag=flag,
                    set=True,
                    source=source,
                    actor="delivery receipt",
                    reason="error 30003",
                ),
            )

    def inbound(
        self,
        body: str,
        *,
        sender: str = CONTACT,
        line: str = LINE_A,
        needs_review: bool = True,
        created_at: datetime | None = None,
    ) -> int:
        """An inbound text row, as the webhook stores one (without its consent effects)."""
        return add_inbound(
            self.database,
            line,
            sender,
            body,
            provider="twilio",
            provider_message_id=f"SM{next(_sids):032x}",
            needs_review=needs_review,
            created_at=created_at or utcnow(),
        )

    def outbound(
        self, *, to: str = CONTACT, line: str = LINE_A, status: MessageStatus = MessageStatus.SENT
    ) -> int:
        """An outbound message row (``sending`` with ``claimed_at`` now: a hand-off in flight)."""
        return add_message(
            self.database,
            line,
            direction=Direction.OUTBOUND,
            address=to,
            body="Sale this weekend",
            status=status,
            provider="twilio",
            claimed_at=utcnow() if status is MessageStatus.SENDING else None,
        )


def api_app(
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    **settings: Any,
) -> Flask:
    """The app on ``database_url`` with API_TOKENS (operator and "default" tokens), quiet
    hours off."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_tokens": API_TOKENS,
        "redis_url": redis_url,
        "quiet_hours": "off",
    }
    return create_app(make_settings(**(values | settings)))


@contextmanager
def open_api(
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    **settings: Any,
) -> Iterator[tuple[Flask, Database]]:
    """``api_app`` and a Database on ``database_url``, both closed afterwards."""
    app = api_app(make_settings, database_url, redis_url, **settings)
    database = Database(database_url)
    yield app, database
    database.dispose()
    app.extensions["optgate.database"].dispose()


def open_admin(
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    **settings: Any,
) -> Iterator[Admin]:
    """The app on ``database_url`` with lines A, B (in group west) and C; closed afterwards."""
    with open_api(make_settings, database_url, redis_url, **settings) as (app, database):
        with database.transaction() as session:
            org = get_or_create_organization(session, "default")
            add_line(session, normalize_line(LINE_A), org, name="Main")
            add_line(session, normalize_line(LINE_B), org, get_or_create_group(session, org, GROUP))
            add_line(session, normalize_line(LINE_C), org)
        yield Admin(app, app.test_client(), database)
