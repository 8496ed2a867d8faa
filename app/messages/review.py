"""The review queue: inbound texts that may be a revocation in words (R10).

The matcher flags a text such as "please don't text me anymore" as
``needs_review`` instead of acting on it. A person reads it and resolves it:
``opt_out`` applies an opt-out through the ledger, in the scope a stop
keyword on that line would have had (source ``manual``: a person decided,
and the history links the text), or ``dismissed`` changes nothing. Either
way the text leaves the queue, with who resolved it and when.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import AddressKind, normalize
from app.consent import ledger
from app.consent.queries import iso
from app.consent.values import Channel, Source, Status
from app.data.models import Direction, Line, Message, utcnow
from app.errors import Conflict, InvalidAddress, InvalidChange, NotFound
from app.keywords import Matcher
from app.messages.inbound import keyword_scope


class Resolution(StrEnum):
    OPT_OUT = "opt_out"
    DISMISSED = "dismissed"


def pending_query(
    organization_id: int, *, after_id: int = 0, limit: int = 100, resolved: bool = False
) -> sa.Executable:
    """Texts waiting for review (or, with ``resolved``, those already resolved), oldest
    first, each with its line's number."""
    done = Message.review_outcome.is_not(None) if resolved else Message.review_outcome.is_(None)
    return (
        sa.select(Message, Line.address)
        .join(Line, Line.id == Message.line_id)
        .where(
            Message.organization_id == organization_id,
            Message.needs_review,
            done,
            Message.id > after_id,
        )
        .order_by(Message.id)
        .limit(limit)
    )


def pending(
    session: Session,
    organization_id: int,
    *,
    after_id: int = 0,
    limit: int = 100,
    resolved: bool = False,
) -> list[tuple[Message, str]]:
    """``pending_query``'s texts."""
    query = pending_query(organization_id, after_id=after_id, limit=limit, resolved=resolved)
    return [(row[0], row[1]) for row in session.execute(query)]


def review_dict(message: Message, line: str) -> dict[str, Any]:
    return {
        "id": message.id,
        "line": line,
        "from": message.address,
        "body": message.body,
        "received_at": iso(message.created_at),
        "intent": message.intent,
        "resolution": message.review_outcome,
        "resolved_by": message.reviewed_by,
        "resolved_at": iso(message.reviewed_at) if message.reviewed_at else None,
    }


def resolve(
    session: Session,
    matcher: Matcher,
    region: str,
    message_id: int,
    resolution: Resolution,
    *,
    actor: str,
    reason: str | None = None,
    topic: str | None = None,
) -> tuple[Message, ledger.Outcome]:
    """Resolve one text of the queue, in the caller's transaction.

    Raises:
        NotFound: no inbound text ``message_id`` waits for review.
        Conflict: someone resolved it already (the message says who and how).
        InvalidChange: no actor; a topic on a dismissal or one keywords.yaml does not know;
            a sender that is not a phone number.
        ConsentRefused: the opt-out is refused (the address is unchanged).
    """
    if not actor.strip():
        raise InvalidChange("actor: say who resolves it")
    message = session.scalars(
        sa.select(Message)
        .where(Message.id == message_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if message is None or message.direction is not Direction.INBOUND or not message.needs_review:
        raise NotFound(f"there is no inbound text {message_id} waiting for review")
    if message.review_outcome is not None:
        assert message.reviewed_at is not None  # set with the outcome, always
        raise Conflict(
            f"text {message_id} was already resolved as {message.review_outcome} by "
            f"{message.reviewed_by} at {iso(message.reviewed_at)}"
        )
    outcome = ledger.Outcome()
    if resolution is Resolution.OPT_OUT:
        outcome = _opt_out(session, matcher, region, message, actor, reason, topic)
    elif topic is not None:
        raise InvalidChange("topic: only an opt_out takes a topic")
    message.review_outcome = resolution.value
    message.reviewed_by = actor
    message.reviewed_at = utcnow()
    session.flush()
    return message, outcome


def _opt_out(
    session: Session,
    matcher: Matcher,
    region: str,
    message: Message,
    actor: str,
    reason: str | None,
    topic: str | None,
) -> ledger.Outcome:
    if why := matcher.config.unknown_topic(topic):
        raise InvalidChange(f"topic {why}")
    try:
        sender = normalize(message.address, region)
    except InvalidAddress:
        sender = None
    if sender is None or sender.kind is not AddressKind.PHONE:
        raise InvalidChange(
            f"the text came from {message.address!r}, which is not a phone number: "
            "there is no consent to change; dismiss it"
        )
    structure = ledger.load_structure(session, message.organization_id)
    said = message.body.strip()[:80]
    return ledger.apply(
        session,
        ledger.Change(
            organization_id=message.organization_id,
            address=sender,
            scope=keyword_scope(matcher, structure.point(message.line_id)),
            status=Status.OPTED_OUT,
            source=Source.MANUAL,
            actor=actor,
            channel=Channel.SMS,
            topic=topic,
            reason=reason or f"reviewed text {message.id}: {said!r}",
            message_id=message.id,
            via_line_id=message.line_id,
        ),
        structure,
    )
