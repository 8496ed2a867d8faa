"""The review queue and the keyword tester through the admin API, on SQLite and PostgreSQL.

A text that may be a revocation in words ("wrong number", "stopp") waits for a person;
resolving it as an opt-out must act as the contact's stop keyword would have (same
scope), but recorded as a manual change by whoever resolved it, linked to the text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import TestResponse

from app.data.models import ConsentEvent, ContactAddress, Direction, MessageStatus
from app.sending import handoff
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, cases
from tests.web.admin import (
    API,
    CONTACT,
    GROUP,
    LINE_A,
    LINE_B,
    LINE_C,
    LINES,
    MANAGER_SECRET,
    Admin,
    bearer,
    ok,
    open_admin,
    refusal,
)

REVIEW = "/review"
OTHER = "+14155550188"
AGENT_ALICE = "alice (token agent1)"


def resolve(admin: Admin, text_id: int, secret: str | None = None, **fields: Any) -> TestResponse:
    payload = {"resolution": "opt_out", "actor": "alice"} | fields
    path = f"{REVIEW}/{text_id}"
    return admin.post(path, payload) if secret is None else admin.post(path, payload, secret)


def texted(admin: Admin, body: str, *, sender: str = CONTACT, to: str = LINE_A) -> int:
    """A text through the webhook; the id of its message."""
    admin.text(body, sender=sender, to=to)
    return admin.messages()[-1].id


def statuses(admin: Admin, address: str = CONTACT) -> dict[tuple[str, str], str]:
    shown = ok(admin.get(f"/contacts/{address}/consent"))
    return {(entry["line"], entry["channel"]): entry["status"] for entry in shown["lines"]}


def pending_ids(admin: Admin, query: str = "") -> list[int]:
    return [text["id"] for text in ok(admin.get(f"{REVIEW}{query}"))["texts"]]


# -- the queue ----------------------------------------------------------------------------


def test_texts_that_need_review_wait_oldest_first_with_line_sender_body_and_time(
    admin: Admin,
) -> None:
    first = texted(admin, "wrong number", to=LINE_A)
    texted(admin, "see you at 5")  # nothing to review
    texted(admin, "HOURS")
    second = texted(admin, "stopp", sender=OTHER, to=LINE_B)

    page = ok(admin.get(REVIEW))

    assert page["next"] is None
    assert [text["id"] for text in page["texts"]] == [first, second]
    rows = {message.id: message for message in admin.messages()}
    for text, (line, sender, body) in zip(
        page["texts"], [(LINE_A, CONTACT, "wrong number"), (LINE_B, OTHER, "stopp")], strict=True
    ):
        received = datetime.fromisoformat(text.pop("received_at"))
        assert received == rows[text["id"]].created_at.replace(microsecond=0, tzinfo=UTC)
        assert abs(datetime.now(UTC) - received) < timedelta(minutes=1)
        assert text == {
            "id": text["id"],
            "line": line,
            "from": sender,
            "body": body,
            "intent": "none",
            "resolution": None,
            "resolved_by": None,
            "resolved_at": None,
        }
    # Waiting for review changes no consent.
    assert admin.count(ConsentEvent) == 0


def test_the_queue_reads_a_page_at_a_time_following_the_next_links(admin: Admin) -> None:
    ids = [admin.inbound(f"stopp {number}") for number in range(5)]
    admin.inbound("thanks", needs_review=False)

    pages = []
    url: str | None = f"{REVIEW}?limit=2"
    while url is not None:
        page = ok(admin.get(url))
        pages.append([text["id"] for text in page["texts"]])
        url = page["next"]
        assert len(pages) <= 4, "the next links do not end"

    assert pages == [ids[:2], ids[2:4], ids[4:]]
    assert pending_ids(admin, f"?after={ids[2]}") == ids[3:]


def test_the_next_link_keeps_the_state_and_organization(admin: Admin) -> None:
    first, second = admin.inbound("stopp"), admin.inbound("stp")
    for text_id in (first, second):
        ok(resolve(admin, text_id, resolution="dismissed"))

    page = ok(admin.get(f"{REVIEW}?state=resolved&limit=1&organization=default"))

    assert [text["id"] for text in page["texts"]] == [first]
    assert (
        page["next"] == f"{API}{REVIEW}?state=resolved&after={first}&limit=1&organization=default"
    )
    assert [text["id"] for text in ok(admin.get(page["next"]))["texts"]] == [second]


@pytest.mark.parametrize(
    ("query", "error", "says"),
    [("limit=0", "InvalidRequest", "limit: expected a whole number from 1 to 500, not '0'"),
     ("limit=501", "InvalidRequest", "limit: expected a whole number from 1 to 500"),
     ("after=-1", "InvalidRequest", "after: expected a whole number"),
     ("after=abc", "InvalidRequest", "after: expected a whole number"),
     ("state=open", "InvalidRequest", "state: 'open' is not one of pending, resolved")],
    ids=["limit-0", "limit-501", "after-negative", "after-word", "unknown-state"],
)  # fmt: skip
def test_a_bad_queue_parameter_answers_400(admin: Admin, query: str, error: str, says: str) -> None:
    assert says in refusal(admin.get(f"{REVIEW}?{query}"), 400, error)


def test_the_queue_of_an_unknown_organization_answers_404(admin: Admin) -> None:
    message = refusal(admin.get(f"{REVIEW}?organization=nope"), 404, "NotFound")

    assert message == "there is no organization 'nope' (known: default)"


# -- resolving ----------------------------------------------------------------------------


def test_an_opt_out_resolution_stops_the_line_as_a_stop_keyword_would_and_links_the_text(
    admin: Admin,
) -> None:
    text_id = texted(admin, "wrong number", to=LINE_A)

    answer = ok(resolve(admin, text_id, reason="read it twice"))

    [event] = answer.pop("events")
    assert answer["resolved_at"] is not None
    resolved_at = datetime.fromisoformat(answer.pop("resolved_at"))
    assert resolved_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - resolved_at) < timedelta(minutes=1)
    answer.pop("received_at")
    assert answer == {
        "id": text_id,
        "line": LINE_A,
        "from": CONTACT,
        "body": "wrong number",
        "intent": "none",
        "resolution": "opt_out",
        "resolved_by": AGENT_ALICE,
    }
    assert (event["scope"], event["line"], event["group"], event["channel"], event["topic"]) == (
        "line", LINE_A, None, "sms", None
    )  # fmt: skip
    assert (event["new"], event["source"], event["actor"], event["message_id"]) == (
        "opted_out", "manual", AGENT_ALICE, text_id
    )  # fmt: skip
    assert event["reason"] == "read it twice"
    [row] = admin.events()
    assert (row.id, row.message_id, row.actor) == (event["id"], text_id, AGENT_ALICE)
    stored = admin.message(text_id)
    assert (stored.review_outcome, stored.reviewed_by) == ("opt_out", AGENT_ALICE)
    assert stored.reviewed_at is not None
    assert {point for point, status in statuses(admin).items() if status == "opted_out"} == {
        (LINE_A, "sms")
    }
    assert pending_ids(admin) == []
    assert pending_ids(admin, "?state=resolved") == [text_id]


def test_without_a_reason_the_opt_out_quotes_the_text(admin: Admin) -> None:
    text_id = texted(admin, "wrong number")

    [event] = ok(resolve(admin, text_id))["events"]

    assert event["reason"] == f"reviewed text {text_id}: 'wrong number'"


def test_a_text_to_a_grouped_line_opts_out_of_the_whole_group(admin: Admin) -> None:
    text_id = texted(admin, "stopp", to=LINE_B)

    [event] = ok(resolve(admin, text_id))["events"]

    assert (event["scope"], event["group"], event["line"]) == ("group", GROUP, None)
    assert statuses(admin)[(LINE_B, "sms")] == "opted_out"
    assert statuses(admin)[(LINE_A, "sms")] == "not_defined"


def test_with_an_organization_wide_stop_the_opt_out_covers_every_line(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    shipped = SHIPPED_KEYWORDS.read_text()
    assert "  opt_out_scope: line\n" in shipped
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text(
        shipped.replace("  opt_out_scope: line\n", "  opt_out_scope: organization\n")
    )
    for admin in open_admin(make_settings, clean_database_url, redis_url, keywords_path=keywords):
        text_id = texted(admin, "stopp", to=LINE_C)

        [event] = ok(resolve(admin, text_id))["events"]

        assert (event["scope"], event["line"], event["group"]) == ("organization", None, None)
        assert {point for point, status in statuses(admin).items() if status == "opted_out"} == {
            (line, "sms") for line in LINES
        }


def test_an_opt_out_resolution_with_a_topic_stops_only_that_topic(admin: Admin) -> None:
    text_id = texted(admin, "stopp")

    [event] = ok(resolve(admin, text_id, topic="price_drop"))["events"]

    assert (event["topic"], event["new"], event["message_id"]) == (
        "price_drop",
        "opted_out",
        text_id,
    )
    entry = ok(admin.get(f"/contacts/{CONTACT}/consent"))["lines"][0]
    assert (entry["line"], entry["status"]) == (LINE_A, "not_defined")
    assert entry["topics"]["price_drop"]["status"] == "opted_out"
    assert entry["topics"]["new_arrival"]["status"] == "not_defined"


def test_a_dismissed_text_leaves_the_queue_and_changes_no_consent(admin: Admin) -> None:
    text_id = texted(admin, "wrong number")

    answer = ok(resolve(admin, text_id, resolution="dismissed", reason="a wrong number indeed"))

    assert (answer["resolution"], answer["resolved_by"], answer["events"]) == (
        "dismissed", AGENT_ALICE, []
    )  # fmt: skip
    assert (admin.count(ConsentEvent), admin.count(ContactAddress)) == (0, 0)
    assert pending_ids(admin) == []
    assert pending_ids(admin, "?state=resolved") == [text_id]
    assert admin.message(text_id).review_outcome == "dismissed"


def test_a_text_from_a_robot_may_be_dismissed(admin: Admin) -> None:
    text_id = texted(admin, "stopp", sender="VERIFY")

    answer = ok(resolve(admin, text_id, resolution="dismissed"))

    assert (answer["from"], answer["resolution"]) == ("VERIFY", "dismissed")


@pytest.mark.parametrize("second", ["opt_out", "dismissed"])
def test_a_text_resolved_already_answers_409_naming_who_resolved_it(
    admin: Admin, second: str
) -> None:
    text_id = texted(admin, "wrong number")
    ok(resolve(admin, text_id))
    [event] = admin.events()
    first = admin.message(text_id)

    response = resolve(admin, text_id, MANAGER_SECRET, resolution=second, actor="carol")

    message = refusal(response, 409, "Conflict")
    assert message.startswith(
        f"text {text_id} was already resolved as opt_out by {AGENT_ALICE} at "
    )
    assert [row.id for row in admin.events()] == [event.id]
    again = admin.message(text_id)
    assert (again.review_outcome, again.reviewed_by, again.reviewed_at) == (
        "opt_out", AGENT_ALICE, first.reviewed_at
    )  # fmt: skip


def test_only_pending_inbound_texts_can_be_resolved(admin: Admin) -> None:
    outbound = admin.outbound(status=MessageStatus.SENT)
    plain = texted(admin, "see you at 5")
    assert admin.message(plain).needs_review is False
    assert admin.message(outbound).direction is Direction.OUTBOUND

    for text_id in (outbound, plain, 999_999):
        message = refusal(resolve(admin, text_id), 404, "NotFound")
        assert message == f"there is no inbound text {text_id} waiting for review"
    refusal(admin.post(f"{REVIEW}/abc", {"resolution": "dismissed", "actor": "a"}), 404, "NotFound")

    assert admin.count(ConsentEvent) == 0
    assert admin.message(plain).review_outcome is None


@pytest.mark.parametrize(("resolution", "waits"), [("opt_out", True), ("dismissed", False)])
def test_an_opt_out_resolution_answers_only_after_the_hand_offs_in_flight(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, resolution: str, waits: bool
) -> None:
    monkeypatch.setattr(handoff, "FENCE_WAIT", 0.5)
    text_id = texted(admin, "stopp")
    in_flight = admin.outbound(status=MessageStatus.SENDING)

    started = time.monotonic()
    ok(resolve(admin, text_id, resolution=resolution))
    took = time.monotonic() - started

    assert (took >= 0.5) is waits, took
    assert took < 3
    assert admin.message(in_flight).status is MessageStatus.SENDING


BAD_RESOLUTIONS: list[Any] = [
    # (id, sender, fields, error, part of the message)
    ("unknown-resolution", CONTACT, {"resolution": "delete"}, "InvalidChange",
     "resolution: 'delete' is not one of opt_out, dismissed"),
    ("no-resolution", CONTACT, {"resolution": None}, "InvalidChange", "resolution: required"),
    ("no-actor", CONTACT, {"actor": None}, "InvalidChange", "actor: required"),
    ("actor-too-long", CONTACT, {"actor": "z" * 121}, "InvalidRequest",
     "actor: at most 120 characters"),
    ("dismissed-with-topic", CONTACT, {"resolution": "dismissed", "topic": "price_drop"},
     "InvalidChange", "topic: only an opt_out takes a topic"),
    ("unknown-topic", CONTACT, {"topic": "sale"}, "InvalidChange",
     "topic 'sale' is not a topic of keywords.yaml (known: price_drop, new_arrival)"),
    ("topic-not-text", CONTACT, {"topic": 7}, "InvalidChange", "topic: expected a string"),
    ("robot-sender", "VERIFY", {}, "InvalidChange",
     "the text came from 'VERIFY', which is not a phone number: there is no consent to change; "
     "dismiss it"),
]  # fmt: skip


@cases(("sender", "fields", "error", "says"), BAD_RESOLUTIONS)
def test_a_resolution_that_does_not_fit_answers_400_and_leaves_the_text_pending(
    admin: Admin, sender: str, fields: dict[str, Any], error: str, says: str
) -> None:
    text_id = texted(admin, "stopp", sender=sender)
    payload = {"resolution": "opt_out", "actor": "alice"} | fields
    sent = {name: value for name, value in payload.items() if value is not None}

    message = refusal(admin.post(f"{REVIEW}/{text_id}", sent), 400, error)

    assert says in message
    assert (admin.count(ConsentEvent), admin.count(ContactAddress)) == (0, 0)
    stored = admin.message(text_id)
    assert (stored.review_outcome, stored.reviewed_by, stored.reviewed_at) == (None, None, None)
    assert pending_ids(admin) == [text_id]


def test_a_body_that_is_not_json_answers_400(admin: Admin) -> None:
    text_id = texted(admin, "stopp")

    response = admin.client.post(
        f"{API}{REVIEW}/{text_id}", data="resolution=opt_out&actor=alice", headers=bearer("a" * 32)
    )

    assert "expected a JSON object" in refusal(response, 400, "BadRequest")
    assert pending_ids(admin) == [text_id]


# -- the keyword tester -------------------------------------------------------------------

STOP_REPLY = (
    "Acme Motors: You are unsubscribed and will receive no more messages. "
    "Reply START to resubscribe."
)


def test_stop_is_an_exact_opt_out_keyword_with_its_reply(admin: Admin) -> None:
    answer = ok(admin.post("/keywords/test", {"text": "STOP"}))

    assert answer == {
        "text": "STOP",
        "action": "opt_out",
        "topic": None,
        "topics": [],
        "responder": None,
        "reply": STOP_REPLY,
        "needs_review": False,
        "keyword": "STOP",
        "exact": True,
        "line": None,
        "group": None,
        "config": "ok",
    }


KEYWORD_CASES: list[Any] = [
    # (id, request, what the answer must hold)
    ("stop-with-a-topic", {"text": "stop price drop"},
     {"action": "topic_opt_out", "topic": "price_drop", "topics": ["price_drop"],
      "exact": False, "needs_review": False}),
    ("needs-review", {"text": "stopp"}, {"action": "none", "needs_review": True, "reply": None}),
    ("empty-text", {"text": ""}, {"action": "none", "needs_review": False, "reply": None,
                                  "keyword": None}),
    ("line-in-another-form", {"text": "STOP", "line": "(415) 555-0100"},
     {"line": LINE_A, "group": None, "action": "opt_out"}),
    ("line-in-a-group", {"text": "HELP", "line": LINE_B},
     {"line": LINE_B, "group": GROUP, "action": "help", "keyword": "HELP"}),
    ("unknown-line", {"text": "STOP", "line": "+14155550999"},
     {"line": "+14155550999", "group": None, "action": "opt_out"}),
    ("null-line", {"text": "START", "line": None}, {"line": None, "action": "opt_in"}),
    ("responder", {"text": "hours", "line": LINE_C},
     {"action": "responder", "responder": "hours", "line": LINE_C, "config": "ok"}),
]  # fmt: skip


@cases(("payload", "expected"), KEYWORD_CASES)
def test_the_keyword_tester_says_what_a_text_would_do(
    admin: Admin, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    answer = ok(admin.post("/keywords/test", payload))

    assert {name: answer[name] for name in expected} == expected
    assert answer["text"] == payload["text"]
    # Testing a text changes nothing.
    assert (admin.count(ConsentEvent), admin.messages()) == (0, [])


@pytest.mark.parametrize(
    ("payload", "error", "says"),
    [({}, "InvalidRequest", "text: required, a string (it may be empty)"),
     ({"text": None}, "InvalidRequest", "text: required"),
     ({"text": 5}, "InvalidRequest", "text: expected a string"),
     ({"text": "STOP", "line": "front desk"}, "InvalidAddress",
      "'front desk' is not a valid address"),
     ({"text": "STOP", "line": "ann@example.com"}, "InvalidAddress", "not an email"),
     ({"text": "STOP", "line": 14155550100}, "InvalidRequest", "line: expected a string")],
    ids=["no-text", "null-text", "text-not-a-string", "bad-line", "email-line", "line-number"],
)  # fmt: skip
def test_the_keyword_tester_refuses_what_it_cannot_test(
    admin: Admin, payload: dict[str, Any], error: str, says: str
) -> None:
    assert says in refusal(admin.post("/keywords/test", payload), 400, error)


# -- tokens -------------------------------------------------------------------------------

ENDPOINTS = [("GET", REVIEW), ("POST", REVIEW + "/{id}"), ("POST", "/keywords/test")]


def test_without_a_token_the_review_endpoints_answer_401_asking_for_a_bearer_token(
    admin: Admin,
) -> None:
    text_id = admin.inbound("stopp")
    body = {"resolution": "dismissed", "actor": "a", "text": "STOP"}

    for method, path in ENDPOINTS:
        response = admin.client.open(API + path.format(id=text_id), method=method, json=body)
        assert "Authorization: Bearer <token>" in refusal(response, 401, "Unauthorized"), path
        assert response.headers["WWW-Authenticate"] == "Bearer realm=optgate"

    assert admin.message(text_id).review_outcome is None


def test_a_manager_may_resolve_a_text_too(admin: Admin) -> None:
    text_id = admin.inbound("stopp")

    answer = ok(resolve(admin, text_id, MANAGER_SECRET, resolution="dismissed", actor="carol"))

    assert answer["resolved_by"] == "carol (token boss)"


@pytest.mark.parametrize(
    "text_id", [2**63 - 1, 2**63, 10**30], ids=["largest-id", "past-the-largest", "huge"]
)
def test_an_id_no_database_can_hold_answers_404_not_an_error(admin: Admin, text_id: int) -> None:
    refusal(resolve(admin, text_id, resolution="dismissed"), 404, "NotFound")


def test_the_queue_pages_after_the_largest_id(admin: Admin) -> None:
    admin.inbound("stopp")

    page = ok(admin.get(f"{REVIEW}?after={2**63 - 1}"))

    assert page == {"texts": [], "next": None}
