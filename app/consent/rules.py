"""How stored consent records decide a number's status on a line. Pure: no database.

Records live in scopes (a line, a group of lines, the organisation), per
channel (sms, voice, email, or "all") and per topic (or overall). Several
records can cover one line; this module decides which one counts.

**Precedence.** An opt-out is *in force* at a line unless a record that is
at least as narrow (same or narrower scope, same or narrower channel) and
*newer* opts in there. The status is opted_out when any opt-out is in force,
else opted_in when any record opts in, else not_defined. So:

- a newer broad opt-out beats an older narrow opt-in (a contact who later
  says "stop everything" is stopped everywhere);
- a newer narrow opt-in beats an older broad opt-out (a contact who texts
  START to one line gets that line back, not the others);
- a broad opt-in never beats a narrow opt-out, whatever its age (an
  organisation-wide import cannot undo a STOP sent to one line).

**Topics** (R8): while the overall status is opted_out every topic is off;
otherwise a topic's own records decide, and a topic with none follows the
overall status. A topic stopped one by one therefore stays off across an
overall STOP and START, and topics that were off only because of the overall
STOP come back with START.

"Newer" compares the address's history sequence numbers, not clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.consent.values import (
    OVERALL,
    Channel,
    Scope,
    ScopeKind,
    Source,
    Status,
)


@dataclass(frozen=True)
class RecordState:
    """One stored consent record (see models.ConsentRecord)."""

    scope: Scope
    channel: Channel
    topic: str
    status: Status
    source: Source
    actor: str
    seq: int
    at: datetime
    reason: str | None = None
    message_id: int | None = None

    @property
    def key(self) -> RecordKey:
        return (self.scope, self.channel, self.topic)


#: What identifies a record of one address: (scope, channel, topic).
RecordKey = tuple[Scope, Channel, str]


@dataclass(frozen=True)
class Point:
    """A place where a status is decided: a line, with the group it belongs to.

    ``line_id=None`` is a *virtual* line: a line of that group (or, with no
    group, of the organisation) that has no records of its own, as a line
    added tomorrow would be. Checking it makes a rule hold for every line,
    not only the lines that exist today.
    """

    line_id: int | None
    group_id: int | None

    def covered_by(self, scope: Scope) -> bool:
        if scope.kind is ScopeKind.ORGANIZATION:
            return True
        if scope.kind is ScopeKind.GROUP:
            return self.group_id is not None and scope.id == self.group_id
        return self.line_id is not None and scope.id == self.line_id


ORGANIZATION_POINT = Point(None, None)


@dataclass(frozen=True)
class Structure:
    """The lines of one organisation and the group each belongs to."""

    lines: Mapping[int, int | None]

    @property
    def groups(self) -> frozenset[int]:
        return frozenset(group for group in self.lines.values() if group is not None)

    def point(self, line_id: int) -> Point:
        return Point(line_id, self.lines[line_id])

    def points(self, scope: Scope) -> list[Point]:
        """Every point the scope covers, virtual lines included."""
        if scope.kind is ScopeKind.LINE:
            assert scope.id is not None
            return [self.point(scope.id)]
        if scope.kind is ScopeKind.GROUP:
            members = [line for line, group in self.lines.items() if group == scope.id]
            return [Point(line, scope.id) for line in sorted(members)] + [Point(None, scope.id)]
        real = [self.point(line) for line in sorted(self.lines)]
        virtual = [Point(None, group) for group in sorted(self.groups)]
        return [*real, *virtual, ORGANIZATION_POINT]


class Because(StrEnum):
    """Why a status is what it is."""

    #: A record for this very topic level decided it.
    RECORD = "record"
    #: A topic is off because the overall status is opted_out.
    OVERALL_OPT_OUT = "overall_opt_out"
    #: A topic without records of its own follows the overall status.
    FOLLOWS_OVERALL = "follows_overall"
    NOTHING = "nothing"


@dataclass(frozen=True)
class Decision:
    status: Status
    #: The record that decided it (None for not_defined).
    record: RecordState | None
    because: Because


def _channel_rank(channel: Channel) -> int:
    return 1 if channel is Channel.ALL else 0


def _at_least_as_narrow(a: RecordState, b: RecordState) -> bool:
    return a.scope.rank <= b.scope.rank and _channel_rank(a.channel) <= _channel_rank(b.channel)


def covering(
    records: Iterable[RecordState], point: Point, channel: Channel, topic: str
) -> list[RecordState]:
    """The records that apply at ``point`` for ``channel`` and topic level ``topic``."""
    return [
        record
        for record in records
        if record.topic == topic
        and record.channel in (channel, Channel.ALL)
        and point.covered_by(record.scope)
    ]


def opt_outs_in_force(records: Iterable[RecordState]) -> list[RecordState]:
    """Of records that all cover one point and level, the opt-outs in force there."""
    records = list(records)
    opt_ins = [record for record in records if record.status is Status.OPTED_IN]
    return [
        out
        for out in records
        if out.status is Status.OPTED_OUT
        and not any(i.seq > out.seq and _at_least_as_narrow(i, out) for i in opt_ins)
    ]


def decide_level(
    records: Iterable[RecordState], point: Point, channel: Channel, topic: str = OVERALL
) -> Decision:
    """The status at one topic level (overall, or one topic ignoring the overall status)."""
    applicable = covering(records, point, channel, topic)
    in_force = opt_outs_in_force(applicable)
    if in_force:
        return Decision(Status.OPTED_OUT, max(in_force, key=_seq), Because.RECORD)
    opt_ins = [record for record in applicable if record.status is Status.OPTED_IN]
    if opt_ins:
        return Decision(Status.OPTED_IN, max(opt_ins, key=_seq), Because.RECORD)
    return Decision(Status.NOT_DEFINED, None, Because.NOTHING)


def decide(
    records: Iterable[RecordState], point: Point, channel: Channel, topic: str = OVERALL
) -> Decision:
    """The effective status for ``topic`` (or overall) at ``point`` on ``channel``."""
    records = list(records)
    overall = decide_level(records, point, channel, OVERALL)
    if topic == OVERALL:
        return overall
    if overall.status is Status.OPTED_OUT:
        return Decision(Status.OPTED_OUT, overall.record, Because.OVERALL_OPT_OUT)
    own = decide_level(records, point, channel, topic)
    if own.status is not Status.NOT_DEFINED:
        return own
    return Decision(overall.status, overall.record, Because.FOLLOWS_OVERALL)


def _seq(record: RecordState) -> int:
    return record.seq
