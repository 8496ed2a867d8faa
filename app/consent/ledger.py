"""The consent ledger: the only code that changes consent or flags.

``apply`` takes one change (who, what, where) and, inside the caller's
transaction, either writes it — the new record state plus exactly one
history event per record it changes — or refuses it with ``ConsentRefused``
and writes nothing. A change that changes nothing writes nothing. The caller
commits, so a webhook can commit the inbound message and its consent change
together.

The rules (DESIGN.md "Consent model"; MISSION.md R1, R8, R9, R12-R16):

- Nothing is defined until something happens (no record = not_defined).
- Opt-outs always apply. An opt-in that would lift an opt-out in force
  anywhere in its scope is checked against who made that opt-out
  (``values.may_lift``): only the contact lifts a keyword or carrier opt-out;
  staff lift only staff opt-outs; imports lift nothing.
- A contact's opt-in (START to a line) also makes that line opted in when an
  older opt-out in a narrower scope would otherwise keep it out.
- Do-not-contact is never lifted, and no one but the contact records an
  opt-in while it is set. Silence can be lifted.
- A record is rewritten only by a different status or a stronger source, so a
  staff opt-out never downgrades a keyword opt-out into one staff could lift.

Concurrency: the address's row is locked (``SELECT ... FOR UPDATE``; on
SQLite the write lock of BEGIN IMMEDIATE) before anything is read, so two
changes to one address never decide on the same stale state. A transaction
that changes several addresses must lock them in a consistent order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import Address, AddressKind
from app.consent import history
from app.consent.history import CLEAR, CONSENT, SET, AddressState
from app.consent.rules import (
    Point,
    RecordState,
    Structure,
    covering,
    decide_level,
    opt_outs_in_force,
)
from app.consent.values import (
    CONTACT_SOURCES,
    EMAIL_CHANNELS,
    OVERALL,
    PHONE_CHANNELS,
    STAFF_SOURCES,
    Channel,
    Flag,
    Scope,
    ScopeKind,
    Source,
    Status,
    may_lift,
    strength,
)
from app.data.db import dialect_insert
from app.data.models import (
    GENESIS_HASH,
    ConsentEvent,
    ConsentRecord,
    ContactAddress,
    FlagState,
    Line,
    LineGroup,
    Organization,
    utcnow,
)
from app.errors import ConsentRefused, InvalidChange, NotFound

_TOPIC = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Change:
    """A request to set one consent record."""

    organization_id: int
    address: Address
    scope: Scope
    status: Status
    source: Source
    actor: str
    channel: Channel = Channel.SMS
    #: A topic id, or None for the overall status.
    topic: str | None = None
    reason: str | None = None
    #: The inbound or outbound message that caused it.
    message_id: int | None = None
    #: The line the contact wrote to, for keyword and carrier changes.
    via_line_id: int | None = None


@dataclass(frozen=True)
class FlagChange:
    organization_id: int
    address: Address
    flag: Flag
    set: bool
    source: Source
    actor: str
    reason: str | None = None
    message_id: int | None = None


@dataclass
class Outcome:
    """What a change did: the events it wrote (none when nothing changed)."""

    events: list[ConsentEvent] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


def apply(session: Session, change: Change, structure: Structure | None = None) -> Outcome:
    """Apply one consent change under the rules, in the caller's transaction.

    Args:
        structure: the organisation's lines and groups, when the caller applies
            many changes and has loaded it once (``load_structure``).

    Raises:
        InvalidChange: the change's parts do not fit (wrong channel, foreign line, ...).
        ConsentRefused: the rules forbid it; nothing was written.
    """
    if change.status is Status.NOT_DEFINED:
        raise InvalidChange("a change sets opted_in or opted_out; not_defined is never set")
    if not change.actor.strip():
        raise InvalidChange("a change needs an actor: who made it")
    topic = _topic(change.topic)
    if structure is None:
        structure = load_structure(session, change.organization_id)
    _check_fits(change, structure)
    row = lock_address(session, change.organization_id, change.address)
    # Only a non-contact opt-in looks at the flags (do-not-contact). An address
    # without history has no records or flags: every write appends an event.
    needs_flags = change.status is Status.OPTED_IN and change.source not in CONTACT_SOURCES
    state = (
        history.load_state(session, row.id, flags=needs_flags) if row.head_seq else AddressState()
    )

    if needs_flags and state.flag_is_set(Flag.DO_NOT_CONTACT):
        dnc = state.flags[Flag.DO_NOT_CONTACT]
        raise ConsentRefused(
            f"{change.address} is on the do-not-contact list (set by {dnc.actor}).",
            "Do-not-contact is permanent: no one can opt this address back in.",
        )

    now = utcnow()
    writes = _plan(change, topic, state, structure, row.head_seq, now)
    if change.status is Status.OPTED_IN and writes:
        _refuse_unliftable(session, change, topic, structure, state, writes)
    return Outcome([_write_record(session, row, change, record, state, now) for record in writes])


def set_flag(session: Session, change: FlagChange) -> Outcome:
    """Set or clear a flag on an address, in the caller's transaction.

    Raises:
        ConsentRefused: clearing do-not-contact (it is permanent).
    """
    if not change.actor.strip():
        raise InvalidChange("a change needs an actor: who made it")
    if change.flag is Flag.DO_NOT_CONTACT and not change.set:
        raise ConsentRefused(
            f"{change.address} is on the do-not-contact list.",
            "Do-not-contact is permanent and cannot be lifted.",
        )
    if not change.set:
        # Nothing to clear on an address never seen: no row is created for it
        # (every inbound text clears the bounce flag of its sender).
        known = history.find_address(
            session, change.organization_id, change.address.value, lock=True
        )
        if known is None:
            return Outcome()
        row = known
    else:
        row = lock_address(session, change.organization_id, change.address)
    current = session.get(FlagState, (row.id, change.flag))
    was_set = current is not None and current.is_set
    if was_set == change.set:
        return Outcome()
    old_source = current.source if current is not None else None
    now = utcnow()
    seq = row.head_seq + 1
    if current is None:
        current = FlagState(address_id=row.id, name=change.flag)
        session.add(current)
    current.is_set = change.set
    current.source = change.source
    current.actor = change.actor
    current.reason = change.reason
    current.message_id = change.message_id
    current.seq = seq
    current.updated_at = now
    event = _append_event(
        session,
        row,
        subject=change.flag.value,
        scope=Scope.organization(),
        channel=Channel.SMS if change.flag is Flag.BOUNCED else Channel.ALL,
        topic=OVERALL,
        old_value=SET if was_set else CLEAR,
        new_value=SET if change.set else CLEAR,
        old_source=old_source,
        source=change.source,
        actor=change.actor,
        reason=change.reason,
        message_id=change.message_id,
        at=now,
    )
    return Outcome([event])


# -- structure, locking --------------------------------------------------------------


#: First key of the PostgreSQL advisory lock on an organisation's line structure (the
#: second is the organisation's id); any number no other code uses ("og").
STRUCTURE_LOCK = 0x6F67


def load_structure(session: Session, organization_id: int) -> Structure:
    """The organisation's lines and their groups, as they stay until the transaction ends.

    Which records cover a line depends on its group, so a line must not move
    while a change decided on its group commits. On PostgreSQL this takes a
    shared advisory lock that a line move (app/consent/moves.py) waits for and
    holds off; shared locks never wait for each other. On SQLite, BEGIN
    IMMEDIATE already runs one writer at a time.
    """
    lock_structure(session, organization_id, shared=True)
    rows = session.execute(
        sa.select(Line.id, Line.group_id).where(Line.organization_id == organization_id)
    ).all()
    if not rows and session.get(Organization, organization_id) is None:
        raise NotFound(f"there is no organization with id {organization_id}")
    return Structure({line_id: group_id for line_id, group_id in rows})


def lock_structure(session: Session, organization_id: int, *, shared: bool) -> None:
    """Hold the organisation's line structure until the transaction ends (PostgreSQL)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    take = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    session.execute(sa.select(take(STRUCTURE_LOCK, organization_id)))


def lock_address(session: Session, organization_id: int, address: Address) -> ContactAddress:
    """The address's row, created if new, locked until the transaction ends."""
    row = history.find_address(session, organization_id, address.value, lock=True)
    if row is not None:
        return row
    # Two transactions may create the same address at once: insert-or-ignore.
    # The row we insert stays locked by our transaction until it ends; if the
    # other one won, lock its row.
    insert = dialect_insert(session)
    created: ContactAddress | None = session.scalars(
        insert(ContactAddress)
        .values(
            organization_id=organization_id,
            value=address.value,
            kind=address.kind,
            head_seq=0,
            head_hash=GENESIS_HASH,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "value"])
        .returning(ContactAddress)
    ).one_or_none()
    if created is not None:
        return created
    row = history.find_address(session, organization_id, address.value, lock=True)
    assert row is not None  # the other transaction committed it
    return row


# -- validation ----------------------------------------------------------------------


def _topic(topic: str | None) -> str:
    if topic is None:
        return OVERALL
    if not _TOPIC.fullmatch(topic):
        raise InvalidChange(
            f"topic {topic!r}: expected an id of lower-case letters, digits and "
            "underscores, such as price_drop"
        )
    return topic


def _check_fits(change: Change, structure: Structure) -> None:
    is_email = change.address.kind is AddressKind.EMAIL
    allowed = (*EMAIL_CHANNELS, Channel.ALL) if is_email else (*PHONE_CHANNELS, Channel.ALL)
    if change.channel not in allowed:
        kind = "an email address" if is_email else "a phone number"
        raise InvalidChange(
            f"channel {change.channel} does not apply to {kind}; use one of {', '.join(allowed)}"
        )
    scope = change.scope
    if is_email and scope.kind is not ScopeKind.ORGANIZATION:
        raise InvalidChange(
            "email consent is kept for the whole organization: lines are for texts and calls"
        )
    if scope.kind is ScopeKind.LINE and scope.id not in structure.lines:
        raise InvalidChange(f"line {scope.id} is not a line of this organization")
    if scope.kind is ScopeKind.GROUP and scope.id not in structure.groups:
        raise InvalidChange(f"group {scope.id} has no lines in this organization")
    if change.via_line_id is not None:
        if change.via_line_id not in structure.lines:
            raise InvalidChange(f"line {change.via_line_id} is not a line of this organization")
        if not structure.point(change.via_line_id).covered_by(scope):
            raise InvalidChange(f"line {change.via_line_id} is outside the change's scope")


# -- planning and refusing -----------------------------------------------------------


def _plan(
    change: Change,
    topic: str,
    state: AddressState,
    structure: Structure,
    head_seq: int,
    now: datetime,
) -> list[RecordState]:
    """The records the change writes, in order, each with its new sequence number.

    The change must hold where it applies: an opt-out everywhere in its scope,
    a contact's opt-in on the line they wrote to. First the record the change
    names is written — unless it already says so from a source at least as
    strong and already holds. Then, wherever an older record still wins, a
    record in the narrowest scope there, which wins by being newest and
    narrowest. (Rewriting a stronger named record instead would weaken it: a
    staff opt-out must not turn a keyword opt-out into one staff may lift.)
    """
    writes: list[RecordState] = []
    records = dict(state.records)
    if change.status is Status.OPTED_OUT:
        must_hold = structure.points(change.scope)
    elif change.source in CONTACT_SOURCES and change.via_line_id is not None:
        must_hold = [structure.point(change.via_line_id)]
    else:
        # Staff and import opt-ins do not reach past narrower opt-outs.
        must_hold = []
    channels = _concrete(change.channel, change.address)

    def holds_at(point: Point, channel: Channel) -> bool:
        return decide_level(records.values(), point, channel, topic).status is change.status

    def write(scope: Scope, channel: Channel) -> None:
        record = RecordState(
            scope=scope,
            channel=channel,
            topic=topic,
            status=change.status,
            source=change.source,
            actor=change.actor,
            seq=head_seq + len(writes) + 1,
            at=now,
            reason=change.reason,
            message_id=change.message_id,
        )
        records[record.key] = record
        writes.append(record)

    named = records.get((change.scope, change.channel, topic))
    if named is None or named.status is not change.status:
        write(change.scope, change.channel)
    elif strength(change.source) > strength(named.source):
        write(change.scope, change.channel)  # a stronger source: upgrade
    elif strength(change.source) == strength(named.source) and not all(
        holds_at(point, channel) for point in must_hold for channel in channels
    ):
        write(change.scope, change.channel)  # said so before, but overridden since
    for point in must_hold:
        for channel in channels:
            if not holds_at(point, channel):
                write(_narrowest(point), channel)
    return writes


def _narrowest(point: Point) -> Scope:
    if point.line_id is not None:
        return Scope.line(point.line_id)
    if point.group_id is not None:
        return Scope.group(point.group_id)
    return Scope.organization()


def _concrete(channel: Channel, address: Address) -> tuple[Channel, ...]:
    if channel is not Channel.ALL:
        return (channel,)
    return EMAIL_CHANNELS if address.kind is AddressKind.EMAIL else PHONE_CHANNELS


def _refuse_unliftable(
    session: Session,
    change: Change,
    topic: str,
    structure: Structure,
    state: AddressState,
    writes: list[RecordState],
) -> None:
    """Raise ConsentRefused if the opt-in would lift an opt-out its source may not.

    Every opt-out in force before the change, at any point of its scope and
    at the change's own topic level, that is no longer in force after it has
    been lifted by this change. The level, not the effective status, is what
    counts: a staff topic opt-in recorded while the contact is opted out
    overall must not erase the contact's own STOP <topic> for later.
    """
    before = list(state.records.values())
    after_map = dict(state.records)
    for record in writes:
        after_map[record.key] = record
    after = list(after_map.values())
    for point in structure.points(change.scope):
        for channel in _concrete(change.channel, change.address):
            held = opt_outs_in_force(covering(before, point, channel, topic))
            still = {r.key for r in opt_outs_in_force(covering(after, point, channel, topic))}
            for opt_out in held:
                if opt_out.key not in still and not may_lift(change.source, opt_out.source):
                    raise _refusal(session, change, opt_out, point, structure)


def _refusal(
    session: Session,
    change: Change,
    opt_out: RecordState,
    point: Point,
    structure: Structure,
) -> ConsentRefused:
    when = opt_out.at.strftime("%Y-%m-%d %H:%M UTC")
    how = {
        Source.KEYWORD: "by texting a stop keyword",
        Source.CARRIER: "at the carrier (the provider reported the opt-out)",
        Source.IMPORT: f"in an import ({opt_out.actor})",
        Source.SYSTEM: f"by optgate ({opt_out.actor})",
    }.get(opt_out.source, f"by {opt_out.actor} ({opt_out.source})")
    what = f" of {opt_out.topic} messages" if opt_out.topic else ""
    channel = "" if opt_out.channel is Channel.SMS else f" ({opt_out.channel} channel)"
    where = _describe_scope(session, opt_out.scope)
    reason = f"{change.address} opted out{what}{channel} on {where} {how} ({when})."
    line = _line_for_hint(session, opt_out.scope, point, structure)
    # A topic stopped on its own comes back only with START and the topic, not START alone.
    keyword = f"START and the {opt_out.topic} keyword" if opt_out.topic else "START"
    start = f"texting {keyword} to {line}" if line else f"texting {keyword} to one of its lines"
    if opt_out.source in STAFF_SOURCES:
        who = f"a staff member (with a manual change) or the contact (by {start}) can lift it"
    elif opt_out.source is Source.SYSTEM:
        who = f"the contact (by {start}) or optgate itself can lift it"
    else:
        who = f"the contact can opt back in, by {start}"
    refused = {
        Source.IMPORT: "An import never lifts an opt-out:",
        Source.SYSTEM: "optgate does not lift an opt-out it did not make:",
    }.get(change.source, "Staff cannot opt them back in:")
    return ConsentRefused(reason, f"{refused} only {who}.")


def _describe_scope(session: Session, scope: Scope) -> str:
    if scope.kind is ScopeKind.LINE:
        line = session.get(Line, scope.id)
        return f"line {line.address}" if line else "a line"
    if scope.kind is ScopeKind.GROUP:
        group = session.get(LineGroup, scope.id)
        return f"the line group {group.name}" if group else "a line group"
    return "every line of the organization"


def _line_for_hint(
    session: Session, scope: Scope, point: Point, structure: Structure
) -> str | None:
    """A real line where the opt-out holds, to tell staff where the contact can text START."""
    line_id = point.line_id
    if line_id is None:
        covered = [
            line for line in sorted(structure.lines) if structure.point(line).covered_by(scope)
        ]
        line_id = covered[0] if covered else None
    line = session.get(Line, line_id) if line_id is not None else None
    return line.address if line else None


# -- writing -------------------------------------------------------------------------


def _write_record(
    session: Session,
    row: ContactAddress,
    change: Change,
    record: RecordState,
    state: AddressState,
    now: datetime,
) -> ConsentEvent:
    current = state.records.get(record.key)
    stored = state.rows.get(record.key)
    if stored is None:
        stored = ConsentRecord(
            address_id=row.id,
            scope=record.scope.key,
            line_id=record.scope.id if record.scope.kind is ScopeKind.LINE else None,
            group_id=record.scope.id if record.scope.kind is ScopeKind.GROUP else None,
            channel=record.channel,
            topic=record.topic,
        )
        session.add(stored)
        state.rows[record.key] = stored
    stored.status = record.status
    stored.source = record.source
    stored.actor = record.actor
    stored.reason = record.reason
    stored.message_id = record.message_id
    stored.seq = record.seq
    stored.updated_at = now
    return _append_event(
        session,
        row,
        subject=CONSENT,
        scope=record.scope,
        channel=record.channel,
        topic=record.topic,
        old_value=(current.status if current else Status.NOT_DEFINED).value,
        new_value=record.status.value,
        old_source=current.source if current else None,
        source=record.source,
        actor=record.actor,
        reason=record.reason,
        message_id=record.message_id,
        at=now,
    )


def _append_event(
    session: Session,
    row: ContactAddress,
    *,
    subject: str,
    scope: Scope,
    channel: Channel,
    topic: str,
    old_value: str,
    new_value: str,
    old_source: Source | None,
    source: Source,
    actor: str,
    reason: str | None,
    message_id: int | None,
    at: datetime,
) -> ConsentEvent:
    event = ConsentEvent(
        organization_id=row.organization_id,
        address_id=row.id,
        seq=row.head_seq + 1,
        address=row.value,
        subject=subject,
        scope=scope.key,
        line_id=scope.id if scope.kind is ScopeKind.LINE else None,
        group_id=scope.id if scope.kind is ScopeKind.GROUP else None,
        channel=channel.value,
        topic=topic,
        old_value=old_value,
        new_value=new_value,
        old_source=old_source,
        source=source,
        actor=actor,
        reason=reason,
        message_id=message_id,
        created_at=at,
        prev_hash=row.head_hash,
    )
    event.hash = history.event_hash(event)
    row.head_seq = event.seq
    row.head_hash = event.hash
    session.add(event)
    return event
