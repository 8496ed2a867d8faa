"""One delivery receipt: the message's state machine, bounces and carrier opt-outs.

Receipts arrive out of order and more than once (docs/compliance.md, Delivery
receipts). Each (provider, message id, status) is applied once; a message's status only moves
forward (queued < sending < sent < delivered | undelivered | failed; read
after delivered), so a late "sent" never overwrites a final state. An error
code says what the failure means for the recipient (the provider's data
table): a carrier opt-out is recorded in the ledger, a dead number is flagged
bounced, a sender-side problem marks no one.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import normalize
from app.consent import ledger
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import dialect_insert
from app.data.models import Direction, Line, Message, MessageStatus, Receipt, utcnow
from app.errors import InvalidAddress
from app.providers.base import DeliveryStatus, ErrorClass, ErrorEffect, Provider, StatusUpdate
from app.sending.handoff import INTERRUPTED

#: How far along each status is; a message only moves to a higher rank.
RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.READ: 4,
}
FINAL = frozenset({MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED})
FAILURES = frozenset({MessageStatus.UNDELIVERED, MessageStatus.FAILED})
#: Error classes that count towards flagging a number bounced.
_BOUNCING = frozenset({ErrorClass.INVALID, ErrorClass.UNREACHABLE})


def handle(
    session: Session, provider: Provider, update: StatusUpdate, our_id: int | None = None
) -> None:
    """Apply one receipt, in the caller's transaction.

    Args:
        our_id: our message id, from the status-callback URL we gave the
            provider. It finds a message whose hand-off was cut off before the
            provider's id was recorded: the receipt proves the provider took it.
    """
    # The message first (locked), so that the receipt is written once, with its
    # message id, rather than inserted and then updated.
    message = session.scalars(
        sa.select(Message)
        .where(
            Message.provider == provider.name,
            Message.provider_message_id == update.message_id,
            Message.direction == Direction.OUTBOUND,
        )
        .with_for_update()
    ).one_or_none()
    if message is None and our_id is not None:
        message = _unrecorded_hand_off(session, provider, our_id, update.message_id)
    insert = dialect_insert(session)
    # One statement, no savepoint: a retried receipt inserts nothing.
    stored = session.execute(
        insert(Receipt)
        .values(
            provider=provider.name,
            provider_message_id=update.message_id,
            status=update.raw_status[:20],
            error_code=update.error_code,
            message_id=message.id if message is not None else None,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["provider", "provider_message_id", "status"])
        .returning(Receipt.id)
    ).first()
    if stored is None:
        return  # the provider sent this (message id, status) before: nothing changes
    if message is None:
        return  # an id we do not know: the receipt is kept for reconciliation
    _advance(message, update)
    if update.status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED) and update.error_code:
        apply_error(session, provider, message, update.error_code)
    session.flush()


def _unrecorded_hand_off(
    session: Session, provider: Provider, message_id: int, provider_message_id: str
) -> Message | None:
    message = session.scalars(
        sa.select(Message)
        .where(
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_(None),
        )
        .with_for_update()
    ).one_or_none()
    if message is not None:
        message.provider, message.provider_message_id = provider.name, provider_message_id
    return message


def _advance(message: Message, update: StatusUpdate) -> bool:
    if update.status is None:
        return False  # a status we do not track; the receipt is kept
    new = MessageStatus(update.status.value)
    current = message.status
    interrupted = current is MessageStatus.FAILED and message.error_code == INTERRUPTED
    if interrupted:
        # Settled as "interrupted" (outcome unknown); the provider says it has it.
        current = MessageStatus.SENDING
    if current not in RANK:
        return False  # blocked or not ours to move (never handed to the provider)
    if current in FINAL and new in FINAL:
        return False  # the first final word stands
    if new is MessageStatus.READ and current in FAILURES:
        return False
    if RANK[new] <= RANK[current]:
        return False
    if interrupted:
        message.error_code = None
    message.status = new
    if new in FAILURES and update.error_code:
        message.error_code = update.error_code
    return True


def apply_error(session: Session, provider: Provider, message: Message, code: str) -> str | None:
    """What a failure with ``code`` means for the recipient: a carrier opt-out in the
    ledger ("opted_out"), a bounce flag ("bounced"), or nothing (None)."""
    effect = provider.error_effect(code)
    if effect.kind in (ErrorClass.SENDER, ErrorClass.UNKNOWN):
        return None
    try:
        address = normalize(message.address)
    except InvalidAddress:
        return None
    actor = f"{provider.name} error {code}"
    if effect.kind is ErrorClass.OPTED_OUT:
        line = session.get(Line, message.line_id)
        assert line is not None
        # The provider blocks the pair for the sender, or its whole group
        # (a Twilio Messaging Service): record it there, as a carrier opt-out.
        scope = Scope.group(line.group_id) if line.group_id else Scope.line(line.id)
        outcome = ledger.apply(
            session,
            ledger.Change(
                organization_id=message.organization_id,
                address=address,
                scope=scope,
                status=Status.OPTED_OUT,
                source=Source.CARRIER,
                actor=actor,
                channel=Channel.SMS,
                reason=effect.meaning,
                message_id=message.id,
                via_line_id=line.id,
            ),
        )
        return "opted_out" if outcome.changed else None
    if _failures_in_a_row(session, provider, message, effect) < effect.after:
        return None
    outcome = ledger.set_flag(
        session,
        ledger.FlagChange(
            organization_id=message.organization_id,
            address=address,
            flag=Flag.BOUNCED,
            set=True,
            source=Source.CARRIER,
            actor=actor,
            reason=effect.meaning,
            message_id=message.id,
        ),
    )
    return "bounced" if outcome.changed else None


def _failures_in_a_row(
    session: Session, provider: Provider, message: Message, effect: ErrorEffect
) -> int:
    """The recipient's latest messages that failed for a bouncing reason, until one got through.

    Counted over every line of the organisation within the window; each
    message counts once, whatever number of receipts it had.
    """
    since = utcnow() - timedelta(days=effect.window_days)
    rows = session.execute(
        sa.select(Message.id, Message.status, Message.error_code)
        .where(
            Message.organization_id == message.organization_id,
            Message.address == message.address,
            Message.direction == Direction.OUTBOUND,
            Message.status.in_([*FINAL, MessageStatus.READ]),
            Message.updated_at >= since,
        )
        .order_by(Message.updated_at.desc(), Message.id.desc())
        .limit(100)
    )
    count = 0
    for _id, status, error_code in rows:
        if status not in FAILURES or not error_code:
            break
        if provider.error_effect(error_code).kind not in _BOUNCING:
            break
        count += 1
    return count
