"""The consent history: event hashes, replay, and verification of both.

Each address has its own chain of events (seq 1, 2, 3, ...). An event's hash
covers its content and the previous event's hash; the address row keeps the
head of the chain. So an event edited in place, removed, inserted or
reordered breaks the chain, and removing the newest events no longer matches
the head. (Someone able to rewrite the events *and* recompute every hash and
the head is not stopped by a hash chain alone; exporting the heads elsewhere
is what anchors them.)

Replaying the events of an address in order reproduces its current consent
records and flags exactly; ``verify`` checks that too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.consent.rules import RecordKey, RecordState
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.models import (
    GENESIS_HASH,
    ConsentEvent,
    ConsentRecord,
    ContactAddress,
    FlagState,
    Line,
    LineGroup,
    LineMembership,
)

#: ``ConsentEvent.subject`` of a consent change (flag changes use the flag's name).
CONSENT = "consent"
SET = "set"
CLEAR = "clear"


def event_hash(event: ConsentEvent) -> str:
    """SHA-256 over the event's content and the previous event's hash."""
    content: dict[str, Any] = {
        "organization_id": event.organization_id,
        "address": event.address,
        "seq": event.seq,
        "subject": event.subject,
        "scope": event.scope,
        "channel": event.channel,
        "topic": event.topic,
        "old_value": event.old_value,
        "new_value": event.new_value,
        "old_source": None if event.old_source is None else str(event.old_source),
        "source": str(event.source),
        "actor": event.actor,
        "reason": event.reason,
        "message_id": event.message_id,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class FlagValue:
    is_set: bool
    source: Source
    actor: str
    seq: int
    at: datetime
    reason: str | None = None
    message_id: int | None = None


@dataclass
class AddressState:
    """The consent records and flags of one address."""

    records: dict[RecordKey, RecordState] = field(default_factory=dict)
    flags: dict[Flag, FlagValue] = field(default_factory=dict)
    #: The stored rows behind ``records`` (when loaded from the database), so
    #: the ledger can update them without selecting them again.
    rows: dict[RecordKey, ConsentRecord] = field(default_factory=dict, compare=False, repr=False)

    def flag_is_set(self, flag: Flag) -> bool:
        value = self.flags.get(flag)
        return value is not None and value.is_set


def replay(events: Iterable[ConsentEvent]) -> AddressState:
    """The state that the events of one address, in order, produce."""
    state = AddressState()
    for event in events:
        if event.subject == CONSENT:
            record = RecordState(
                scope=Scope.from_key(event.scope),
                channel=Channel(event.channel),
                topic=event.topic,
                status=Status(event.new_value),
                source=event.source,
                actor=event.actor,
                seq=event.seq,
                at=event.created_at,
                reason=event.reason,
                message_id=event.message_id,
            )
            state.records[record.key] = record
        else:
            state.flags[Flag(event.subject)] = FlagValue(
                is_set=event.new_value == SET,
                source=event.source,
                actor=event.actor,
                seq=event.seq,
                at=event.created_at,
                reason=event.reason,
                message_id=event.message_id,
            )
    return state


def record_state(row: ConsentRecord | sa.Row[Any]) -> RecordState:
    """The rules' view of a stored record (the model, or a row of its columns)."""
    return RecordState(
        scope=Scope.from_key(row.scope),
        channel=row.channel,
        topic=row.topic,
        status=row.status,
        source=row.source,
        actor=row.actor,
        seq=row.seq,
        at=row.updated_at,
        reason=row.reason,
        message_id=row.message_id,
    )


def flag_value(row: FlagState) -> FlagValue:
    return FlagValue(
        is_set=row.is_set,
        source=row.source,
        actor=row.actor,
        seq=row.seq,
        at=row.updated_at,
        reason=row.reason,
        message_id=row.message_id,
    )


def find_address(
    session: Session, organization_id: int, value: str, *, lock: bool = False
) -> ContactAddress | None:
    """The address row of ``value`` in an organisation (None: nothing ever happened to it).

    With ``lock``, the row stays locked until the transaction ends (the ledger's lock).
    """
    query = sa.select(ContactAddress).where(
        ContactAddress.organization_id == organization_id, ContactAddress.value == value
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def states_of(
    session: Session, addresses: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], AddressState]:
    """The state of each (organisation id, address value); empty for one never seen.

    ``find_address`` and ``load_states`` for many at once: one query per
    organisation for the rows, two for their records and flags.
    """
    wanted = set(addresses)
    ids: dict[tuple[int, str], int] = {}
    for organization_id in {organization for organization, _ in wanted}:
        values = [value for organization, value in wanted if organization == organization_id]
        for row in session.scalars(
            sa.select(ContactAddress).where(
                ContactAddress.organization_id == organization_id,
                ContactAddress.value.in_(values),
            )
        ):
            ids[(organization_id, row.value)] = row.id
    loaded = load_states(session, ids.values())
    return {key: loaded[ids[key]] if key in ids else AddressState() for key in wanted}


def load_state(session: Session, address_id: int, *, flags: bool = True) -> AddressState:
    """The stored records and (unless ``flags`` is False) flags of one address."""
    return load_states(session, [address_id], flags=flags)[address_id]


def load_states(
    session: Session, address_ids: Iterable[int], *, flags: bool = True
) -> dict[int, AddressState]:
    """``load_state`` for many addresses at once: two queries, whatever their number."""
    ids = list(address_ids)
    states = {address_id: AddressState() for address_id in ids}
    for row in session.scalars(sa.select(ConsentRecord).where(ConsentRecord.address_id.in_(ids))):
        record = record_state(row)
        states[row.address_id].records[record.key] = record
        states[row.address_id].rows[record.key] = row
    if flags:
        for flag_row in session.scalars(sa.select(FlagState).where(FlagState.address_id.in_(ids))):
            states[flag_row.address_id].flags[flag_row.name] = flag_value(flag_row)
    return states


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong with the history."""

    address: str
    event_id: int | None
    message: str
    #: What is wrong: an address's history, or a line (``address`` is then the line's).
    subject: str = "history"

    def __str__(self) -> str:
        if self.subject == "line":
            return f"line {self.address}: {self.message}"
        where = f"event {self.event_id}" if self.event_id is not None else "history"
        return f"{where} of {self.address}: {self.message}"


def verify(session: Session, batch_size: int = 5000) -> tuple[int, Problem | None]:
    """Check every address's chain and that replaying it gives the stored state.

    Streams the events, so it works for any number of them.

    Returns:
        (events checked, the first problem or None).
    """
    checked = 0
    heads = {
        row.id: row
        for row in session.scalars(sa.select(ContactAddress).order_by(ContactAddress.id))
    }
    events = session.scalars(
        sa.select(ConsentEvent)
        .order_by(ConsentEvent.address_id, ConsentEvent.seq)
        .execution_options(yield_per=batch_size)
    )
    seen: set[int] = set()
    for address_id, chain in groupby(events, key=lambda event: event.address_id):
        seen.add(address_id)
        head = heads.get(address_id)
        chain_events = list(chain)
        checked += len(chain_events)
        problem = _verify_chain(chain_events, head)
        if problem is None and head is not None:
            problem = _verify_state(session, head, chain_events)
        if problem is not None:
            return checked, problem
    for address_id, head in heads.items():
        if address_id not in seen and head.head_seq != 0:
            return checked, Problem(head.value, None, f"all {head.head_seq} events are missing")
        if address_id not in seen:
            problem = _verify_state(session, head, [])
            if problem is not None:
                return checked, problem
    return checked, _verify_memberships(session)


def _verify_memberships(session: Session) -> Problem | None:
    """Every line is in the group its membership history ends with.

    Which opt-outs cover a line depends on its group; a line moved any other way
    than by ``optgate lines move`` (which keeps every opt-out in force and appends
    a membership row) has changed consent in force without a history event.
    """
    newest = (
        sa.select(LineMembership.line_id, sa.func.max(LineMembership.id).label("id"))
        .group_by(LineMembership.line_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Line.address, Line.group_id, LineMembership.group_id)
        .outerjoin(newest, newest.c.line_id == Line.id)
        .outerjoin(LineMembership, LineMembership.id == newest.c.id)
        .order_by(Line.id)
    )
    for address, group_id, recorded in rows:
        if recorded != group_id:
            return Problem(
                address,
                None,
                subject="line",
                message=f"it is in group {_group_name(session, group_id)} but its membership "
                f"history says {_group_name(session, recorded)}: it was moved without "
                "`optgate lines move`, which keeps the opt-outs of its old group in force; "
                "move it back, then move it with `optgate lines move`",
            )
    return None


def _group_name(session: Session, group_id: int | None) -> str:
    group = session.get(LineGroup, group_id) if group_id is not None else None
    return repr(group.name) if group else "none"


def _verify_chain(events: list[ConsentEvent], head: ContactAddress | None) -> Problem | None:
    previous_hash = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return Problem(
                event.address,
                event.id,
                f"is number {event.seq} of its chain where {expected_seq} was expected "
                "(an event before it was removed)",
            )
        if event.prev_hash != previous_hash:
            return Problem(
                event.address, event.id, "does not follow the event before it (chain broken)"
            )
        if event_hash(event) != event.hash:
            return Problem(
                event.address,
                event.id,
                "does not match its hash: it was changed after it was written",
            )
        previous_hash = event.hash
    last = events[-1] if events else None
    if head is None:
        assert last is not None
        return Problem(last.address, last.id, "belongs to an address that no longer exists")
    if last is not None and (head.head_seq != last.seq or head.head_hash != last.hash):
        return Problem(
            head.value,
            last.id,
            f"is the last event found, but the address's head says event number {head.head_seq} "
            "(newer events were removed, or the head was edited)",
        )
    return None


def _verify_state(
    session: Session, head: ContactAddress, events: list[ConsentEvent]
) -> Problem | None:
    expected = replay(events)
    stored = load_state(session, head.id)
    if expected.records != stored.records:
        differing = sorted(
            key[0].key + "/" + key[1] + "/" + (key[2] or "overall")
            for key in set(expected.records) | set(stored.records)
            if expected.records.get(key) != stored.records.get(key)
        )
        return Problem(
            head.value,
            None,
            "stored consent does not match what its history says for " + ", ".join(differing),
        )
    if expected.flags != stored.flags:
        return Problem(head.value, None, "stored flags do not match what their history says")
    return None


def iter_history(
    session: Session, address_id: int, *, after_seq: int = 0, limit: int | None = None
) -> Iterator[ConsentEvent]:
    """The events of one address, oldest first."""
    query = (
        sa.select(ConsentEvent)
        .where(ConsentEvent.address_id == address_id, ConsentEvent.seq > after_seq)
        .order_by(ConsentEvent.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    yield from session.scalars(query)
