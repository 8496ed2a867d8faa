"""An inbound text's line and its row, in as few round trips as the work allows.

Every inbound text needs its line (id, organisation, group and the group's name:
the matcher's rules depend on the group), two facts about its sender in the
line's organisation (is it one of our own lines? is it flagged bounced?) and
its message row, inserted unless the provider delivered it before. On
PostgreSQL each statement is a round trip, and round trips, not Python, are
what a webhook waits for (docs/performance.md).

- ``read_line``: one SELECT of the line and its group's name.
- ``insert_message``: one ``INSERT … ON CONFLICT DO NOTHING RETURNING`` that also
  returns the sender's two facts and whether the line is still as the caller
  saw it, all as scalar subqueries of its RETURNING clause.

A web process remembers the lines it has read (``remembered``), so an ordinary
text to a known line costs the INSERT alone — the same as the bare minimum of
"commit before answer". The memory is only a guess, checked by that very
statement (``line_unchanged``): a line another process moved into another group
is seen at once, and the caller then reads it afresh and corrects the row. So
there is no time-to-live and nothing to invalidate, and a line is remembered
only once a committed transaction has seen it (never one registered by a
transaction that may yet roll back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.consent.values import Flag
from app.data.models import Line, LineGroup, Message

#: Lines remembered per engine at most; past it the memory starts again (a
#: deployment with more lines than this pays one SELECT more per text).
REMEMBERED_LINES = 10_000


@dataclass(frozen=True)
class LineFacts:
    """What a text needs to know about the line it was sent to."""

    id: int
    organization_id: int
    group_id: int | None
    address: str
    #: The provider's group noted for the line (``Line.seen_group``).
    seen_group: str | None
    group_name: str | None


@dataclass(frozen=True)
class Recorded:
    """What ``insert_message`` found out, besides the new row's id."""

    message_id: int
    sender_is_line: bool
    bounced: bool
    #: The line is as the caller saw it (same organisation, group, group name, noted
    #: provider group); False: the caller's facts were stale, the row needs correcting.
    line_unchanged: bool


_LINE = (
    sa.select(
        Line.id, Line.organization_id, Line.group_id, Line.address, Line.seen_group, LineGroup.name
    )
    .select_from(Line)
    .outerjoin(LineGroup, LineGroup.id == Line.group_id)
    .where(Line.address == sa.bindparam("line"))
)

_remembered: WeakKeyDictionary[Engine, dict[str, LineFacts]] = WeakKeyDictionary()


def read_line(session: Session, address: str) -> LineFacts | None:
    """The line ``address`` as this transaction sees it (None: no such line)."""
    row = session.connection().execute(_LINE, {"line": address}).one_or_none()
    return None if row is None else LineFacts(*row)


def remembered(session: Session, address: str) -> LineFacts | None:
    """The line ``address`` as this process last saw it committed, if it did."""
    lines = _remembered.get(session.connection().engine)
    return None if lines is None else lines.get(address)


def forget(session: Session, address: str) -> None:
    """Forget ``address``: what this process remembered may be wrong."""
    lines = _remembered.get(session.connection().engine)
    if lines is not None:
        lines.pop(address, None)


#: Written out rather than built: SQLAlchemy cannot yet render subqueries that refer
#: to the inserted row in an INSERT's RETURNING (it adds the table to their FROM on
#: PostgreSQL and drops the table names on SQLite). Both databases run this text as
#: it is (SQLite since 3.35 for RETURNING, 3.39 for IS NOT DISTINCT FROM). The
#: subqueries see the row just inserted: the bounce flag is looked up in its
#: organisation, the line check compares its line with what the caller saw.
_INSERT = sa.text(
    """INSERT INTO messages (organization_id, line_id, direction, address, body, status,
        provider, provider_message_id, meta, intent, needs_review, reply, require_opt_in,
        attempts, created_at, updated_at)
    VALUES (:organization_id, :line_id, :direction, :address, :body, :status,
        :provider, :provider_message_id, :meta, :intent, :needs_review, :reply,
        :require_opt_in, 0, :created_at, :created_at)
    ON CONFLICT (provider, provider_message_id) DO NOTHING
    RETURNING id,
        EXISTS (SELECT 1 FROM lines AS other WHERE other.address = :address),
        (SELECT flags.is_set FROM flags JOIN addresses ON addresses.id = flags.address_id
         WHERE addresses.organization_id = messages.organization_id
           AND addresses.value = :address AND flags.name = :bounced),
        EXISTS (SELECT 1 FROM lines AS line
                LEFT JOIN line_groups AS grp ON grp.id = line.group_id
                WHERE line.id = messages.line_id
                  AND line.organization_id = messages.organization_id
                  AND line.address = :line_address
                  AND line.group_id IS NOT DISTINCT FROM :line_group_id
                  AND line.seen_group IS NOT DISTINCT FROM :line_seen_group
                  AND grp.name IS NOT DISTINCT FROM :line_group_name)"""
).bindparams(
    sa.bindparam("meta", type_=Message.__table__.c.meta.type),
    sa.bindparam("created_at", type_=Message.__table__.c.created_at.type),
    sa.bindparam("line_group_id", type_=sa.Integer),
    sa.bindparam("line_seen_group", type_=sa.String),
    sa.bindparam("line_group_name", type_=sa.String),
)


def insert_message(
    session: Session, line: LineFacts, sender: str, values: dict[str, Any]
) -> Recorded | None:
    """Insert an inbound message row to ``line`` from ``sender`` (None: the provider
    delivered it before, and nothing was inserted).

    Args:
        values: the row's other columns: direction, body, status, provider,
            provider_message_id, meta, intent, needs_review, reply, created_at.
    """
    try:
        row = (
            session.connection()
            .execute(
                _INSERT,
                {
                    **values,
                    "require_opt_in": False,
                    "organization_id": line.organization_id,
                    "line_id": line.id,
                    "address": sender,
                    "bounced": Flag.BOUNCED.value,
                    "line_address": line.address,
                    "line_group_id": line.group_id,
                    "line_seen_group": line.seen_group,
                    "line_group_name": line.group_name,
                },
            )
            .one_or_none()
        )
    except sa.exc.DBAPIError:
        # E.g. a remembered line id that a restored database no longer has: the
        # provider's retry will read the line afresh.
        forget(session, line.address)
        raise
    if row is None:
        return None
    message_id, sender_is_line, bounced, unchanged = row
    return Recorded(message_id, bool(sender_is_line), bool(bounced), bool(unchanged))


def remember_on_commit(session: Session, line: LineFacts) -> None:
    """Remember ``line`` once this session's transaction commits (a line registered by
    it exists for other transactions only then; rolled back, nothing is remembered)."""
    engine = session.connection().engine

    def committed(_session: Session) -> None:
        lines = _remembered.setdefault(engine, {})
        if len(lines) >= REMEMBERED_LINES:
            lines.clear()
        lines[line.address] = line

    sa.event.listen(session, "after_commit", committed, once=True)
