"""One inbound text: dedupe → register the line → match → ledger → reply.

Called by the webhook inside its transaction; the caller commits, and only
then answers the provider, so an answered STOP is already in force (DESIGN.md
rule 3). Pure domain: a session, a provider, a matcher and settings in; no
Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.addresses import Address, AddressKind, normalize, normalize_line
from app.consent import history, ledger
from app.consent.rules import Point, decide
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.errors import InvalidAddress
from app.keywords import Intent, Matcher
from app.keywords.intent import Action
from app.keywords.text import key
from app.lines import register_line
from app.models import Direction, Line, LineGroup, Message, MessageStatus, utcnow
from app.providers.base import InboundText, MalformedWebhook, Provider
from app.settings import Settings

#: The consent change each action asks for: (status, topic-level?).
_CHANGES = {
    Action.OPT_OUT: (Status.OPTED_OUT, False),
    Action.OPT_IN: (Status.OPTED_IN, False),
    Action.TOPIC_OPT_OUT: (Status.OPTED_OUT, True),
    Action.TOPIC_OPT_IN: (Status.OPTED_IN, True),
}
_PROVIDER_ACTIONS = {"opt_out": Status.OPTED_OUT, "opt_in": Status.OPTED_IN}


@dataclass(frozen=True)
class Handled:
    #: The text to answer with (None: no reply).
    reply: str | None
    #: (organization id, address) that the text opted out of something: the
    #: answer waits for hand-offs in flight to it (app/handoff.py).
    opted_out: tuple[int, str] | None = None


def handle(
    session: Session, provider: Provider, text: InboundText, matcher: Matcher, settings: Settings
) -> Handled:
    """Apply one inbound text.

    Raises:
        MalformedWebhook: the text was not sent to a number or short code.
    """
    try:
        line_address = normalize_line(text.recipient, settings.default_region)
    except InvalidAddress as error:
        raise MalformedWebhook(f"To: {error}") from None
    sender = _contact(text.sender, settings)
    line = register_line(session, line_address, settings.default_organization, text.service_id)
    group = session.get(LineGroup, line.group_id) if line.group_id else None
    group_name = group.name if group else None
    intent = matcher.match(text.body, line=line.address, group=group_name)
    # A provider's retry is found by the insert (the provider's id is unique),
    # not by a look-up before it: one statement fewer for the 95 % that are new.
    message = _record(session, provider, text, sender, line, intent)
    if message is None:
        return _duplicate(_find(session, provider, text))

    if sender is None or sender.kind is not AddressKind.PHONE or _is_our_line(session, sender):
        # Short codes, alphanumeric senders and our own lines are robots: their
        # texts are kept, but they neither change consent nor get an answer.
        session.flush()
        return Handled(None)

    opted_out = _apply_consent(session, text, intent, matcher, line, message, sender)
    _clear_bounce(session, line, sender, message)
    short_code = line_address.kind is AddressKind.SHORT_CODE
    reply = _reply(
        session, provider, text, intent, matcher, line, group_name, short_code, sender, settings
    )
    if reply is not None:  # most texts get none: no UPDATE for them
        message.reply = reply
    session.flush()
    fence = (line.organization_id, sender.value) if opted_out else None
    return Handled(reply, fence)


def _record(
    session: Session,
    provider: Provider,
    text: InboundText,
    sender: Address | None,
    line: Line,
    intent: Intent,
) -> Message | None:
    """The message row, or None when the provider delivered it before.

    Two deliveries of one message at once: the second insert waits for the
    first transaction and then fails on the unique provider id; it is a
    duplicate, answered like the first.
    """
    message = Message(
        organization_id=line.organization_id,
        line_id=line.id,
        direction=Direction.INBOUND,
        address=sender.value if sender else text.sender.strip()[:320],
        body=text.body,
        status=MessageStatus.RECEIVED,
        provider=provider.name,
        provider_message_id=text.message_id,
        meta=dict(text.extras) or None,
        intent=intent.action.value,
        needs_review=intent.needs_review,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:
        return None
    return message


def _find(session: Session, provider: Provider, text: InboundText) -> Message | None:
    return session.scalars(
        sa.select(Message).where(
            Message.provider == provider.name, Message.provider_message_id == text.message_id
        )
    ).one_or_none()


def _duplicate(first: Message | None) -> Handled:
    """A retried delivery gets the very answer the first one got, and changes nothing."""
    assert first is not None  # found, or committed by the delivery that won the race
    return Handled(first.reply)


def _contact(raw: str, settings: Settings) -> Address | None:
    try:
        return normalize(raw, settings.default_region)
    except InvalidAddress:
        return None  # an alphanumeric sender ("VERIFY"): not a contact


def _is_our_line(session: Session, address: Address) -> bool:
    return session.scalar(sa.select(Line.id).where(Line.address == address.value)) is not None


def keyword_scope(matcher: Matcher, line: Line) -> Scope:
    """Where the contact's keyword applies: the organisation (when its setting says so),
    else the line's group (a Messaging Service stops as a whole, as at Twilio), else the line."""
    if matcher.config.organization.opt_out_scope == "organization":
        return Scope.organization()
    if line.group_id is not None:
        return Scope.group(line.group_id)
    return Scope.line(line.id)


def _apply_consent(
    session: Session,
    text: InboundText,
    intent: Intent,
    matcher: Matcher,
    line: Line,
    message: Message,
    sender: Address,
) -> bool:
    """Apply the text's consent changes; whether any of them opted the sender out."""
    # The provider acted on a default keyword (Twilio's OptOutType): that is the
    # state at the carrier, recorded as such whatever our own reading says.
    changes: list[tuple[Status, str | None, Source]]
    if text.provider_action in _PROVIDER_ACTIONS:
        changes = [(_PROVIDER_ACTIONS[text.provider_action], None, Source.CARRIER)]
    elif intent.action in _CHANGES:
        status, by_topic = _CHANGES[intent.action]
        topics = intent.topics if by_topic else (None,)
        changes = [(status, topic, Source.KEYWORD) for topic in topics]
    else:
        return False
    opted_out = False
    # A text naming several topics makes several changes: the lines are read once.
    structure = ledger.load_structure(session, line.organization_id)
    for status, topic, source in changes:
        outcome = ledger.apply(
            session,
            ledger.Change(
                organization_id=line.organization_id,
                address=sender,
                scope=keyword_scope(matcher, line),
                status=status,
                source=source,
                actor=sender.value if source is Source.KEYWORD else text.provider,
                channel=Channel.SMS,
                topic=topic,
                reason=f"texted {text.body.strip()[:80]!r} to {line.address}",
                message_id=message.id,
                via_line_id=line.id,
            ),
            structure,
        )
        opted_out = opted_out or (status is Status.OPTED_OUT and outcome.changed)
    return opted_out


def _clear_bounce(session: Session, line: Line, sender: Address, message: Message) -> None:
    """A number that texts us is reachable: its bounce flag goes (R17)."""
    ledger.set_flag(
        session,
        ledger.FlagChange(
            organization_id=line.organization_id,
            address=sender,
            flag=Flag.BOUNCED,
            set=False,
            source=Source.SYSTEM,
            actor="inbound message",
            reason=f"the number texted {line.address}",
            message_id=message.id,
        ),
    )


def _reply(
    session: Session,
    provider: Provider,
    text: InboundText,
    intent: Intent,
    matcher: Matcher,
    line: Line,
    group_name: str | None,
    short_code: bool,
    sender: Address,
    settings: Settings,
) -> str | None:
    """At most one answer; none where someone else answers or a robot may be talking."""
    if intent.reply is None or intent.needs_review or text.provider_action is not None:
        return None
    rules = matcher.config.rules_for(line.address, group_name)
    if (
        rules.provider_confirms_defaults
        and not short_code
        and intent.exact
        and intent.keyword is not None
        and key(intent.keyword) in provider.answered_keywords
    ):
        return None  # the provider has answered this default keyword itself
    reply = intent.reply
    if intent.action in (Action.TOPIC_OPT_IN, Action.RESPONDER) and (
        _overall_status(session, line, sender) is Status.OPTED_OUT
    ):
        if intent.action is Action.RESPONDER:
            return None  # only confirmations and HELP go to someone who stopped
        reply = matcher.topic_opt_in_while_opted_out(intent.topics, line.address, group_name)
    if _replies_last_hour(session, line, sender) >= settings.reply_limit_per_hour:
        return None
    return reply


def _overall_status(session: Session, line: Line, sender: Address) -> Status:
    row = history.find_address(session, line.organization_id, sender.value)
    if row is None:
        return Status.NOT_DEFINED
    state = history.load_state(session, row.id, flags=False)
    return decide(state.records.values(), Point(line.id, line.group_id), Channel.SMS).status


def _replies_last_hour(session: Session, line: Line, sender: Address) -> int:
    since = utcnow() - timedelta(hours=1)
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.line_id == line.id,
                Message.address == sender.value,
                Message.direction == Direction.INBOUND,
                Message.reply.is_not(None),
                Message.created_at >= since,
            )
        )
        or 0
    )
