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

A fifth kind, signed with odd values, carries Twilio's real signature over
values Twilio never sends: long ids and bodies, NUL and other control
characters, other scripts, huge NumMedia, repeated fields, JSON with and
without its body hash, nested JSON. Each answer must be a 2xx (TwiML, or the
receipt's empty text) or a 4xx (JSON), never a 5xx; the refusals that can be
told in advance must be those (403 for a JSON body no hash covers, 400 for a
repeated or over-long field); and every 2xx inbound text or receipt is stored,
one message row per MessageSid.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from app.data.db import Database
from app.data.models import ConsentEvent, ContactAddress, Direction, Line, Message, Receipt
from app.providers.twilio import FIELD_LIMITS
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN

MESSAGES = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"
BASE = "http://localhost"
#: Examples per kind of bad request, per database (4 kinds x 2,600 > 10,000 on SQLite).
EXAMPLES = {"sqlite": 2600, "postgres": 400}
#: Examples of signed requests with odd values: most are stored, so each costs more.
SIGNED_EXAMPLES = {"sqlite": 700, "postgres": 350}
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
def every_example_sent_a_request(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test sends one request per example: the run is as large as it says."""
    signed = "signed" in request.fixturenames
    target: Target | Signed = request.getfixturevalue("signed" if signed else "target")
    before = REQUESTS[target.backend]
    yield
    wanted = (SIGNED_EXAMPLES if signed else EXAMPLES)[target.backend]
    assert REQUESTS[target.backend] - before >= wanted


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


def signed_post(
    path: str, params: dict[str, str], how: str
) -> tuple[str, str, Any, dict[str, str], str]:
    """A form POST of ``params`` to ``path``, signed as Twilio signs it."""
    return "POST", path, params, {"X-Twilio-Signature": signature(BASE + path, params)}, how


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
        return signed_post(MESSAGES, params, how)
    if how == "recipient":
        params = draw(inbound_params())
        params["To"] = draw(st.sampled_from(["hello", "+1", "not a number", "@@@", "++1415"]))
        return signed_post(MESSAGES, params, how)
    if how == "status-missing":
        params = draw(status_params())
        name = draw(st.sampled_from(["MessageSid", "MessageStatus"]))
        del params[name]
        params.pop("SmsSid", None), params.pop("SmsStatus", None)
        return signed_post(STATUS, params, how)
    path = draw(st.sampled_from([MESSAGES, STATUS]))
    headers = {"X-Twilio-Signature": signature(BASE + path, {})}
    if how in ("json", "json-list"):
        if how == "json":
            body = draw(st.text(max_size=40).filter(lambda text: not _is_json_object(text)))
        else:
            body = json.dumps(draw(st.lists(texts, max_size=3)))
        # Signed as Twilio signs JSON: the URL with the body's hash, so the body is read.
        path += "?bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
        headers = {"X-Twilio-Signature": signature(BASE + path, {})}
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
        if why.startswith("json"):  # signed with its body hash: read, and refused as such
            assert response.status_code == 400, response.get_data(as_text=True)[:300]

    check()


# -- the fifth kind: signed, odd values ----------------------------------------------------------

Pairs = list[tuple[str, str]]

#: Characters Twilio never sends, or that trip databases and parsers, besides any script.
_ODD = "\x00\x01\x07\x08\t\n\r\x0b\x0c\x1b\x7f\x85\u200b\u2028\ufeff\ufffe"
#: Any character of any script, but half a surrogate pair: no request can carry one (its
#: bytes would not be UTF-8), and neither the signature nor the body could be written.
odd_text = st.text(
    st.one_of(st.sampled_from(_ODD), st.characters(exclude_categories=("Cs",))), max_size=30
)
short_odd = st.one_of(odd_text, st.sampled_from(["", " ", "STOP", "START", "stop\x00", "停止"]))
#: A long value, cheaply: a piece repeated (Body's limit is 16,000 characters, ids' 64).
long_text = st.builds(
    lambda piece, times: piece * times,
    st.sampled_from(["S", "STOP ", "停", "\x00", "🛑", "a\x00", "ـ"]),
    st.integers(0, 20_000),
)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, so that enough requests get through to be stored."""
    return st.integers(0, 3).flatmap(lambda n: odd if n == 0 else usual)


real_sids = st.from_regex(r"\ASM[0-9a-f]{32}\Z")
odd_sids = mostly(
    st.one_of(real_sids, st.sampled_from(["SM" + "1" * 32, "SM" + "2" * 32])),  # delivered again
    st.one_of(
        st.builds(str.__add__, real_sids, st.sampled_from(["\x00", "x" * 38, " ", "\u200b"])),
        short_odd,
    ),
)
counts = st.one_of(
    st.sampled_from(["0", "1", "²", "١", "-1", "1e9", "0\x00", " 2"]),
    st.text("0123456789", min_size=1, max_size=80),
)
accounts = mostly(
    st.just(TWILIO_SID),
    st.sampled_from([TWILIO_SID.upper(), TWILIO_SID + "\x00", "AC" + "f" * 32, "", "A" * 80]),
)
odd_extras = st.lists(st.tuples(st.text(min_size=1, max_size=12), odd_text), max_size=3)


@st.composite
def odd_inbound(draw: st.DrawFn) -> Pairs:
    pairs = [
        ("MessageSid", draw(odd_sids)),
        ("AccountSid", draw(accounts)),
        ("From", draw(mostly(st.sampled_from(["+14155550199", "+٤١٥٥٥٥٠١٩٩"]), short_odd))),
        (
            "To",
            draw(
                mostly(
                    st.just("+14155550100"),
                    st.sampled_from(["+14155550100\x00", "12345", "+1" + "4" * 400, "停"]),
                )
            ),
        ),
        ("Body", draw(short_odd)),
        ("NumMedia", draw(counts)),
    ]
    optional = {
        "MessagingServiceSid": mostly(
            st.just("MG" + "9f" * 16), st.sampled_from(["MG" + "b" * 120, "MG\x00", "\u200b"])
        ),
        "OptOutType": st.one_of(st.sampled_from(["STOP", "START", "HELP"]), short_odd),
        "SmsMessageSid": odd_sids,
        "FromCountry": short_odd,
        "NumSegments": counts,
    }
    pairs += [(name, draw(values)) for name, values in optional.items() if draw(st.booleans())]
    return pairs + draw(odd_extras)


@st.composite
def odd_status(draw: st.DrawFn) -> Pairs:
    words = st.sampled_from(["sent", "delivered", "failed", "undelivered", "read", " Failed "])
    pairs = [
        ("MessageSid", draw(odd_sids)),
        ("MessageStatus", draw(mostly(words, short_odd))),
        ("AccountSid", draw(accounts)),
    ]
    if draw(st.booleans()):
        codes = st.sampled_from(["30003", "21610", "30005", "0", "", "3" * 20])
        pairs.append(("ErrorCode", draw(st.one_of(codes, short_odd))))
    return pairs + draw(odd_extras)


#: How a request is sent: Twilio's way (a form, or JSON under its body hash), or JSON
#: that no signed hash covers, or JSON that is not flat.
shapes = mostly(
    st.sampled_from(["form", "json"]),
    st.sampled_from(["json without its hash", "json under another hash", "nested json"]),
)


@dataclass
class OddRequest:
    path: str
    pairs: Pairs
    shape: str
    #: A JSON value written raw in place of the first field's (nested json only).
    nested: str = ""
    raw_utf8: bool = False

    def __str__(self) -> str:
        shown = [
            (name, value[:40] + ("…" if len(value) > 40 else "")) for name, value in self.pairs
        ]
        return f"{self.shape} {self.path} {shown}"


@st.composite
def odd_requests(draw: st.DrawFn) -> OddRequest:
    path, pairs = draw(
        st.sampled_from([MESSAGES, STATUS]).flatmap(
            lambda path: st.tuples(
                st.just(path), odd_inbound() if path == MESSAGES else odd_status()
            )
        )
    )
    # One long value in four requests, half of them the Body (the one long field Twilio
    # sends): a request with several would be refused for the first.
    if draw(st.integers(0, 3)) == 0:
        names = [name for name, _ in pairs]
        body = names.index("Body") if "Body" in names else 0
        at = draw(st.one_of(st.just(body), st.integers(0, len(pairs) - 1)))
        pairs[at] = (pairs[at][0], draw(long_text))
    if draw(st.integers(0, 7)) == 0:  # a field repeated, with another value
        name = draw(st.sampled_from([name for name, _ in pairs]))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(short_odd)))
    shape = draw(shapes)
    depth = draw(st.sampled_from([1, 2, 5_000]))
    nested = "[" * depth + '"STOP"' + "]" * depth if draw(st.booleans()) else '{"a": {"b": 1}}'
    return OddRequest(path, pairs, shape, nested, raw_utf8=draw(st.booleans()))


def json_body(odd: OddRequest) -> bytes:
    """The pairs as one JSON object, written member by member (a repeated key stays)."""
    values = [json.dumps(value, ensure_ascii=not odd.raw_utf8) for _, value in odd.pairs]
    if odd.shape == "nested json":
        values[0] = odd.nested
    names = [json.dumps(name) for name, _ in odd.pairs]
    members = [f"{name}: {value}" for name, value in zip(names, values, strict=True)]
    return ("{" + ", ".join(members) + "}").encode("utf-8")


def expected_answer(odd: OddRequest) -> int | None:
    """The answer a request must get, where its values alone decide it."""
    if odd.shape in ("json without its hash", "json under another hash"):
        return 403  # nothing vouches for the body
    if odd.shape == "nested json":
        return 400
    read = [(name, value.replace("\x00", "")) for name, value in odd.pairs if name in FIELD_LIMITS]
    names = [name for name, _ in read]
    if len(set(names)) < len(names) or any(len(v) > FIELD_LIMITS[n] for n, v in read):
        return 400
    account = dict(read).get("AccountSid", "")
    if account and account.casefold() != TWILIO_SID.casefold():
        return 403
    return None


def message_id(odd: OddRequest) -> str | None:
    """The provider id a stored text or receipt is kept under: the first id given, NUL dropped."""
    fields = {name: value.replace("\x00", "") for name, value in odd.pairs}
    names = (
        ("MessageSid", "SmsMessageSid", "SmsSid")
        if odd.path == MESSAGES
        else ("MessageSid", "SmsSid")
    )
    return next((fields[name] for name in names if fields.get(name)), None)


@dataclass
class Signed:
    """Sends odd requests with Twilio's real signature; remembers what each 2xx stored."""

    client: FlaskClient
    backend: str
    answered: dict[str, set[str]] = field(default_factory=lambda: {MESSAGES: set(), STATUS: set()})
    #: Answers by (path, status code): the run shows it reached storage, not only refusals.
    codes: Counter[tuple[str, int]] = field(default_factory=Counter)

    def send(self, odd: OddRequest) -> None:
        REQUESTS[self.backend] += 1
        response = self._post(odd)
        code, text = response.status_code, response.get_data(as_text=True)[:300]
        self.codes[odd.path, code] += 1
        assert 200 <= code < 300 or 400 <= code < 500, f"{code} for {odd}: {text}"
        want = expected_answer(odd)
        assert want is None or code == want, f"{code}, not {want}, for {odd}: {text}"
        if code >= 300:
            assert response.is_json, text
            return
        twiml = odd.path == MESSAGES
        assert response.mimetype == ("application/xml" if twiml else "text/plain"), text
        sid = message_id(odd)
        assert sid is not None, f"answered 2xx without an id: {odd}"
        self.answered[odd.path].add(sid)

    def _post(self, odd: OddRequest) -> Any:
        if odd.shape == "form":
            form = MultiDict(odd.pairs)
            headers = {"X-Twilio-Signature": signature(BASE + odd.path, form)}
            return self.client.post(odd.path, data=form, headers=headers)
        body = json_body(odd)
        digest = hashlib.sha256(body if odd.shape != "json under another hash" else b"{}")
        url = odd.path + (
            "" if odd.shape == "json without its hash" else f"?bodySHA256={digest.hexdigest()}"
        )
        headers = {"X-Twilio-Signature": signature(BASE + url, {})}
        return self.client.post(url, data=body, content_type="application/json", headers=headers)


@pytest.fixture
def signed(make_settings: Callable[..., Settings], clean_database_url: str) -> Iterator[Signed]:
    app = create_app(make_settings(database_url=clean_database_url))
    backend = "postgres" if clean_database_url.startswith("postgresql") else "sqlite"
    target = Signed(app.test_client(), backend)
    yield target
    app.extensions["optgate.database"].dispose()
    database = Database(clean_database_url)
    with database.sessions() as session:
        inbound = session.scalars(
            sa.select(Message.provider_message_id).where(Message.direction == Direction.INBOUND)
        ).all()
        receipts = set(session.scalars(sa.select(Receipt.provider_message_id)))
    database.dispose()
    # One row per MessageSid answered 2xx, and none for a request refused.
    assert sorted(inbound) == sorted(target.answered[MESSAGES])
    assert receipts == target.answered[STATUS]
    print(f"signed, odd values on {backend}: {sorted(target.codes.items())}")
    # Each webhook was taken, refused as malformed and refused as not Twilio's, often.
    least = SIGNED_EXAMPLES[backend] // 50
    for path in (MESSAGES, STATUS):
        assert min(target.codes[path, code] for code in (200, 400, 403)) >= least, target.codes


def test_signed_requests_with_odd_values_answer_2xx_or_4xx_never_5xx(signed: Signed) -> None:
    @settings(
        max_examples=SIGNED_EXAMPLES[signed.backend],
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
        database=None,
    )
    @given(odd=odd_requests())
    def check(odd: OddRequest) -> None:
        signed.send(odd)

    check()
