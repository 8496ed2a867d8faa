"""May this message go now? The send policy of DESIGN.md, decided from stored state.

Pure: the caller loads the recipient's state (history.load_state) right
before the hand-off and passes it in. The checks run in a fixed order and the
first that applies wins; its reason is stored on the message:

1. ``invalid_address``  the recipient cannot receive a text (not a valid mobile or
                        landline number: an email, a short code, a number outside
                        the numbering plan)
2. ``do_not_contact``   the address is on the organisation's do-not-contact list (R15)
3. ``silenced``         the address is silenced for now (R15)
4. ``bounced``          the provider reported the number unreachable (R17)
5. ``opted_out``        overall SMS opt-out on this line, its group or the whole
                        organisation, or on "all channels": blocks every kind (R16)
6. ``topic_opted_out``  marketing only: the recipient stopped this topic (R8)
7. ``no_consent``       marketing that requires opt-in, to someone not opted in (R7)
8. ``frequency_limit``  marketing only: the number has had as many marketing messages
                        (of the topic, or in all) as a limit allows in its period
                        (app/sending/limits.py)
9. quiet hours          marketing only: not blocked but deferred to the next moment
                        inside the window in the recipient's time zone(s)

Transactional and conversational messages stop after check 5 (R16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.addresses import sms_recipient
from app.consent.history import AddressState
from app.consent.rules import Point, decide
from app.consent.values import Channel, Flag, Status
from app.data.models import MessageKind
from app.errors import InvalidAddress
from app.sending.limits import Limits
from app.sending.quiet import Window, next_allowed, whereabouts


class BlockReason(StrEnum):
    INVALID_ADDRESS = "invalid_address"
    DO_NOT_CONTACT = "do_not_contact"
    SILENCED = "silenced"
    BOUNCED = "bounced"
    OPTED_OUT = "opted_out"
    TOPIC_OPTED_OUT = "topic_opted_out"
    NO_CONSENT = "no_consent"
    FREQUENCY_LIMIT = "frequency_limit"


#: What each reason means, for people (API answers, docs, the CLI).
MEANINGS = {
    BlockReason.INVALID_ADDRESS: "the recipient is not a number that can receive texts",
    BlockReason.DO_NOT_CONTACT: "the recipient is on the do-not-contact list (permanent)",
    BlockReason.SILENCED: "the recipient is silenced; lift the silence to send again",
    BlockReason.BOUNCED: "the provider reported the number unreachable; it texting in, "
    "or a manager, clears that",
    BlockReason.OPTED_OUT: "the recipient opted out of texts from this line",
    BlockReason.TOPIC_OPTED_OUT: "the recipient opted out of this topic",
    BlockReason.NO_CONSENT: "the campaign requires an opt-in and the recipient has not opted in",
    BlockReason.FREQUENCY_LIMIT: "the recipient has had as many marketing messages as the "
    "frequency limit allows in its period (keywords.yaml limits)",
}

_FLAGS = (
    (Flag.DO_NOT_CONTACT, BlockReason.DO_NOT_CONTACT),
    (Flag.SILENCED, BlockReason.SILENCED),
    (Flag.BOUNCED, BlockReason.BOUNCED),
)


@dataclass(frozen=True)
class Outbound:
    """What the policy needs to know about a message."""

    recipient: str
    line: str
    point: Point
    kind: MessageKind
    topic: str | None = None
    require_opt_in: bool = False


@dataclass(frozen=True)
class Verdict:
    #: The reason the message may never go, or None.
    blocked: BlockReason | None = None
    #: The message may go then, not now (quiet hours).
    defer_until: datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.blocked is None and self.defer_until is None


ALLOWED = Verdict()


def decide_send(
    message: Outbound,
    state: AddressState,
    now: datetime,
    quiet_hours: Window | None,
    limits: Limits | None = None,
    sent: Sequence[tuple[str | None, datetime]] = (),
) -> Verdict:
    """The verdict for ``message`` given its recipient's stored ``state`` at ``now``.

    Args:
        limits: the frequency limits in force (None: none).
        sent: (topic, when) of the marketing messages the recipient already got in the
            limits' longest period, those being handed over now included.
    """
    if not deliverable(message.recipient):
        return Verdict(BlockReason.INVALID_ADDRESS)
    for flag, reason in _FLAGS:
        if state.flag_is_set(flag):
            return Verdict(reason)
    records = list(state.records.values())
    overall = decide(records, message.point, Channel.SMS)
    if overall.status is Status.OPTED_OUT:
        return Verdict(BlockReason.OPTED_OUT)
    if message.kind is not MessageKind.MARKETING:
        return ALLOWED
    status = (
        decide(records, message.point, Channel.SMS, message.topic).status if message.topic else None
    )
    if status is Status.OPTED_OUT:
        return Verdict(BlockReason.TOPIC_OPTED_OUT)
    if message.require_opt_in and (status or overall.status) is not Status.OPTED_IN:
        return Verdict(BlockReason.NO_CONSENT)
    if limits and limits.exceeded(message.topic, sent, now) is not None:
        return Verdict(BlockReason.FREQUENCY_LIMIT)
    if quiet_hours is not None:
        later = next_allowed(whereabouts(message.recipient, message.line, quiet_hours), now)
        if later is not None:
            return Verdict(defer_until=later)
    return ALLOWED


def deliverable(recipient: str) -> bool:
    """Whether a text can be sent to ``recipient``: a phone number the numbering plan knows."""
    try:
        sms_recipient(recipient)
    except InvalidAddress:
        return False
    return True
