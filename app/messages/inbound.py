"""One inbound text: dedupe → register the line → match → ledger → reply.

Called by the webhook inside its transaction; the caller commits, and only
then answers the provider, so an answered STOP is already in force (DESIGN.md
rule 3). Pure domain: a session, a provider, a matcher and settings in; no
Flask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import Address, AddressKind, normalize, normalize_line
from app.consent import history, ledger
from app.consent.rules import Point, decide
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import dialect_insert
from app.data.models import (
    ContactAddress,
    Direction,
    FlagState,
    HeldText,
    Line,
    Message,
    MessageStatus,
    utcnow,
)
from app.errors import InvalidAddress
from app.keywords import Intent, Matcher
from app.keywords.intent import Action
from app.keywords.text import key
from app.lines import register_line
from app.messages import arrival
from app.messages.arrival import LineFacts
from app.providers.base import InboundText, MalformedWebhook, Provider
from app.sending.handoff import Fence
from app.settings import Settings

#: The consent change each action asks for: (status, topic-level?).
_CHANGES = {
    Action.OPT_OUT: (Status.OPTED_OUT, False),
    Action.OPT_IN: (Status.OPTED_IN, False),
    Action.TOPIC_OPT_OUT: (Status.OPTED_OUT, True),
    Action.TOPIC_OPT_IN: (Status.OPTED_IN, True),
}
log = logging.getLogger("optgate.inbound")

_PROVIDER_ACTIONS = {"opt_out": Status.OPTED_OUT, "opt_in": Status.OPTED_IN}
#: Replies that tell the contact they will get texts: not to a number on do-not-contact.
_PROMISING = frozenset({Action.OPT_IN, Action.TOPIC_OPT_IN, Action.RESPONDER})
#: Replies never held back by the reply-loop limit.
_ALWAYS_ANSWERED = frozenset({Action.OPT_OUT, Action.TOPIC_OPT_OUT, Action.HELP})
#: Intents (as stored on the message) whose answer promises that sending has stopped.
_STOP_INTENTS = frozenset({Action.OPT_OUT.value, Action.TOPIC_OPT_OUT.value})


@dataclass(frozen=True)
class Handled:
    #: The text to answer with (None: no reply).
    reply: str | None
    #: Set when the text opted out of something: the answer waits until no
    #: hand-off to that number is in flight (app/sending/handoff.py).
    fence: Fence | None = None
    #: No organisation has the line: the text was kept for a person (HeldText).
    held: bool = False


def handle(
    session: Session, provider: Provider, text: InboundText, matcher: Matcher, settings: Settings
) -> Handled:
    """Apply one inbound text.

    An ordinary text (no keyword) to a line this process knows costs one
    statement before the commit (app/messages/arrival.py); a keyword text adds
    the ledger's work.

    Raises:
        MalformedWebhook: the text was not sent to a number or short code.
    """
    try:
        line_address = normalize_line(text.recipient, settings.default_region)
    except InvalidAddress as error:
        raise MalformedWebhook(f"To: {error}") from None
    sender = _contact(text.sender, settings)
    sender_value = sender.value if sender else text.sender.strip()[:320]
    line = arrival.remembered(session, line_address.value)
    if line is None or _group_news(line, text.service_id):
        line = _line_for(session, provider, text, line_address, settings)
        if line is None:
            _hold(session, text, line_address)
            return Handled(None, held=True)
    intent = matcher.match(text.body, line=line.address, group=line.group_name)
    short_code = line_address.kind is AddressKind.SHORT_CODE
    contact = sender is not None and sender.kind is AddressKind.PHONE
    # The confirmation of an opt-out and the answer to HELP depend on nothing stored:
    # decided now, they ride in the row's INSERT instead of an UPDATE after it.
    early = contact and intent.action in _ALWAYS_ANSWERED
    reply = (
        _reply(session, provider, text, intent, matcher, line, short_code, sender, settings)
        if early and sender is not None
        else None
    )
    # A provider's retry is found by the insert (the provider's id is unique),
    # not by a look-up before it: one statement fewer for the 95 % that are new.
    recorded = arrival.insert_message(
        session, line, sender_value, _row_values(provider, text, intent, reply)
    )
    if recorded is None:
        return _again(session, provider, text, line, sender, intent)
    if not recorded.line_unchanged:
        # What this process remembered of the line was stale (another process moved
        # it): read it, match again with its rules now, and correct the row.
        arrival.forget(session, line.address)
        line = _line_for(session, provider, text, line_address, settings)
        assert line is not None  # the row's line exists: it was just inserted with it
        intent = matcher.match(text.body, line=line.address, group=line.group_name)
        early = contact and intent.action in _ALWAYS_ANSWERED
        reply = (
            _reply(session, provider, text, intent, matcher, line, short_code, sender, settings)
            if early and sender is not None
            else None
        )
        _correct(session, recorded.message_id, line, intent, reply)
        recorded = _sender_facts(session, line, sender_value, recorded.message_id)

    if sender is None or not contact or recorded.sender_is_line:
        # Short codes, alphanumeric senders and our own lines are robots: their
        # texts are kept, but they neither change consent nor get an answer.
        if reply is not None:  # one of our lines, found out only by the insert
            _set_reply(session, recorded.message_id, None)
        return Handled(None)
    _apply_consent(session, text, intent, matcher, line, recorded.message_id, sender)
    if recorded.bounced:
        # A number that texts us is reachable (R17). Read without a lock: the ledger
        # locks and looks again, and most senders were never bounced.
        _clear_bounce(session, line, sender, recorded.message_id)
    if not early:
        reply = _reply(session, provider, text, intent, matcher, line, short_code, sender, settings)
        if reply is not None:  # most texts get none: no UPDATE for them
            _set_reply(session, recorded.message_id, reply)
    session.flush()
    # Every opt-out waits, whether or not it changed anything: a second STOP, or one
    # the number had already sent, promises as much as the first (app/sending/handoff.py).
    fence = Fence(line.organization_id, sender.value) if _stops(intent, text) else None
    return Handled(reply, fence)


def _line_for(
    session: Session,
    provider: Provider,
    text: InboundText,
    line_address: Address,
    settings: Settings,
) -> LineFacts | None:
    """The text's line read in this transaction, registered first when new (None: no
    organisation has it), and remembered once the transaction commits."""
    line = arrival.read_line(session, line_address.value)
    if line is None or _group_news(line, text.service_id):
        # A line seen for the first time, or a group the provider reports that we
        # have not noted yet: register_line does both (rare, so the ORM's way).
        registered = register_line(
            session,
            line_address,
            settings.default_organization,
            text.service_id,
            via=f"the {provider.name} webhook",
        )
        if registered is None:
            return None
        session.flush()
        line = arrival.read_line(session, line_address.value)
        assert line is not None
    arrival.remember_on_commit(session, line)
    return line


def _group_news(line: LineFacts, service_id: str | None) -> bool:
    """Whether the provider's group for the line is news to note (app/lines.py's
    ``_note_provider_group``): another than ours, and not the one noted already."""
    if not service_id:
        return False
    seen = None if line.group_name == service_id else service_id
    return seen != line.seen_group


def _correct(
    session: Session, message_id: int, line: LineFacts, intent: Intent, reply: str | None
) -> None:
    """Correct a row inserted with stale line facts: its line, reading and reply."""
    session.execute(
        sa.update(Message)
        .where(Message.id == message_id)
        .values(
            organization_id=line.organization_id,
            line_id=line.id,
            intent=intent.action.value,
            needs_review=intent.needs_review,
            reply=reply,
        ),
        execution_options={"synchronize_session": False},
    )


def _set_reply(session: Session, message_id: int, reply: str | None) -> None:
    """Store the answer given, so that a retried webhook gets the very same one."""
    session.execute(
        sa.update(Message).where(Message.id == message_id).values(reply=reply),
        execution_options={"synchronize_session": False},
    )


def _row_values(
    provider: Provider, text: InboundText, intent: Intent, reply: str | None
) -> dict[str, Any]:
    """The message row's columns besides its line and sender."""
    return {
        "reply": reply,
        "direction": Direction.INBOUND.value,
        "body": text.body,
        "status": MessageStatus.RECEIVED.value,
        "provider": provider.name,
        "provider_message_id": text.message_id,
        "meta": dict(text.extras) or None,
        "intent": intent.action.value,
        "needs_review": intent.needs_review,
        "created_at": utcnow(),
    }


def _again(
    session: Session,
    provider: Provider,
    text: InboundText,
    line: LineFacts,
    sender: Address | None,
    intent: Intent,
) -> Handled:
    """A text the provider delivered before: answered as the first delivery was."""
    first = _find(session, provider, text)
    assert first is not None  # found, or committed by the delivery that won the race
    contact = (
        sender is not None
        and sender.kind is AddressKind.PHONE
        and not _is_our_line(session, sender.value)
    )
    # A retried STOP is answered as the first was: only once nothing is in flight.
    stops = contact and (_stops(intent, text) or first.intent in _STOP_INTENTS)
    return Handled(first.reply, Fence(first.organization_id, first.address) if stops else None)


def _sender_facts(
    session: Session, line: LineFacts, sender: str, message_id: int
) -> arrival.Recorded:
    """``arrival.Recorded`` for a row whose line was corrected: the sender's facts in
    the line's organisation, read again."""
    bounced = session.scalar(
        sa.select(FlagState.is_set)
        .join(ContactAddress, ContactAddress.id == FlagState.address_id)
        .where(
            ContactAddress.organization_id == line.organization_id,
            ContactAddress.value == sender,
            FlagState.name == Flag.BOUNCED,
        )
    )
    return arrival.Recorded(message_id, _is_our_line(session, sender), bool(bounced), True)


def _is_our_line(session: Session, address: str) -> bool:
    return session.scalar(sa.select(Line.id).where(Line.address == address)) is not None


def _hold(session: Session, text: InboundText, line: Address) -> None:
    """Keep a text to a line no organisation has, once (providers retry), for later."""
    insert = dialect_insert(session)
    session.execute(
        insert(HeldText)
        .values(
            provider=text.provider,
            provider_message_id=text.message_id,
            line=line.value,
            sender=text.sender.strip()[:320],
            body=text.body,
            service_id=text.service_id,
            provider_action=text.provider_action,
            media_count=text.media_count,
            meta=dict(text.extras) or None,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_message_id"])
    )
    log.warning(
        "held a text to line %s, which no organization has (OPTGATE_DEFAULT_ORGANIZATION "
        "is unset and there is not exactly one organization): add the line with "
        "`optgate lines add NUMBER --organization NAME` and it is applied then",
        line.value,
    )


def apply_held(session: Session, line: Line, matcher: Matcher, settings: Settings) -> list[Fence]:
    """Apply the texts held for ``line`` (just added), oldest first, and forget them.

    Their consent changes are made now, as if they had just arrived; their
    replies are not sent (the moment has passed). Returns the (organization
    id, address) of every opt-out among them: the caller waits for hand-offs
    to them once committed.
    """
    from app.providers import get_provider  # adapters are loaded only when a text needs one

    stops: list[Fence] = []
    held = session.scalars(
        sa.select(HeldText).where(HeldText.line == line.address).order_by(HeldText.id)
    ).all()
    for row in held:
        text = InboundText(
            provider=row.provider,
            message_id=row.provider_message_id,
            sender=row.sender,
            recipient=row.line,
            body=row.body,
            service_id=row.service_id,
            provider_action=_held_action(row.provider_action),
            media_count=row.media_count,
            extras=row.meta or {},
        )
        handled = handle(session, get_provider(row.provider, settings), text, matcher, settings)
        if handled.fence is not None:
            stops.append(handled.fence)
        session.delete(row)
    session.flush()
    return stops


def _held_action(raw: str | None) -> Literal["opt_out", "opt_in", "help"] | None:
    return next((action for action in ("opt_out", "opt_in", "help") if action == raw), None)


def _find(session: Session, provider: Provider, text: InboundText) -> Message | None:
    return session.scalars(
        sa.select(Message).where(
            Message.provider == provider.name, Message.provider_message_id == text.message_id
        )
    ).one_or_none()


def _stops(intent: Intent, text: InboundText) -> bool:
    """Whether the text asks to stop something (all of it, or a topic)."""
    return text.provider_action == "opt_out" or intent.action.value in _STOP_INTENTS


def _contact(raw: str, settings: Settings) -> Address | None:
    try:
        return normalize(raw, settings.default_region)
    except InvalidAddress:
        return None  # an alphanumeric sender ("VERIFY"): not a contact


def keyword_scope(matcher: Matcher, line: Point, status: Status = Status.OPTED_OUT) -> Scope:
    """Where the contact's keyword applies: an opt-out to the organisation when its
    setting says so; else, and for every opt-in, the line's group (a Messaging Service
    stops and starts as a whole, as at Twilio), else the line.

    An opt-in is never wider than the line's group, whatever ``opt_out_scope`` says: a
    START texted to one line is consent for that line (and its service), not for every
    number of the organisation, so the other lines stay stopped (docs/consent.md).

    ``line`` comes from the ``ledger.load_structure`` of the change's transaction, not
    from a Line read before it: a line moving meanwhile (app/consent/moves.py) is seen
    where the move left it.
    """
    widest = matcher.config.organization.opt_out_scope == "organization"
    if widest and status is Status.OPTED_OUT:
        return Scope.organization()
    if line.group_id is not None:
        return Scope.group(line.group_id)
    assert line.line_id is not None
    return Scope.line(line.line_id)


def _apply_consent(
    session: Session,
    text: InboundText,
    intent: Intent,
    matcher: Matcher,
    line: LineFacts,
    message_id: int,
    sender: Address,
) -> None:
    """Apply the text's consent changes."""
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
        return
    # A text naming several topics makes several changes: the lines are read once.
    structure = ledger.load_structure(session, line.organization_id)
    point = structure.point(line.id)
    for status, topic, source in changes:
        ledger.apply(
            session,
            ledger.Change(
                organization_id=line.organization_id,
                address=sender,
                scope=keyword_scope(matcher, point, status),
                status=status,
                source=source,
                actor=sender.value if source is Source.KEYWORD else text.provider,
                channel=Channel.SMS,
                topic=topic,
                reason=f"texted {text.body.strip()[:80]!r} to {line.address}",
                message_id=message_id,
                via_line_id=line.id,
            ),
            structure,
        )


def _clear_bounce(session: Session, line: LineFacts, sender: Address, message_id: int) -> None:
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
            message_id=message_id,
        ),
    )


def _reply(
    session: Session,
    provider: Provider,
    text: InboundText,
    intent: Intent,
    matcher: Matcher,
    line: LineFacts,
    short_code: bool,
    sender: Address,
    settings: Settings,
) -> str | None:
    """At most one answer; none where someone else answers or a robot may be talking."""
    if intent.reply is None or intent.needs_review or text.provider_action is not None:
        return None
    rules = matcher.config.rules_for(line.address, line.group_name)
    if rules.provider_confirms_defaults and not short_code and _provider_answers(provider, text):
        return None  # the provider has answered this default keyword itself
    reply = intent.reply
    if intent.action in _PROMISING:
        status, do_not_contact = _standing(session, line, sender)
        if do_not_contact:
            # Nothing will ever be sent to the number: "you are subscribed" would be a lie.
            return None
        if intent.action in (Action.TOPIC_OPT_IN, Action.RESPONDER) and (
            status is Status.OPTED_OUT
        ):
            if intent.action is Action.RESPONDER:
                return None  # only confirmations and HELP go to someone who stopped
            reply = matcher.topic_opt_in_while_opted_out(
                intent.topics, line.address, line.group_name
            )
    if intent.action in _ALWAYS_ANSWERED:
        # The one confirmation of an opt-out, and the answer to HELP, are owed to the
        # contact (CTIA; on a short code nobody else sends them): the reply-loop guard
        # below is for chatter with robots, and robots' texts never get here.
        return reply
    if _replies_last_hour(session, line, sender) >= settings.reply_limit_per_hour:
        return None
    return reply


def _provider_answers(provider: Provider, text: InboundText) -> bool:
    """Whether the provider's own filter took the text as one of its keywords.

    Twilio matches the whole text, trimmed and in any case, against its words: "Stop"
    yes, but not "STOP!", "S T O P", "STOP ALL" or full-width letters, which optgate
    reads as STOP too. For those nobody else confirms, so optgate does.
    """
    raw = text.body.strip()
    return raw.isascii() and raw.isalpha() and key(raw) in provider.answered_keywords


def _standing(session: Session, line: LineFacts, sender: Address) -> tuple[Status, bool]:
    """The sender's overall status on the line, and whether it is on do-not-contact."""
    row = history.find_address(session, line.organization_id, sender.value)
    if row is None:
        return Status.NOT_DEFINED, False
    state = history.load_state(session, row.id)
    status = decide(state.records.values(), Point(line.id, line.group_id), Channel.SMS).status
    return status, state.flag_is_set(Flag.DO_NOT_CONTACT)


def _replies_last_hour(session: Session, line: LineFacts, sender: Address) -> int:
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
