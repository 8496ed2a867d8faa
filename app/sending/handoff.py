"""The hand-off protocol: how a worker and a STOP agree that nothing leaves after the STOP.

DESIGN.md rule 2: once a STOP webhook is answered, no message to that number
may reach the provider. A worker that read the consent a moment before the
STOP committed could still be handing its message over after the STOP was
answered. The database closes that race; no lock server is involved.

The worker, for each message:
  1. **claims** it: ``queued`` → ``sending`` in a committed transaction (only
     one worker can; ``claim_many`` claims as many as the worker sends at once);
  2. reads the recipient's consent in a *new* transaction, and decides (for
     the whole batch in one read);
  3. starts the provider call within ``DECISION_TTL`` seconds of starting that
     read (else it reads again: a decision older than that is stale), with a
     connection timeout of ``CONNECT_TIMEOUT``;
  4. records the outcome, which moves the message out of ``sending``.

The webhook, after committing an opt-out and before answering, **waits**
(``wait_for_hand_offs``) while a message to that address in that organisation
is ``sending``, for at most ``FENCE_WAIT`` seconds of its own clock.

Why that is enough: take a worker whose read (step 2) came before the STOP's
commit. Its claim committed before the read, so before the STOP, so the
webhook's wait sees the message ``sending`` and waits until it leaves that
state — or until ``FENCE_WAIT`` has passed since it first looked, by which
time the provider call began (step 3: at most ``DECISION_TTL`` after the read)
and its request reached the provider (at most ``CONNECT_TIMEOUT`` later). A
worker whose read came after the STOP's commit sees the STOP and blocks the
message. Either way, nothing reaches the provider after the answer.

A batch does not weaken this: a claimed message waiting for a free thread is
``sending``, so the webhook waits for it too, and if it waits longer than
``DECISION_TTL`` after the read, step 3 makes the worker read again.

The STOP is never held hostage: it is committed first, and the wait is bounded.
A message left ``sending`` by a worker killed mid-call (outcome unknown, never
resent: at most once) delays a STOP to the same number by ``FENCE_WAIT`` at
most, until ``optgate requeue`` settles it as ``interrupted``; rows claimed
longer ago than ``STALE_AFTER`` are not waited for at all.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.data.db import Database
from app.data.models import Direction, Message, MessageStatus, utcnow
from app.providers.base import CONNECT_TIMEOUT

#: Seconds a send decision stays good; older, the worker reads the consent again.
DECISION_TTL = 2.0
#: Seconds a webhook waits, at most, for hand-offs in flight after an opt-out.
FENCE_WAIT = DECISION_TTL + CONNECT_TIMEOUT + 1.0
#: A message ``sending`` for longer was left by a worker that died (see requeue).
STALE_AFTER = timedelta(minutes=5)
#: How often the waiting webhook looks again.
_POLL = 0.01

#: The error code of a message whose hand-off was cut off: outcome unknown, not resent.
INTERRUPTED = "interrupted"


class Fence(NamedTuple):
    """What an opt-out's answer must wait for: no hand-off to ``address`` (in that
    organisation) still in flight. ``wait_for_hand_offs(database, *fence)``."""

    organization_id: int
    address: str


def claim(session: Session, message_id: int, now: datetime | None = None) -> bool:
    """Move one due message from ``queued`` to ``sending``; whether this caller won it."""
    return bool(claim_many(session, [message_id], now))


def claim_many(
    session: Session, message_ids: Sequence[int], now: datetime | None = None
) -> list[int]:
    """Move the due ones of ``message_ids`` from ``queued`` to ``sending``: the ones won.

    One statement: two workers given the same ids split them, each id won by
    one. The caller commits right away (step 1 above): the consent read that
    follows must come after the claim is visible to every webhook.
    """
    now = now or utcnow()
    won = session.scalars(
        sa.update(Message)
        .where(
            Message.id.in_(list(message_ids)),
            Message.status == MessageStatus.QUEUED,
            sa.or_(Message.send_at.is_(None), Message.send_at <= now),
        )
        .values(status=MessageStatus.SENDING, claimed_at=now, updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(won)


#: Addresses one look of ``wait_for_hand_offs_to_all`` asks about (bound parameters).
_ADDRESSES_PER_LOOK = 500


#: The messages a worker may be handing over now, built once. The webhook's looks
#: run it outside any transaction (``Database.glance``): on PostgreSQL one round
#: trip each, not three (BEGIN, SELECT, COMMIT).
_IN_FLIGHT = (
    sa.select(Message.address)
    .where(
        Message.organization_id == sa.bindparam("organization_id"),
        Message.address.in_(sa.bindparam("addresses", expanding=True)),
        Message.direction == Direction.OUTBOUND,
        Message.status == MessageStatus.SENDING,
        Message.claimed_at >= sa.bindparam("since"),
    )
    .distinct()
)


def in_flight(session: Session, organization_id: int, address: str) -> bool:
    """Whether a worker may be handing a message to ``address`` to the provider now."""
    return bool(in_flight_to(session, organization_id, [address]))


def in_flight_to(session: Session, organization_id: int, addresses: Collection[str]) -> set[str]:
    """Those of ``addresses`` that a worker may be handing a message to now."""
    params = {
        "organization_id": organization_id,
        "addresses": list(addresses),
        "since": utcnow() - STALE_AFTER,
    }
    return set(session.execute(_IN_FLIGHT, params).scalars())


def wait_for_hand_offs(
    database: Database,
    organization_id: int,
    address: str,
    *,
    wait: float | None = None,
) -> None:
    """After an opt-out committed: wait until no hand-off to ``address`` is in flight.

    Each look is one read of its own (``Database.glance``): it sees what workers
    commit meanwhile, and on SQLite it does not take the write lock that the
    worker it waits for needs to record its hand-off.

    Args:
        wait: the most seconds to wait (default ``FENCE_WAIT``; see the module's proof).
    """
    wait_for_hand_offs_to_all(database, organization_id, [address], wait=wait)


def wait_for_hand_offs_to_all(
    database: Database,
    organization_id: int,
    addresses: Iterable[str],
    *,
    wait: float | None = None,
) -> None:
    """``wait_for_hand_offs`` for many addresses at once (an import's batch of opt-outs).

    One clock for all of them: the proof needs ``FENCE_WAIT`` from the commit,
    which came before the first look, so the whole batch waits that long at most,
    not that long per address. Each look asks about at most
    ``_ADDRESSES_PER_LOOK`` addresses, and only those still in flight at the last.
    """
    deadline = time.monotonic() + (FENCE_WAIT if wait is None else wait)
    waiting = sorted(set(addresses))
    while waiting:
        since = utcnow() - STALE_AFTER
        with database.glance() as connection:
            waiting = sorted(
                address
                for start in range(0, len(waiting), _ADDRESSES_PER_LOOK)
                for address in connection.execute(
                    _IN_FLIGHT,
                    {
                        "organization_id": organization_id,
                        "addresses": waiting[start : start + _ADDRESSES_PER_LOOK],
                        "since": since,
                    },
                ).scalars()
            )
        if not waiting or time.monotonic() >= deadline:
            return
        time.sleep(_POLL)
