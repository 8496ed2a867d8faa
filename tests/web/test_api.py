"""The HTTP API end to end, through Flask's test client, on SQLite and PostgreSQL.

Tokens and roles, queueing messages and campaigns (rows in the database, jobs
in the test Redis), reading them back, and every refusal as a JSON 4xx that
leaves nothing half-written. Every JSON endpoint (from the url_map) refuses a
control character in any field, and JSON nested deeper than its bound, with a
400 — never the 500 PostgreSQL's refusal of NUL or the parser's RecursionError was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job
from werkzeug.test import TestResponse

from app.addresses import normalize_line
from app.consent.queries import iso
from app.data.db import Database
from app.data.models import (
    Campaign,
    ConsentEvent,
    Direction,
    Line,
    Message,
    MessageKind,
    MessageStatus,
)
from app.lines import add_line, get_or_create_organization
from app.sending.policy import MEANINGS, BlockReason
from app.web.api import MOST_DEPTH
from tests.conftest import cases
from tests.web.admin import (
    AGENT_SECRET,
    API,
    CONTACT,
    DEFAULT_MANAGER_SECRET,
    GROUP,
    LINE_A,
    MANAGER_SECRET,
    Admin,
)
from workers.queue import SEND_JOB, job_id

LINE = "+14155550100"
TO = "+14155550123"
MESSAGES = "/api/v1/messages"
CAMPAIGNS = "/api/v1/campaigns"


@dataclass
class Api:
    """The app's test client with the tokens, and what the requests left behind."""

    client: FlaskClient
    database: Database
    redis: redis.Redis

    def post(self, path: str, payload: Any, secret: str = AGENT_SECRET) -> TestResponse:
        return self.client.post(path, json=payload, headers=bearer(secret))

    def get(self, path: str, secret: str = AGENT_SECRET) -> TestResponse:
        return self.client.get(path, headers=bearer(secret))

    def message(self, **changes: Any) -> dict[str, Any]:
        """A good message for POST /messages, with ``changes``."""
        good = {"line": LINE, "to": TO, "body": "Your order shipped", "kind": "transactional"}
        return good | changes

    def messages(self) -> list[Message]:
        with self.database.sessions() as session:
            return list(session.scalars(sa.select(Message).order_by(Message.id)))

    def count(self, table: type[Any]) -> int:
        with self.database.sessions() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)

    @property
    def queue(self) -> Queue:
        return Queue("outbound", connection=self.redis)

    def queued_jobs(self) -> list[Job]:
        """The jobs waiting in the queue ``outbound``, oldest first."""
        jobs = [self.queue.fetch_job(id_) for id_ in self.queue.job_ids]
        assert None not in jobs
        return [job for job in jobs if job is not None]

    def scheduled_job_ids(self) -> list[str]:
        """The jobs waiting for their time (the queue's rq.registry.ScheduledJobRegistry)."""
        ids: list[str] = self.queue.scheduled_job_registry.get_job_ids()
        return ids


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def refusal(response: TestResponse, status: int, error: str) -> str:
    """The message of a JSON refusal, after checking its status and error name."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) >= {"error", "message"}
    assert body["error"] == error
    message: str = body["message"]
    return message


@pytest.fixture
def api(api_and_database: tuple[Flask, Database], redis_client: redis.Redis) -> Api:
    app, database = api_and_database
    with database.transaction() as session:
        add_line(session, normalize_line(LINE), get_or_create_organization(session, "default"))
    return Api(app.test_client(), database, redis_client)


# -- authentication and roles -----------------------------------------------------------

ENDPOINTS = [
    ("POST", MESSAGES),
    ("GET", f"{MESSAGES}/1"),
    ("POST", CAMPAIGNS),
    ("GET", f"{CAMPAIGNS}/1"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_without_a_token_every_endpoint_answers_401_asking_for_a_bearer_token(
    api: Api, method: str, path: str
) -> None:
    response = api.client.open(path, method=method, json={})
    message = refusal(response, 401, "Unauthorized")
    assert "Authorization: Bearer <token>" in message
    assert "OPTGATE_API_TOKENS" in message
    assert response.headers["WWW-Authenticate"] == "Bearer realm=optgate"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {'c' * 32}", f"Bearer {AGENT_SECRET[:-1]}", f"Basic {AGENT_SECRET}", "Bearer  "],
    ids=["unknown", "one-short", "basic-scheme", "blank"],
)
def test_a_wrong_token_answers_401_and_queues_nothing(api: Api, authorization: str) -> None:
    response = api.client.post(
        MESSAGES, json=api.message(), headers={"Authorization": authorization}
    )
    message = refusal(response, 401, "Unauthorized")
    assert "OPTGATE_API_TOKENS" in message
    assert AGENT_SECRET not in message
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.count(Message) == 0
    assert api.queue.job_ids == []


def test_an_agent_may_not_start_a_campaign(api: Api) -> None:
    response = api.post(CAMPAIGNS, {"line": LINE, "recipients": [TO], "body": "Sale"})
    message = refusal(response, 403, "Forbidden")
    assert message == "the token 'agent1' has the role agent; this needs manager"
    assert (api.count(Campaign), api.count(Message)) == (0, 0)
    assert api.queue.job_ids == []


def test_an_agent_may_read_a_campaign(api: Api) -> None:
    created = api.post(
        CAMPAIGNS, {"line": LINE, "recipients": [TO], "body": "Sale"}, MANAGER_SECRET
    )
    assert created.status_code == 202
    response = api.get(f"{CAMPAIGNS}/{created.get_json()['id']}")
    assert response.status_code == 200
    assert response.get_json()["created_by"] == "boss"


def test_a_manager_may_send_and_read_a_message(api: Api) -> None:
    response = api.post(MESSAGES, api.message(), MANAGER_SECRET)
    assert response.status_code == 202
    message_id = response.get_json()["id"]
    assert api.get(f"{MESSAGES}/{message_id}", MANAGER_SECRET).status_code == 200
    [row] = api.messages()
    assert row.meta == {"created_by": "boss"}


# -- one message ------------------------------------------------------------------------


def test_a_message_is_stored_as_queued_and_its_job_enqueued(api: Api) -> None:
    response = api.post(MESSAGES, api.message(to="(415) 555-0123"))
    assert response.status_code == 202
    body = response.get_json()
    [row] = api.messages()
    assert body == {"id": row.id, "status": "queued", "url": f"/api/v1/messages/{row.id}"}
    assert (row.direction, row.status, row.address) == (
        Direction.OUTBOUND,
        MessageStatus.QUEUED,
        TO,
    )
    assert (row.body, row.kind, row.topic, row.require_opt_in) == (
        "Your order shipped",
        MessageKind.TRANSACTIONAL,
        None,
        False,
    )
    assert (row.send_at, row.campaign_id, row.meta) == (None, None, {"created_by": "agent1"})
    [job] = api.queued_jobs()
    assert job.id == job_id([row.id])
    assert job.func_name == SEND_JOB
    assert job.args == ([row.id],)
    assert api.scheduled_job_ids() == []


def test_null_for_an_optional_field_means_it_is_not_given(api: Api) -> None:
    response = api.post(
        MESSAGES, api.message(topic=None, require_opt_in=None, campaign=None, send_at=None)
    )

    assert response.status_code == 202, response.get_json()
    [row] = api.messages()
    assert (row.topic, row.require_opt_in, row.campaign_id, row.send_at) == (
        None, False, None, None
    )  # fmt: skip


def test_a_queued_message_reads_back_with_every_field(api: Api) -> None:
    created = api.post(
        MESSAGES,
        api.message(
            kind="marketing", topic="price_drop", require_opt_in=True, body="Prices drop today"
        ),
    ).get_json()
    response = api.get(created["url"])
    assert response.status_code == 200
    shown = response.get_json()
    [row] = api.messages()
    assert shown.pop("created_at") == iso(row.created_at)
    assert shown.pop("updated_at") == iso(row.updated_at)
    assert shown == {
        "id": created["id"],
        "line": LINE,
        "to": TO,
        "kind": "marketing",
        "topic": "price_drop",
        "campaign": None,
        "status": "queued",
        "block_reason": None,
        "block_meaning": None,
        "provider": None,
        "provider_message_id": None,
        "error_code": None,
        "error": None,
        "attempts": 0,
        "send_at": None,
        "sent_at": None,
    }
    assert row.require_opt_in is True


def test_a_blocked_message_says_why_in_words(api: Api) -> None:
    message_id = api.post(MESSAGES, api.message()).get_json()["id"]
    with api.database.transaction() as session:
        session.execute(
            sa.update(Message)
            .where(Message.id == message_id)
            .values(status=MessageStatus.BLOCKED, block_reason=BlockReason.OPTED_OUT.value)
        )
    shown = api.get(f"{MESSAGES}/{message_id}").get_json()
    assert (shown["status"], shown["block_reason"], shown["block_meaning"]) == (
        "blocked",
        "opted_out",
        MEANINGS[BlockReason.OPTED_OUT],
    )


def test_a_message_for_later_is_stored_queued_and_its_job_scheduled(api: Api) -> None:
    response = api.post(MESSAGES, api.message(send_at="2099-06-01T09:00:00-05:00"))
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"
    [row] = api.messages()
    send_at = datetime(2099, 6, 1, 14, 0, tzinfo=UTC)
    assert (row.status, row.send_at) == (MessageStatus.QUEUED, send_at)
    assert api.queue.job_ids == []
    assert api.scheduled_job_ids() == [job_id([row.id], f"at{int(send_at.timestamp())}")]
    job = api.queue.fetch_job(api.scheduled_job_ids()[0])
    assert job is not None and job.args == ([row.id],)
    shown = api.get(f"{MESSAGES}/{row.id}").get_json()
    assert shown["send_at"] == "2099-06-01T14:00:00Z"


def test_a_message_whose_time_has_passed_is_enqueued_at_once(api: Api) -> None:
    response = api.post(MESSAGES, api.message(send_at="2020-01-01T09:00:00Z"))
    assert response.status_code == 202
    [row] = api.messages()
    assert row.send_at == datetime(2020, 1, 1, 9, 0, tzinfo=UTC)
    assert [job.args for job in api.queued_jobs()] == [([row.id],)]
    assert api.scheduled_job_ids() == []


def test_a_manager_may_add_a_message_to_a_campaign(api: Api) -> None:
    campaign = api.post(
        CAMPAIGNS, {"line": LINE, "recipients": ["+14155550124"], "body": "Sale"}, MANAGER_SECRET
    ).get_json()["id"]
    response = api.post(MESSAGES, api.message(campaign=campaign), MANAGER_SECRET)
    assert response.status_code == 202
    shown = api.get(response.get_json()["url"]).get_json()
    assert shown["campaign"] == campaign


@pytest.mark.parametrize("exists", [True, False], ids=["campaign", "no-campaign"])
def test_an_agent_may_not_add_a_message_to_a_campaign(api: Api, exists: bool) -> None:
    campaign = 999
    if exists:
        campaign = api.post(
            CAMPAIGNS, {"line": LINE, "recipients": ["hello"], "body": "Sale"}, MANAGER_SECRET
        ).get_json()["id"]

    response = api.post(MESSAGES, api.message(campaign=campaign))

    # The same answer whether the campaign exists: an agent learns nothing of campaigns.
    message = refusal(response, 403, "Forbidden")
    assert message == (
        "the token 'agent1' has the role agent, which may queue a message but not add it "
        "to a campaign; that needs a manager token"
    )
    assert api.count(Message) == 0
    assert api.queue.job_ids == []


def test_a_message_may_not_count_under_a_campaign_of_another_organization(api: Api) -> None:
    """Even for an operator token, which reaches both."""
    with api.database.transaction() as session:
        add_line(session, normalize_line("+14155550170"), get_or_create_organization(session, "b"))
    campaign = api.post(
        CAMPAIGNS,
        {"line": "+14155550170", "recipients": ["hello"], "body": "Sale"},
        MANAGER_SECRET,
    ).get_json()["id"]

    response = api.post(MESSAGES, api.message(campaign=campaign), MANAGER_SECRET)

    message = refusal(response, 400, "InvalidMessage")
    assert message == (f"campaign {campaign} belongs to another organization than line {LINE}")
    assert api.count(Message) == 0


# -- refusals of a message: JSON 4xx, nothing stored, nothing enqueued -------------------

BAD_MESSAGES = [
    # (id, changes to a good message, status, error, a fragment of the message)
    ("unknown-line", {"line": "+14155550101"}, 404, "NotFound",
     "add it first with `optgate lines add +14155550101`"),
    ("line-not-a-number", {"line": "hello"}, 400, "InvalidAddress", "'hello'"),
    ("to-too-short", {"to": "+1415"}, 400, "InvalidAddress", "'+1415' is not a valid address"),
    ("to-words", {"to": "hello"}, 400, "InvalidAddress", "'hello' is not a valid address"),
    ("to-email", {"to": "someone@example.com"}, 400, "InvalidAddress",
     "texts go to phone numbers, and this is an email address"),
    ("to-short-code", {"to": "12345"}, 400, "InvalidAddress", "this is a short code"),
    ("to-missing", {"to": None}, 400, "InvalidMessage", "to: required, a string"),
    ("body-empty", {"body": ""}, 400, "InvalidMessage", "body: required, a string"),
    ("body-blank", {"body": "  \n "}, 400, "InvalidMessage", "body: required, a string"),
    ("body-too-long", {"body": "x" * 1601}, 400, "InvalidMessage", "at most 1600"),
    ("kind-unknown", {"kind": "spam"}, 400, "InvalidMessage",
     "'spam' is not a kind of message; expected transactional, conversational, marketing"),
    ("topic-unknown", {"topic": "sales"}, 400, "InvalidMessage",
     "(known: new_arrival, price_drop)"),
    ("topic-not-text", {"topic": 3}, 400, "InvalidMessage", "topic: expected a string"),
    ("send-at-naive", {"send_at": "2099-01-01T09:00:00"}, 400, "InvalidMessage",
     "has no time zone offset"),
    ("send-at-words", {"send_at": "tomorrow at nine"}, 400, "InvalidMessage",
     "'tomorrow at nine' is not an ISO 8601 time"),
    ("opt-in-yes", {"require_opt_in": "yes"}, 400, "InvalidMessage",
     "require_opt_in: expected true or false"),
    ("campaign-unknown", {"campaign": 999}, 404, "NotFound", "there is no campaign 999"),
    ("campaign-not-a-number", {"campaign": "1"}, 400, "InvalidMessage",
     "campaign: expected a positive whole number"),
]  # fmt: skip


@cases(("changes", "status", "error", "expected"), BAD_MESSAGES)
def test_a_bad_message_is_refused_with_a_message_and_nothing_is_written(
    api: Api, changes: dict[str, Any], status: int, error: str, expected: str
) -> None:
    payload = {k: v for k, v in api.message(**changes).items() if v is not None}
    # A manager: an agent may not name a campaign at all.
    message = refusal(api.post(MESSAGES, payload, MANAGER_SECRET), status, error)
    assert expected in message
    assert api.count(Message) == 0
    assert api.queue.job_ids == []
    assert api.scheduled_job_ids() == []


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("line=%2B14155550100&to=%2B14155550123", "application/x-www-form-urlencoded"),
        ('{"line": "+14155550100", ', "application/json"),
        ('["+14155550100", "+14155550123"]', "application/json"),
        ('"just a string"', "application/json"),
        ("", "application/json"),
    ],
    ids=["form", "broken-json", "json-list", "json-string", "empty"],
)
def test_a_body_that_is_not_a_json_object_is_a_bad_request(
    api: Api, data: str, content_type: str
) -> None:
    for path, secret in ((MESSAGES, AGENT_SECRET), (CAMPAIGNS, MANAGER_SECRET)):
        response = api.client.post(
            path, data=data, content_type=content_type, headers=bearer(secret)
        )
        message = refusal(response, 400, "BadRequest")
        assert message == "expected a JSON object (Content-Type: application/json)"
    assert (api.count(Message), api.count(Campaign)) == (0, 0)


def test_an_unknown_message_is_not_found(api: Api) -> None:
    message = refusal(api.get(f"{MESSAGES}/999"), 404, "NotFound")
    assert message == "there is no outbound message 999"


def test_an_inbound_message_is_not_shown_as_outbound(api: Api) -> None:
    with api.database.transaction() as session:
        line = session.scalars(sa.select(Line)).one()
        inbound = Message(
            organization_id=line.organization_id,
            line_id=line.id,
            direction=Direction.INBOUND,
            address=TO,
            body="hi",
            status=MessageStatus.RECEIVED,
        )
        session.add(inbound)
        session.flush()
        inbound_id = inbound.id
    message = refusal(api.get(f"{MESSAGES}/{inbound_id}"), 404, "NotFound")
    assert message == f"there is no outbound message {inbound_id}"


# -- campaigns --------------------------------------------------------------------------

RECIPIENTS = [
    "+14155550123",
    "not a number",
    "(415) 555-0124",
    "person@example.com",
    "415.555.0123",
    "+14155550125",
]
INVALID_ROWS = [
    {"row": 2, "value": "not a number",
     "reason": "expected a phone number, a short code or an email"},
    {"row": 4, "value": "person@example.com",
     "reason": "texts go to phone numbers, and this is an email address"},
    {"row": 5, "value": "415.555.0123", "reason": "+14155550123 is listed before"},
]  # fmt: skip
QUEUED = ["+14155550123", "+14155550124", "+14155550125"]


def start_campaign(api: Api, **changes: Any) -> TestResponse:
    payload = {
        "line": LINE,
        "recipients": RECIPIENTS,
        "body": "Prices drop today! Reply STOP to opt out",
        "topic": "price_drop",
        "name": "Spring sale",
    } | changes
    return api.post(CAMPAIGNS, payload, MANAGER_SECRET)


def test_a_campaign_queues_the_valid_rows_and_reports_every_invalid_one(api: Api) -> None:
    response = start_campaign(api)
    assert response.status_code == 202
    body = response.get_json()
    campaign = body["id"]
    assert body == {
        "id": campaign,
        "recipients": 6,
        "queued": 3,
        "invalid": INVALID_ROWS,
        "url": f"/api/v1/campaigns/{campaign}",
    }
    rows = api.messages()
    assert [row.address for row in rows] == QUEUED
    assert {(row.status, row.kind, row.topic, row.campaign_id) for row in rows} == {
        (MessageStatus.QUEUED, MessageKind.MARKETING, "price_drop", campaign)
    }
    ids = [row.id for row in rows]
    [job] = api.queued_jobs()
    assert (job.id, job.func_name, job.args) == (job_id(ids), SEND_JOB, (ids,))
    assert api.scheduled_job_ids() == []


def test_a_campaign_reads_back_with_its_counts(api: Api) -> None:
    campaign = start_campaign(api, require_opt_in=True).get_json()["id"]
    response = api.get(f"{CAMPAIGNS}/{campaign}", MANAGER_SECRET)
    assert response.status_code == 200
    shown = response.get_json()
    with api.database.sessions() as session:
        row = session.get(Campaign, campaign)
        assert row is not None
        assert shown.pop("created_at") == iso(row.created_at)
    assert shown == {
        "id": campaign,
        "line": LINE,
        "name": "Spring sale",
        "kind": "marketing",
        "topic": "price_drop",
        "require_opt_in": True,
        "created_by": "boss",
        "loading": False,
        "recipients": 6,
        "invalid": 3,
        "invalid_rows": INVALID_ROWS,
        "messages": 3,
        "by_status": {"queued": 3},
        "blocked_by_reason": {},
    }


def test_a_campaign_counts_blocked_messages_by_reason(api: Api) -> None:
    campaign = start_campaign(api).get_json()["id"]
    first, second, third = (row.id for row in api.messages())
    with api.database.transaction() as session:
        session.execute(
            sa.update(Message)
            .where(Message.id.in_([first, second]))
            .values(status=MessageStatus.BLOCKED, block_reason=BlockReason.OPTED_OUT.value)
        )
        session.execute(
            sa.update(Message).where(Message.id == third).values(status=MessageStatus.SENT)
        )
    shown = api.get(f"{CAMPAIGNS}/{campaign}").get_json()
    assert shown["messages"] == 3
    assert shown["by_status"] == {"blocked": 2, "sent": 1}
    assert shown["blocked_by_reason"] == {"opted_out": 2}


def test_a_campaign_takes_a_kind_and_defaults_to_marketing(api: Api) -> None:
    transactional = start_campaign(api, kind="transactional", topic=None).get_json()["id"]
    marketing = start_campaign(api, recipients=["+14155550126"]).get_json()["id"]
    assert api.get(f"{CAMPAIGNS}/{transactional}").get_json()["kind"] == "transactional"
    assert api.get(f"{CAMPAIGNS}/{marketing}").get_json()["kind"] == "marketing"


def test_a_campaign_for_later_schedules_its_jobs(api: Api) -> None:
    response = start_campaign(api, send_at="2099-06-01T14:00:00+00:00")
    assert response.status_code == 202
    assert response.get_json()["queued"] == 3
    rows = api.messages()
    send_at = datetime(2099, 6, 1, 14, 0, tzinfo=UTC)
    assert {(row.status, row.send_at) for row in rows} == {(MessageStatus.QUEUED, send_at)}
    ids = [row.id for row in rows]
    assert api.queue.job_ids == []
    assert api.scheduled_job_ids() == [job_id(ids, f"at{int(send_at.timestamp())}")]


def test_a_campaign_of_only_invalid_rows_is_recorded_with_nothing_queued(api: Api) -> None:
    response = start_campaign(api, recipients=["hello", "12345"])
    assert response.status_code == 202
    body = response.get_json()
    assert (body["recipients"], body["queued"], len(body["invalid"])) == (2, 0, 2)
    assert api.count(Message) == 0
    assert api.queue.job_ids == []
    shown = api.get(body["url"]).get_json()
    assert (shown["messages"], shown["by_status"], shown["invalid"]) == (0, {}, 2)


BAD_CAMPAIGNS = [
    # (id, changes to a good campaign, status, error, a fragment of the message)
    ("recipients-text", {"recipients": "+14155550123"}, 400, "InvalidMessage",
     "recipients: expected a list of phone numbers as strings"),
    ("recipients-numbers", {"recipients": [14155550123]}, 400, "InvalidMessage",
     "recipients: expected a list of phone numbers as strings"),
    ("recipients-missing", {"recipients": None}, 400, "InvalidMessage",
     "recipients: expected a list"),
    ("recipients-empty", {"recipients": []}, 400, "InvalidMessage",
     "recipients: the list is empty"),
    ("unknown-line", {"line": "+14155550101"}, 404, "NotFound", "`optgate lines add"),
    ("body-empty", {"body": ""}, 400, "InvalidMessage", "body: required"),
    ("kind-unknown", {"kind": "spam"}, 400, "InvalidMessage",
     "expected transactional, conversational, marketing"),
    ("topic-unknown", {"topic": "sales"}, 400, "InvalidMessage",
     "(known: new_arrival, price_drop)"),
    ("send-at-naive", {"send_at": "2099-01-01 09:00"}, 400, "InvalidMessage",
     "has no time zone offset"),
    ("send-at-words", {"send_at": "next week"}, 400, "InvalidMessage", "is not an ISO 8601 time"),
    ("opt-in-yes", {"require_opt_in": "yes"}, 400, "InvalidMessage", "expected true or false"),
    ("name-too-long", {"name": "n" * 201}, 400, "InvalidMessage", "at most 200 characters"),
]  # fmt: skip


@cases(("changes", "status", "error", "expected"), BAD_CAMPAIGNS)
def test_a_bad_campaign_is_refused_with_a_message_and_nothing_is_written(
    api: Api, changes: dict[str, Any], status: int, error: str, expected: str
) -> None:
    message = refusal(start_campaign(api, **changes), status, error)
    assert expected in message
    assert (api.count(Campaign), api.count(Message)) == (0, 0)
    assert api.queue.job_ids == []
    assert api.scheduled_job_ids() == []


def test_an_unknown_campaign_is_not_found(api: Api) -> None:
    message = refusal(api.get(f"{CAMPAIGNS}/999"), 404, "NotFound")
    assert message == "there is no campaign 999"


# -- JSON input: control characters and nesting, on every JSON endpoint ------------------


@dataclass(frozen=True)
class JsonRequest:
    """A good request to a JSON endpoint of the admin fixture (tests/web/admin.py)."""

    #: The URL path after /api/v1; it may add what the request needs (a text to review).
    path: Callable[[Admin], str]
    body: dict[str, Any]
    #: Fields of free text: tabs and line breaks are fine in them.
    free_text: frozenset[str] = frozenset()
    success: int = 200


def _flag(action: str) -> JsonRequest:
    return JsonRequest(
        lambda admin: f"/contacts/{CONTACT}/{action}",
        {"actor": "alice", "reason": "asked by phone"},
        frozenset({"reason"}),
    )


#: Every JSON endpoint (a POST of the API), with a request naming every field it reads.
JSON_ENDPOINTS: dict[str, list[JsonRequest]] = {
    "api.change_consent": [
        JsonRequest(
            lambda admin: f"/contacts/{CONTACT}/consent",
            {"status": "opted_out", "scope": "line", "line": LINE_A, "channel": "sms",
             "topic": "price_drop", "actor": "alice", "reason": "asked by phone"},
            frozenset({"reason"}),
        ),
        JsonRequest(
            lambda admin: f"/contacts/{CONTACT}/consent",
            {"status": "opted_out", "scope": "group", "group": GROUP, "actor": "alice"},
        ),
    ],
    "api.silence": [_flag("silence")],
    "api.unsilence": [_flag("unsilence")],
    "api.do_not_contact": [_flag("do-not-contact")],
    "api.clear_bounce": [_flag("clear-bounce")],
    "api.resolve": [
        JsonRequest(
            lambda admin: f"/review/{admin.inbound('please do not text me')}",
            {"resolution": "opt_out", "actor": "alice", "reason": "called", "topic": "price_drop"},
            frozenset({"reason"}),
        )
    ],
    "api.test_keywords": [
        JsonRequest(lambda admin: "/keywords/test", {"text": "stop", "line": LINE_A},
                    frozenset({"text"}))
    ],
    "api.create_message": [
        JsonRequest(
            lambda admin: "/messages",
            {"line": LINE_A, "to": TO, "body": "Prices drop", "kind": "marketing",
             "topic": "price_drop", "send_at": "2099-01-01T09:00:00Z"},
            frozenset({"body"}),
            202,
        )
    ],
    "api.create_campaign": [
        JsonRequest(
            lambda admin: "/campaigns",
            {"line": LINE_A, "recipients": [TO, "+14155550124"], "body": "Sale",
             "kind": "marketing", "topic": "price_drop", "name": "Spring",
             "send_at": "2099-01-01T09:00:00Z"},
            frozenset({"body"}),
            202,
        )
    ],
}  # fmt: skip
#: POSTs that take no JSON, and what they take instead.
NOT_JSON = {"api.import_consent": "a CSV file"}

#: Never in any field (code point, how the test names it).
NEVER = [("\x00", "NUL"), ("\x1b", "ESC"), ("\x7f", "DEL"), ("\ud800", "lone-surrogate")]
#: Fine in free text, never in a field of one line.
LINE_BREAKS = [("\n", "LF"), ("\t", "TAB"), ("\r\n", "CRLF")]


def string_fields(body: dict[str, Any]) -> Iterator[tuple[str, Callable[[str], Any]]]:
    """(the name an error gives the field, a body with that field's value changed by a
    function) for every string of ``body``, a list's items included."""
    for name, value in body.items():
        if isinstance(value, str):
            yield name, lambda change, name=name, value=value: body | {name: change(value)}
        elif isinstance(value, list):
            for row in range(1, len(value) + 1):

                def changed(change: Callable[[str], str], name: str = name, row: int = row) -> Any:
                    items = list(body[name])
                    items[row - 1] = change(items[row - 1])
                    return body | {name: items}

                yield f"{name} row {row}", changed


def bad_input(response: TestResponse) -> str:
    """The message of a 400 for a field (its error names the kind of request)."""
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] in ("InvalidChange", "InvalidMessage", "InvalidRequest"), body
    message: str = body["message"]
    return message


def written(admin: Admin) -> tuple[int, int, int]:
    return admin.count(ConsentEvent), admin.count(Message), admin.count(Campaign)


def post_json(admin: Admin, path: str, body: Any) -> TestResponse:
    # Serialised here, so that a lone surrogate goes out as the escape \ud800.
    return admin.client.post(
        API + path,
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        headers=bearer(DEFAULT_MANAGER_SECRET),
    )


JSON_CASES = [
    pytest.param(endpoint, number, id=f"{endpoint.removeprefix('api.')}-{number}")
    for endpoint, requests in JSON_ENDPOINTS.items()
    for number, _request in enumerate(requests)
]


@pytest.mark.parametrize("clean_database_url", ["sqlite"], indirect=True)
def test_every_json_endpoint_is_in_the_table(admin: Admin) -> None:
    # Every route that takes a body: all but GET (HEAD and OPTIONS come with it).
    with_a_body = {
        rule.endpoint
        for rule in admin.app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and (rule.methods or set()) - {"GET", "HEAD", "OPTIONS"}
    }
    assert with_a_body == set(JSON_ENDPOINTS) | set(NOT_JSON), (
        f"routes with a body not in JSON_ENDPOINTS or NOT_JSON: "
        f"{sorted(with_a_body - set(JSON_ENDPOINTS) - set(NOT_JSON))}"
    )


@pytest.mark.parametrize(("endpoint", "number"), JSON_CASES)
def test_a_control_character_in_any_field_answers_400_naming_it_and_writes_nothing(
    admin: Admin, redis_client: redis.Redis, endpoint: str, number: int
) -> None:
    request = JSON_ENDPOINTS[endpoint][number]
    fields = list(string_fields(request.body))
    assert fields
    for name, changed in fields:
        one_line = name not in request.free_text
        for character, what in NEVER + (LINE_BREAKS if one_line else []):
            path = request.path(admin)
            before = written(admin)
            body = changed(lambda value, c=character: value[:1] + c + value[1:])

            message = bad_input(post_json(admin, path, body))

            assert message.startswith(f"{name}: holds "), (name, what, message)
            assert f"U+{ord(character[0]):04X} at position 2" in message, (name, what)
            assert written(admin) == before, (name, what)
    for name in request.free_text:
        for character, what in LINE_BREAKS:
            body = request.body | {name: f"{request.body[name]}{character}(more)"}
            response = post_json(admin, request.path(admin), body)
            assert response.status_code == request.success, (name, what, response.get_json())


def _nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize(("endpoint", "number"), JSON_CASES)
def test_json_nested_deeper_than_the_bound_answers_400_never_500(
    admin: Admin, redis_client: redis.Redis, endpoint: str, number: int
) -> None:
    request = JSON_ENDPOINTS[endpoint][number]
    head = json.dumps(request.body)[:-1]
    too_deep = f"the JSON is nested more than {MOST_DEPTH} levels deep; ours are two"
    for depth in (MOST_DEPTH, 100_000):
        for opening, closing in (("[", "]"), ('{"a":', "}")):
            path = request.path(admin)
            before = written(admin)
            body = f'{head}, "deep": {opening * depth}1{closing * depth}}}'

            response = post_json(admin, path, body)

            assert refusal(response, 400, "BadRequest") == too_deep, (depth, opening)
            assert written(admin) == before
    # As deep as allowed (the body's object is the first level) is read.
    response = post_json(
        admin, request.path(admin), request.body | {"deep": _nested(MOST_DEPTH - 1)}
    )
    assert response.status_code == request.success, response.get_json()


def test_a_control_character_in_a_url_or_query_answers_400(admin: Admin) -> None:
    before = written(admin)
    email = "/contacts/ann%00@example.com"
    answers = [
        admin.client.get(f"{API}{email}/consent", headers=bearer(DEFAULT_MANAGER_SECRET)),
        admin.client.get(f"{API}{email}/history", headers=bearer(DEFAULT_MANAGER_SECRET)),
        post_json(admin, f"{email}/silence", {"actor": "alice"}),
        post_json(
            admin,
            f"{email}/consent",
            {"status": "opted_out", "scope": "organization", "actor": "alice"},
        ),
    ]
    for response in answers:
        assert "holds the control character U+0000" in refusal(response, 400, "InvalidAddress")
    imported = admin.client.post(
        f"{API}/imports/consent?actor=ja%00ne",
        data=f"address,status\n{CONTACT},opted_out\n",
        content_type="text/csv",
        headers=bearer(DEFAULT_MANAGER_SECRET),
    )
    assert refusal(imported, 400, "InvalidRequest").startswith(
        "actor: holds the control character U+0000 at position 3"
    )
    assert written(admin) == before
