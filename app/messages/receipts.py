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

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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


@dataclass
class _Tracked:
    """The columns of a message that a receipt reads and may move."""

    id: int
    status: MessageStatus
    error_code: str | None


#: The outbound message a receipt is about, locked against a concurrent receipt for it.
_MESSAGE = (
    sa.select(Message.id, Message.status, Message.error_code)
    .where(
        Message.provider == sa.bindparam("provider"),
        Message.provider_message_id == sa.bindparam("provider_message_id"),
        Message.direction == Direction.OUTBOUND,
    )
    .with_for_update()
)
#: The receipt row's INSERT … ON CONFLICT DO NOTHING RETURNING id, per dialect.
_INSERTS: dict[str, Any] = {}


def handle(
    session: Session, provider: Provider, update: StatusUpdate, our_id: int | None = None
) -> None:
    """Apply one receipt, in the caller's transaction.

    Three statements at most (read the message, insert the receipt, move the
    message), written in Core: a receipt is the most frequent webhook of all.

    Args:
        our_id: our message id, from the status-callback URL we gave the
            provider. It finds a message whose hand-off was cut off before the
            provider's id was recorded: the receipt proves the provider took it.
    """
    connection = session.connection()
    # The message first (locked), so that the receipt is written once, with its
    # message id, rather than inserted and then updated.
    found = connection.execute(
        _MESSAGE, {"provider": provider.name, "provider_message_id": update.message_id}
    ).one_or_none()
    message = _Tracked(*found) if found is not None else None
    if message is None and our_id is not None:
        message = _unrecorded_hand_off(session, provider, our_id, update.message_id)
    # One statement, no savepoint: a retried receipt inserts nothing.
    stored = connection.execute(
        _insert(session),
        {
            "provider": provider.name,
            "provider_message_id": update.message_id,
            "status": update.raw_status[:20],
            "error_code": update.error_code,
            "message_id": message.id if message is not None else None,
            "received_at": utcnow(),
        },
    ).first()
    if stored is None:
        return  # the provider sent this (message id, status) before: nothing changes
    if message is None:
        return  # an id we do not know: the receipt is kept for reconciliation
    if _advance(message, update):
        connection.execute(
            sa.update(Message)
            .where(Message.id == message.id)
            .values(status=message.status, error_code=message.error_code, updated_at=utcnow())
        )
    if update.status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED) and update.error_code:
        row = session.get(Message, message.id, populate_existing=True)
        assert row is not None
        apply_error(session, provider, row, update.error_code)
        session.flush()


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    statement = _INSERTS.get(dialect)
    if statement is None:
        statement = _INSERTS[dialect] = (
            dialect_insert(session)(Receipt)
            .on_conflict_do_nothing(index_elements=["provider", "provider_message_id", "status"])
            .returning(Receipt.id)
        )
    return statement


def _unrecorded_hand_off(
    session: Session, provider: Provider, message_id: int, provider_message_id: str
) -> _Tracked | None:
    found = session.execute(
        sa.select(Message.id, Message.status, Message.error_code)
        .where(
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_(None),
        )
        .with_for_update()
    ).one_or_none()
    if found is None:
        return None
    session.execute(
        sa.update(Message)
        .where(Message.id == message_id)
        .values(provider=provider.name, provider_message_id=provider_message_id)
        .execution_options(synchronize_session=False)
    )
    return _Tracked(*found)


def _advance(message: _Tracked, update: StatusUpdate) -> bool:
    """Move ``message`` on as the receipt says, if it may; whether it moved."""
    if update.status is None:
        return False  # a status we do not track; the receipt is kept
    new = MessageStatus(update.status.value)
    current = MessageStatus(message.status)
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
