"""Reports over a whole organisation: the consent-event export and the snapshot (R5, R11, R20).

Both stream: they read in keyset batches and hold one batch at a time, so
millions of rows cost the memory of a few thousand. A report is one read-only
transaction (``Database.reads``): every batch sees the database as it was when
the report began, so an export has no gap where a change committed out of id
order, and no row written after it began. Such a transaction blocks no writer.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import AddressKind
from app.consent import history
from app.consent.queries import EVENT_COLUMNS, event_dict, iso, scope_names
from app.consent.rules import Point, RecordState, decide
from app.consent.values import OVERALL, Channel, ScopeKind, Status
from app.data.models import ConsentEvent, ConsentRecord, ContactAddress, Line

#: Makes a read-only session (``Database.reads``).
Reads = Callable[[], Session]

#: The event columns the export reads (what ``queries.event_dict`` needs).
EVENT_FIELDS = [
    getattr(ConsentEvent, name)
    for name in (
        "id",
        "seq",
        "created_at",
        "address",
        "subject",
        "scope",
        "line_id",
        "group_id",
        "channel",
        "topic",
        "old_value",
        "new_value",
        "old_source",
        "source",
        "actor",
        "reason",
        "message_id",
        "hash",
    )
]


def _covering_scopes(lines: Iterable[Line]) -> set[str]:
    """The stored scopes whose records apply on any of ``lines``."""
    scopes = {ScopeKind.ORGANIZATION.value}
    for line in lines:
        scopes.add(f"line:{line.id}")
        if line.group_id is not None:
            scopes.add(f"group:{line.group_id}")
    return scopes


# -- the consent-event export -----------------------------------------------------------


def parse_bound(value: str, *, days: bool = True) -> datetime:
    """A time a person wrote: ISO 8601 with its offset (RFC 3339's lower-case t and z
    too), or with ``days`` a day, meaning midnight UTC (a report's bound).

    Raises:
        ValueError: with a message that says what is expected.
    """
    try:
        if days and len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), UTC)
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        expected = (
            "a day such as 2026-12-01 or a time such as" if days else "an ISO 8601 time such as"
        )
        raise ValueError(f"{value!r} is not {expected} 2026-12-01T09:00:00-05:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset (add Z or -05:00)")
    try:
        moment.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 is before the first UTC time
    except OverflowError:
        raise ValueError(f"{value!r} is out of range") from None
    return moment


@dataclass(frozen=True)
class EventFilter:
    organization_id: int
    #: From (inclusive) and until (exclusive); None: no bound.
    since: datetime | None = None
    until: datetime | None = None
    #: Only events that apply on these lines: their own, their groups' and the
    #: organisation's (flags are organisation-wide). Empty: every event.
    lines: Sequence[Line] = ()

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses = [ConsentEvent.organization_id == self.organization_id]
        if self.since is not None:
            clauses.append(ConsentEvent.created_at >= self.since)
        if self.until is not None:
            clauses.append(ConsentEvent.created_at < self.until)
        if self.lines:
            clauses.append(ConsentEvent.scope.in_(_covering_scopes(self.lines)))
        return clauses


def count_events(reads: Reads, wanted: EventFilter) -> int:
    """How many events ``iter_events`` will give (for a progress bar)."""
    with reads() as session:
        return int(
            session.scalar(
                sa.select(sa.func.count()).select_from(ConsentEvent).where(*wanted.where())
            )
            or 0
        )


def iter_events(reads: Reads, wanted: EventFilter, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """The events, oldest first (by id), as ``queries.event_dict`` rows."""
    query = sa.select(*EVENT_FIELDS).where(*wanted.where()).order_by(ConsentEvent.id).limit(batch)
    with reads() as session:
        last = 0
        while True:
            rows = session.execute(query.where(ConsentEvent.id > last)).all()
            names = scope_names(session, {row.scope for row in rows})
            for row in rows:
                yield event_dict(row, names)
            if len(rows) < batch:
                return
            last = rows[-1].id


# -- the snapshot -----------------------------------------------------------------------

#: The columns of a snapshot row, in order (CSV header and JSON keys).
SNAPSHOT_COLUMNS = ("address", "line", "status", "source", "actor", "at", "scope", "because")


#: Addresses per batch when reading one page: a page is small, and usually near.
_PAGE_BATCH = 500


@dataclass(frozen=True)
class SnapshotPage:
    """One page of a snapshot (``Snapshot.page``)."""

    rows: list[dict[str, Any]]
    #: The ``after`` of the next page; None: this is the last.
    following: int | None


@dataclass
class Snapshot:
    """For chosen lines: each number's status on each of them, with counts.

    ``rows()`` streams (address, line, status, ...) for every number whose
    status there is ``status`` (or, without it, opted_in or opted_out: a
    number with no record on a line is not defined there and not listed).
    ``counts`` fills as ``rows()`` runs: per line, how many numbers are opted
    in and opted out (whatever ``status`` lists), and ``numbers`` the
    distinct numbers listed. ``page()`` reads one page of the same rows by
    keyset (the admin console's table).
    """

    organization_id: int
    lines: Sequence[Line]
    status: Status | None = None
    #: A topic id: the status for that topic (the overall one when None).
    topic: str | None = None
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    numbers: int = 0

    def rows(
        self,
        reads: Reads,
        batch: int = 2000,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The rows; ``progress`` hears how many addresses each batch went through."""
        for _address_id, rows in self._listed(reads, batch, progress):
            yield from rows

    def page(
        self,
        reads: Reads,
        after: int = 0,
        limit: int = 50,
        *,
        counted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> SnapshotPage:
        """One page of ``rows()``: those of the addresses after the address id ``after``.

        A page holds at least ``limit`` rows (fewer only when it is the last) and every
        row of its last address, so up to ``limit + len(lines) - 1``. Pages are read by
        keyset (the address id), so the millionth page costs what the first does. With
        ``counted``, the walk goes on to the end so that ``counts`` and ``numbers`` are
        those of every address after ``after`` (the whole report when it is 0): a full
        pass, as ``rows()`` is. ``progress`` hears how many addresses each batch went
        through.
        """
        found: list[dict[str, Any]] = []
        following: int | None = None
        last = after
        with closing(self._listed(reads, _PAGE_BATCH, progress, after)) as listed:
            for address_id, rows in listed:
                if not rows:
                    continue
                if len(found) >= limit:
                    following = last  # there is a next page, starting after ``last``
                    if not counted:
                        break
                    continue
                found.extend(rows)
                last = address_id
        return SnapshotPage(found, following)

    def _listed(
        self,
        reads: Reads,
        batch: int,
        progress: Callable[[int], None] | None,
        after: int = 0,
    ) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
        """(address id, its rows) for every address with records after ``after``, in
        address id order, counting as it goes (an address may have no rows listed)."""
        self.counts = {line.address: Counter() for line in self.lines}
        self.numbers = 0
        points = [(line.address, Point(line.id, line.group_id)) for line in self.lines]
        topic = self.topic or OVERALL
        for address_id, value, records in self._records(reads, batch, progress, after):
            rows = []
            for address, point in points:
                decision = decide(records, point, Channel.SMS, topic)
                if decision.status is Status.NOT_DEFINED:
                    continue
                self.counts[address][decision.status.value] += 1
                if self.status is not None and decision.status is not self.status:
                    continue
                record = decision.record
                assert record is not None  # a defined status has its record
                rows.append(
                    {
                        "address": value,
                        "line": address,
                        "status": decision.status.value,
                        "source": record.source.value,
                        "actor": record.actor,
                        "at": iso(record.at),
                        "scope": record.scope.kind.value,
                        "because": decision.because.value,
                    }
                )
            self.numbers += bool(rows)
            yield address_id, rows

    def count_addresses(self, reads: Reads) -> int:
        """How many addresses ``rows`` walks through (a progress bar's length)."""
        with reads() as session:
            return int(
                session.scalar(
                    sa.select(sa.func.count()).select_from(ContactAddress).where(*self._addresses())
                )
                or 0
            )

    def _addresses(self) -> tuple[sa.ColumnElement[bool], ...]:
        """The addresses that can have a status on a line."""
        return (
            ContactAddress.organization_id == self.organization_id,
            # An email address has no status on a line, even with an "all" record.
            ContactAddress.kind != AddressKind.EMAIL,
        )

    def _applies(self) -> tuple[sa.ColumnElement[bool], ...]:
        """The records that can decide a status on the lines."""
        return (
            ConsentRecord.scope.in_(_covering_scopes(self.lines)),
            ConsentRecord.channel.in_([Channel.SMS, Channel.ALL]),
            ConsentRecord.topic.in_({OVERALL, self.topic or OVERALL}),
        )

    def counts_dict(self) -> dict[str, dict[str, int]]:
        return {
            line: {status: counts[status] for status in (Status.OPTED_IN, Status.OPTED_OUT)}
            for line, counts in self.counts.items()
        }

    def _records(
        self,
        reads: Reads,
        batch: int,
        progress: Callable[[int], None] | None,
        after: int = 0,
    ) -> Iterator[tuple[int, str, list[RecordState]]]:
        """(address id, address, its records that can decide on the lines), in address id
        order, from the first address after the id ``after``.

        Batches walk the addresses by id (the primary key), so each costs the same
        however far the report has got; the records of a batch are one look-up.
        """
        next_addresses = (
            sa.select(ContactAddress.id, ContactAddress.value)
            .where(*self._addresses())
            .order_by(ContactAddress.id)
            .limit(batch)
        )
        records = sa.select(ConsentRecord.address_id, *_RECORD_FIELDS).where(*self._applies())
        last = after
        with reads() as session:
            while True:
                addresses = session.execute(next_addresses.where(ContactAddress.id > last)).all()
                if not addresses:
                    return
                values = {address_id: value for address_id, value in addresses}
                found = session.execute(
                    records.where(ConsentRecord.address_id.in_(values)).order_by(
                        ConsentRecord.address_id
                    )
                ).all()
                for address_id, rows in groupby(found, key=lambda row: row.address_id):
                    yield (
                        address_id,
                        values[address_id],
                        [history.record_state(row) for row in rows],
                    )
                if progress is not None:
                    progress(len(addresses))
                if len(addresses) < batch:
                    return
                last = addresses[-1].id


#: The record columns ``history.record_state`` reads.
_RECORD_FIELDS = [
    getattr(ConsentRecord, name)
    for name in (
        "scope",
        "channel",
        "topic",
        "status",
        "source",
        "actor",
        "seq",
        "updated_at",
        "reason",
        "message_id",
    )
]


# -- CSV --------------------------------------------------------------------------------

#: What makes a spreadsheet read a cell as a formula (CSV injection; OWASP's list, with
#: ASVS's NUL): a first character among these...
_FORMULA_START = ("\t", "\r", "\0")
#: ...or, after any leading white space, one of these, or a full-width or other form of
#: one (NFKC: ＝, ﹢), which some spreadsheets read as the character itself.
_FORMULA_SIGNS = frozenset("=+-@")
#: An E.164 number (+14155550123): a number to a spreadsheet, which cannot call anything,
#: and which CRMs read back as the number it is.
_PHONE_NUMBER = re.compile(r"\+[0-9]{1,15}")


def csv_chunks(
    columns: Sequence[str],
    rows: Iterable[dict[str, Any]],
    *,
    chunk_rows: int = 1000,
) -> Iterator[str]:
    """``rows`` as CSV text with a header, a few hundred kilobytes at a time.

    Every text cell that starts like a formula gets a leading apostrophe, so a
    spreadsheet shows it as text instead of running it: any column may hold
    what an outsider wrote (an email address such as ``=cmd@example.com`` is
    valid; names, actors and reasons are typed by people). E.164 numbers such
    as +14155550100 are left alone.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # csv quotes only fields holding the line terminator's characters: a lone
    # "\r" would end the row early in every reader. Such rows are fully quoted.
    quoting = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    for count, row in enumerate(rows, start=1):
        cells = [_cell(row[name]) for name in columns]
        returns = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoting if returns else writer).writerow(cells)
        if count % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and _reads_as_formula(value):
        return "'" + value
    return value


def _reads_as_formula(text: str) -> bool:
    if text.startswith(_FORMULA_START):
        return True
    first = unicodedata.normalize("NFKC", text.lstrip()[:1])[:1]
    if first not in _FORMULA_SIGNS:
        return False
    return not _PHONE_NUMBER.fullmatch(text)


__all__ = [
    "EVENT_COLUMNS",
    "SNAPSHOT_COLUMNS",
    "EventFilter",
    "Snapshot",
    "SnapshotPage",
    "count_events",
    "csv_chunks",
    "iter_events",
]
