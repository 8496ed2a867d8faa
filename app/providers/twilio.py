"""Twilio: webhook signatures, inbound texts, delivery receipts, TwiML replies, sends.

Signatures are checked with twilio's own RequestValidator over the URL Twilio
called (see web/webhooks.py for how that URL is rebuilt behind proxies) and
every parameter received, repeated ones included: Twilio adds parameters
without notice (COMPLIANCE.md 4). A JSON body is checked through the
``bodySHA256`` query parameter Twilio adds to its URL.
"""

from __future__ import annotations

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

from app.handoff import CONNECT_TIMEOUT
from app.keywords.text import key
from app.providers.base import (
    DeliveryStatus,
    ErrorClass,
    ErrorEffect,
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
#: whole text is one of these (COMPLIANCE.md 1.1; REVOKE and OPTOUT since 2025).
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
        query = parse_qs(urlsplit(request.url).query)
        if "bodySHA256" in query:
            # The signed URL says a body hash covers the body: check it, whatever the
            # (unsigned) Content-Type header claims.
            body = request.body.decode("utf-8", errors="replace")
            return bool(self._validator.validate(request.url, body, signature, algorithm))
        params: MultiDict[str, str] = MultiDict(list(request.form))
        return bool(self._validator.validate(request.url, params, signature, algorithm))

    def parse_inbound(self, request: WebhookRequest) -> InboundText:
        fields = _fields(request)
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
            media_count=int(media) if media.isdigit() else 0,
            extras={name: fields[name] for name in _KEPT if fields.get(name)},
        )

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        fields = _fields(request)
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
        # protocol (app/handoff.py); the constructor only takes one number.
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


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The request's fields: the form, or a flat JSON object."""
    if request.content_type.startswith("application/json"):
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            raise MalformedWebhook("the body is not valid JSON") from None
        if not isinstance(document, dict):
            raise MalformedWebhook("expected a JSON object")
        return {str(k): str(v) for k, v in document.items() if v is not None}
    fields: dict[str, str] = {}
    for name, value in request.form:
        fields.setdefault(name, value)
    return fields


def _first(fields: dict[str, str], *names: str) -> str | None:
    return next((fields[name] for name in names if fields.get(name)), None)
