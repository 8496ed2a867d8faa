"""The provider seam: what every SMS provider adapter does, and the events it yields.

An adapter turns a provider's webhook into a normalised event, verifies that
the provider sent it, renders our reply in the provider's format, and sends
messages. Adding a provider is one module next to twilio.py, one test table,
and one line in ``app.providers.PROVIDERS``; nothing else names a provider.

The web layer builds a ``WebhookRequest`` from Flask's request; adapters see
only that, so they are tested without a web server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

#: Seconds an adapter's connection to its provider may take to open before the
#: send is abandoned. The hand-off protocol (app/sending/handoff.py) counts on
#: it: a STOP waits this long, and a little more, for sends in flight.
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP request, as the provider signed it."""

    #: The URL the provider called (scheme, host, path, query), as it signed it.
    url: str
    method: str
    #: Header names lower-cased.
    headers: Mapping[str, str]
    #: Form fields in arrival order; a name may repeat.
    form: Sequence[tuple[str, str]]
    body: bytes
    content_type: str = ""


class DeliveryStatus(StrEnum):
    """Where an outbound message is, normalised across providers."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"


@dataclass(frozen=True)
class InboundText:
    """A text a contact sent to one of our lines."""

    provider: str
    message_id: str
    sender: str
    #: Our line: the number or short code the contact wrote to.
    recipient: str
    body: str
    #: The provider's group of lines the recipient belongs to (Twilio Messaging Service SID).
    service_id: str | None = None
    #: The provider already acted on a default keyword (Twilio OptOutType).
    provider_action: Literal["opt_out", "opt_in", "help"] | None = None
    media_count: int = 0
    extras: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery receipt for an outbound message."""

    provider: str
    message_id: str
    #: The provider's own word, lower-cased (kept as received).
    raw_status: str
    status: DeliveryStatus | None
    error_code: str | None = None
    recipient: str | None = None
    sender: str | None = None


@dataclass(frozen=True)
class Reply:
    """What the web layer answers the provider."""

    body: str
    content_type: str


@dataclass(frozen=True)
class Outgoing:
    """A message to hand to the provider."""

    sender: str
    recipient: str
    body: str
    #: Where the provider should post delivery receipts.
    status_callback: str | None = None
    service_id: str | None = None


class ErrorClass(StrEnum):
    """What a provider error code means for the recipient (see twilio_error_codes.yaml)."""

    OPTED_OUT = "opted_out"
    INVALID = "invalid"
    UNREACHABLE = "unreachable"
    SENDER = "sender"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ErrorEffect:
    kind: ErrorClass
    meaning: str
    #: Failures in a row (within ``window_days``) before the number is flagged bounced.
    after: int = 1
    window_days: int = 7


class MalformedWebhook(Exception):
    """A signed request that does not carry what the webhook needs (answered 400)."""


class ForeignWebhook(Exception):
    """A request for another provider account than the one configured (answered 403).

    The message names the setting to check; nothing of the request is stored.
    """


class ProviderError(Exception):
    """The provider refused a send or could not be reached.

    Attributes:
        permanent: retrying the same request will fail again (invalid number,
            opted out); otherwise it is worth retrying (network, 429, 5xx).
        code: the provider's error code, when it gave one.
        maybe_sent: the request may have reached the provider, which may have
            taken the message (the answer timed out, the connection dropped
            after the request went out). Retrying could send it twice, so such
            a message is never retried (at most once; see app/sending/handoff.py).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.maybe_sent = maybe_sent


class Provider(Protocol):
    """What an adapter provides."""

    name: str
    #: Keyword keys (see keywords.text.key) the provider itself answers when a
    #: whole text is one of them, on lines where it filters.
    answered_keywords: frozenset[str]

    def verify(self, request: WebhookRequest) -> bool:
        """Whether the provider sent this request (its signature is right)."""
        ...

    def parse_inbound(self, request: WebhookRequest) -> InboundText:
        """The inbound text carried by the request; MalformedWebhook if it carries none
        (or a value the tables cannot hold), ForeignWebhook if it is another account's."""
        ...

    def parse_status(self, request: WebhookRequest) -> StatusUpdate:
        """The delivery receipt carried by the request; MalformedWebhook if none,
        ForeignWebhook if it is another account's."""
        ...

    def render_reply(self, text: str | None) -> Reply:
        """The answer to an inbound webhook: at most one reply text."""
        ...

    def send(self, message: Outgoing) -> str:
        """Hand a message to the provider; its message id. ProviderError if refused."""
        ...

    def error_effect(self, code: str) -> ErrorEffect:
        """What error ``code`` means for the recipient."""
        ...

    def configuration_warnings(self) -> list[str]:
        """What is missing for this provider to work (logged at every start)."""
        ...
