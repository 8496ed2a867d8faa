"""Twilio: webhook signatures, inbound texts, delivery receipts, TwiML replies, sends.

Signatures are checked with twilio's own RequestValidator over the URL Twilio
called (see web/webhooks.py for how that URL is rebuilt behind proxies) and
every parameter received, repeated ones included: Twilio adds parameters
without notice (docs/compliance.md, Webhook signatures). Twilio signs a JSON
body's URL only, with the body's SHA-256 in its ``bodySHA256`` query
parameter: a JSON body counts only when that parameter is there and matches,
else nothing vouches for it.

What a signed request carries is read as Twilio sends it, or refused (400):
each field we read comes once, fits the column it is stored in, and a JSON
body is one flat object. NUL, which no Twilio value has and PostgreSQL text
cannot hold, is dropped, so a STOP with a stray NUL still stops. A request for
another account than TWILIO_ACCOUNT_SID is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from requests.adapters import HTTPAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from ruamel.yaml import YAML
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from werkzeug.datastructures import MultiDict

from app.keywords.text import key
from app.providers.base import (
    CONNECT_TIMEOUT,
    DeliveryStatus,
    ErrorClass,
    ErrorEffect,
    ForeignWebhook,
    InboundText,
    MalformedWebhook,
    Outgoing,
    ProviderError,
    Reply,
    StatusUpdate,
    WebhookRequest,
)
from app.settings import Settings

#: What Twilio's own filter answers on long codes and toll-free numbers when the
#: whole text is one of these (docs/compliance.md, Twilio's own filter; REVOKE and
#: OPTOUT since 2025).
ANSWERED_KEYWORDS = frozenset(
    key(word)
    for word in "STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT START YES UNSTOP HELP "
    "INFO".split()
)

_OPT_OUT_TYPES: dict[str, Literal["opt_out", "opt_in", "help"]] = {
    "stop": "opt_out",
    "start": "opt_in",
    "help": "help",
}

_STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "partially_delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
    "read": DeliveryStatus.READ,
}

#: Fields kept with an inbound message (besides the ones parsed out).
_KEPT = ("AccountSid", "NumSegments", "NumMedia", "OptOutType", "FromCountry", "ToCountry")

#: Every field the adapter reads, and the most characters it takes of it: the size of
#: the column it ends up in (app/data/models.py). Twilio sends each of them once.
_ID = 64  # messages.provider_message_id, receipts.provider_message_id (Twilio's have 34)
_ADDRESS = 320  # addresses.value, messages.address
_META = 64  # a value kept in messages.meta (Twilio's are a few characters)
FIELD_LIMITS = {
    "MessageSid": _ID,
    "SmsMessageSid": _ID,
    "SmsSid": _ID,
    "From": _ADDRESS,
    "To": _ADDRESS,
    # messages.body is unbounded; Twilio's longest inbound (WhatsApp, 4,096) fits many times.
    "Body": 16_000,
    "MessagingServiceSid": 100,  # line_groups.name: a service is a group
    "MessageStatus": 20,  # receipts.status
    "SmsStatus": 20,
    "ErrorCode": 16,  # messages.error_code, receipts.error_code
    **dict.fromkeys(_KEPT, _META),
}

#: Seconds Twilio may take to answer a send; then its outcome is unknown.
SEND_TIMEOUT = 15


ERROR_CODES_FILE = Path(__file__).with_name("twilio_error_codes.yaml")


def load_error_codes(path: Path = ERROR_CODES_FILE) -> dict[str, ErrorEffect]:
    """The error-code table; a broken table stops the import (it ships with the code)."""
    document = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    window = int(document["window_days"])
    table = {}
    for code, entry in document["codes"].items():
        table[str(code)] = ErrorEffect(
            kind=ErrorClass(entry["class"]),
            meaning=str(entry["meaning"]),
            after=int(entry.get("after", 1)),
            window_days=window,
        )
    return table


ERROR_CODES = load_error_codes()


class TwilioProvider:
    name = "twilio"
    answered_keywords = ANSWERED_KEYWORDS

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        token = settings.twilio_auth_token
        self._validator = RequestValidator(token) if token else None

    # -- webhooks -------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> bool:
        signature = request.headers.get("x-twilio-signature")
        if self._validator is None or not signature:
            return False
        algorithm = get_signature_algorithm(
            request.headers.get("x-twilio-webhooks-signature-settings")
        )
        try:
            urls = _signed_forms(request.url)
            hashed = _is_json(request) or "bodySHA256" in _query(request.url)
        except ValueError:
            return False  # no URL Twilio could have called ("http://[/", from a Host header)
        params: MultiDict[str, str] = MultiDict(list(request.form))
        if hashed:
            # Twilio signs the URL alone, the body hash in it: without a hash that
            # matches, nothing vouches for the body. (The validator checks a hash
            # only when one is in the URL, so a bare URL's signature would do.)
            if not _body_hash_matches(request):
                return False
            params = MultiDict()
        validate = self._validator.validate
        return any(validate(url, params, signature, algorithm) for url in urls)

    def parse_inbound(self, request: WebhookRequest) -> InboundText:
        fields = self._fields(request)
        message_id = _first(fields, "MessageSid", "SmsMessageSid", "SmsSid")
        sender, recipient = fields.get("From"), fields.get("To")
        missing = [
            name
            for name, value in (("MessageSid", message_id), ("From", sender), ("To", recipient))
            if not (value or "").strip()
        ]
        if missing:
            raise MalformedWebhook(f"an inbound message needs {', '.join(missing)}")
        assert message_id and sender and recipient
        opt_out_type = (fields.get("OptOutType") or "").strip().lower()
        media = fields.get("NumMedia") or "0"
        return InboundText(
            provider=self.name,
            message_id=message_id,
            sender=sender,
            recipient=recipient,
            body=fields.get("Body") or "",
            service_id=fields.get("MessagingServiceSid") or None,
            provider_action=_OPT_OUT_TYPES.get(opt_out_type),
            media_count=_count(media),
            extras={name: fields[name] for name in _KEPT if fields.get(name)},
        )

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        fields = self._fields(request)
        message_id = _first(fields, "MessageSid", "SmsSid")
        raw_status = (_first(fields, "MessageStatus", "SmsStatus") or "").strip().lower()
        if message_id is None or not message_id.strip() or not raw_status:
            raise MalformedWebhook("a status callback needs MessageSid and MessageStatus")
        error_code = (fields.get("ErrorCode") or "").strip() or None
        return StatusUpdate(
            provider=self.name,
            message_id=message_id,
            raw_status=raw_status,
            status=_STATUSES.get(raw_status),
            error_code=error_code if error_code != "0" else None,
            recipient=fields.get("To"),
            sender=fields.get("From"),
        )

    def _fields(self, request: WebhookRequest) -> dict[str, str]:
        """The fields the adapter reads, checked; ForeignWebhook for another account's."""
        fields = _fields(request)
        ours, theirs = self._settings.twilio_account_sid, fields.get("AccountSid")
        # A subaccount signs with its own token, but an account whose token was reused
        # (or a copied configuration) must not act on our contacts' consent.
        if ours and theirs and theirs.casefold() != ours.casefold():
            raise ForeignWebhook(
                "the request is for another Twilio account than TWILIO_ACCOUNT_SID: set "
                "TWILIO_ACCOUNT_SID (and TWILIO_AUTH_TOKEN) to the account whose numbers "
                "call this webhook"
            )
        return fields

    def configuration_warnings(self) -> list[str]:
        warnings = []
        if self._settings.verify_signatures and not self._settings.twilio_auth_token:
            warnings.append("TWILIO_AUTH_TOKEN is not set: Twilio webhooks will be refused (403)")
        if not self._settings.public_url:
            warnings.append(
                "OPTGATE_PUBLIC_URL is not set: sends ask Twilio for no status callbacks, so "
                "there are no delivery receipts and no bounce detection"
            )
        return warnings

    def error_effect(self, code: str) -> ErrorEffect:
        return ERROR_CODES.get(code) or ErrorEffect(ErrorClass.UNKNOWN, f"Twilio error {code}")

    def render_reply(self, text: str | None) -> Reply:
        response = MessagingResponse()
        # Characters XML 1.0 forbids would make the TwiML unreadable (Twilio 12100).
        text = _NOT_XML.sub("", text) if text else text
        if text:
            response.message(text)
        return Reply(str(response), "application/xml")

    # -- sending --------------------------------------------------------------------

    @cached_property
    def _client(self) -> Client:
        settings = self._settings
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            raise ProviderError(
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set: cannot send",
                permanent=True,
            )
        http = TwilioHttpClient(timeout=SEND_TIMEOUT)
        # requests takes (connect, read): the connect bound is part of the hand-off
        # protocol (app/sending/handoff.py); the constructor only takes one number.
        http.timeout = (CONNECT_TIMEOUT, SEND_TIMEOUT)
        # One keep-alive connection per concurrent send (requests keeps 10 by default).
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=settings.send_concurrency)
        assert http.session is not None
        http.session.mount("https://", adapter)
        http.session.mount("http://", adapter)
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
        if settings.twilio_api_url:
            client.api.base_url = settings.twilio_api_url
        return client

    def send(self, message: Outgoing) -> str:
        options: dict[str, Any] = {"to": message.recipient, "body": message.body}
        if message.service_id:
            options["messaging_service_sid"] = message.service_id
        else:
            options["from_"] = message.sender
        if message.status_callback:
            options["status_callback"] = message.status_callback
        try:
            created = self._client.messages.create(**options)
        except (TwilioRestException, TwilioServiceException) as error:
            # Both the classic error body and RFC 9457 problem details. 429 and 5xx
            # are Twilio's own trouble: worth retrying. Other 4xx (21610 opted
            # out, 21211 invalid number, ...) fail the same way again.
            status = int(getattr(error, "status", 0) or 0)
            transient = status == 429 or status >= 500
            raw_code = getattr(error, "code", None)
            # An error page without a Twilio code comes back with the HTTP status
            # as its "code": that is not Twilio's error code.
            code = str(raw_code) if raw_code and raw_code != status else None
            text = (
                getattr(error, "msg", None)
                or getattr(error, "detail", None)
                or getattr(error, "title", None)
                or "no details"
            )
            raise ProviderError(
                f"Twilio refused the message ({status}"
                + (f", error {code}" if code else "")
                + f"): {text}",
                permanent=not transient,
                code=code,
            ) from None
        except RequestsConnectionError as error:
            # Refused or unresolvable before a byte was sent: safe to retry. A
            # connection dropped after the request went out: Twilio may have it.
            refused = _never_connected(error)
            raise ProviderError(
                f"Twilio could not be reached: {error}"
                if refused
                else f"the connection to Twilio broke during the send: {error}",
                permanent=False,
                maybe_sent=not refused,
            ) from None
        except (TwilioException, OSError) as error:
            raise ProviderError(
                f"Twilio did not answer the send: {error}", permanent=False, maybe_sent=True
            ) from None
        return str(created.sid)


def _never_connected(error: RequestsConnectionError) -> bool:
    """Whether the connection failed before any request was written."""
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps it
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _is_json(request: WebhookRequest) -> bool:
    return request.content_type.startswith("application/json")


def _query(url: str) -> dict[str, list[str]]:
    # Blank values kept: "bodySHA256=" is a hash that matches nothing, not no hash.
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def _body_hash_matches(request: WebhookRequest) -> bool:
    """Whether the signed URL carries one bodySHA256, and it is the raw body's."""
    hashes = _query(request.url).get("bodySHA256", [])
    digest = hashlib.sha256(request.body).hexdigest()
    # As bytes: compare_digest raises on str with non-ASCII characters.
    return len(hashes) == 1 and hmac.compare_digest(hashes[0].encode(), digest.encode())


def _signed_forms(url: str) -> tuple[str, ...]:
    """The URL as configured, and without its ``user:password@`` (HTTP basic auth).

    Twilio's docs do not say which of the two it signs. Either takes the auth
    token to sign, so accepting both lets no one else in.
    """
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return (url,)
    # The first occurrence is the one after "scheme://".
    return url, url.replace(netloc, netloc.rpartition("@")[2], 1)


class _Members(list[tuple[str, Any]]):
    """A JSON object's members in order, repeated names kept (see _json_members)."""


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The fields the adapter reads, from the form or a flat JSON object.

    Each comes at most once and fits its column; a JSON null counts as absent.
    """
    members = _json_members(request.body) if _is_json(request) else request.form
    fields: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in members:
        if name not in FIELD_LIMITS:
            continue  # Twilio adds fields without notice; we neither read nor keep them
        if name in seen:
            # Which one would count is a guess: the signature covers both.
            raise MalformedWebhook(f"{name} comes more than once; Twilio sends it once")
        seen.add(name)
        if value is not None:
            fields[name] = _checked(name, str(value))
    return fields


def _checked(name: str, value: str) -> str:
    """``value`` as it can be stored: without NUL, within its column's size."""
    value = value.replace("\x00", "")
    limit = FIELD_LIMITS[name]
    if len(value) > limit:
        raise MalformedWebhook(f"{name} has {len(value)} characters; optgate keeps at most {limit}")
    # A JSON escape may leave half a surrogate pair, which no database can encode.
    return value.encode("utf-8", "replace").decode("utf-8")


def _json_members(body: bytes) -> _Members:
    """The members of a flat JSON object (numbers kept as written)."""
    try:
        document = json.loads(
            body or b"{}",
            object_pairs_hook=_flat,
            parse_int=str,  # no int() of thousands of digits, which raises
            parse_float=str,
            parse_constant=str,
        )
    except RecursionError:
        # The parser's depth is bounded by the interpreter's; a flat object has one level.
        raise MalformedWebhook("expected a flat JSON object, and this one nests deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise MalformedWebhook("the body is not valid JSON") from None
    if not isinstance(document, _Members):
        raise MalformedWebhook("expected a JSON object")
    return document


def _flat(members: list[tuple[str, Any]]) -> _Members:
    for name, value in members:
        if isinstance(value, list):  # a JSON array, or an object (_Members)
            raise MalformedWebhook(
                f"expected a flat JSON object, and {name[:64]!r} holds an object or a list"
            )
    return _Members(members)


#: The largest count kept: what an INTEGER column holds (Twilio sends at most 10 media).
MAX_COUNT = 2**31 - 1


def _count(raw: str) -> int:
    """A count as Twilio writes it (digits); anything else, or more than MAX_COUNT, is 0."""
    # isdigit alone takes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_COUNT:
        return 0
    return int(raw)


def _first(fields: dict[str, str], *names: str) -> str | None:
    return next((fields[name] for name in names if fields.get(name)), None)
