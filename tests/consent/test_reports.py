"""The consent-event export and the snapshot (app/consent/reports.py), on SQLite and PostgreSQL.

Both are checked against the read paths they must agree with: every exported
row is ``queries.address_history``'s dict of its event, every snapshot row is
``queries.address_status``'s decision for that number on that line. They
stream in keyset batches, in one read-only transaction: batch
boundaries lose nothing, memory holds one batch, and on SQLite a running
export never holds the write lock.

acme: group MG1 with lines A (+14155550101) and B (+14155550102), line C
(+14155550103) alone. other: line D (+14155550104).
"""

from __future__ import annotations

import csv
import io
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import ledger, queries, reports
from app.consent.queries import EVENT_COLUMNS
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import (
    GENESIS_HASH,
    ConsentEvent,
    ContactAddress,
    Direction,
    Line,
    Message,
    MessageStatus,
    Organization,
)
from app.lines import add_line, get_or_create_group
from tests.consent.conftest import Acme

IN, OUT = Status.OPTED_IN, Status.OPTED_OUT
KEYWORD, MANUAL, IMPORT = Source.KEYWORD, Source.MANUAL, Source.IMPORT
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# -- the world ----------------------------------------------------------------------------


class Clock:
    """The ledger's clock (``app.consent.ledger.utcnow``): events get chosen times."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(ledger, "utcnow", clock)
    return clock


def number(index: int) -> str:
    return f"+1415555{index:04d}"


def exported(db: Database, wanted: reports.EventFilter, batch: int = 5000) -> list[dict[str, Any]]:
    return list(reports.iter_events(db.reads, wanted, batch=batch))


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def as_csv_cells(row: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    return ["" if row[name] is None else str(row[name]) for name in columns]


def varied_history(acme: Acme, clock: Clock) -> list[str]:
    """Events of every shape (scopes, channels, topics, flags, a message, free text)."""
    with acme.db.transaction() as session:
        message = Message(
            organization_id=acme.org.id,
            line_id=acme.a.id,
            direction=Direction.INBOUND,
            address=number(201),
            body="STOP",
            status=MessageStatus.RECEIVED,
        )
        session.add(message)
        session.flush()
        message_id = message.id
    acme.change(number(201), OUT, KEYWORD, Scope.line(acme.a.id), message_id=message_id)
    clock.now += timedelta(minutes=1)
    acme.change(number(202), IN, MANUAL, reason='moved, "new" number\nsecond line')
    acme.change(number(202), OUT, MANUAL, Scope.group(acme.group.id), reason="asked")
    clock.now += timedelta(minutes=1, microseconds=250)
    acme.change(number(203), OUT, IMPORT, channel=Channel.VOICE, actor="crm import")
    acme.change(number(204), IN, KEYWORD, Scope.line(acme.a.id), topic="price_drop")
    acme.flag(number(204), Flag.SILENCED, actor="bob")
    acme.change("jo@example.com", OUT, MANUAL, channel=Channel.EMAIL)
    acme.change(number(201), OUT, MANUAL, org=acme.other)  # never in acme's export
    return [number(201), number(202), number(203), number(204), "jo@example.com"]


def events_in_order(acme: Acme, addresses: list[str]) -> list[dict[str, Any]]:
    """The history events of these addresses, in the order they were written."""
    return sorted(
        (event for address in addresses for event in acme.history(address)),
        key=lambda event: event["id"],
    )


# -- the export: columns and values -------------------------------------------------------


def test_every_exported_row_is_the_address_history_dict_of_its_event(
    db: Database, acme: Acme, clock: Clock
) -> None:
    expected = events_in_order(acme, varied_history(acme, clock))
    assert len(expected) == 7
    assert {event["message_id"] is None for event in expected} == {True, False}

    rows = exported(db, reports.EventFilter(acme.org.id))

    assert rows == expected
    assert all(tuple(row) == EVENT_COLUMNS for row in rows)


def test_the_csv_export_has_the_event_columns_and_each_row_is_its_event_as_text(
    db: Database, acme: Acme, clock: Clock
) -> None:
    expected = events_in_order(acme, varied_history(acme, clock))
    text = "".join(
        reports.csv_chunks(
            EVENT_COLUMNS, reports.iter_events(db.reads, reports.EventFilter(acme.org.id))
        )
    )

    header, *rows = parse_csv(text)
    assert header == list(EVENT_COLUMNS)
    assert rows == [as_csv_cells(event, EVENT_COLUMNS) for event in expected]
    # None is an empty cell; a reason with a comma, quotes and a newline survives.
    assert rows[0][EVENT_COLUMNS.index("reason")] == ""
    assert 'moved, "new" number\nsecond line' in [
        row[EVENT_COLUMNS.index("reason")] for row in rows
    ]


def test_count_events_is_how_many_rows_the_export_gives(
    db: Database, acme: Acme, clock: Clock
) -> None:
    varied_history(acme, clock)
    for wanted in (
        reports.EventFilter(acme.org.id),
        reports.EventFilter(acme.org.id, lines=[acme.c]),
        reports.EventFilter(acme.other.id),
        reports.EventFilter(acme.org.id, since=T0 + timedelta(minutes=1)),
    ):
        assert reports.count_events(db.reads, wanted) == len(exported(db, wanted))


# -- the export: filters ------------------------------------------------------------------

#: Events at T0 - 1 µs, T0, T0 + 1 µs, T0 + 1 h, T0 + 2 h (numbers 301..305).
TIMES = [
    T0 - timedelta(microseconds=1),
    T0,
    T0 + timedelta(microseconds=1),
    T0 + timedelta(hours=1),
    T0 + timedelta(hours=2),
]
EASTERN = timezone(timedelta(hours=-5))


#: (case, since, until, the numbers exported).
BOUNDS = [
    ("no-bounds", None, None, [301, 302, 303, 304, 305]),
    ("since-inclusive", T0, None, [302, 303, 304, 305]),
    ("until-exclusive", None, T0, [301]),
    ("both", T0, T0 + timedelta(hours=1), [302, 303]),
    ("microsecond-bounds", T0 + timedelta(microseconds=1), T0 + timedelta(hours=2), [303, 304]),
    (
        "offset-means-the-same-instant",
        T0.astimezone(EASTERN),
        (T0 + timedelta(hours=1)).astimezone(EASTERN),
        [302, 303],
    ),
    ("after-everything", T0 + timedelta(hours=3), None, []),
]


def test_since_is_inclusive_and_until_exclusive(db: Database, acme: Acme, clock: Clock) -> None:
    for index, moment in enumerate(TIMES, start=301):
        clock.now = moment
        acme.change(number(index), OUT)

    for case, since, until, expected in BOUNDS:
        rows = exported(db, reports.EventFilter(acme.org.id, since, until))
        assert [row["address"] for row in rows] == [number(n) for n in expected], case


def line_filter_world(acme: Acme) -> dict[str, str]:
    """One event per kind of scope; returns address -> what it is."""
    acme.change(number(401), OUT, MANUAL, Scope.line(acme.a.id))
    acme.change(number(402), OUT, MANUAL, Scope.line(acme.b.id))
    acme.change(number(403), OUT, MANUAL, Scope.group(acme.group.id))
    acme.change(number(404), OUT, MANUAL, Scope.line(acme.c.id))
    acme.change(number(405), OUT, MANUAL, Scope.organization())
    acme.flag(number(406), Flag.DO_NOT_CONTACT)
    acme.change(number(407), OUT, MANUAL, Scope.line(acme.d.id), org=acme.other)
    acme.change(number(408), OUT, MANUAL, Scope.organization(), org=acme.other)
    return {
        number(401): "A",
        number(402): "B",
        number(403): "MG1",
        number(404): "C",
        number(405): "org",
        number(406): "flag",
        number(407): "other D",
        number(408): "other org",
    }


#: (the lines asked for, what the export keeps).
LINE_FILTERS = [
    ([], ["A", "B", "MG1", "C", "org", "flag"]),
    (["a"], ["A", "MG1", "org", "flag"]),
    (["b"], ["B", "MG1", "org", "flag"]),
    (["c"], ["C", "org", "flag"]),
    (["a", "c"], ["A", "MG1", "C", "org", "flag"]),
    (["a", "b"], ["A", "B", "MG1", "org", "flag"]),
]


def test_the_line_filter_keeps_the_line_its_group_the_organization_and_flags(
    db: Database, acme: Acme
) -> None:
    names = line_filter_world(acme)

    for lines, expected in LINE_FILTERS:
        wanted = reports.EventFilter(acme.org.id, lines=[getattr(acme, name) for name in lines])
        rows = exported(db, wanted)
        assert [names[row["address"]] for row in rows] == expected, lines


def test_events_of_another_organization_never_appear(db: Database, acme: Acme) -> None:
    names = line_filter_world(acme)
    # The same number in both organisations: only acme's event is acme's.
    acme.change(number(401), OUT, MANUAL, Scope.organization(), org=acme.other)

    acme_rows = exported(db, reports.EventFilter(acme.org.id))
    other_rows = exported(db, reports.EventFilter(acme.other.id))

    assert [names[row["address"]] for row in acme_rows] == ["A", "B", "MG1", "C", "org", "flag"]
    assert [(row["address"], row["scope"]) for row in other_rows] == [
        (number(407), "line"),
        (number(408), "organization"),
        (number(401), "organization"),
    ]
    assert not {row["id"] for row in acme_rows} & {row["id"] for row in other_rows}


# -- the export: batches, memory, locks ---------------------------------------------------


class CountingReads:
    """``Database.reads``, counting the read sessions (transactions) it opens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.db.reads()


def test_batches_give_every_event_once_in_id_order(db: Database, acme: Acme) -> None:
    for index in range(10):
        acme.change(number(500 + index), OUT)
    with db.sessions() as session:
        ids = list(session.scalars(sa.select(ConsentEvent.id).order_by(ConsentEvent.id)))
    assert len(ids) == 10

    for batch in (1, 3, 5, 9, 10, 11):
        reads = CountingReads(db)
        rows = list(reports.iter_events(reads, reports.EventFilter(acme.org.id), batch=batch))
        assert [row["id"] for row in rows] == ids, batch
        # Every batch in one transaction: one snapshot of the history.
        assert reads.opened == 1, batch


def test_an_export_is_the_history_as_it_was_when_the_export_began(db: Database, acme: Acme) -> None:
    for index in range(10):
        acme.change(number(500 + index), OUT)
    rows = reports.iter_events(db.reads, reports.EventFilter(acme.org.id), batch=3)

    first = next(rows)
    acme.change(number(599), OUT)  # committed while the export runs
    rest = list(rows)

    # Later batches do not see it: no export mixes two moments (one with an event
    # committed after a newer id was read, and so missing, one without).
    assert [row["address"] for row in [first, *rest]] == [
        number(500 + index) for index in range(10)
    ]
    again = list(reports.iter_events(db.reads, reports.EventFilter(acme.org.id), batch=3))
    assert again[-1]["address"] == number(599)


def bulk_events(db: Database, acme: Acme, count: int) -> None:
    """``count`` events of one address, inserted directly (fast; the hashes are fake)."""
    with db.transaction() as session:
        address_id = session.scalar(
            sa.insert(ContactAddress)
            .values(
                organization_id=acme.org.id,
                value=number(700),
                kind="phone",
                head_seq=count,
                head_hash=GENESIS_HASH,
                created_at=T0,
            )
            .returning(ContactAddress.id)
        )
        session.execute(
            sa.insert(ConsentEvent),
            [
                {
                    "organization_id": acme.org.id,
                    "address_id": address_id,
                    "seq": seq,
                    "address": number(700),
                    "subject": "consent",
                    "scope": f"line:{acme.a.id}",
                    "line_id": acme.a.id,
                    "group_id": None,
                    "channel": "sms",
                    "topic": "",
                    "old_value": "opted_in" if seq % 2 == 0 else "opted_out",
                    "new_value": "opted_out" if seq % 2 == 0 else "opted_in",
                    "old_source": MANUAL,
                    "source": MANUAL,
                    "actor": f"staff member number {seq}",
                    "reason": "a reason long enough to take some memory per row",
                    "message_id": None,
                    "created_at": T0 + timedelta(seconds=seq),
                    "prev_hash": GENESIS_HASH,
                    "hash": f"{seq:064x}",
                }
                for seq in range(1, count + 1)
            ],
        )


def peak_memory(db: Database, wanted: reports.EventFilter, batch: int) -> tuple[int, int]:
    """(rows exported, peak bytes allocated while exporting them one by one)."""
    tracemalloc.start()
    try:
        count = 0
        for _row in reports.iter_events(db.reads, wanted, batch=batch):
            count += 1
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_export_holds_one_batch_in_memory_not_every_event(db: Database, acme: Acme) -> None:
    bulk_events(db, acme, 20_000)  # event n at T0 + n seconds
    peak_memory(db, reports.EventFilter(acme.org.id, lines=[acme.c]), batch=10)  # warm caches

    streamed, streamed_peak = peak_memory(db, reports.EventFilter(acme.org.id), batch=500)
    first_4000 = reports.EventFilter(acme.org.id, until=T0 + timedelta(seconds=4001))
    held, held_peak = peak_memory(db, first_4000, batch=4000)

    assert (streamed, held) == (20_000, 4000)
    # Streaming all 20,000 events in batches of 500 peaks far below holding 4,000 at once:
    # memory follows the batch, not the export.
    assert streamed_peak * 2 < held_peak, (streamed_peak, held_peak)


def test_an_export_in_progress_does_not_block_a_writer(db: Database, acme: Acme) -> None:
    for index in range(10):
        acme.change(number(500 + index), OUT)
    wrote: list[float] = []
    failed: list[BaseException] = []

    def write() -> None:
        started = time.monotonic()
        try:
            acme.change(number(598), OUT)
        except BaseException as error:  # reported by the assertions below
            failed.append(error)
        wrote.append(time.monotonic() - started)

    def during_a_batch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Another thread commits while the export's second batch transaction is open.
        if exporting and "FROM consent_events" in statement and threading.current_thread() is main:
            batches.append(statement)
            if len(batches) == 2:
                writer.start()
                writer.join(timeout=2)

    main, writer = threading.current_thread(), threading.Thread(target=write)
    batches: list[str] = []
    exporting = False
    sa.event.listen(db.engine, "after_cursor_execute", during_a_batch)
    try:
        rows = reports.iter_events(db.reads, reports.EventFilter(acme.org.id), batch=3)
        exporting = True
        first = next(rows)
        exporting = False
        started = time.monotonic()
        acme.change(number(599), OUT)  # between batches, in this thread
        between = time.monotonic() - started
        exporting = True
        rest = list(rows)
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", during_a_batch)
        if writer.is_alive() or wrote:
            writer.join()

    assert between < 2
    assert len(wrote) == 1 and wrote[0] < 2, (wrote, failed)
    assert failed == []
    addresses = [row["address"] for row in [first, *rest]]
    # Both writers went through; the export, begun before them, shows neither.
    assert addresses == [number(500 + index) for index in range(10)]


def test_a_read_session_does_not_take_the_write_lock(db: Database, acme: Acme) -> None:
    acme.change(number(500), OUT)
    done: list[float] = []

    def write() -> None:
        started = time.monotonic()
        acme.change(number(501), OUT)
        done.append(time.monotonic() - started)

    with db.reads() as session, session.begin():
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 1
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=2)
        assert done and done[0] < 2
    writer.join()
    with db.reads() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 2


# -- CSV ----------------------------------------------------------------------------------

#: Cells a spreadsheet would run (OWASP's first characters, ASVS's NUL, after white space,
#: in full-width and small forms), by id.
FORMULAS = {
    "=": '=HYPERLINK("http://x")',
    "+": "+1+1",
    "-": "-2+3",
    "@": "@SUM(A1)",
    "tab": "\tcmd",
    "cr": "\rcmd",
    "nul": "\0=1",
    "space": "  =1+1",
    "newline": "\n=1+1",
    "full-width-=": "\uff1d1+1",
    "full-width-+": "\uff0b1+1",
    "small-=": "\ufe661+1",
    "email": "=cmd|' /C calc'!A0@example.com",
    "phone-plus-text": "+14155550123 =x",
    "plus-then-digits-too-long": "+1234567890123456",
}
ALL_COLUMNS = sorted({*EVENT_COLUMNS, *reports.SNAPSHOT_COLUMNS})


@pytest.mark.parametrize("value", FORMULAS.values(), ids=FORMULAS.keys())
def test_a_cell_that_starts_like_a_formula_gets_a_leading_apostrophe_in_every_column(
    value: str,
) -> None:
    row = dict.fromkeys(ALL_COLUMNS, value)

    text = "".join(reports.csv_chunks(ALL_COLUMNS, [row]))

    [header, cells] = parse_csv(text)
    assert header == ALL_COLUMNS
    assert cells == ["'" + value] * len(ALL_COLUMNS)


@pytest.mark.parametrize(
    "value",
    ["alice", "1+1", "a=b", "'quoted", "", "jo@example.com", "+14155550123", "+1", "12345", "é=x"],
)
def test_a_cell_that_does_not_start_like_a_formula_is_left_alone_in_every_column(
    value: str,
) -> None:
    text = "".join(reports.csv_chunks(ALL_COLUMNS, [dict.fromkeys(ALL_COLUMNS, value)]))

    assert parse_csv(text)[1] == [value] * len(ALL_COLUMNS)


def test_numbers_are_not_text_and_stay_numbers() -> None:
    text = "".join(reports.csv_chunks(("id", "seq"), [{"id": -1, "seq": 2}]))

    assert parse_csv(text)[1] == ["-1", "2"]


def test_the_export_guards_every_column_an_outsider_can_write_but_not_numbers(
    db: Database, acme: Acme
) -> None:
    with acme.db.transaction() as session:
        org = session.get(Organization, acme.org.id)
        assert org is not None
        group = get_or_create_group(session, org, "=HYPERLINK(1)")
        line, _ = add_line(session, normalize("+14155550105"), org, group)
        group_id = group.id
    acme.change("=cmd@example.com", OUT, channel=Channel.EMAIL, actor="@agent", reason="-x")
    acme.change(number(201), OUT, KEYWORD, Scope.group(group_id), via=line, actor=number(201))
    acme.change(number(202), OUT, actor="+1+1", reason="\t=1")

    text = "".join(
        reports.csv_chunks(
            EVENT_COLUMNS, reports.iter_events(db.reads, reports.EventFilter(acme.org.id))
        )
    )

    header, *rows = parse_csv(text)
    cells = [
        {name: row[header.index(name)] for name in ("address", "group", "actor", "reason")}
        for row in rows
    ]
    assert cells == [
        {"address": "'=cmd@example.com", "group": "", "actor": "'@agent", "reason": "'-x"},
        {"address": number(201), "group": "'=HYPERLINK(1)", "actor": number(201), "reason": ""},
        {"address": number(202), "group": "", "actor": "'+1+1", "reason": "'\t=1"},
    ]


def test_csv_chunks_join_into_one_csv_with_one_header() -> None:
    rows = [{"n": index, "v": None if index % 2 else f"x{index}"} for index in range(7)]

    chunks = list(reports.csv_chunks(("n", "v"), rows, chunk_rows=2))

    assert len(chunks) == 4
    assert parse_csv("".join(chunks)) == [
        ["n", "v"],
        *[[str(index), "" if index % 2 else f"x{index}"] for index in range(7)],
    ]


# -- the snapshot -------------------------------------------------------------------------

EMAIL = "jo@example.com"


def snapshot_world(acme: Acme) -> None:
    """Numbers 201..208 with records of every kind (see the expected counts below)."""
    a, b, c = acme.a, acme.b, acme.c
    # 201: STOP to line A.
    acme.change(number(201), OUT, KEYWORD, Scope.line(a.id))
    # 202: opted in everywhere by staff, then out on the group MG1 (A, B): in on C.
    acme.change(number(202), IN, MANUAL)
    acme.change(number(202), OUT, MANUAL, Scope.group(acme.group.id))
    # 203: an import's opt-out of the whole organisation.
    acme.change(number(203), OUT, IMPORT, actor="crm import")
    # 204: START to line C.
    acme.change(number(204), IN, KEYWORD, Scope.line(c.id), via=c)
    # 205: voice only: nothing on sms.
    acme.change(number(205), OUT, MANUAL, channel=Channel.VOICE)
    # 206: opted in on every channel ("all").
    acme.change(number(206), IN, MANUAL, channel=Channel.ALL)
    # 207: PRICE DROP on to A, then opted out overall by staff.
    acme.change(number(207), IN, KEYWORD, Scope.line(a.id), topic="price_drop")
    acme.change(number(207), OUT, MANUAL)
    # 208: in everywhere, STOP PRICE DROP to line B.
    acme.change(number(208), IN, MANUAL)
    acme.change(number(208), OUT, KEYWORD, Scope.line(b.id), via=b, topic="price_drop")
    # An email address opted out of everything: it has no lines.
    acme.change(EMAIL, OUT, MANUAL, channel=Channel.ALL)
    # The other organisation: a number of its own, and one acme has too.
    acme.change(number(209), OUT, MANUAL, org=acme.other)
    acme.change(number(204), OUT, MANUAL, org=acme.other)
    acme.change(number(201), IN, MANUAL, Scope.line(acme.d.id), org=acme.other)


def expected_rows(acme: Acme, lines: list[Line], topic: str | None) -> list[dict[str, Any]]:
    """The snapshot's rows as the read path of one address (``address_status``) says them."""
    rows = []
    with acme.db.sessions() as session:
        for address in acme.addresses():
            if address.kind == "email":
                continue  # no lines: an email address has no status on a line
            status = queries.address_status(
                session, acme.org, address, topics=[topic] if topic else [], channels=[Channel.SMS]
            )
            entries = {entry.line.line.id: entry for entry in status.entries if entry.line}
            for line in lines:
                entry = entries[line.id]
                decision = entry.topics[topic] if topic else entry.overall
                if decision.status is Status.NOT_DEFINED:
                    continue
                shown = queries._decision_dict(decision)
                rows.append(
                    {
                        "address": address.value,
                        "line": line.address,
                        **{name: shown[name] for name in reports.SNAPSHOT_COLUMNS[2:]},
                    }
                )
    return rows


def snapshot(
    acme: Acme,
    lines: list[Line] | None = None,
    status: Status | None = None,
    topic: str | None = None,
    batch: int = 2000,
) -> tuple[reports.Snapshot, list[dict[str, Any]]]:
    report = reports.Snapshot(acme.org.id, lines or [acme.a, acme.b, acme.c], status, topic)
    return report, list(report.rows(acme.db.reads, batch=batch))


def test_every_row_is_the_status_address_status_gives_on_that_line(acme: Acme) -> None:
    snapshot_world(acme)

    for topic in (None, "price_drop", "new_arrival"):
        for lines in ([acme.a, acme.b, acme.c], [acme.c, acme.a]):
            _report, rows = snapshot(acme, lines=lines, topic=topic)
            assert rows == expected_rows(acme, lines, topic), (topic, lines)
            assert all(tuple(row) == reports.SNAPSHOT_COLUMNS for row in rows)
            assert {row["status"] for row in rows} == {"opted_in", "opted_out"}


def test_the_snapshot_lists_each_number_on_each_line_where_it_is_defined(acme: Acme) -> None:
    snapshot_world(acme)

    _report, rows = snapshot(acme)

    listed = {(row["address"][-3:], row["line"][-1], row["status"][6:]) for row in rows}
    assert listed == {
        ("201", "1", "out"),
        ("202", "1", "out"),
        ("202", "2", "out"),
        ("202", "3", "in"),
        ("203", "1", "out"),
        ("203", "2", "out"),
        ("203", "3", "out"),
        ("204", "3", "in"),
        ("206", "1", "in"),
        ("206", "2", "in"),
        ("206", "3", "in"),
        ("207", "1", "out"),
        ("207", "2", "out"),
        ("207", "3", "out"),
        ("208", "1", "in"),
        ("208", "2", "in"),
        ("208", "3", "in"),
    }
    assert len(rows) == len(listed)


#: Per line (A, B, C): (opted in, opted out); and the distinct numbers listed.
COUNTS = {"+14155550101": (2, 4), "+14155550102": (2, 3), "+14155550103": (4, 2)}


def test_counts_per_line_count_both_statuses_whatever_the_status_filter(acme: Acme) -> None:
    snapshot_world(acme)
    every = snapshot(acme)[1]

    for status, numbers in ((None, 7), (IN, 4), (OUT, 4)):
        report, rows = snapshot(acme, status=status)
        assert report.counts_dict() == {
            line: {"opted_in": opted_in, "opted_out": opted_out}
            for line, (opted_in, opted_out) in COUNTS.items()
        }, status
        assert report.numbers == numbers == len({row["address"] for row in rows}), status
        if status is not None:
            assert {row["status"] for row in rows} == {status.value}
            assert rows == [row for row in every if row["status"] == status.value]


def test_counts_cover_only_the_chosen_lines(acme: Acme) -> None:
    snapshot_world(acme)

    report, rows = snapshot(acme, lines=[acme.c])

    assert report.counts_dict() == {"+14155550103": {"opted_in": 4, "opted_out": 2}}
    assert {row["line"] for row in rows} == {"+14155550103"}
    assert report.numbers == 6


def statuses_of(rows: list[dict[str, Any]], address: str) -> list[tuple[str, str, str]]:
    """(line, status, because) of the snapshot rows of ``address``."""
    return [
        (row["line"], row["status"], row["because"]) for row in rows if row["address"] == address
    ]


def test_an_overall_opt_out_turns_a_topic_off_because_of_it(acme: Acme) -> None:
    snapshot_world(acme)

    _report, rows = snapshot(acme, topic="price_drop")

    assert statuses_of(rows, number(207)) == [
        ("+14155550101", "opted_out", "overall_opt_out"),
        ("+14155550102", "opted_out", "overall_opt_out"),
        ("+14155550103", "opted_out", "overall_opt_out"),
    ]
    assert statuses_of(rows, number(208)) == [
        ("+14155550101", "opted_in", "follows_overall"),
        ("+14155550102", "opted_out", "record"),
        ("+14155550103", "opted_in", "follows_overall"),
    ]


def test_snapshot_batches_lose_nothing(acme: Acme) -> None:
    snapshot_world(acme)
    whole_report, whole = snapshot(acme)

    for batch in (1, 2, 3, 7):
        report, rows = snapshot(acme, batch=batch)
        assert rows == whole, batch
        assert report.counts_dict() == whole_report.counts_dict(), batch
        assert report.numbers == whole_report.numbers, batch


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 1000])
@pytest.mark.parametrize("status", [None, IN, OUT])
def test_pages_by_keyset_are_the_rows_in_order_each_number_whole(
    acme: Acme, limit: int, status: Status | None
) -> None:
    snapshot_world(acme)
    whole_report, whole = snapshot(acme, status=status)
    report = reports.Snapshot(acme.org.id, [acme.a, acme.b, acme.c], status)

    pages, after = [], 0
    while True:
        found = report.page(acme.db.reads, after, limit, counted=not pages)
        if not pages:  # the first page walked on to the end: the whole report's counts
            assert report.counts_dict() == whole_report.counts_dict()
            assert report.numbers == whole_report.numbers
        pages.append(found.rows)
        if found.following is None:
            break
        assert found.following > after
        after = found.following

    assert [row for rows in pages for row in rows] == whole
    for rows in pages[:-1]:
        assert len(rows) >= limit  # full, but for the last
        assert len(rows) < limit + 3  # and at most one number past the limit (3 lines)
    assert pages[-1] or not whole  # no empty page after the last row
    # A page ends with a number: no number is split between two pages.
    seen = [{row["address"] for row in rows} for rows in pages]
    assert sum(len(numbers) for numbers in seen) == len(set().union(*seen))


def test_a_page_without_counting_stops_where_it_is_full(acme: Acme) -> None:
    for index in range(30):
        acme.change(number(400 + index), OUT)
    report = reports.Snapshot(acme.org.id, [acme.a])

    found = report.page(acme.db.reads, 0, 10)

    assert [row["address"] for row in found.rows] == [number(400 + i) for i in range(10)]
    assert found.following is not None
    assert sum(report.counts_dict()["+14155550101"].values()) == 11  # it stopped, plus one
    last = report.page(acme.db.reads, found.following, 100)
    assert [row["address"] for row in last.rows] == [number(400 + i) for i in range(10, 30)]
    assert last.following is None


def test_a_snapshot_is_the_consent_as_it_was_when_the_report_began(acme: Acme) -> None:
    for index in range(4):
        acme.change(number(600 + index), OUT)
    report = reports.Snapshot(acme.org.id, [acme.a])
    rows = report.rows(acme.db.reads, batch=1)

    first = next(rows)
    acme.change(number(601), IN)  # a later batch's number changes while the report runs
    acme.change(number(699), OUT)  # and a new one appears
    rest = list(rows)

    assert [(row["address"], row["status"]) for row in [first, *rest]] == [
        (number(600 + index), "opted_out") for index in range(4)
    ]


def test_snapshot_batches_lose_nothing_over_five_addresses(acme: Acme) -> None:
    for index in range(5):
        acme.change(number(300 + index), OUT if index % 2 else IN)

    report, rows = snapshot(acme, lines=[acme.a], batch=2)

    assert [(row["address"], row["status"]) for row in rows] == [
        (number(300 + index), "opted_out" if index % 2 else "opted_in") for index in range(5)
    ]
    assert report.counts_dict() == {"+14155550101": {"opted_in": 3, "opted_out": 2}}
    assert report.numbers == 5


def test_numbers_of_another_organization_never_appear(acme: Acme) -> None:
    snapshot_world(acme)

    _report, rows = snapshot(acme)

    assert number(209) not in {row["address"] for row in rows}
    # 204 is opted out in the other organisation: in acme only its START to C counts.
    assert [(row["line"], row["status"]) for row in rows if row["address"] == number(204)] == [
        ("+14155550103", "opted_in")
    ]
    other = reports.Snapshot(acme.other.id, [acme.d])
    other_rows = list(other.rows(acme.db.reads))
    assert [(row["address"], row["status"]) for row in other_rows] == [
        (number(209), "opted_out"),
        (number(204), "opted_out"),
        (number(201), "opted_in"),
    ]


def test_records_on_the_voice_channel_do_not_count_for_sms(acme: Acme) -> None:
    acme.change(number(205), OUT, MANUAL, channel=Channel.VOICE)
    acme.change(number(206), OUT, MANUAL, channel=Channel.VOICE)
    acme.change(number(206), IN, MANUAL, Scope.line(acme.a.id))

    report, rows = snapshot(acme)

    assert [(row["address"], row["line"], row["status"]) for row in rows] == [
        (number(206), "+14155550101", "opted_in")
    ]
    assert report.counts_dict()["+14155550102"] == {"opted_in": 0, "opted_out": 0}


def test_an_email_address_is_never_a_row(acme: Acme) -> None:
    acme.change(EMAIL, OUT, MANUAL, channel=Channel.ALL)
    acme.change(number(201), OUT, MANUAL, channel=Channel.ALL)

    report, rows = snapshot(acme)

    assert {row["address"] for row in rows} == {number(201)}
    assert report.numbers == 1
    assert report.counts_dict()["+14155550101"] == {"opted_in": 0, "opted_out": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T09:30:00-05:00", datetime(2026, 11, 1, 14, 30, tzinfo=UTC)),
        ("2026-11-01T14:30:00Z", datetime(2026, 11, 1, 14, 30, tzinfo=UTC)),
        ("2026-11-01t14:30:00z", datetime(2026, 11, 1, 14, 30, tzinfo=UTC)),
    ],
    ids=["day-is-midnight-utc", "offset", "z", "rfc3339-lower-case"],
)
def test_a_report_bound_is_a_day_or_a_time_with_its_offset(value: str, expected: datetime) -> None:
    assert reports.parse_bound(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-01T09:30:00", "has no time zone offset"),
        ("yesterday", "is not a day such as 2026-12-01 or a time such as"),
        ("2026-13-01", "is not a day"),
        ("0001-01-01T00:00:00+01:00", "is out of range"),
    ],
    ids=["naive", "words", "no-such-month", "before-year-one-in-utc"],
)
def test_a_report_bound_that_is_not_one_says_what_is_expected(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reports.parse_bound(value)
