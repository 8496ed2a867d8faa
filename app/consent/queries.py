"""Read consent: one address's status on every line of its organisation, and its history.

The shapes returned here (``as_dict``) are what the CLI prints with --json
and what the HTTP API answers, so both stay the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import Address, AddressKind
from app.consent import history
from app.consent.history import FlagValue
from app.consent.rules import ORGANIZATION_POINT, Decision, Point, RecordState, decide
from app.consent.values import (
    EMAIL_CHANNELS,
    OVERALL,
    PHONE_CHANNELS,
    Channel,
    Flag,
    ScopeKind,
    Status,
)
from app.data.models import ConsentEvent, Line, LineGroup, Organization
from app.errors import InvalidChange
from app.lines import LineView, list_lines


@dataclass(frozen=True)
class Entry:
    """The status on one line (or, for email, the organisation) and channel."""

    line: LineView | None
    channel: Channel
    overall: Decision
    topics: dict[str, Decision]


@dataclass(frozen=True)
class AddressStatus:
    organization: Organization
    address: Address
    entries: list[Entry]
    flags: dict[Flag, FlagValue | None]
    #: The stored records behind the entries (line, group and organisation scopes).
    records: list[RecordState] = field(default_factory=list)
    #: Names of the scopes of ``records`` (``line:3`` -> its number, ``group:2`` -> its name).
    scope_names: dict[str, str] = field(default_factory=dict)
    #: The sequence number of the address's newest history event (0: none yet).
    head_seq: int = 0

    def overall(self) -> Status | None:
        """The one state that sums up every line and channel: NOT_DEFINED where nothing
        is recorded (R7's Unknown), OPTED_OUT where do-not-contact is set or every
        defined status is out, OPTED_IN where every defined one is in; None: some of each."""
        do_not_contact = self.flags.get(Flag.DO_NOT_CONTACT)
        if do_not_contact is not None and do_not_contact.is_set:
            return Status.OPTED_OUT
        defined = {e.overall.status for e in self.entries} - {Status.NOT_DEFINED}
        if not defined:
            return Status.NOT_DEFINED
        return defined.pop() if len(defined) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address.value,
            "organization": self.organization.name,
            "lines": [_entry_dict(entry) for entry in self.entries],
            "flags": {flag.value: _flag_dict(self.flags[flag]) for flag in Flag},
            "records": [_record_dict(record, self.scope_names) for record in self.records],
        }


def address_status(
    session: Session,
    organization: Organization,
    address: Address,
    topics: Iterable[str] = (),
    channels: Iterable[Channel] | None = None,
) -> AddressStatus:
    """``address``'s status on every line of ``organization``, per channel and topic.

    Args:
        topics: topics to show even where the address has no record for them
            (the configured ones); topics with records are always shown.
        channels: the channels to show (default: every channel of the address's
            kind: sms and voice for a number, email for an email address).

    Raises:
        InvalidChange: a channel that does not apply to the address.
    """
    row = history.find_address(session, organization.id, address.value)
    state = history.load_state(session, row.id) if row else history.AddressState()
    records = list(state.records.values())
    shown_topics = sorted(set(topics) | {r.topic for r in records if r.topic != OVERALL})

    def entry(line: LineView | None, point: Point, channel: Channel) -> Entry:
        return Entry(
            line=line,
            channel=channel,
            overall=decide(records, point, channel),
            topics={topic: decide(records, point, channel, topic) for topic in shown_topics},
        )

    is_email = address.kind is AddressKind.EMAIL
    applicable = EMAIL_CHANNELS if is_email else PHONE_CHANNELS
    shown = applicable if channels is None else tuple(channels)
    for channel in shown:
        if channel not in applicable:
            raise InvalidChange(
                f"channel {channel} does not apply to {address}; use {', '.join(applicable)}"
            )
    entries: list[Entry]
    if is_email:
        entries = [entry(None, ORGANIZATION_POINT, channel) for channel in shown]
    else:
        entries = [
            entry(view, Point(view.line.id, view.line.group_id), channel)
            for view in list_lines(session, organization)
            for channel in shown
        ]
    return AddressStatus(
        organization=organization,
        address=address,
        entries=entries,
        flags={flag: state.flags.get(flag) for flag in Flag},
        records=sorted(records, key=lambda record: record.seq),
        scope_names=scope_names(session, [record.scope.key for record in records]),
        head_seq=row.head_seq if row else 0,
    )


def address_history(
    session: Session,
    organization: Organization,
    address: Address,
    *,
    after_seq: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The history of ``address`` in ``organization``, oldest first, as dicts."""
    row = history.find_address(session, organization.id, address.value)
    if row is None:
        return []
    events = list(history.iter_history(session, row.id, after_seq=after_seq, limit=limit))
    names = scope_names(session, [event.scope for event in events])
    return [event_dict(event, names) for event in events]


#: The columns of a history event, in order: the API's history, the CSV export.
EVENT_COLUMNS = (
    "id",
    "seq",
    "at",
    "address",
    "subject",
    "scope",
    "line",
    "group",
    "channel",
    "topic",
    "old",
    "new",
    "old_source",
    "source",
    "actor",
    "reason",
    "message_id",
    "hash",
)


def event_dict(event: ConsentEvent | sa.Row[Any], scope_names: dict[str, str]) -> dict[str, Any]:
    """One event as EVENT_COLUMNS (from the model, or a row of its columns)."""
    return {
        "id": event.id,
        "seq": event.seq,
        "at": iso(event.created_at),
        "address": event.address,
        "subject": event.subject,
        "scope": event.scope.partition(":")[0],
        "line": scope_names.get(event.scope) if event.line_id else None,
        "group": scope_names.get(event.scope) if event.group_id else None,
        "channel": event.channel,
        "topic": event.topic or None,
        "old": event.old_value,
        "new": event.new_value,
        "old_source": event.old_source.value if event.old_source else None,
        "source": event.source.value,
        "actor": event.actor,
        "reason": event.reason,
        "message_id": event.message_id,
        "hash": event.hash,
    }


def scope_names(session: Session, scopes: Iterable[str]) -> dict[str, str]:
    """Stored scopes (``line:3``, ``group:2``) -> the line's number or the group's name."""
    line_ids, group_ids = set(), set()
    for scope in scopes:
        kind, _, ident = scope.partition(":")
        if kind == ScopeKind.LINE:
            line_ids.add(int(ident))
        elif kind == ScopeKind.GROUP:
            group_ids.add(int(ident))
    names: dict[str, str] = {}
    if line_ids:
        for line_id, address in session.execute(
            sa.select(Line.id, Line.address).where(Line.id.in_(line_ids))
        ):
            names[f"line:{line_id}"] = address
    if group_ids:
        for group_id, name in session.execute(
            sa.select(LineGroup.id, LineGroup.name).where(LineGroup.id.in_(group_ids))
        ):
            names[f"group:{group_id}"] = name
    return names


def _record_dict(record: RecordState, names: dict[str, str]) -> dict[str, Any]:
    kind = record.scope.kind
    return {
        "scope": kind.value,
        "line": names.get(record.scope.key) if kind is ScopeKind.LINE else None,
        "group": names.get(record.scope.key) if kind is ScopeKind.GROUP else None,
        "channel": record.channel.value,
        "topic": record.topic or None,
        "status": record.status.value,
        "source": record.source.value,
        "actor": record.actor,
        "at": iso(record.at),
        "reason": record.reason,
        "message_id": record.message_id,
    }


def _entry_dict(entry: Entry) -> dict[str, Any]:
    view = entry.line
    return {
        "line": view.line.address if view else None,
        "line_name": view.line.name if view else None,
        "group": view.group if view else None,
        "channel": entry.channel.value,
        **_decision_dict(entry.overall),
        "topics": {topic: _decision_dict(d) for topic, d in entry.topics.items()},
    }


def _decision_dict(decision: Decision) -> dict[str, Any]:
    record = decision.record
    return {
        "status": decision.status.value,
        "because": decision.because.value,
        "source": record.source.value if record else None,
        "actor": record.actor if record else None,
        "at": iso(record.at) if record else None,
        "scope": record.scope.kind.value if record else None,
        "reason": record.reason if record else None,
        "message_id": record.message_id if record else None,
    }


def _flag_dict(value: FlagValue | None) -> dict[str, Any]:
    if value is None:
        return {"set": False, "source": None, "actor": None, "at": None, "reason": None}
    return {
        "set": value.is_set,
        "source": value.source.value,
        "actor": value.actor,
        "at": iso(value.at),
        "reason": value.reason,
    }


def iso(moment: datetime) -> str:
    """UTC times as 2026-11-22T07:52:52Z."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
