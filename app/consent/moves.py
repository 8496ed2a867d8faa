"""Moving a line to another group without lifting any opt-out.

Which records cover a line depends on its group: a contact who texted STOP to
a Twilio Messaging Service is opted out by a record of that group, and a line
that leaves the group leaves that record behind. So a move first works out,
for every address with records in the old or the new group, where the line's
status would stop being opted out — overall or for a topic, per channel — and
writes an opt-out on the line itself there, through the ledger, with the
source and actor of the opt-out it keeps (a contact's STOP stays one only the
contact can lift) and one history event each. Then it moves the line and
appends its membership row. Opt-ins are not carried: a lost opt-in only blocks
more, and carrying one could lift an opt-out of the new group.

The move runs in two phases so that STOPs are never held up for long:

1. **carry**, in batches of ``BATCH`` addresses, each its own transaction,
   while the line is still in its old group (an opt-out written on a line
   where a group opt-out is in force changes nothing in force);
2. **move**, one short transaction: on PostgreSQL it takes the exclusive
   advisory lock on the organisation's line structure that every consent
   change holds shared (ledger.load_structure), so no change decided on the
   old membership is still committing; it carries again for the addresses
   that changed since phase 1, moves the line and records the membership.
   On SQLite, BEGIN IMMEDIATE already makes the phase one writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import Address
from app.consent import history, ledger
from app.consent.rules import Point, RecordState, decide_level
from app.consent.values import OVERALL, PHONE_CHANNELS, Channel, Scope, Status
from app.data.db import Database
from app.data.models import (
    ConsentRecord,
    ContactAddress,
    Line,
    LineGroup,
    LineMembership,
    Organization,
)
from app.errors import InvalidChange, NotFound
from app.lines import get_or_create_group

#: Addresses per transaction in the carry phase.
BATCH = 500


@dataclass(frozen=True)
class Moved:
    """What ``move_line`` did."""

    line: str
    old_group: str | None
    new_group: str | None
    #: Opt-out records written on the line so that the move lifted none.
    carried: int
    #: Addresses they belong to.
    addresses: int

    @property
    def changed(self) -> bool:
        return self.old_group != self.new_group


@dataclass(frozen=True)
class _Line:
    id: int
    address: str
    organization_id: int
    old: LineGroup | None
    new: LineGroup | None

    @property
    def scopes(self) -> list[str]:
        return [Scope.group(group.id).key for group in (self.old, self.new) if group is not None]

    def describe(self) -> str:
        def name(group: LineGroup | None) -> str:
            return f"group {group.name}" if group else "no group"

        return f"line {self.address} moved from {name(self.old)} to {name(self.new)}"


def move_line(
    database: Database, line_address: str, group: str | None, *, actor: str, batch: int = BATCH
) -> Moved:
    """Move the line to ``group`` (created when new; None: out of any group).

    Raises:
        NotFound: no such line.
        InvalidChange: no actor.
    """
    if not actor.strip():
        raise InvalidChange("actor: say who moves the line (it is recorded on every change)")
    with database.transaction() as session:
        line = _prepare(session, line_address, group)
    if line.old == line.new:
        with database.transaction() as session:
            session.execute(sa.update(Line).where(Line.id == line.id).values(seen_group=None))
        return Moved(line.address, _name(line.old), _name(line.new), 0, 0)

    seen: dict[int, int] = {}
    carried: dict[int, int] = {}
    for ids in _batches(database, line, batch):
        with database.transaction() as session:
            for address_id in ids:
                carried[address_id] = _carry(session, line, address_id, actor)
                seen[address_id] = _head(session, address_id)
    with database.transaction() as session:
        ledger.lock_structure(session, line.organization_id, shared=False)
        changed = [
            address_id
            for address_id, head in session.execute(_affected(line))
            if seen.get(address_id) != head
        ]
        for address_id in changed:
            carried[address_id] = carried.get(address_id, 0) + _carry(
                session, line, address_id, actor
            )
        total = sum(carried.values())
        session.execute(
            sa.update(Line)
            .where(Line.id == line.id)
            .values(group_id=line.new.id if line.new else None, seen_group=None)
        )
        session.add(
            LineMembership(
                line_id=line.id,
                group_id=line.new.id if line.new else None,
                actor=actor,
                reason=f"{line.describe()}; {total} opt-outs kept in force on the line",
                carried=total,
            )
        )
    return Moved(
        line.address,
        _name(line.old),
        _name(line.new),
        total,
        sum(1 for count in carried.values() if count),
    )


def _prepare(session: Session, line_address: str, group: str | None) -> _Line:
    row = session.scalars(sa.select(Line).where(Line.address == line_address)).one_or_none()
    if row is None:
        raise NotFound(f"there is no line {line_address}: add it with `optgate lines add`")
    old = session.get(LineGroup, row.group_id) if row.group_id else None
    new = None
    if group is not None:
        organization = session.get(Organization, row.organization_id)
        assert organization is not None
        new = get_or_create_group(session, organization, group)
    return _Line(row.id, row.address, row.organization_id, old, new)


def _name(group: LineGroup | None) -> str | None:
    return group.name if group else None


def _affected(line: _Line) -> Any:
    """Addresses with records in the old or the new group, with their history heads.

    (A Select of (id, head_seq); SQLAlchemy 2.0 and 2.1 spell its type differently.)
    """
    return sa.select(ContactAddress.id, ContactAddress.head_seq).where(
        ContactAddress.id.in_(
            sa.select(ConsentRecord.address_id).where(ConsentRecord.scope.in_(line.scopes))
        ),
        ContactAddress.organization_id == line.organization_id,
    )


def _batches(database: Database, line: _Line, size: int) -> Iterator[list[int]]:
    """The affected addresses' ids, ``size`` at a time, in order."""
    after = 0
    while True:
        with database.reads() as session:
            ids = list(
                session.scalars(
                    _affected(line)
                    .with_only_columns(ContactAddress.id)
                    .where(ContactAddress.id > after)
                    .order_by(ContactAddress.id)
                    .limit(size)
                )
            )
        if not ids:
            return
        yield ids
        after = ids[-1]


def _head(session: Session, address_id: int) -> int:
    return int(
        session.scalar(sa.select(ContactAddress.head_seq).where(ContactAddress.id == address_id))
        or 0
    )


def _carry(session: Session, line: _Line, address_id: int, actor: str) -> int:
    """Write, on the line, the opt-outs of one address that the move would lift; how many."""
    row = session.get(ContactAddress, address_id)
    assert row is not None
    address = Address(row.value, row.kind)
    ledger.lock_address(session, line.organization_id, address)
    state = history.load_state(session, address_id, flags=False)
    written = 0
    for kept, channel in losses(
        state.records.values(),
        Point(line.id, line.old.id if line.old else None),
        Point(line.id, line.new.id if line.new else None),
    ):
        outcome = ledger.apply(
            session,
            ledger.Change(
                organization_id=line.organization_id,
                address=address,
                scope=Scope.line(line.id),
                status=Status.OPTED_OUT,
                source=kept.source,
                actor=kept.actor,
                channel=channel,
                topic=kept.topic or None,
                reason=f"kept in force: {line.describe()} by {actor} (the opt-out of "
                f"event #{kept.seq} covered it there)",
                message_id=kept.message_id,
            ),
        )
        written += len(outcome.events)
    return written


def losses(
    records: Iterable[RecordState], before: Point, after: Point
) -> list[tuple[RecordState, Channel]]:
    """The opt-outs in force at ``before`` that would not be at ``after``: for each
    (topic level, channel) where the line stops being opted out, the record that
    opted it out."""
    records = list(records)
    levels = sorted(
        {
            (record.topic, channel)
            for record in records
            for channel in (PHONE_CHANNELS if record.channel is Channel.ALL else (record.channel,))
            if channel in PHONE_CHANNELS
        }
    )
    lost = []
    for topic, channel in levels:
        was = decide_level(records, before, channel, topic or OVERALL)
        now = decide_level(records, after, channel, topic or OVERALL)
        if was.status is Status.OPTED_OUT and now.status is not Status.OPTED_OUT:
            assert was.record is not None
            lost.append((was.record, channel))
    return lost
