"""Forged, unsigned, replayed and malformed webhooks: always a 4xx, never a 5xx, nothing stored.

Hypothesis generates what Twilio posts (the fields it sends, any values, extra
fields) and then breaks it one way:

- unsigned: no X-Twilio-Signature;
- forged: a signature that is not Twilio's (random, or another account's token);
- replayed: Twilio's real signature for one request, sent with another: a field
  changed, added or dropped, another endpoint, another query string;
- malformed: signed as Twilio signs, but not a message (a required field
  missing or blank, a recipient that is not a number, a body that is not the
  form it claims to be, the wrong method).

Each answer must be a 4xx, and after thousands of them nothing is stored: no
message, line, address, consent event or receipt. The counts are per run;
``REQUESTS`` holds how many were sent, so the run proves its own size.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from app.db import Database
from app.models import ConsentEvent, ContactAddress, Line, Message, Receipt
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN

MESSAGES = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"
BASE = "http://localhost"
#: Examples per kind of bad request, per database (4 kinds x 2,600 > 10,000 on SQLite).
EXAMPLES = {"sqlite": 2600, "postgres": 400}
REQUESTS: Counter[str] = Counter()

# -- what Twilio posts -----------------------------------------------------------------------

texts = st.text(max_size=40)
numbers = st.sampled_from(["+14155550199", "+14155550100", "+442071838750", "12345", "VERIFY"])
sids = st.one_of(st.from_regex(r"\ASM[0-9a-f]{32}\Z"), texts)
extra_fields = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda k: k not in ("MessageSid", "From", "To")),
    texts,
    max_size=4,
)


@st.composite
def inbound_params(draw: st.DrawFn) -> dict[str, str]:
    params = {
        "MessageSid": draw(sids),
        "AccountSid": draw(st.sampled_from([TWILIO_SID, "AC" + "f" * 32])),
        "From": draw(numbers),
        "To": draw(st.sampled_from(["+14155550100", "+14155550101", "12345"])),
        "Body": draw(st.one_of(texts, st.sampled_from(["STOP", "START", "HELP", "stop please"]))),
        "NumMedia": draw(st.sampled_from(["0", "1", "x"])),
    }
    if draw(st.booleans()):
        params["OptOutType"] = draw(st.sampled_from(["STOP", "START", "HELP", "nonsense"]))
    return {**draw(extra_fields), **params}


@st.composite
def status_params(draw: st.DrawFn) -> dict[str, str]:
    params = {
        "MessageSid": draw(sids),
        "MessageStatus": draw(st.sampled_from(["sent", "delivered", "failed", "undelivered"])),
        "AccountSid": TWILIO_SID,
        "To": "+14155550199",
        "From": "+14155550100",
    }
    if draw(st.booleans()):
        params["ErrorCode"] = draw(st.sampled_from(["21610", "30003", "30007", "x"]))
    return {**draw(extra_fields), **params}


endpoints = st.sampled_from([(MESSAGES, inbound_params()), (STATUS, status_params())])


def signature(
    url: str, params: dict[str, str] | MultiDict[str, str], token: str = TWILIO_TOKEN
) -> str:
    return RequestValidator(token).compute_signature(url, MultiDict(params))


# -- the app ------------------------------------------------------------------------------------


class Target:
    def __init__(self, client: FlaskClient, backend: str) -> None:
        self.client = client
        self.backend = backend

    def post(self, path: str, params: dict[str, str], headers: dict[str, str], **kw: Any) -> int:
        REQUESTS[self.backend] += 1
        response = self.client.post(path, data=MultiDict(params), headers=headers, **kw)
        assert 400 <= response.status_code < 500, (
            f"{response.status_code} for {path} {params!r} {headers!r}: "
            f"{response.get_data(as_text=True)[:300]}"
        )
        assert response.is_json, response.get_data(as_text=True)[:300]
        return response.status_code


pytestmark = pytest.mark.slow


@pytest.fixture
def target(
    make_settings: Callable[..., Settings], clean_database_url: str, request: pytest.FixtureRequest
) -> Iterator[Target]:
    app = create_app(make_settings(database_url=clean_database_url))
    backend = "postgres" if clean_database_url.startswith("postgresql") else "sqlite"
    yield Target(app.test_client(), backend)
    app.extensions["optgate.database"].dispose()
    database = Database(clean_database_url)
    with database.sessions() as session:
        stored = {
            table.__name__: session.scalar(sa.select(sa.func.count()).select_from(table))
            for table in (Message, Line, ContactAddress, ConsentEvent, Receipt)
        }
    database.dispose()
    assert stored == dict.fromkeys(stored, 0), "bad webhooks stored something"


@pytest.fixture(autouse=True)
def every_example_sent_a_request(target: Target) -> Iterator[None]:
    """Each test sends one bad request per example: the run is as large as it says."""
    before = REQUESTS[target.backend]
    yield
    assert REQUESTS[target.backend] - before >= EXAMPLES[target.backend]


def examples(target: Target) -> Any:
    return settings(
        max_examples=EXAMPLES[target.backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )


# -- the four kinds ------------------------------------------------------------------------------


def test_unsigned_webhooks_are_refused(target: Target) -> None:
    @examples(target)
    @given(endpoint=endpoints, data=st.data())
    def check(endpoint: tuple[str, Any], data: st.DataObject) -> None:
        path, params = endpoint
        assert target.post(path, data.draw(params), {}) == 403

    check()


def test_forged_signatures_are_refused(target: Target) -> None:
    forged = st.one_of(
        st.binary(min_size=20, max_size=20).map(lambda raw: base64.b64encode(raw).decode()),
        # What a header can carry: visible ASCII (HTTP has no newlines in a header).
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60),
    )

    @examples(target)
    @given(endpoint=endpoints, data=st.data(), forged=forged, other_token=st.booleans())
    def check(
        endpoint: tuple[str, Any], data: st.DataObject, forged: str, other_token: bool
    ) -> None:
        path, params = endpoint
        params = data.draw(params)
        if other_token:  # signed, but by another account's token
            forged = signature(BASE + path, params, token="0123456789abcdef" * 2)
        assert target.post(path, params, {"X-Twilio-Signature": forged}) == 403

    check()


@st.composite
def replays(draw: st.DrawFn) -> tuple[str, dict[str, str], str, dict[str, str], str]:
    """(path signed, params signed, path sent, params sent, query sent): one of them differs."""
    path, strategy = draw(endpoints)
    params = draw(strategy)
    sent_path, sent = path, dict(params)
    query = ""
    how = draw(st.sampled_from(["change", "add", "drop", "endpoint", "query"]))
    if how == "change":
        name = draw(st.sampled_from(sorted(params)))
        sent[name] = draw(texts.filter(lambda value: value != params[name]))
    elif how == "add":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in params))
        sent[name] = draw(texts)
    elif how == "drop":
        del sent[draw(st.sampled_from(sorted(params)))]
    elif how == "endpoint":
        sent_path = STATUS if path == MESSAGES else MESSAGES
    else:
        query = "?" + draw(st.sampled_from(["message=1", "a=b", "bodySHA256=0"]))
    return path, params, sent_path, sent, query


def test_a_signature_replayed_on_another_request_is_refused(target: Target) -> None:
    @examples(target)
    @given(replay=replays())
    def check(replay: tuple[str, dict[str, str], str, dict[str, str], str]) -> None:
        path, params, sent_path, sent, query = replay
        header = {"X-Twilio-Signature": signature(BASE + path, params)}
        assert target.post(sent_path + query, sent, header) == 403

    check()


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, str, Any, dict[str, str], str]:
    """(method, path, body, headers, why), signed as Twilio signs what is sent."""
    how = draw(
        st.sampled_from(
            ["missing", "blank", "recipient", "status-missing", "json", "json-list", "method"]
        )
    )
    if how in ("missing", "blank"):
        params = draw(inbound_params())
        name = draw(st.sampled_from(["MessageSid", "From", "To"]))
        if how == "missing":
            del params[name]
            # Twilio's older names would stand in for MessageSid.
            params.pop("SmsMessageSid", None), params.pop("SmsSid", None)
        else:
            params[name] = draw(st.sampled_from(["", " "]) if name != "MessageSid" else st.just(""))
        return (
            "POST",
            MESSAGES,
            params,
            {"X-Twilio-Signature": signature(BASE + MESSAGES, params)},
            how,
        )
    if how == "recipient":
        params = draw(inbound_params())
        params["To"] = draw(st.sampled_from(["hello", "+1", "not a number", "@@@", "++1415"]))
        return (
            "POST",
            MESSAGES,
            params,
            {"X-Twilio-Signature": signature(BASE + MESSAGES, params)},
            how,
        )
    if how == "status-missing":
        params = draw(status_params())
        name = draw(st.sampled_from(["MessageSid", "MessageStatus"]))
        del params[name]
        params.pop("SmsSid", None), params.pop("SmsStatus", None)
        return "POST", STATUS, params, {"X-Twilio-Signature": signature(BASE + STATUS, params)}, how
    path = draw(st.sampled_from([MESSAGES, STATUS]))
    headers = {"X-Twilio-Signature": signature(BASE + path, {})}
    if how == "json":
        body = draw(st.text(max_size=40).filter(lambda text: not _is_json_object(text)))
        return "POST", path, body, {**headers, "Content-Type": "application/json"}, how
    if how == "json-list":
        body = json.dumps(draw(st.lists(texts, max_size=3)))
        return "POST", path, body, {**headers, "Content-Type": "application/json"}, how
    return draw(st.sampled_from(["GET", "PUT", "DELETE"])), path, None, headers, how


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def test_signed_requests_that_carry_no_message_are_refused(target: Target) -> None:
    @examples(target)
    @given(bad=malformed())
    def check(bad: tuple[str, str, Any, dict[str, str], str]) -> None:
        method, path, body, headers, why = bad
        REQUESTS[target.backend] += 1
        if isinstance(body, dict):
            response = target.client.open(
                path, method=method, data=MultiDict(body), headers=headers
            )
        else:
            response = target.client.open(path, method=method, data=body, headers=headers)
        assert 400 <= response.status_code < 500, (
            f"{why}: {response.status_code} {response.get_data(as_text=True)[:300]}"
        )
        assert response.is_json, response.get_data(as_text=True)[:300]

    check()
