"""The Twilio adapter's test table: one row per case, TwilioProvider called directly.

Webhooks are ``WebhookRequest`` values built from the recorded-looking bodies in
twilio_payloads.py (no Flask). Signatures are made with twilio's own
``RequestValidator.compute_signature`` over a werkzeug ``MultiDict``, the way Twilio
signs. Sends go to a local stub of Twilio's REST API.

Groups, in order:
  1. parse_inbound
  2. parse_status
  3. verify (signatures)
  4. render_reply
  5. error_effect
  6. send
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from ruamel.yaml import YAML
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app.providers import twilio as twilio_module
from app.providers.base import (
    DeliveryStatus,
    ErrorClass,
    ErrorEffect,
    ForeignWebhook,
    InboundText,
    MalformedWebhook,
    Outgoing,
    ProviderError,
    StatusUpdate,
    WebhookRequest,
)
from app.providers.twilio import TwilioProvider
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, free_port
from tests.providers.twilio_payloads import (
    CONTACT,
    CREATED_MESSAGE,
    INBOUND_HELP_ADVANCED,
    INBOUND_MMS,
    INBOUND_SMS,
    INBOUND_SMS_IN_SERVICE,
    INBOUND_START_ADVANCED,
    INBOUND_STOP_ADVANCED,
    INBOUND_UNICODE,
    LINE,
    MMS_SID,
    OUTBOUND_SID,
    SERVICE,
    SMS_SID,
    STATUS_DELIVERED,
    STATUS_LEGACY_SMSSTATUS,
    STATUS_UNDELIVERED,
    Form,
    twilio_error,
)

#: The public URL Twilio calls (and signs) for inbound texts.
MESSAGES_URL = "https://sms.example.com/webhooks/twilio/messages"
FORM_TYPE = "application/x-www-form-urlencoded"
ERROR_CODES_YAML = Path(__file__).resolve().parents[2] / "app/providers/twilio_error_codes.yaml"


@pytest.fixture
def twilio(make_settings: Callable[..., Settings]) -> TwilioProvider:
    return TwilioProvider(make_settings())


# -- building requests -------------------------------------------------------------------


def changed(form: Form, **values: str | None) -> Form:
    """``form`` with fields set (every occurrence), removed (None) or appended (new names)."""
    out = [(name, values.get(name, value)) for name, value in form]
    kept = [(name, value) for name, value in out if value is not None]
    names = {name for name, _ in form}
    return kept + [(n, v) for n, v in values.items() if v is not None and n not in names]


def without(form: Form, *names: str) -> Form:
    return [(name, value) for name, value in form if name not in names]


def form_request(
    form: Form,
    *,
    url: str = MESSAGES_URL,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> WebhookRequest:
    """A form POST as the web layer hands it over (GET: no body, no form)."""
    if method == "GET":
        return WebhookRequest(url, "GET", headers or {}, [], b"", "")
    body = urlencode(form).encode()
    return WebhookRequest(url, method, headers or {}, list(form), body, FORM_TYPE)


def json_request(
    document: object,
    *,
    url: str = MESSAGES_URL,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> WebhookRequest:
    """A JSON POST: ``document`` serialised, or taken as the raw body when it is bytes."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return WebhookRequest(url, "POST", headers or {}, [], body, content_type)


def sign(url: str, form: Form, token: str = TWILIO_TOKEN) -> str:
    """X-Twilio-Signature as Twilio computes it (repeated names included)."""
    return RequestValidator(token).compute_signature(url, MultiDict(form))


def inbound(**fields: Any) -> InboundText:
    """The InboundText of INBOUND_SMS, with ``fields`` changed."""
    values: dict[str, Any] = {
        "provider": "twilio",
        "message_id": SMS_SID,
        "sender": CONTACT,
        "recipient": LINE,
        "body": "Hi, what time do you open on Saturday?",
        "extras": {
            "AccountSid": TWILIO_SID,
            "NumSegments": "1",
            "NumMedia": "0",
            "FromCountry": "US",
            "ToCountry": "US",
        },
    }
    return InboundText(**(values | fields))


def extras(**changes: str | None) -> dict[str, str]:
    """INBOUND_SMS's extras with keys changed (None: absent)."""
    kept = dict(inbound().extras) | changes
    return {name: value for name, value in kept.items() if value is not None}


# == 1. parse_inbound ======================================================================

INBOUND_CASES = [
    pytest.param(INBOUND_SMS, inbound(), id="an SMS to a long code"),
    pytest.param(
        INBOUND_SMS_IN_SERVICE,
        inbound(service_id=SERVICE),
        id="an SMS to a number in a Messaging Service carries the service",
    ),
    pytest.param(
        INBOUND_STOP_ADVANCED,
        inbound(
            body="STOP",
            service_id=SERVICE,
            provider_action="opt_out",
            extras=extras(OptOutType="STOP"),
        ),
        id="Advanced Opt-Out STOP is an opt_out Twilio already made",
    ),
    pytest.param(
        INBOUND_START_ADVANCED,
        inbound(
            body="Start",
            service_id=SERVICE,
            provider_action="opt_in",
            extras=extras(OptOutType="START"),
        ),
        id="Advanced Opt-Out START is an opt_in",
    ),
    pytest.param(
        INBOUND_HELP_ADVANCED,
        inbound(
            body="help",
            service_id=SERVICE,
            provider_action="help",
            extras=extras(OptOutType="HELP"),
        ),
        id="Advanced Opt-Out HELP is help",
    ),
    pytest.param(
        changed(INBOUND_STOP_ADVANCED, OptOutType="stop"),
        inbound(
            body="STOP",
            service_id=SERVICE,
            provider_action="opt_out",
            extras=extras(OptOutType="stop"),
        ),
        id="OptOutType in lower case",
    ),
    pytest.param(
        changed(INBOUND_START_ADVANCED, OptOutType=" sTaRt "),
        inbound(
            body="Start",
            service_id=SERVICE,
            provider_action="opt_in",
            extras=extras(OptOutType=" sTaRt "),
        ),
        id="OptOutType in mixed case with spaces",
    ),
    pytest.param(
        changed(INBOUND_HELP_ADVANCED, OptOutType="Help"),
        inbound(
            body="help",
            service_id=SERVICE,
            provider_action="help",
            extras=extras(OptOutType="Help"),
        ),
        id="OptOutType capitalised",
    ),
    pytest.param(
        changed(INBOUND_STOP_ADVANCED, OptOutType="UNSUBSCRIBE_ALL"),
        inbound(body="STOP", service_id=SERVICE, extras=extras(OptOutType="UNSUBSCRIBE_ALL")),
        id="an OptOutType we do not know is kept but means no action",
    ),
    pytest.param(
        changed(INBOUND_STOP_ADVANCED, OptOutType=""),
        inbound(body="STOP", service_id=SERVICE),
        id="an empty OptOutType means no action and is not kept",
    ),
    pytest.param(
        INBOUND_MMS,
        inbound(
            message_id=MMS_SID,
            body="Is this the right one?",
            media_count=2,
            extras=extras(NumMedia="2"),
        ),
        id="an MMS with two pictures counts them",
    ),
    pytest.param(
        changed(INBOUND_MMS, Body=""),
        inbound(message_id=MMS_SID, body="", media_count=2, extras=extras(NumMedia="2")),
        id="an MMS without text has an empty body",
    ),
    pytest.param(
        INBOUND_UNICODE,
        inbound(body="Arrêtez 🛑 — ça suffit, merci", extras=extras(NumSegments="2")),
        id="accents and an emoji are kept as sent",
    ),
    pytest.param(
        changed(INBOUND_SMS, Body="  STOP \n"),
        inbound(body="  STOP \n"),
        id="the body is kept verbatim, whitespace included",
    ),
    pytest.param(
        without(INBOUND_SMS, "Body"),
        inbound(body=""),
        id="a missing Body is an empty body",
    ),
    pytest.param(
        without(INBOUND_SMS, "MessageSid", "SmsSid"),
        inbound(),
        id="the legacy SmsMessageSid stands in for MessageSid",
    ),
    pytest.param(
        without(INBOUND_SMS, "NumMedia"),
        inbound(extras=extras(NumMedia=None)),
        id="a missing NumMedia means no media",
    ),
    pytest.param(
        changed(INBOUND_SMS, NumMedia="two"),
        inbound(extras=extras(NumMedia="two")),
        id="a NumMedia that is not a number means no media",
    ),
    pytest.param(
        without(INBOUND_SMS, "AccountSid", "NumSegments", "FromCountry", "ToCountry"),
        inbound(extras={"NumMedia": "0"}),
        id="extras hold only the kept fields that came",
    ),
    pytest.param(
        changed(INBOUND_SMS, ChannelMetadata='{"type":"sms"}', ReferralNumMedia="0"),
        inbound(),
        id="parameters Twilio adds without notice are ignored",
    ),
    pytest.param(
        changed(INBOUND_SMS, From="whatsapp:+14155552671", To="whatsapp:+15005550006"),
        inbound(sender="whatsapp:+14155552671", recipient="whatsapp:+15005550006"),
        id="channel addresses are kept as Twilio wrote them",
    ),
    pytest.param(
        [*INBOUND_SMS, ("MediaUrl0", "https://example.com/a"), ("MediaUrl0", "x")],
        inbound(),
        id="a field we do not read may repeat",
    ),
    pytest.param(
        changed(INBOUND_SMS, Body="ST\x00OP\x00"),
        inbound(body="STOP"),
        id="NUL in the body is dropped: the STOP stays a STOP",
    ),
    pytest.param(
        changed(INBOUND_SMS, MessageSid=SMS_SID + "\x00", From="\x00" + CONTACT, To=LINE + "\x00"),
        inbound(),
        id="NUL in the ids and addresses is dropped",
    ),
    pytest.param(
        changed(
            INBOUND_STOP_ADVANCED, OptOutType="ST\x00OP", FromCountry="U\x00S", NumMedia="0\x00"
        ),
        inbound(
            body="STOP",
            service_id=SERVICE,
            provider_action="opt_out",
            extras=extras(OptOutType="STOP"),
        ),
        id="NUL in the fields kept with the message is dropped",
    ),
    pytest.param(
        changed(INBOUND_SMS, NumMedia="²"),
        inbound(extras=extras(NumMedia="²")),
        id="a NumMedia of digits int() cannot read means no media",
    ),
    pytest.param(
        changed(INBOUND_SMS, NumMedia="9" * 64),
        inbound(extras=extras(NumMedia="9" * 64)),
        id="a NumMedia no INTEGER column holds is kept as written but counts none",
    ),
    pytest.param(
        changed(INBOUND_SMS, NumMedia=str(2**31 - 1)),
        inbound(media_count=2**31 - 1, extras=extras(NumMedia=str(2**31 - 1))),
        id="the largest NumMedia an INTEGER column holds",
    ),
    pytest.param(
        changed(INBOUND_SMS, Body="停止 • توقف • СТОП • 🛑" * 10),
        inbound(body="停止 • توقف • СТОП • 🛑" * 10),
        id="other scripts in a long body",
    ),
]


@pytest.mark.parametrize(("form", "expected"), INBOUND_CASES)
def test_an_inbound_form_parses_to_the_text_it_carries(
    twilio: TwilioProvider, form: Form, expected: InboundText
) -> None:
    assert twilio.parse_inbound(form_request(form)) == expected


@pytest.mark.parametrize(("form", "expected"), INBOUND_CASES)
def test_the_same_fields_as_a_flat_json_object_parse_the_same(
    twilio: TwilioProvider, form: Form, expected: InboundText
) -> None:
    document = dict(reversed(form))  # the first value of a repeated name wins, as in a form
    assert twilio.parse_inbound(json_request(document)) == expected


MALFORMED_INBOUND = [
    pytest.param(
        without(INBOUND_SMS, "MessageSid", "SmsSid", "SmsMessageSid"),
        "MessageSid",
        id="no message sid at all",
    ),
    pytest.param(
        changed(INBOUND_SMS, MessageSid="", SmsSid="", SmsMessageSid=""),
        "MessageSid",
        id="empty message sids",
    ),
    pytest.param(without(INBOUND_SMS, "From"), "From", id="no From"),
    pytest.param(changed(INBOUND_SMS, From=""), "From", id="an empty From"),
    pytest.param(without(INBOUND_SMS, "To"), "To", id="no To"),
    pytest.param([], "MessageSid, From, To", id="an empty form names all three"),
]


@pytest.mark.parametrize(("form", "missing"), MALFORMED_INBOUND)
def test_an_inbound_form_without_a_required_field_is_malformed_naming_it(
    twilio: TwilioProvider, form: Form, missing: str
) -> None:
    with pytest.raises(MalformedWebhook, match=rf"needs {missing}$"):
        twilio.parse_inbound(form_request(form))


JSON_INBOUND = [
    pytest.param(
        json_request(dict(INBOUND_SMS), content_type="application/json; charset=utf-8"),
        inbound(),
        id="a JSON content type with a charset",
    ),
    pytest.param(
        json_request(dict(INBOUND_MMS) | {"NumMedia": 2, "NumSegments": 1}),
        inbound(
            message_id=MMS_SID,
            body="Is this the right one?",
            media_count=2,
            extras=extras(NumMedia="2"),
        ),
        id="numbers written as JSON numbers",
    ),
    pytest.param(
        json_request(dict(INBOUND_SMS) | {"MessagingServiceSid": None}),
        inbound(),
        id="a null field counts as absent",
    ),
    pytest.param(
        json_request(json.dumps(dict(INBOUND_UNICODE), ensure_ascii=False).encode()),
        inbound(body="Arrêtez 🛑 — ça suffit, merci", extras=extras(NumSegments="2")),
        id="raw UTF-8 in the body",
    ),
]


@pytest.mark.parametrize(("request_", "expected"), JSON_INBOUND)
def test_a_json_inbound_body_parses(
    twilio: TwilioProvider, request_: WebhookRequest, expected: InboundText
) -> None:
    assert twilio.parse_inbound(request_) == expected


MALFORMED_JSON = [
    pytest.param(b'{"MessageSid": "SM1", "From": ', id="truncated JSON"),
    pytest.param(b"MessageSid=SM1&From=%2B1", id="a form body labelled JSON"),
    pytest.param(b"\xff\xfe\x00garbage", id="bytes that are no text"),
    pytest.param(b'["MessageSid", "From", "To"]', id="a JSON array"),
    pytest.param(b'"STOP"', id="a JSON string"),
    pytest.param(b"", id="an empty body"),
    pytest.param(json.dumps(dict(without(INBOUND_SMS, "From"))).encode(), id="a JSON without From"),
]


@pytest.mark.parametrize("body", MALFORMED_JSON)
def test_a_json_body_that_is_not_an_inbound_text_is_malformed(
    twilio: TwilioProvider, body: bytes
) -> None:
    with pytest.raises(MalformedWebhook):
        twilio.parse_inbound(json_request(body))


# -- what no column can hold, or Twilio never sends, is refused -----------------------------

#: Every field the adapter reads and the column that bounds it (app/data/models.py).
COLUMN_LIMITS = [
    ("MessageSid", 64),
    ("SmsMessageSid", 64),
    ("SmsSid", 64),
    ("From", 320),
    ("To", 320),
    ("Body", 16_000),
    ("MessagingServiceSid", 100),
    ("AccountSid", 64),
    ("NumSegments", 64),
    ("NumMedia", 64),
    ("OptOutType", 64),
    ("FromCountry", 64),
    ("ToCountry", 64),
]
STATUS_LIMITS = [("MessageSid", 64), ("SmsSid", 64), ("MessageStatus", 20), ("ErrorCode", 16)]


def test_the_limits_are_the_columns_sizes() -> None:
    from app.data.models import LineGroup, Message, Receipt

    assert dict(COLUMN_LIMITS + STATUS_LIMITS + [("SmsStatus", 20)]) == twilio_module.FIELD_LIMITS
    assert Message.provider_message_id.type.length == Receipt.provider_message_id.type.length == 64
    assert LineGroup.name.type.length == 100
    assert Message.error_code.type.length == Receipt.error_code.type.length == 16
    assert Receipt.status.type.length == 20


@pytest.mark.parametrize(("name", "limit"), COLUMN_LIMITS)
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_an_inbound_field_longer_than_its_column_is_refused_naming_it(
    make_settings: Callable[..., Settings], name: str, limit: int, as_json: bool
) -> None:
    # No account configured: a long AccountSid is refused for its length alone.
    twilio = TwilioProvider(make_settings(twilio_account_sid=None, twilio_auth_token=None))
    # One character too many, after the NUL that does not count.
    form = changed(INBOUND_STOP_ADVANCED, **{name: "S" * (limit + 1) + "\x00"})
    request = json_request(dict(form)) if as_json else form_request(form)
    expected = rf"^{name} has {limit + 1} characters; optgate keeps at most {limit}$"
    with pytest.raises(MalformedWebhook, match=expected):
        twilio.parse_inbound(request)
    # At the limit, it is taken.
    at_limit = changed(INBOUND_STOP_ADVANCED, **{name: "S" * limit + "\x00"})
    assert twilio.parse_inbound(form_request(at_limit))


@pytest.mark.parametrize(("name", "limit"), STATUS_LIMITS)
def test_a_receipt_field_longer_than_its_column_is_refused_naming_it(
    twilio: TwilioProvider, name: str, limit: int
) -> None:
    form = changed(STATUS_UNDELIVERED, **{name: "3" * (limit + 1)})
    with pytest.raises(MalformedWebhook, match=rf"^{name} has {limit + 1} characters.* {limit}$"):
        twilio.parse_status(form_request(form))


SINGLE_FIELDS = [name for name, _ in COLUMN_LIMITS]


@pytest.mark.parametrize("name", SINGLE_FIELDS)
def test_a_field_twilio_sends_once_is_refused_when_it_repeats(
    twilio: TwilioProvider, name: str
) -> None:
    form = [*changed(INBOUND_STOP_ADVANCED, **{name: "STOP"}), (name, "START")]
    with pytest.raises(MalformedWebhook, match=rf"^{name} comes more than once"):
        twilio.parse_inbound(form_request(form))


@pytest.mark.parametrize("name", ["MessageSid", "MessageStatus", "SmsStatus", "ErrorCode"])
def test_a_receipt_field_is_refused_when_it_repeats(twilio: TwilioProvider, name: str) -> None:
    form = [*STATUS_UNDELIVERED, (name, "delivered")]
    with pytest.raises(MalformedWebhook, match=rf"^{name} comes more than once"):
        twilio.parse_status(form_request(form))


@pytest.mark.parametrize(
    ("name", "members"),
    [
        pytest.param("Body", '"Body": "START", "Body": "STOP"', id="Body twice"),
        pytest.param("From", '"From": "+14155550000", "From": "+14155552671"', id="From twice"),
        pytest.param("OptOutType", '"OptOutType": null, "OptOutType": "START"', id="null, value"),
    ],
)
def test_a_repeated_key_in_a_json_object_is_refused(
    twilio: TwilioProvider, name: str, members: str
) -> None:
    # json.loads alone keeps the last of them: a forged one could hide behind a signed one.
    rest = json.dumps(dict(without(INBOUND_SMS, name)))
    body = ("{" + members + ", " + rest[1:]).encode()
    with pytest.raises(MalformedWebhook, match=rf"^{name} comes more than once"):
        twilio.parse_inbound(json_request(body))


NOT_FLAT = [
    pytest.param({"Body": {"text": "START"}}, id="an object value"),
    pytest.param({"Body": ["START", "STOP"]}, id="a list value"),
    pytest.param({"AddOns": {"results": {}}}, id="an object in a field we do not read"),
    pytest.param({"Body": [[[]]]}, id="nested lists"),
]


@pytest.mark.parametrize("fields", NOT_FLAT)
def test_a_json_object_that_is_not_flat_is_refused(
    twilio: TwilioProvider, fields: dict[str, Any]
) -> None:
    with pytest.raises(MalformedWebhook, match="expected a flat JSON object"):
        twilio.parse_inbound(json_request(dict(INBOUND_SMS) | fields))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100,000 nested lists"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="100,000 nested objects"),
        pytest.param(b'{"Body": ' + b"[" * 50_000, id="nested and never closed"),
    ],
)
def test_deeply_nested_json_is_refused_not_a_recursion_error(
    twilio: TwilioProvider, body: bytes
) -> None:
    with pytest.raises(MalformedWebhook, match="expected a flat JSON object"):
        twilio.parse_inbound(json_request(body))


def test_json_numbers_are_kept_as_written_however_long(twilio: TwilioProvider) -> None:
    # int() of more than 4,300 digits raises ValueError; the limit refuses it first.
    document = dict(INBOUND_SMS) | {"NumMedia": 10**40}
    assert twilio.parse_inbound(json_request(document)).extras["NumMedia"] == "1" + "0" * 40
    rest = json.dumps(dict(without(INBOUND_SMS, "NumSegments")))
    huge = rest[:-1] + ', "NumSegments": ' + "9" * 5000 + "}"
    with pytest.raises(MalformedWebhook, match="NumSegments has 5000 characters"):
        twilio.parse_inbound(json_request(huge.encode()))


def test_half_a_surrogate_pair_in_json_is_stored_as_a_replacement(twilio: TwilioProvider) -> None:
    body = json.dumps(dict(changed(INBOUND_SMS, Body="STOP"))).replace("STOP", "STOP \\ud83d")
    text = twilio.parse_inbound(json_request(body.encode()))
    assert text.body == "STOP ?"
    text.body.encode("utf-8")  # a database can store it


ACCOUNT_CASES = [
    pytest.param(TWILIO_SID, None, id="our account"),
    pytest.param(TWILIO_SID.upper(), None, id="our account in capitals"),
    pytest.param(None, None, id="no AccountSid: the signature with our token vouches"),
    pytest.param("", None, id="an empty AccountSid"),
    pytest.param("AC" + "f" * 32, "TWILIO_ACCOUNT_SID", id="another account"),
    pytest.param("AC" + "f" * 32 + "\x00", "TWILIO_ACCOUNT_SID", id="another account with NUL"),
]


@pytest.mark.parametrize(("account", "refused"), ACCOUNT_CASES)
def test_a_webhook_for_another_account_is_foreign(
    twilio: TwilioProvider, account: str | None, refused: str | None
) -> None:
    inbound_request = form_request(changed(INBOUND_SMS, AccountSid=account))
    status_request = form_request(changed(STATUS_DELIVERED, AccountSid=account))
    for parse, request_ in (
        (twilio.parse_inbound, inbound_request),
        (twilio.parse_status, status_request),
    ):
        if refused is None:
            parse(request_)
        else:
            with pytest.raises(ForeignWebhook, match=refused):
                parse(request_)


def test_without_a_configured_account_any_account_is_taken(
    make_settings: Callable[..., Settings],
) -> None:
    # Signatures are off (local tests): no account to compare with.
    twilio = TwilioProvider(make_settings(twilio_account_sid=None, twilio_auth_token=None))
    twilio.parse_inbound(form_request(changed(INBOUND_SMS, AccountSid="AC" + "f" * 32)))


# == 2. parse_status =======================================================================

#: Every word Twilio's MessageStatus enum has (docs/compliance.md, Delivery receipts), and
#: one it has not.
STATUS_WORDS = [
    ("accepted", DeliveryStatus.QUEUED),
    ("scheduled", DeliveryStatus.QUEUED),
    ("queued", DeliveryStatus.QUEUED),
    ("sending", DeliveryStatus.SENDING),
    ("sent", DeliveryStatus.SENT),
    ("delivered", DeliveryStatus.DELIVERED),
    ("partially_delivered", DeliveryStatus.DELIVERED),
    ("undelivered", DeliveryStatus.UNDELIVERED),
    ("failed", DeliveryStatus.FAILED),
    ("canceled", DeliveryStatus.FAILED),
    ("read", DeliveryStatus.READ),
    # Inbound words: never a receipt of ours, so no delivery status.
    ("receiving", None),
    ("received", None),
    ("teleported", None),
]


def receipt(**fields: Any) -> StatusUpdate:
    """The StatusUpdate of STATUS_DELIVERED, with ``fields`` changed."""
    values: dict[str, Any] = {
        "provider": "twilio",
        "message_id": OUTBOUND_SID,
        "raw_status": "delivered",
        "status": DeliveryStatus.DELIVERED,
        "recipient": CONTACT,
        "sender": LINE,
    }
    return StatusUpdate(**(values | fields))


STATUS_CASES = [
    *(
        pytest.param(
            changed(STATUS_DELIVERED, MessageStatus=word, SmsStatus=word),
            receipt(raw_status=word, status=status),
            id=f"{word} is {status.value if status else 'no status'}",
        )
        for word, status in STATUS_WORDS
    ),
    pytest.param(
        changed(STATUS_DELIVERED, MessageStatus="Delivered", SmsStatus="Delivered"),
        receipt(),
        id="the word is read in any case and kept lower-cased",
    ),
    pytest.param(
        STATUS_UNDELIVERED,
        receipt(raw_status="undelivered", status=DeliveryStatus.UNDELIVERED, error_code="30003"),
        id="ErrorCode 30003 is kept",
    ),
    pytest.param(
        changed(STATUS_UNDELIVERED, ErrorCode=" 30007 "),
        receipt(raw_status="undelivered", status=DeliveryStatus.UNDELIVERED, error_code="30007"),
        id="ErrorCode is stripped",
    ),
    pytest.param(
        changed(STATUS_UNDELIVERED, ErrorCode="0"),
        receipt(raw_status="undelivered", status=DeliveryStatus.UNDELIVERED),
        id="ErrorCode 0 means none",
    ),
    pytest.param(
        changed(STATUS_UNDELIVERED, ErrorCode=""),
        receipt(raw_status="undelivered", status=DeliveryStatus.UNDELIVERED),
        id="an empty ErrorCode means none",
    ),
    pytest.param(STATUS_DELIVERED, receipt(), id="no ErrorCode means none"),
    pytest.param(
        STATUS_LEGACY_SMSSTATUS,
        receipt(raw_status="sent", status=DeliveryStatus.SENT),
        id="SmsStatus counts when MessageStatus is absent",
    ),
    pytest.param(
        changed(STATUS_DELIVERED, MessageStatus="", SmsStatus="sent"),
        receipt(raw_status="sent", status=DeliveryStatus.SENT),
        id="SmsStatus counts when MessageStatus is empty",
    ),
    pytest.param(
        changed(STATUS_DELIVERED, SmsStatus="sent"),
        receipt(),
        id="MessageStatus wins over SmsStatus",
    ),
    pytest.param(
        without(STATUS_DELIVERED, "MessageSid"),
        receipt(),
        id="the legacy SmsSid stands in for MessageSid",
    ),
    pytest.param(
        without(STATUS_DELIVERED, "To", "From"),
        receipt(recipient=None, sender=None),
        id="To and From are optional",
    ),
    pytest.param(
        changed(STATUS_DELIVERED, ChannelPrefix="sms", ChannelStatusMessage="ok"),
        receipt(),
        id="parameters Twilio adds without notice are ignored",
    ),
]


@pytest.mark.parametrize(("form", "expected"), STATUS_CASES)
def test_a_status_callback_parses_to_its_receipt(
    twilio: TwilioProvider, form: Form, expected: StatusUpdate
) -> None:
    assert twilio.parse_status(form_request(form)) == expected


def test_a_json_status_callback_parses_like_the_form(twilio: TwilioProvider) -> None:
    document = dict(STATUS_UNDELIVERED) | {"ErrorCode": 30003}

    assert twilio.parse_status(json_request(document)) == receipt(
        raw_status="undelivered", status=DeliveryStatus.UNDELIVERED, error_code="30003"
    )


MALFORMED_STATUS = [
    pytest.param(without(STATUS_DELIVERED, "MessageSid", "SmsSid"), id="no sid"),
    pytest.param(changed(STATUS_DELIVERED, MessageSid="", SmsSid=""), id="empty sids"),
    pytest.param(without(STATUS_DELIVERED, "MessageStatus", "SmsStatus"), id="no status"),
    pytest.param(changed(STATUS_DELIVERED, MessageStatus=" ", SmsStatus=""), id="blank status"),
    pytest.param([], id="an empty form"),
]


@pytest.mark.parametrize("form", MALFORMED_STATUS)
def test_a_status_callback_without_sid_or_status_is_malformed(
    twilio: TwilioProvider, form: Form
) -> None:
    with pytest.raises(MalformedWebhook, match="MessageSid and MessageStatus"):
        twilio.parse_status(form_request(form))


# == 3. verify =============================================================================

OTHER_TOKEN = "0123456789abcdef" * 2
QUERY_URL = "https://sms.example.com/webhooks/twilio/messages?org=acme&x=%27a%27"
MEDIA_A = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
MEDIA_B = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2"
REPEATED = [*INBOUND_SMS, ("MediaUrl", MEDIA_B), ("MediaUrl", MEDIA_A)]
WITH_PASSWORD = "https://optgate:s3cret-pass@sms.example.com/webhooks/twilio/messages"
#: A signature of the right length and alphabet that Twilio never made.
FORGED = base64.b64encode(b"\x13" * 20).decode()


@dataclass(frozen=True)
class Signed:
    """Twilio signed ``url`` and ``form`` with ``token``; we received ``received_*``.

    ``signature`` replaces the computed X-Twilio-Signature ("" sends an empty header,
    None sends none). ``received_*`` default to what Twilio signed.
    """

    url: str = MESSAGES_URL
    form: Form = field(default_factory=lambda: list(INBOUND_SMS))
    token: str = TWILIO_TOKEN
    received_url: str | None = None
    received_form: Form | None = None
    signature: str | None = "computed"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)

    def request(self) -> WebhookRequest:
        headers = dict(self.headers)
        if self.signature == "computed":
            headers["x-twilio-signature"] = sign(self.url, self.form, self.token)
        elif self.signature is not None:
            headers["x-twilio-signature"] = self.signature
        return form_request(
            self.form if self.received_form is None else self.received_form,
            url=self.url if self.received_url is None else self.received_url,
            headers=headers,
            method=self.method,
        )


SIGNATURE_CASES = [
    pytest.param(Signed(), True, id="a form Twilio signed"),
    pytest.param(Signed(form=INBOUND_SMS_IN_SERVICE), True, id="a Messaging Service inbound"),
    pytest.param(Signed(form=STATUS_UNDELIVERED), True, id="a status callback"),
    pytest.param(Signed(signature=FORGED), False, id="a forged signature"),
    pytest.param(Signed(signature=None), False, id="no signature header"),
    pytest.param(Signed(signature=""), False, id="an empty signature header"),
    pytest.param(
        Signed(signature=sign(MESSAGES_URL, INBOUND_SMS)[:-2]), False, id="a truncated signature"
    ),
    pytest.param(Signed(token=OTHER_TOKEN), False, id="signed with another token"),
    pytest.param(
        Signed(received_form=changed(INBOUND_SMS, Body="STOP")),
        False,
        id="the Body changed after signing",
    ),
    pytest.param(
        Signed(received_form=changed(INBOUND_SMS, From="+14155550000")),
        False,
        id="From changed after signing",
    ),
    pytest.param(
        Signed(received_form=[*INBOUND_SMS, ("OptOutType", "STOP")]),
        False,
        id="a parameter added after signing",
    ),
    pytest.param(
        Signed(received_form=without(INBOUND_SMS, "FromCity")),
        False,
        id="a parameter dropped after signing",
    ),
    pytest.param(
        Signed(received_form=changed(INBOUND_SMS, Body="Hi, what time do you open on Saturday? ")),
        False,
        id="whitespace added to a value after signing",
    ),
    pytest.param(
        Signed(received_form=list(reversed(INBOUND_SMS))),
        True,
        id="the same parameters in another order",
    ),
    pytest.param(
        Signed(form=changed(INBOUND_SMS, Body="")), True, id="an empty value is signed too"
    ),
    pytest.param(
        Signed(form=changed(INBOUND_SMS, ChannelMetadata='{"a": 1}')),
        True,
        id="a parameter Twilio added without notice is signed like the rest",
    ),
    pytest.param(Signed(url=QUERY_URL), True, id="a URL with a query string, as called"),
    pytest.param(
        Signed(url=QUERY_URL, received_url=MESSAGES_URL), False, id="the query string dropped"
    ),
    pytest.param(
        Signed(url=QUERY_URL, received_url=QUERY_URL.replace("%27", "'")),
        False,
        id="the query string decoded",
    ),
    pytest.param(
        Signed(url=QUERY_URL, received_url=f"{MESSAGES_URL}?x=%27a%27&org=acme"),
        False,
        id="the query parameters reordered",
    ),
    pytest.param(
        Signed(url=QUERY_URL, received_url=f"{QUERY_URL}&org=evil"),
        False,
        id="a query parameter added",
    ),
    pytest.param(
        Signed(url=f"{MESSAGES_URL}?org=acme&Body=hi", form=[], method="GET"),
        True,
        id="a GET: the query is all that is signed",
    ),
    pytest.param(Signed(form=REPEATED), True, id="a repeated name with two values"),
    pytest.param(
        Signed(form=REPEATED, received_form=[*INBOUND_SMS, ("MediaUrl", MEDIA_A)]),
        False,
        id="a repeated name collapsed to one value, as dict(request.form) does",
    ),
    pytest.param(
        Signed(form=REPEATED, received_form=changed(REPEATED, MediaUrl=MEDIA_A)),
        False,
        id="one of two repeated values changed",
    ),
    pytest.param(
        Signed(received_url="https://sms.example.com:443/webhooks/twilio/messages"),
        True,
        id="signed without the port, received with :443",
    ),
    pytest.param(
        Signed(
            url="https://sms.example.com:443/webhooks/twilio/messages", received_url=MESSAGES_URL
        ),
        True,
        id="signed with :443, received without",
    ),
    pytest.param(
        Signed(url=QUERY_URL, received_url=QUERY_URL.replace(".com/", ".com:443/")),
        True,
        id="the port variants with a query string",
    ),
    pytest.param(
        Signed(
            url="http://sms.example.com/webhooks/twilio/messages",
            received_url="http://sms.example.com:80/webhooks/twilio/messages",
        ),
        True,
        id="http without the port, received with :80",
    ),
    pytest.param(
        Signed(
            url="https://sms.example.com:8443/webhooks/twilio/messages",
            received_url=MESSAGES_URL,
        ),
        False,
        id="a non-standard port is part of what is signed",
    ),
    pytest.param(
        Signed(received_url="http://10.0.0.5:8000/webhooks/twilio/messages"),
        False,
        id="behind a proxy, the internal URL is refused",
    ),
    pytest.param(
        Signed(received_url="http://sms.example.com/webhooks/twilio/messages"),
        False,
        id="behind a proxy, http for https is refused",
    ),
    pytest.param(
        Signed(received_url="https://other.example.com/webhooks/twilio/messages"),
        False,
        id="another host",
    ),
    pytest.param(
        Signed(received_url=MESSAGES_URL + "/"), False, id="a trailing slash added to the path"
    ),
    pytest.param(Signed(form=INBOUND_UNICODE), True, id="accents and an emoji in the Body"),
    pytest.param(
        Signed(form=INBOUND_UNICODE, received_form=changed(INBOUND_UNICODE, Body="Arrêtez 🛑")),
        False,
        id="a non-ASCII Body changed after signing",
    ),
    pytest.param(
        Signed(headers={"x-twilio-webhooks-signature-settings": "algorithm=HMAC_SHA1"}),
        True,
        id="HMAC_SHA1 named in the signature settings",
    ),
    pytest.param(
        Signed(headers={"x-twilio-webhooks-signature-settings": "algorithm=HMAC_MD5"}),
        False,
        id="an algorithm the validator does not know",
    ),
    # HTTP basic auth in the URL (OPTGATE_PUBLIC_URL=https://user:pass@host): Twilio's
    # docs do not say whether it signs the URL with or without the credentials.
    pytest.param(
        Signed(url=WITH_PASSWORD), True, id="basic auth: signed with the credentials in the URL"
    ),
    pytest.param(
        Signed(received_url=WITH_PASSWORD),
        True,
        id="basic auth: signed without the credentials",
    ),
    pytest.param(
        Signed(url=WITH_PASSWORD.replace("s3cret", "other"), received_url=WITH_PASSWORD),
        False,
        id="basic auth: signed with another password",
    ),
    pytest.param(
        Signed(
            url=WITH_PASSWORD.replace("sms.example.com", "evil.example.com"),
            received_url=WITH_PASSWORD,
        ),
        False,
        id="basic auth: signed for another host",
    ),
    pytest.param(
        Signed(received_url="http://[/webhooks/twilio/messages"),
        False,
        id="a URL urllib cannot read (a Host header of '[')",
    ),
]


@pytest.mark.parametrize(("signed", "expected"), SIGNATURE_CASES)
def test_verify_accepts_only_what_twilio_signed(
    twilio: TwilioProvider, signed: Signed, expected: bool
) -> None:
    assert twilio.verify(signed.request()) is expected


def json_signed(
    body: bytes, *, hashed: bytes | None = None, url: str = MESSAGES_URL
) -> tuple[str, str]:
    """The URL Twilio calls for a JSON ``body`` (bodySHA256 of ``hashed``), and its signature.

    Twilio signs the URL only: no parameters are appended.
    """
    digest = hashlib.sha256(body if hashed is None else hashed).hexdigest()
    separator = "&" if "?" in url else "?"
    signed_url = f"{url}{separator}bodySHA256={digest}"
    return signed_url, RequestValidator(TWILIO_TOKEN).compute_signature(signed_url, {})


JSON_BODY = json.dumps(dict(INBOUND_SMS)).encode()
DIGEST = hashlib.sha256(JSON_BODY).hexdigest()
UNICODE_JSON_BODY = json.dumps(dict(INBOUND_UNICODE), ensure_ascii=False).encode()


def json_case(
    body: bytes,
    *,
    hashed: bytes | None = None,
    received: bytes | None = None,
    url: str = MESSAGES_URL,
    received_url: Callable[[str], str] = lambda url: url,
    content_type: str = "application/json",
) -> WebhookRequest:
    signed_url, signature = json_signed(body, hashed=hashed, url=url)
    return json_request(
        body if received is None else received,
        url=received_url(signed_url),
        headers={"x-twilio-signature": signature},
        content_type=content_type,
    )


JSON_SIGNATURE_CASES = [
    pytest.param(json_case(JSON_BODY), True, id="a JSON body matching bodySHA256"),
    pytest.param(
        json_case(JSON_BODY, content_type="application/json; charset=utf-8"),
        True,
        id="a JSON content type with a charset",
    ),
    pytest.param(json_case(UNICODE_JSON_BODY), True, id="raw UTF-8 and an emoji in the JSON"),
    pytest.param(json_case(JSON_BODY, url=QUERY_URL), True, id="bodySHA256 after a query"),
    pytest.param(
        json_case(JSON_BODY, received=JSON_BODY.replace(b"Saturday", b"Sunday")),
        False,
        id="the JSON body tampered with",
    ),
    pytest.param(
        json_case(JSON_BODY, received=JSON_BODY + b" "),
        False,
        id="whitespace added to the JSON body",
    ),
    pytest.param(
        json_case(JSON_BODY, received_url=lambda url: url.replace("bodySHA256=", "bodySHA256=0")),
        False,
        id="bodySHA256 changed in the URL",
    ),
    pytest.param(
        json_case(JSON_BODY, received_url=lambda url: url.split("?")[0]),
        False,
        id="bodySHA256 dropped from the URL",
    ),
    pytest.param(
        json_case(
            JSON_BODY,
            received=JSON_BODY.replace(b"Saturday", b"Sunday"),
            content_type="text/plain",
        ),
        False,
        id="the JSON body tampered with and sent as text/plain",
    ),
    # A JSON body counts only under a bodySHA256 the signature covers: a signature over a
    # URL without parameters (any signed request that had none) vouches for no body.
    pytest.param(
        json_request(JSON_BODY, headers={"x-twilio-signature": sign(MESSAGES_URL, [])}),
        False,
        id="a JSON body under a signed URL without bodySHA256",
    ),
    pytest.param(
        json_request(
            JSON_BODY,
            url=MESSAGES_URL + "?bodySHA256=",
            headers={"x-twilio-signature": sign(MESSAGES_URL + "?bodySHA256=", [])},
        ),
        False,
        id="a JSON body under a signed empty bodySHA256",
    ),
    pytest.param(
        json_request(
            JSON_BODY,
            url=QUERY_URL,
            headers={"x-twilio-signature": sign(QUERY_URL, [])},
            content_type="application/json; charset=utf-8",
        ),
        False,
        id="a JSON body under a signed URL with another query and no bodySHA256",
    ),
    pytest.param(
        json_request(
            JSON_BODY,
            url=(twice := f"{MESSAGES_URL}?bodySHA256={DIGEST}&bodySHA256={DIGEST}"),
            headers={"x-twilio-signature": sign(twice, [])},
        ),
        False,
        id="bodySHA256 twice: which one counts is a guess",
    ),
    pytest.param(
        json_request(
            JSON_BODY,
            url=(accented := f"{MESSAGES_URL}?bodySHA256={DIGEST}%C3%A9"),
            headers={"x-twilio-signature": sign(accented, [])},
        ),
        False,
        id="a signed bodySHA256 with a non-ASCII character",
    ),
]


@pytest.mark.parametrize(("request_", "expected"), JSON_SIGNATURE_CASES)
def test_verify_checks_a_json_body_against_its_signed_sha256(
    twilio: TwilioProvider, request_: WebhookRequest, expected: bool
) -> None:
    assert twilio.verify(request_) is expected


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(Signed().request(), id="a signed form"),
        pytest.param(Signed(url=QUERY_URL).request(), id="a signed URL with a query"),
        pytest.param(Signed(signature=None).request(), id="no signature"),
        pytest.param(Signed(signature="").request(), id="an empty signature"),
        pytest.param(json_case(JSON_BODY), id="a signed JSON body"),
    ],
)
def test_without_an_auth_token_nothing_verifies(
    make_settings: Callable[..., Settings], request_: WebhookRequest
) -> None:
    twilio = TwilioProvider(make_settings(twilio_account_sid=None, twilio_auth_token=None))

    assert twilio.verify(request_) is False


# == 4. render_reply =======================================================================

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, EMPTY_TWIML, id="no reply is an empty Response"),
        pytest.param("", EMPTY_TWIML, id="an empty text is no reply"),
        pytest.param(
            "You are unsubscribed. Reply START to resubscribe.",
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            "You are unsubscribed. Reply START to resubscribe.</Message></Response>",
            id="a text is one Message",
        ),
        pytest.param(
            "A & B <ok>",
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            "A &amp; B &lt;ok&gt;</Message></Response>",
            id="markup in the text is escaped",
        ),
    ],
)
def test_render_reply_writes_twiml(twilio: TwilioProvider, text: str | None, expected: str) -> None:
    reply = twilio.render_reply(text)

    assert reply.body == expected
    assert reply.content_type == "application/xml"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("A & B <ok>", id="ampersand and angle brackets"),
        pytest.param("Say \"yes\" or 'no' ]]> <![CDATA[", id="quotes and CDATA markers"),
        pytest.param("Vous êtes désabonné ✅", id="accents and an emoji"),
        pytest.param("Line one\nLine two", id="two lines"),
        pytest.param("<Response><Message>injected</Message></Response>", id="TwiML in the text"),
        pytest.param("Reply\tSTOP to end", id="a tab"),
        pytest.param(
            "Reply\x0bSTOP to end\x07",
            id="control characters XML forbids",
        ),
    ],
)
def test_a_reply_text_comes_back_as_one_message_read_by_an_xml_parser(
    twilio: TwilioProvider, text: str
) -> None:
    root = ET.fromstring(twilio.render_reply(text).body.encode("utf-8"))

    # Characters XML 1.0 forbids are left out: the TwiML must stay readable.
    readable = "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)
    assert root.tag == "Response"
    assert [(child.tag, child.text) for child in root] == [("Message", readable)]


# == 5. error_effect =======================================================================


def yaml_codes() -> list[Any]:
    """One row per code in twilio_error_codes.yaml, read from the file itself."""
    document = YAML(typ="safe").load(ERROR_CODES_YAML.read_text(encoding="utf-8"))
    window = document["window_days"]
    return [
        pytest.param(
            str(code),
            ErrorEffect(
                kind=ErrorClass(entry["class"]),
                meaning=entry["meaning"],
                after=entry.get("after", 1),
                window_days=window,
            ),
            id=f"{code} is {entry['class']} after {entry.get('after', 1)}",
        )
        for code, entry in document["codes"].items()
    ]


YAML_CODES = yaml_codes()


def test_the_error_table_is_the_file_the_adapter_loads() -> None:
    assert twilio_module.ERROR_CODES_FILE.resolve() == ERROR_CODES_YAML
    assert len(YAML_CODES) >= 10


@pytest.mark.parametrize(("code", "expected"), YAML_CODES)
def test_error_effect_gives_each_listed_code_its_class_and_threshold(
    twilio: TwilioProvider, code: str, expected: ErrorEffect
) -> None:
    assert twilio.error_effect(code) == expected


@pytest.mark.parametrize(
    ("code", "kind", "after"),
    [
        pytest.param("21610", ErrorClass.OPTED_OUT, 1, id="21610 replied STOP is an opt-out"),
        pytest.param("30004", ErrorClass.OPTED_OUT, 1, id="30004 blocked is an opt-out"),
        pytest.param("21211", ErrorClass.INVALID, 1, id="21211 invalid To bounces at once"),
        pytest.param("30005", ErrorClass.INVALID, 2, id="30005 unknown handset bounces at 2"),
        pytest.param("30003", ErrorClass.UNREACHABLE, 3, id="30003 unreachable bounces at 3"),
        pytest.param("30007", ErrorClass.SENDER, 1, id="30007 spam filter is our side"),
    ],
)
def test_the_codes_the_suppression_policy_rests_on_keep_their_meaning(
    twilio: TwilioProvider, code: str, kind: ErrorClass, after: int
) -> None:
    effect = twilio.error_effect(code)

    assert (effect.kind, effect.after) == (kind, after)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("99999", id="a code nobody listed"),
        pytest.param("30001", id="queue overflow, not listed"),
        pytest.param("0", id="zero"),
        pytest.param("", id="an empty code"),
    ],
)
def test_an_unknown_error_code_is_unknown_and_marks_nobody(
    twilio: TwilioProvider, code: str
) -> None:
    effect = twilio.error_effect(code)

    assert effect.kind is ErrorClass.UNKNOWN
    assert effect.after == 1


# == 6. send ===============================================================================


@dataclass
class Seen:
    """A request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]]


@dataclass
class TwilioStub:
    """A local stand-in for api.twilio.com: records requests, answers as told."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    status: int = 201
    body: bytes = json.dumps(CREATED_MESSAGE).encode()
    content_type: str = "application/json"
    delay: float = 0.0

    def answer(self, status: int, body: object, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.content_type = content_type


@pytest.fixture
def stub() -> Iterator[TwilioStub]:
    stub = TwilioStub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            stub.requests.append(
                Seen(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    form=parse_qsl(body, keep_blank_values=True),
                )
            )
            time.sleep(stub.delay)
            self.send_response(stub.status)
            self.send_header("Content-Type", stub.content_type)
            self.send_header("Content-Length", str(len(stub.body)))
            self.end_headers()
            self.wfile.write(stub.body)

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client gave up (timeout rows): nothing to report

    server = Server(("127.0.0.1", free_port()), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sender(make_settings: Callable[..., Settings], stub: TwilioStub) -> TwilioProvider:
    return TwilioProvider(make_settings(twilio_api_url=stub.url))


MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
CALLBACK = "https://sms.example.com/webhooks/twilio/status"
BASIC_AUTH = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()

SEND_CASES = [
    pytest.param(
        Outgoing(LINE, CONTACT, "Your code is 1234", status_callback=CALLBACK),
        {"To": CONTACT, "From": LINE, "Body": "Your code is 1234", "StatusCallback": CALLBACK},
        id="from a number, with a status callback",
    ),
    pytest.param(
        Outgoing(LINE, CONTACT, "Your code is 1234", status_callback=CALLBACK, service_id=SERVICE),
        {
            "To": CONTACT,
            "MessagingServiceSid": SERVICE,
            "Body": "Your code is 1234",
            "StatusCallback": CALLBACK,
        },
        id="through a Messaging Service, which picks the number",
    ),
    pytest.param(
        Outgoing(LINE, CONTACT, "Your code is 1234"),
        {"To": CONTACT, "From": LINE, "Body": "Your code is 1234"},
        id="without a status callback",
    ),
    pytest.param(
        Outgoing(LINE, CONTACT, "Vous êtes désabonné ✅ & <rien> d'autre"),
        {"To": CONTACT, "From": LINE, "Body": "Vous êtes désabonné ✅ & <rien> d'autre"},
        id="a body with accents, an emoji and markup",
    ),
]


@pytest.mark.parametrize(("message", "expected_form"), SEND_CASES)
def test_send_posts_the_message_to_twilio_and_returns_its_sid(
    sender: TwilioProvider, stub: TwilioStub, message: Outgoing, expected_form: dict[str, str]
) -> None:
    assert sender.send(message) == OUTBOUND_SID

    [seen] = stub.requests
    assert (seen.method, seen.path) == ("POST", MESSAGES_PATH)
    assert seen.headers["authorization"] == BASIC_AUTH
    assert dict(seen.form) == expected_form
    assert len(seen.form) == len(expected_form), "no name sent twice"


SEND_ERRORS = [
    pytest.param(
        400,
        twilio_error(21610, "Attempt to send to unsubscribed recipient", 400),
        "application/json",
        True,
        "21610",
        id="400 21610 unsubscribed recipient is permanent",
    ),
    pytest.param(
        400,
        twilio_error(21211, "Invalid 'To' Phone Number: +1415555", 400),
        "application/json",
        True,
        "21211",
        id="400 21211 invalid To is permanent",
    ),
    pytest.param(
        401,
        twilio_error(20003, "Authenticate", 401),
        "application/json",
        True,
        "20003",
        id="401 20003 bad credentials is permanent",
    ),
    pytest.param(
        429,
        twilio_error(20429, "Too Many Requests", 429),
        "application/json",
        False,
        "20429",
        id="429 too many requests is worth retrying",
    ),
    pytest.param(
        500,
        twilio_error(20500, "Internal Server Error", 500),
        "application/json",
        False,
        "20500",
        id="500 is worth retrying",
    ),
    pytest.param(
        503,
        twilio_error(20503, "Service Unavailable", 503),
        "application/json",
        False,
        "20503",
        id="503 is worth retrying",
    ),
    pytest.param(
        502,
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "text/html",
        False,
        None,
        id="502 HTML page from a load balancer is worth retrying, with no code",
    ),
    pytest.param(
        400,
        {
            "type": "https://www.twilio.com/docs/errors/21610",
            "title": "Attempt to send to unsubscribed recipient",
            "status": 400,
            "code": 21610,
            "detail": "The recipient replied STOP to this number",
        },
        "application/problem+json",
        True,
        "21610",
        id="400 21610 as an RFC 9457 problem is permanent",
    ),
]


@pytest.mark.parametrize(("status", "body", "content_type", "permanent", "code"), SEND_ERRORS)
def test_a_refused_send_raises_provider_error_saying_whether_to_retry(
    sender: TwilioProvider,
    stub: TwilioStub,
    status: int,
    body: object,
    content_type: str,
    permanent: bool,
    code: str | None,
) -> None:
    stub.answer(status, body, content_type)

    with pytest.raises(ProviderError) as raised:
        sender.send(Outgoing(LINE, CONTACT, "Your code is 1234"))

    assert (raised.value.permanent, raised.value.code) == (permanent, code)
    assert len(stub.requests) == 1, "one send, one request: no retry that could double-send"
    assert TWILIO_TOKEN not in str(raised.value)


def test_a_send_to_a_port_nobody_listens_on_is_worth_retrying_and_surely_not_sent(
    make_settings: Callable[..., Settings],
) -> None:
    twilio = TwilioProvider(make_settings(twilio_api_url=f"http://127.0.0.1:{free_port()}"))

    with pytest.raises(ProviderError) as raised:
        twilio.send(Outgoing(LINE, CONTACT, "Your code is 1234"))

    assert (raised.value.permanent, raised.value.code) == (False, None)
    assert raised.value.maybe_sent is False, "refused before a byte went out: safe to retry"


def test_a_send_twilio_does_not_answer_in_time_may_have_been_sent(
    sender: TwilioProvider, stub: TwilioStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twilio_module, "SEND_TIMEOUT", 0.2)
    stub.delay = 1.0

    with pytest.raises(ProviderError) as raised:
        sender.send(Outgoing(LINE, CONTACT, "Your code is 1234"))

    assert (raised.value.permanent, raised.value.code) == (False, None)
    assert raised.value.maybe_sent is True, "Twilio may have it: never resent"


def test_a_send_without_credentials_is_permanent_and_calls_nobody(
    make_settings: Callable[..., Settings], stub: TwilioStub
) -> None:
    twilio = TwilioProvider(
        make_settings(twilio_account_sid=None, twilio_auth_token=None, twilio_api_url=stub.url)
    )

    with pytest.raises(ProviderError, match="TWILIO_ACCOUNT_SID") as raised:
        twilio.send(Outgoing(LINE, CONTACT, "Your code is 1234"))

    assert raised.value.permanent is True
    assert stub.requests == []
