"""Twilio webhooks end to end, through Flask's test client, signed with twilio's own validator."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from app.addresses import normalize
from app.consent import ledger, queries
from app.consent.values import Flag, Source
from app.data.db import Database
from app.data.models import (
    ConsentEvent,
    ContactAddress,
    Direction,
    Line,
    LineGroup,
    Message,
    MessageStatus,
    Organization,
    Receipt,
)
from app.settings import Settings
from tests.conftest import (
    SHIPPED_KEYWORDS,
    TWILIO_SID,
    TWILIO_TOKEN,
    add_message,
    free_port,
    inbound_form,
)
from tests.providers import twilio_payloads as payloads

LINE = "+14155550100"
CONTACT = "+14155550199"
MESSAGES = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"
_sids = count(1)


def sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_sids):032x}"


@dataclass
class Twilio:
    """Posts what Twilio posts, signed as Twilio signs."""

    client: FlaskClient
    database: Database
    base: str = "http://localhost"

    def post(
        self,
        path: str,
        params: dict[str, str] | list[tuple[str, str]],
        *,
        signed_url: str | None = None,
        token: str = TWILIO_TOKEN,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> Any:
        form = MultiDict(params)
        url = signed_url or self.base + path
        extra = dict(headers or {})
        if sign:
            extra["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, form)
        return self.client.post(path, data=form, headers=extra)

    def text(
        self,
        body: str,
        *,
        sender: str = CONTACT,
        to: str = LINE,
        message_id: str | None = None,
        **fields: str,
    ) -> Any:
        return self.post(MESSAGES, inbound_form(message_id or sid(), sender, to, body, **fields))

    def status(self, message_id: str, status: str, error_code: str | None = None) -> Any:
        params = {
            "MessageSid": message_id,
            "MessageStatus": status,
            "AccountSid": TWILIO_SID,
            "To": CONTACT,
            "From": LINE,
        }
        if error_code:
            params["ErrorCode"] = error_code
        return self.post(STATUS, params)

    # -- what is stored ------------------------------------------------------------

    def status_of(self, number: str = CONTACT, line: str = LINE, topic: str | None = None) -> str:
        with self.database.transaction() as session:
            org = session.scalars(sa.select(Organization)).one()
            shown = queries.address_status(session, org, normalize(number)).as_dict()
        entry = next(e for e in shown["lines"] if e["line"] == line)
        return str(entry["topics"][topic]["status"] if topic else entry["status"])

    def history(self, number: str = CONTACT) -> list[dict[str, Any]]:
        with self.database.transaction() as session:
            orgs = session.scalars(sa.select(Organization)).all()
            if not orgs:
                return []
            return queries.address_history(session, orgs[0], normalize(number))

    def count(self, table: type[Any]) -> int:
        with self.database.transaction() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)

    def handed_over(self, body: str = "Sale this weekend") -> str:
        """An outbound message already handed to Twilio (status sent); its Twilio id."""
        message_id = sid()
        add_message(
            self.database,
            LINE,
            direction=Direction.OUTBOUND,
            address=CONTACT,
            body=body,
            status=MessageStatus.SENT,
            provider="twilio",
            provider_message_id=message_id,
        )
        return message_id

    def messages(self) -> list[Message]:
        with self.database.transaction() as session:
            return list(session.scalars(sa.select(Message).order_by(Message.id)))


def reply_of(response: Any) -> str | None:
    """The text of the one <Message> in a TwiML answer, or None."""
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("application/xml")
    body = response.get_data(as_text=True)
    assert body.count("<Message>") <= 1, body
    if "<Message>" not in body:
        assert body.endswith("<Response />"), body
        return None
    return body.split("<Message>")[1].split("</Message>")[0]


@pytest.fixture
def build(
    make_app: Callable[[Settings], Flask],
    make_settings: Callable[..., Settings],
    clean_database_url: str,
) -> Callable[..., Flask]:
    """An app on the test database, with these settings changed."""

    def make(**values: Any) -> Flask:
        return make_app(make_settings(database_url=clean_database_url, **values))

    return make


@pytest.fixture
def twilio(build: Callable[..., Flask], clean_database_url: str) -> Iterator[Twilio]:
    database = Database(clean_database_url)
    yield Twilio(build().test_client(), database)
    database.dispose()


# -- inbound texts ------------------------------------------------------------------


def test_stop_opts_out_and_leaves_the_confirmation_to_twilio(twilio: Twilio) -> None:
    # STOP is one of Twilio's own keywords on a long code: Twilio confirms it.
    assert reply_of(twilio.text("STOP")) is None
    assert twilio.status_of() == "opted_out"
    [event] = twilio.history()
    assert (event["source"], event["actor"], event["scope"]) == ("keyword", CONTACT, "line")
    [message] = twilio.messages()
    assert (message.intent, message.status, message.reply) == ("opt_out", "received", None)
    assert event["message_id"] == message.id


def test_an_opt_out_twilio_does_not_understand_gets_our_confirmation(twilio: Twilio) -> None:
    reply = reply_of(twilio.text("please stop texting me"))
    assert reply == (
        "Acme Motors: You are unsubscribed and will receive no more messages. "
        "Reply START to resubscribe."
    )
    assert twilio.status_of() == "opted_out"


def test_a_topic_stop_changes_one_topic_and_says_so(twilio: Twilio) -> None:
    reply = reply_of(twilio.text("STOP PRICE DROP"))
    assert reply is not None and "no longer receive Price Reduction notifications" in reply
    assert twilio.status_of(topic="price_drop") == "opted_out"
    assert twilio.status_of() == "not_defined"


def test_start_topic_while_stopped_keeps_the_wish_and_asks_for_start(twilio: Twilio) -> None:
    twilio.text("STOP")
    reply = reply_of(twilio.text("START PRICE DROP"))
    assert reply == (
        "Acme Motors: Noted. You are unsubscribed from all our texts: reply START first to get "
        "Price Reduction notifications."
    )
    assert twilio.status_of() == "opted_out"


def test_a_retried_webhook_gets_the_same_answer_and_changes_nothing(twilio: Twilio) -> None:
    first = twilio.text("please stop texting me", message_id="SM" + "a" * 32)
    events = twilio.count(ConsentEvent)
    again = twilio.text("please stop texting me", message_id="SM" + "a" * 32)
    assert again.get_data() == first.get_data()
    assert twilio.count(ConsentEvent) == events
    assert twilio.count(Message) == 1


def test_twilios_opt_out_type_is_recorded_as_a_carrier_opt_out(twilio: Twilio) -> None:
    assert reply_of(twilio.text("Stop", OptOutType="STOP")) is None
    [event] = twilio.history()
    assert (event["source"], event["actor"]) == ("carrier", "twilio")
    assert reply_of(twilio.text("start", OptOutType="START")) is None
    assert twilio.status_of() == "opted_in"


def test_on_a_short_code_optgate_confirms_the_defaults_itself(twilio: Twilio) -> None:
    # Twilio does not filter short codes; the shipped keywords.yaml says so for 12345.
    reply = reply_of(twilio.text("STOP", to="12345"))
    assert reply is not None and reply.startswith("Acme Motors: You are unsubscribed")
    assert twilio.status_of(line="12345") == "opted_out"


@pytest.mark.parametrize(
    "sender",
    ["55555", "VERIFY", LINE],
    ids=["a short code", "an alphanumeric sender", "one of our own lines"],
)
def test_robots_get_no_answer_and_change_no_consent(twilio: Twilio, sender: str) -> None:
    twilio.text("hello")  # makes both lines known
    twilio.text("hello", to="+14155550101")
    assert reply_of(twilio.text("STOP", sender=sender, to="+14155550101")) is None
    assert reply_of(twilio.text("HOURS", sender=sender, to="+14155550101")) is None
    assert twilio.count(ConsentEvent) == 0


def test_replies_to_one_contact_stop_at_the_hourly_limit(twilio: Twilio) -> None:
    replies = [reply_of(twilio.text("HOURS")) for _ in range(7)]
    assert [reply is not None for reply in replies] == [True] * 5 + [False] * 2
    assert reply_of(twilio.text("HOURS", sender="+14155550198")) is not None


def test_a_text_from_a_bounced_number_clears_its_bounce(twilio: Twilio) -> None:
    twilio.text("hello")
    with twilio.database.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        ledger.set_flag(
            session,
            ledger.FlagChange(org.id, normalize(CONTACT), Flag.BOUNCED, True, Source.CARRIER, "t"),
        )
    twilio.text("on my way")
    last = twilio.history()[-1]
    assert (last["subject"], last["old"], last["new"], last["source"]) == (
        "bounced",
        "set",
        "clear",
        "system",
    )


def test_a_text_that_may_be_an_opt_out_waits_for_a_person(twilio: Twilio) -> None:
    assert reply_of(twilio.text("wrong number")) is None
    [message] = twilio.messages()
    assert (message.intent, message.needs_review) == ("none", True)
    assert twilio.count(ConsentEvent) == 0


def test_a_line_seen_for_the_first_time_is_registered(twilio: Twilio) -> None:
    twilio.text("hello", to="+1 (415) 555-0177")
    with twilio.database.transaction() as session:
        line = session.scalars(sa.select(Line)).one()
        org = session.get(Organization, line.organization_id)
        assert (line.address, org.name if org else None) == ("+14155550177", "default")


def test_a_stop_to_a_messaging_service_stops_every_number_of_it(twilio: Twilio) -> None:
    service = "MG" + "5" * 32
    twilio.text("hello", to="+14155550101", MessagingServiceSid=service)
    twilio.text("hello", to="+14155550102", MessagingServiceSid=service)
    twilio.text("hello", to="+14155550103")
    twilio.text("please stop texting me", to="+14155550101", MessagingServiceSid=service)
    assert [twilio.status_of(line=f"+1415555010{n}") for n in (1, 2, 3)] == [
        "opted_out",
        "opted_out",
        "not_defined",
    ]
    with twilio.database.transaction() as session:
        assert session.scalars(sa.select(LineGroup.name)).all() == [service]


def test_an_organization_wide_setting_stops_every_line(
    build: Callable[..., Flask], clean_database_url: str, tmp_path: Path
) -> None:
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text(
        SHIPPED_KEYWORDS.read_text().replace("opt_out_scope: line", "opt_out_scope: organization")
    )
    database = Database(clean_database_url)
    twilio = Twilio(build(keywords_path=keywords).test_client(), database)
    twilio.text("hello", to="+14155550101")
    twilio.text("unsubscribe me", to="+14155550102")
    assert twilio.status_of(line="+14155550101") == "opted_out"
    database.dispose()


# -- refusing what is not Twilio's ---------------------------------------------------


def test_a_forged_signature_is_refused_and_nothing_is_stored(twilio: Twilio) -> None:
    params = {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "START"}
    response = twilio.post(MESSAGES, params, token="0" * 32)
    assert response.status_code == 403
    assert response.is_json and "signature does not match" in response.get_json()["message"]
    assert (twilio.count(Message), twilio.count(Line), twilio.count(ConsentEvent)) == (0, 0, 0)


def test_an_unsigned_request_is_refused(twilio: Twilio) -> None:
    response = twilio.post(MESSAGES, {"MessageSid": sid(), "From": CONTACT, "To": LINE}, sign=False)
    assert response.status_code == 403
    assert twilio.count(Message) == 0


def test_a_signed_request_without_a_message_is_a_bad_request(twilio: Twilio) -> None:
    response = twilio.post(MESSAGES, {"MessageSid": sid(), "To": LINE, "Body": "STOP"})
    assert response.status_code == 400
    assert "an inbound message needs From" in response.get_json()["message"]
    assert twilio.count(Message) == 0


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"From": " "}, "an inbound message needs From"),
        ({"To": "  "}, "an inbound message needs To"),
        ({"MessageSid": " "}, "an inbound message needs MessageSid"),
        ({"To": "hello"}, "To: 'hello' is not a valid"),
    ],
    ids=["blank-from", "blank-to", "blank-sid", "to-not-a-number"],
)
def test_a_signed_text_from_or_to_no_one_is_a_bad_request_and_stores_nothing(
    twilio: Twilio, fields: dict[str, str], says: str
) -> None:
    params = {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "STOP", **fields}
    response = twilio.post(MESSAGES, params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert says in response.get_json()["message"]
    assert (twilio.count(Message), twilio.count(Line)) == (0, 0)


def test_an_unknown_provider_is_not_found(twilio: Twilio) -> None:
    response = twilio.post("/webhooks/pigeon/messages", {"From": CONTACT})
    assert response.status_code == 404
    assert "no provider 'pigeon'; known: twilio" in response.get_json()["message"]


def test_signatures_can_be_switched_off_only_on_purpose(
    build: Callable[..., Flask], clean_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="optgate"):
        app = build(verify_signatures=False)
    assert any("WITHOUT signature checks" in r.getMessage() for r in caplog.records)
    database = Database(clean_database_url)
    twilio = Twilio(app.test_client(), database)
    response = twilio.post(
        MESSAGES, {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "x"}, sign=False
    )
    assert response.status_code == 200
    database.dispose()


def test_behind_a_proxy_the_public_url_is_what_is_checked(
    build: Callable[..., Flask], clean_database_url: str
) -> None:
    database = Database(clean_database_url)
    twilio = Twilio(build(public_url="https://sms.example.com").test_client(), database)
    public = "https://sms.example.com" + MESSAGES
    params = {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "hi"}
    assert twilio.post(MESSAGES, params, signed_url=public).status_code == 200
    params["MessageSid"] = sid()
    assert twilio.post(MESSAGES, params).status_code == 403  # signed for the internal URL
    database.dispose()


@pytest.mark.parametrize(("trusted", "expected"), [(1, 200), (0, 403)])
def test_forwarded_headers_count_only_from_trusted_proxies(
    build: Callable[..., Flask], clean_database_url: str, trusted: int, expected: int
) -> None:
    database = Database(clean_database_url)
    twilio = Twilio(build(trusted_proxies=trusted).test_client(), database)
    params = {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "hi"}
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sms.example.com"}
    response = twilio.post(
        MESSAGES, params, signed_url="https://sms.example.com" + MESSAGES, headers=forwarded
    )
    assert response.status_code == expected
    database.dispose()


def test_a_query_string_is_signed_as_it_arrived(twilio: Twilio) -> None:
    path = MESSAGES + "?org=acme&name=%27O%27Brien%27&x=a%20b"
    params = {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "hi"}
    assert twilio.post(path, params).status_code == 200


def test_an_unreachable_database_answers_503_not_2xx(
    build: Callable[..., Flask], make_settings: Callable[..., Settings]
) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/optgate"
    app = create_app(make_settings(database_url=down))
    response = Twilio(app.test_client(), Database(down)).text("STOP")
    assert response.status_code == 503
    assert response.get_json()["error"] == "ServiceUnavailable"
    app.extensions["optgate.database"].dispose()


# -- delivery receipts --------------------------------------------------------------


@pytest.fixture
def sent(twilio: Twilio) -> str:
    """An outbound message that was handed to Twilio."""
    twilio.text("hello")  # registers the line and the organisation
    return twilio.handed_over()


def outbound(twilio: Twilio, message_id: str) -> Message:
    with twilio.database.transaction() as session:
        return session.scalars(
            sa.select(Message).where(Message.provider_message_id == message_id)
        ).one()


def test_a_message_only_moves_forward(twilio: Twilio, sent: str) -> None:
    for status in ("sending", "delivered", "sent", "queued", "undelivered"):
        assert twilio.status(sent, status).status_code == 200
    assert outbound(twilio, sent).status == "delivered"
    twilio.status(sent, "read")
    assert outbound(twilio, sent).status == "read"


def test_the_same_receipt_twice_is_applied_once(twilio: Twilio, sent: str) -> None:
    twilio.status(sent, "delivered")
    twilio.status(sent, "delivered")
    assert twilio.count(Receipt) == 1


def test_a_receipt_is_stored_with_its_message(twilio: Twilio, sent: str) -> None:
    assert twilio.status(sent, "delivered").status_code == 200
    message_id = outbound(twilio, sent).id
    with twilio.database.transaction() as session:
        assert session.scalars(sa.select(Receipt.message_id)).one() == message_id


def test_a_receipt_for_an_unknown_message_is_kept(twilio: Twilio) -> None:
    assert twilio.status("SM" + "f" * 32, "delivered").status_code == 200
    with twilio.database.transaction() as session:
        receipt = session.scalars(sa.select(Receipt)).one()
        assert (receipt.message_id, receipt.status) == (None, "delivered")


def test_error_21610_is_a_carrier_opt_out(twilio: Twilio, sent: str) -> None:
    twilio.status(sent, "failed", "21610")
    assert outbound(twilio, sent).error_code == "21610"
    assert twilio.status_of() == "opted_out"
    last = twilio.history()[-1]
    assert (last["source"], last["actor"]) == ("carrier", "twilio error 21610")


def test_an_invalid_number_is_flagged_bounced_at_once(twilio: Twilio, sent: str) -> None:
    twilio.status(sent, "undelivered", "21211")
    assert twilio.history()[-1]["subject"] == "bounced"


def test_a_sender_side_error_marks_no_one(twilio: Twilio, sent: str) -> None:
    twilio.status(sent, "undelivered", "30007")
    assert twilio.history() == []
    assert outbound(twilio, sent).error_code == "30007"


def _send_and_fail(twilio: Twilio, code: str | None) -> None:
    message_id = twilio.handed_over("x")
    twilio.status(message_id, "undelivered" if code else "delivered", code)


def test_an_unreachable_handset_is_flagged_only_after_three_in_a_row(
    twilio: Twilio, sent: str
) -> None:
    bounced = [e for e in twilio.history() if e["subject"] == "bounced"]
    _send_and_fail(twilio, "30003")
    _send_and_fail(twilio, "30003")
    _send_and_fail(twilio, None)  # delivered: the count starts again
    _send_and_fail(twilio, "30003")
    _send_and_fail(twilio, "30003")
    assert [e for e in twilio.history() if e["subject"] == "bounced"] == bounced
    _send_and_fail(twilio, "30003")
    assert twilio.history()[-1]["subject"] == "bounced"


def test_a_forged_receipt_is_refused(twilio: Twilio, sent: str) -> None:
    response = twilio.post(STATUS, {"MessageSid": sent, "MessageStatus": "failed"}, sign=False)
    assert response.status_code == 403
    assert outbound(twilio, sent).status == "sent"


# -- recorded Twilio bodies, end to end ------------------------------------------------

RECORDED = [
    # (name, recorded form, reply?, contact's status afterwards, stored intent)
    ("inbound SMS", payloads.INBOUND_SMS, False, "not_defined", "none"),
    ("inbound SMS in a Messaging Service", payloads.INBOUND_SMS_IN_SERVICE, False,
     "not_defined", "none"),
    ("STOP handled by Advanced Opt-Out", payloads.INBOUND_STOP_ADVANCED, False, "opted_out",
     "opt_out"),
    ("START handled by Advanced Opt-Out", payloads.INBOUND_START_ADVANCED, False, "opted_in",
     "opt_in"),
    ("HELP handled by Advanced Opt-Out", payloads.INBOUND_HELP_ADVANCED, False, "not_defined",
     "help"),
    ("inbound MMS", payloads.INBOUND_MMS, False, "not_defined", "none"),
    ("French opt-out with emoji and accents", payloads.INBOUND_UNICODE, True, "opted_out",
     "opt_out"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("form", "replies", "status", "intent"),
    [pytest.param(*row[1:], id=row[0]) for row in RECORDED],
)
def test_recorded_twilio_bodies_end_to_end(
    twilio: Twilio,
    form: list[tuple[str, str]],
    replies: bool | None,
    status: str | None,
    intent: str | None,
) -> None:
    response = twilio.post(MESSAGES, form)
    reply = reply_of(response)
    [message] = twilio.messages()
    fields = dict(form)
    assert (message.address, message.body) == (fields["From"], fields["Body"])
    assert message.provider_message_id == fields["MessageSid"]
    if replies is not None:
        assert (reply is not None) == replies
    if status is not None:
        assert twilio.status_of(fields["From"], line=fields["To"]) == status
    if intent is not None:
        assert message.intent == intent
    if "MessagingServiceSid" in fields:
        with twilio.database.transaction() as session:
            assert session.scalars(sa.select(LineGroup.name)).one() == fields["MessagingServiceSid"]
    if fields.get("NumMedia", "0") != "0":
        assert message.meta is not None and message.meta["NumMedia"] == fields["NumMedia"]
    if "OptOutType" in fields and status != "not_defined":
        assert twilio.history(fields["From"])[-1]["source"] == "carrier"


@pytest.mark.parametrize(
    "form",
    [payloads.STATUS_DELIVERED, payloads.STATUS_UNDELIVERED, payloads.STATUS_LEGACY_SMSSTATUS],
)
def test_recorded_twilio_receipts_are_accepted(twilio: Twilio, form: list[tuple[str, str]]) -> None:
    assert twilio.post(STATUS, form).status_code == 200
    assert twilio.count(Receipt) == 1


def test_a_json_body_is_checked_through_its_body_hash(twilio: Twilio) -> None:
    import hashlib
    import json

    body = json.dumps(
        {"MessageSid": sid(), "From": CONTACT, "To": LINE, "Body": "please stop texting me"}
    )
    url = f"http://localhost{MESSAGES}?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, {})
    path = url.removeprefix("http://localhost")
    headers = {"X-Twilio-Signature": signature}
    ok = twilio.client.post(path, data=body, content_type="application/json", headers=headers)
    assert reply_of(ok) is not None
    tampered = body.replace("please stop texting me", "START")
    refused = twilio.client.post(
        path, data=tampered, content_type="application/json", headers=headers
    )
    assert refused.status_code == 403
    assert twilio.status_of() == "opted_out"


def test_a_missing_auth_token_is_said_at_start(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        database_url=clean_database_url, twilio_account_sid=None, twilio_auth_token=None
    )
    with caplog.at_level(logging.WARNING, logger="optgate"):
        app = create_app(settings)
    assert "TWILIO_AUTH_TOKEN is not set: Twilio webhooks will be refused (403)" in caplog.text
    app.extensions["optgate.database"].dispose()


@pytest.mark.parametrize(
    ("public_url", "warned"), [(None, True), ("https://sms.example.com", False)]
)
def test_a_missing_public_url_is_said_at_start(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    caplog: pytest.LogCaptureFixture,
    public_url: str | None,
    warned: bool,
) -> None:
    # Without it, sends ask for no status callbacks: no receipts, no bounce detection.
    settings = make_settings(database_url=clean_database_url, public_url=public_url)
    with caplog.at_level(logging.WARNING, logger="optgate"):
        app = create_app(settings)
    assert ("OPTGATE_PUBLIC_URL is not set: sends ask Twilio for no status callbacks" in
            caplog.text) is warned  # fmt: skip
    app.extensions["optgate.database"].dispose()


def test_a_text_that_changes_no_consent_leaves_no_consent_trace(twilio: Twilio) -> None:
    # Every inbound text clears its sender's bounce flag; for a number we never
    # knew that must not write anything on the webhook's path.
    assert reply_of(twilio.text("What time do you open on Saturday?")) is None
    assert (twilio.count(ContactAddress), twilio.count(ConsentEvent)) == (0, 0)
    assert twilio.count(Message) == 1


def test_a_provider_adapter_is_built_once_and_reused(
    make_settings: Callable[..., Settings],
) -> None:
    from app.providers import get_provider

    settings = make_settings()
    assert get_provider("twilio", settings) is get_provider("twilio", settings)
