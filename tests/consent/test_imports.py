"""Consent imports (app/consent/imports.py), on SQLite and PostgreSQL.

Every row of a file gets one result (applied, unchanged, refused, invalid)
named by its line in the file; an import goes through the ledger with source
``import``, so it records opt-outs and do-not-contact and never lifts an
opt-out; a file whose header is wrong is refused before anything is applied;
results are reported only once their batch is committed.

acme: group MG1 with lines A (+14155550101) and B (+14155550102), line C
(+14155550103) alone. other: line D (+14155550104).
"""

from __future__ import annotations

import io
import random
import re
from collections import Counter
from collections.abc import Collection
from typing import Any

import pytest
import sqlalchemy as sa

from app import addresses
from app.consent import history, imports
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import ConsentEvent, ContactAddress
from app.errors import InvalidChange
from tests.consent.conftest import Acme
from tests.consent.test_reports import number

IN, OUT = Status.OPTED_IN, Status.OPTED_OUT
HEADER = "address,status,line,group,channel,topic,reason"
ACTOR = "jane (crm export 2026-11)"


def stream(data: str | bytes) -> io.TextIOWrapper:
    """The file as the web view reads it: UTF-8 (with or without a BOM), bad bytes kept."""
    raw = data.encode() if isinstance(data, str) else data
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", errors="replace", newline="")


def run_import(
    acme: Acme,
    data: str | bytes,
    *,
    batch: int = imports.BATCH,
    actor: str = ACTOR,
    topics: Collection[str] | None = None,
) -> tuple[Counter[str], list[imports.RowResult]]:
    results: list[imports.RowResult] = []
    totals = imports.run(
        acme.db,
        acme.org,
        imports.read_rows(stream(data)),
        actor=actor,
        region="US",
        report=results.append,
        topics=topics,
        batch=batch,
    )
    return totals, results


def csv_file(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def all_events(db: Database) -> list[ConsentEvent]:
    with db.sessions() as session:
        return list(session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id)))


def shape(results: list[imports.RowResult]) -> list[tuple[int, str, str, int]]:
    return [(result.row, result.address, result.result, result.events) for result in results]


def verify(db: Database) -> None:
    with db.sessions() as session:
        _checked, problem = history.verify(session)
    assert problem is None, str(problem)


# -- a file of every kind of row ----------------------------------------------------------


def before_the_import(acme: Acme) -> None:
    """Opt-outs an import may not lift, and a number on line A only."""
    acme.change(number(301), OUT, Source.KEYWORD, Scope.line(acme.a.id))
    acme.change(number(302), OUT, Source.MANUAL, actor="alice")
    acme.change(number(303), OUT, Source.IMPORT, actor="old import")


ROWS = [
    "+14155550401,opted_out,,,,,moved away",
    "+14155550402,opted_out,+14155550101,,,,",
    "+14155550403,opted_out,,MG1,,,",
    "+14155550401,opted_out,,,,,again",
    "+14155550404,opted_in,,,,,",
    "+14155550301,opted_in,+14155550101,,,,",
    "+14155550302,opted_in,,,,,",
    "+14155550303,opted_in,,,,,",
    "+14155550301,opted_in,+14155550103,,,,",
    "+14155550405,do_not_contact,,,,,asked on the phone",
    "+14155550405,opted_in,,,,,",
    "+14155550406,opted_in,,,,price_drop,",
    "jo@example.com,opted_out,,,,,",
    "(415) 555-0407,OPTED_OUT,,,voice,,",
    "+14155550405,do_not_contact,,,,,",
]
#: (row, address as reported, result, events) for ROWS.
EXPECTED = [
    (2, "+14155550401", "applied", 1),
    (3, "+14155550402", "applied", 1),
    (4, "+14155550403", "applied", 1),
    (5, "+14155550401", "unchanged", 0),
    (6, "+14155550404", "applied", 1),
    (7, "+14155550301", "refused", 0),
    (8, "+14155550302", "refused", 0),
    (9, "+14155550303", "refused", 0),
    (10, "+14155550301", "applied", 1),
    (11, "+14155550405", "applied", 1),
    (12, "+14155550405", "refused", 0),
    (13, "+14155550406", "applied", 1),
    (14, "jo@example.com", "applied", 1),
    (15, "+14155550407", "applied", 1),
    (16, "+14155550405", "unchanged", 0),
]


def test_every_row_gets_its_result_in_file_order(acme: Acme) -> None:
    before_the_import(acme)

    totals, results = run_import(acme, csv_file(*ROWS))

    assert shape(results) == EXPECTED
    assert totals == {"applied": 9, "unchanged": 2, "refused": 4, "invalid": 0}


def test_what_an_import_writes_is_the_events_its_rows_report(acme: Acme) -> None:
    before_the_import(acme)
    earlier = {event.id for event in all_events(acme.db)}

    _totals, results = run_import(acme, csv_file(*ROWS))

    written = [event for event in all_events(acme.db) if event.id not in earlier]
    assert len(written) == sum(result.events for result in results) == 9
    assert {(event.source, event.actor) for event in written} == {(Source.IMPORT, ACTOR)}
    assert Counter(event.address for event in written) == Counter(
        address for _row, address, result, _events in EXPECTED if result == "applied"
    )
    shapes = {
        (event.address, event.subject, event.scope.partition(":")[0], event.channel, event.topic)
        for event in written
    }
    assert shapes >= {
        ("+14155550401", "consent", "organization", "sms", ""),
        ("+14155550402", "consent", "line", "sms", ""),
        ("+14155550403", "consent", "group", "sms", ""),
        ("+14155550301", "consent", "line", "sms", ""),
        ("+14155550405", "do_not_contact", "organization", "all", ""),
        ("+14155550406", "consent", "organization", "sms", "price_drop"),
        ("jo@example.com", "consent", "organization", "email", ""),
        ("+14155550407", "consent", "organization", "voice", ""),
    }
    [moved] = [event for event in written if event.address == number(401)]
    assert (moved.new_value, moved.reason) == ("opted_out", "moved away")
    verify(acme.db)


def test_refused_rows_say_why_and_what_would_work_and_write_nothing(acme: Acme) -> None:
    before_the_import(acme)
    histories = {n: acme.history(number(n)) for n in (301, 302, 303)}

    _totals, results = run_import(acme, csv_file(*ROWS))

    refused = {result.row: result for result in results if result.result == "refused"}
    assert "by texting a stop keyword" in (refused[7].message or "")
    assert refused[7].hint == (
        "An import never lifts an opt-out: only the contact can opt back in, "
        "by texting START to +14155550101."
    )
    assert "by alice (manual)" in (refused[8].message or "")
    assert (refused[8].hint or "").startswith("An import never lifts an opt-out: only a staff")
    assert "in an import (old import)" in (refused[9].message or "")
    assert "do-not-contact list" in (refused[12].message or "")
    assert refused[12].hint == "Do-not-contact is permanent: no one can opt this address back in."
    # Nothing but row 10's opt-in on line C (where no opt-out was in force) touched 301-303.
    assert acme.history(number(302)) == histories[302]
    assert acme.history(number(303)) == histories[303]
    assert acme.history(number(301))[:-1] == histories[301]
    assert acme.history(number(301))[-1]["line"] == "+14155550103"
    assert [event["subject"] for event in acme.history(number(405))] == ["do_not_contact"]


def test_an_import_never_lifts_an_opt_out_whoever_made_it_wherever(acme: Acme) -> None:
    where = {
        "organization": (Scope.organization(), ",,"),
        "line": (Scope.line(acme.a.id), ",+14155550101,"),
        "group": (Scope.group(acme.group.id), ",,MG1"),
    }
    cases = [(source, scope) for source in Source for scope in where]
    rows = []
    for index, (source, scope) in enumerate(cases):
        acme.change(number(310 + index), OUT, source, where[scope][0], actor="someone")
        rows.append(f"{number(310 + index)},opted_in{where[scope][1]},,,")
    before = {index: acme.history(number(310 + index)) for index in range(len(cases))}

    _totals, results = run_import(acme, csv_file(*rows))

    assert len(results) == len(cases) == 18
    for index, (case, result) in enumerate(zip(cases, results, strict=True)):
        assert (result.row, result.result, result.events) == (index + 2, "refused", 0), case
        assert (result.hint or "").startswith("An import never lifts an opt-out"), case
        assert acme.history(number(310 + index)) == before[index], case


def test_a_do_not_contact_row_sets_the_flag_from_the_import(acme: Acme) -> None:
    _totals, results = run_import(acme, csv_file("+14155550405,do_not_contact,,,,,by phone"))

    assert shape(results) == [(2, "+14155550405", "applied", 1)]
    [event] = acme.history(number(405))
    assert (event["subject"], event["new"], event["source"], event["actor"], event["reason"]) == (
        Flag.DO_NOT_CONTACT.value,
        "set",
        "import",
        ACTOR,
        "by phone",
    )


# -- invalid rows -------------------------------------------------------------------------

INVALID = [
    ("bad-address", "not a number,opted_out,,,,,", "'not a number' is not a valid address"),
    ("empty-address", ",opted_out,,,,,", "address: empty"),
    ("unknown-status", "+14155550501,maybe,,,,,", "status 'maybe': expected one of"),
    ("empty-status", "+14155550501,,,,,,", "status '': expected one of"),
    ("unknown-line", "+14155550501,opted_out,+14155559999,,,,", "there is no line +14155559999"),
    ("line-not-a-number", "+14155550501,opted_out,front desk,,,,", "'front desk'"),
    (
        "line-of-another-organization",
        "+14155550501,opted_out,+14155550104,,,,",
        # Another organisation's line is one the import cannot see.
        "there is no line +14155550104: add it first",
    ),
    ("unknown-group", "+14155550501,opted_out,,NOPE,,,", "has no line group 'NOPE'"),
    ("line-and-group", "+14155550501,opted_out,+14155550101,MG1,,,", "not both"),
    (
        "email-channel-for-a-phone",
        "+14155550501,opted_out,,,email,,",
        "channel email does not apply to a phone number",
    ),
    ("unknown-channel", "+14155550501,opted_out,,,fax,,", "channel 'fax': expected one of"),
    ("bad-topic", "+14155550501,opted_out,,,,Price Drop!,", "topic 'Price Drop!'"),
    (
        "do-not-contact-on-a-line",
        "+14155550501,do_not_contact,+14155550101,,,,",
        "do_not_contact is organisation-wide",
    ),
    ("do-not-contact-on-voice", "+14155550501,do_not_contact,,,voice,,", "organisation-wide"),
    (
        "email-on-a-line",
        "jo@example.com,opted_out,+14155550101,,,,",
        "email consent is kept for the whole organization",
    ),
    ("too-few-fields", "+14155550501,opted_out", "2 fields where the header has 7"),
    ("too-many-fields", "+14155550501,opted_out,,,,,,extra", "8 fields where the header has 7"),
    ("long-reason", "+14155550501,opted_out,,,,," + "x" * 4001, "reason: longer than 4000"),
    ("stray-quote", '+14155550501,"opted_out"x,,,,,', "not CSV"),
    ("huge-line", "+14155550501,opted_out,,,,," + "x" * 140_000, "not CSV: the line is longer"),
]


def test_an_invalid_row_says_why_writes_nothing_and_the_rest_goes_on(acme: Acme) -> None:
    rows = []
    for index, (_case, row, _message) in enumerate(INVALID):
        rows += [row, f"{number(600 + index)},opted_out,,,,,"]

    totals, results = run_import(acme, csv_file(*rows))

    assert len(results) == 2 * len(INVALID)
    for index, (case, _row, message) in enumerate(INVALID):
        invalid, good = results[2 * index : 2 * index + 2]
        assert (invalid.row, invalid.result, invalid.events) == (2 * index + 2, "invalid", 0), case
        assert message in (invalid.message or ""), (case, invalid.message)
        assert (good.row, good.result) == (2 * index + 3, "applied"), case
    assert totals == {
        "applied": len(INVALID),
        "unchanged": 0,
        "refused": 0,
        "invalid": len(INVALID),
    }
    assert [event.address for event in all_events(acme.db)] == [
        number(600 + index) for index in range(len(INVALID))
    ]


def test_a_broken_quote_makes_its_row_invalid_not_the_next_rows_reason(acme: Acme) -> None:
    data = csv_file(
        '+14155550601,opted_out,,,,,"oops',
        '+14155550602,opted_out,,,,,"fine"',
        "+14155550603,opted_out,,,,,ok",
    )

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [
        (2, "invalid"),
        (3, "applied"),
        (4, "applied"),
    ]
    assert (results[0].message or "").startswith("not CSV: a quote is not closed on its line")
    assert results[0].address == number(601)  # read as far as it goes, to say which row
    assert [event.address for event in all_events(acme.db)] == [number(602), number(603)]


def data_lines(data: str) -> list[int]:
    """The lines an import must report, each once: after the header, every line that holds
    more than spaces and commas (split as csv splits: \\r\\n, \\n or \\r)."""
    lines = re.split(r"\r\n|\r|\n", data)
    if lines[-1] == "":
        lines.pop()  # the end of the last line, not a line
    return [
        index
        for index, text in enumerate(lines, start=1)
        if index > 1 and text.replace(",", "").strip()
    ]


#: Files with quotes that do not close on their line. Every line with a quote in it is
#: broken (invalid), every line without one is a good row of its own number (applied).
QUOTE_FILES = {
    "unbalanced-mid-file": csv_file(
        '+14155550601,opted_out,,,,,"oops',
        "+14155550602,opted_out,,,,,",
        "+14155550603,opted_in,,,,,",
    ),
    "unbalanced-last-line": csv_file("+14155550601,opted_out,,,,,", '+14155550602,opted_out,"'),
    "unbalanced-last-line-without-its-end": csv_file(
        "+14155550601,opted_out,,,,,", '+14155550602,opted_out,,,,,"no end'
    ).rstrip("\n"),
    # Read as CSV, one row of lines 2-4 whose reason swallows line 3.
    "closes-two-lines-later": csv_file(
        '+14155550601,opted_out,,,,,"first',
        "+14155550602,opted_out,,,,,",
        'end"',
        "+14155550604,opted_out,,,,,",
    ),
    "only-a-quote": csv_file('"', "+14155550601,opted_out,,,,,", '"'),
    "crlf": csv_file(
        '+14155550601,opted_out,,,,,"oops',
        "+14155550602,opted_out,,,,,",
        "+14155550603,opted_out,,,,,",
    ).replace("\n", "\r\n"),
    "lone-cr": csv_file('+14155550601,opted_out,,,,,"oops', "+14155550602,opted_out,,,,,").replace(
        "\n", "\r"
    ),
    "bom-and-blank-lines": "\ufeff"
    + csv_file(
        "",
        '+14155550601,opted_out,,,,,"x',
        "   ",
        ",,,,,,",
        "+14155550602,opted_out,,,,,",
        "",
        '"+14155550603,opted_out,,,,,',
    ),
}


@pytest.mark.parametrize("data", QUOTE_FILES.values(), ids=QUOTE_FILES.keys())
def test_every_line_of_the_file_is_reported_once_whatever_its_quotes(acme: Acme, data: str) -> None:
    totals, results = run_import(acme, data, batch=2)

    lines = re.split(r"\r\n|\r|\n", data.removeprefix("\ufeff"))
    assert [result.row for result in results] == data_lines(data)
    assert sum(totals.values()) == len(results)
    for result in results:
        text = lines[result.row - 1]
        expected = "invalid" if '"' in text else "applied"
        assert result.result == expected, (result.row, text, result.message)
        # Each opens a quote it does not close, but 'end"' (one field that holds a quote).
        if expected == "invalid" and text != 'end"':
            assert "not CSV: a quote is not closed on its line" in (result.message or "")
    assert len(all_events(acme.db)) == totals["applied"]


@pytest.mark.parametrize("seed", range(6))
def test_random_quotes_line_ends_and_blank_lines_lose_no_line(acme: Acme, seed: int) -> None:
    """Good rows with a quote dropped in at random places, and blank lines, any line end:
    whatever each quote does to its own line, no other line is lost or merged."""
    chance = random.Random(seed)
    lines, good = [HEADER], set()
    for index in range(120):
        row = f"{number(1000 + index)},opted_out,,,,,moved away"
        if chance.random() < 0.3:
            spot = chance.randrange(len(row) + 1)
            row = row[:spot] + '"' * chance.choice((1, 1, 3)) + row[spot:]
        elif chance.random() < 0.1:
            row = chance.choice(("", "  ", ",,,"))
        else:
            good.add(len(lines) + 1)
        lines.append(row)
    end = chance.choice(("\n", "\r\n", "\r"))
    data = end.join(lines) + chance.choice((end, ""))

    totals, results = run_import(acme, data, batch=7)

    assert [result.row for result in results] == data_lines(data)
    assert good <= {result.row for result in results if result.result == "applied"}
    assert sum(totals.values()) == len(results)
    assert len(all_events(acme.db)) == totals["applied"]


def test_a_quoted_field_cannot_span_lines_so_each_line_is_its_own_row(acme: Acme) -> None:
    data = "\r\n".join(
        [
            "address,status,reason",
            '+14155550601,opted_out,"two',  # 2: a reason with a line break in it
            'lines"',  # 3
            '+14155550602,opted_out,"one line, with ""quotes"" and a comma"',  # 4
        ]
    )

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [
        (2, "invalid"),
        (3, "invalid"),
        (4, "applied"),
    ]
    assert "a field cannot hold a line break" in (results[0].message or "")
    assert [event.address for event in all_events(acme.db)] == [number(602)]
    assert acme.history(number(602))[0]["reason"] == 'one line, with "quotes" and a comma'


#: A NUL (PostgreSQL cannot store one) in each column, in an otherwise valid row:
#: (header, row).
NULS = {
    "address": ("address,status", "+1415555\x000602,opted_out"),
    "address-email": ("address,status", "jo\x00@example.com,opted_out"),
    "status": ("address,status", "+14155550602,opted\x00_out"),
    "line": ("address,status,line", "+14155550602,opted_out,+14155550101\x00"),
    "group": ("address,status,group", "+14155550602,opted_out,MG1\x00"),
    "channel": ("address,status,channel", "+14155550602,opted_out,sms\x00"),
    "topic": ("address,status,topic", "+14155550602,opted_out,price\x00_drop"),
    "reason": ("address,status,reason", "+14155550602,opted_out,moved\x00 away"),
}


@pytest.mark.parametrize(("header", "row"), NULS.values(), ids=NULS.keys())
def test_a_nul_in_any_field_makes_its_row_invalid_naming_it_and_its_batch_goes_on(
    acme: Acme, header: str, row: str
) -> None:
    column = header.split(",")[-1] if header.count(",") == 2 else None
    filler = "," if column else ""
    data = "\n".join([header, f"{number(601)},opted_out{filler}", row, f"{number(603)},opted_out"])
    data += filler + "\n"

    _totals, results = run_import(acme, data)  # one batch: it must survive its bad row

    assert [(result.row, result.result) for result in results] == [
        (2, "applied"),
        (3, "invalid"),
        (4, "applied"),
    ]
    named = column or ("status" if "opted\x00" in row else "address")
    assert results[1].message == f"{named}: contains a NUL character, which cannot be stored"
    assert [event.address for event in all_events(acme.db)] == [number(601), number(603)]


def test_other_control_characters_make_a_row_invalid_but_a_tab_in_a_reason(acme: Acme) -> None:
    data = csv_file(
        "+14155550601,opted_out,,,,,\x1b[2Jgone",  # 2: a terminal escape
        "+14155550602,opted_out,,MG1\x7f,,,",  # 3
        "+14155550603\x07,opted_out,,,,,",  # 4
        "\t+14155550604\t,opted_out,,,,,asked\ton the phone",  # 5: tabs around and in a reason
    )

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result, result.message) for result in results] == [
        (2, "invalid", "reason: holds the control character U+001B; remove it"),
        (3, "invalid", "group: holds the control character U+007F; remove it"),
        (4, "invalid", "address: holds the control character U+0007; remove it"),
        (5, "applied", None),
    ]
    assert acme.history(number(604))[0]["reason"] == "asked\ton the phone"


#: A value one character longer than its column takes, and the message.
TOO_LONG = {
    "address": ("address", "jo@" + "a" * 314 + ".com", 320),
    "status": ("status", "o" * 33, 32),
    "line": ("line", "+1415555010" + "1" * 54, 64),
    "group": ("group", "G" * 101, 100),
    "channel": ("channel", "s" * 17, 16),
    "topic": ("topic", "t" * 65, 64),
    "reason": ("reason", "x" * 4001, 4000),
}


@pytest.mark.parametrize(("column", "value", "limit"), TOO_LONG.values(), ids=TOO_LONG.keys())
def test_a_value_longer_than_its_column_takes_is_an_invalid_row_not_a_database_error(
    acme: Acme, column: str, value: str, limit: int
) -> None:
    assert len(value) == limit + 1
    extra = column not in ("address", "status")
    fields = {"address": number(602), "status": "opted_out", **({column: ""} if extra else {})}
    header = ",".join(fields)
    neighbours = [",".join({**fields, "address": number(n)}.values()) for n in (601, 603)]
    data = "\n".join([header, neighbours[0], ",".join({**fields, column: value}.values())])
    data += "\n" + neighbours[1] + "\n"

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [
        (2, "applied"),
        (3, "invalid"),
        (4, "applied"),
    ]
    assert results[1].message == f"{column}: longer than {limit} characters"
    assert len(results[1].address) <= 320  # a report quotes a bounded part of it
    assert [event.address for event in all_events(acme.db)] == [number(601), number(603)]


def test_values_as_long_as_their_columns_take_are_stored_whole(acme: Acme) -> None:
    email = "jo@" + "a" * 247 + ".com"  # 254 characters: the longest email SMTP carries
    reason = "é" * 4000
    data = f"address,status,reason\n{email},opted_out,{reason}\n"

    _totals, results = run_import(acme, data)

    assert shape(results) == [(2, email, "applied", 1)]
    [event] = all_events(acme.db)
    assert (event.address, event.reason) == (email, reason)


def test_a_value_the_database_refuses_makes_only_its_row_invalid(
    acme: Acme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the import's own checks (lifted here), PostgreSQL refuses an address longer than
    its column: the row is invalid, its batch is committed without it."""
    monkeypatch.setitem(imports.LONGEST, "address", 10_000)
    monkeypatch.setattr(addresses, "MOST_EMAIL", 10_000)
    email = "jo@" + "a" * 400 + ".com"
    data = csv_file(
        "+14155550601,opted_out,,,,,", f"{email},opted_out,,,,,", "+14155550603,opted_out,,,,,"
    )

    _totals, results = run_import(acme, data)

    on_postgres = acme.db.engine.dialect.name == "postgresql"
    assert [(result.row, result.result) for result in results] == [
        (2, "applied"),
        (3, "invalid" if on_postgres else "applied"),
        (4, "applied"),
    ]
    if on_postgres:
        assert results[1].message == (
            "the database cannot store a value of this row (too long, or a character it "
            "refuses); nothing of it was applied"
        )
    stored = {event.address for event in all_events(acme.db)}
    assert {number(601), number(603)} <= stored
    verify(acme.db)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_a_line_too_long_to_read_is_invalid_and_the_numbering_goes_on(acme: Acme, end: str) -> None:
    head = "+14155550601,opted_out,"
    longest = head + "x" * (imports.MAX_LINE - len(head))  # exactly the longest line read
    too_long = longest + "x"
    data = end.join(["address,status,reason", longest, too_long, "+14155550603,opted_out,ok", ""])

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [
        (2, "invalid"),
        (3, "invalid"),
        (4, "applied"),
    ]
    assert results[0].message == "reason: longer than 4000 characters"
    assert results[1].message == f"not CSV: the line is longer than {imports.MAX_LINE} characters"


def test_text_that_is_not_unicode_scalar_values_makes_its_row_invalid(acme: Acme) -> None:
    # A caller's own text stream may hold lone surrogates, which no database can store.
    rows = imports.read_rows(
        io.StringIO(
            "address,status,reason\n+14155550601,opted_out,\ud800\n+14155550602,opted_out,\n"
        )
    )
    results: list[imports.RowResult] = []

    imports.run(acme.db, acme.org, rows, actor=ACTOR, region="US", report=results.append)

    assert [(result.row, result.result) for result in results] == [(2, "invalid"), (3, "applied")]
    assert "not UTF-8" in (results[0].message or "")


def test_bytes_that_are_not_utf8_make_their_row_invalid_and_the_rest_goes_on(
    acme: Acme,
) -> None:
    data = csv_file("+14155550601,opted_out,,,,,caf\xe9", "+14155550602,opted_out,,,,,ok").encode(
        "latin-1"
    )

    _totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [(2, "invalid"), (3, "applied")]
    assert "not UTF-8" in (results[0].message or "")
    assert [event.address for event in all_events(acme.db)] == [number(602)]


def test_rows_are_numbered_by_their_line_in_the_file(acme: Acme) -> None:
    data = "\r\n".join(
        [
            "address,status,reason",  # 1
            '+14155550601,opted_out,"two, words"',  # 2
            "",  # 3: blank, not a row
            "+14155550602,opted_out,",  # 4
            " , ,",  # 5: blank fields only, not a row
            "+14155550603,nope,x",  # 6
        ]
    )

    totals, results = run_import(acme, data)

    assert [(result.row, result.result) for result in results] == [
        (2, "applied"),
        (4, "applied"),
        (6, "invalid"),
    ]
    assert sum(totals.values()) == 3
    assert acme.history(number(601))[0]["reason"] == "two, words"


@pytest.mark.parametrize(
    "header",
    ["\ufeffaddress,status", " Address , STATUS ", "STATUS,Address", "address,status,"[:-1]],
    ids=["bom", "case-and-spaces", "any-order", "plain"],
)
def test_a_header_is_read_whatever_its_case_spaces_order_or_bom(acme: Acme, header: str) -> None:
    first, second = [name.strip().lower().lstrip("\ufeff") for name in header.split(",")]
    values = {"address": "+14155550601", "status": "opted_out"}

    _totals, results = run_import(acme, f"{header}\n{values[first]},{values[second]}\n")

    assert shape(results) == [(2, "+14155550601", "applied", 1)]


def test_a_bom_read_as_text_is_still_no_part_of_the_first_column(acme: Acme) -> None:
    rows = list(imports.read_rows(io.StringIO("\ufeffaddress,status\n+14155550601,opted_out\n")))

    assert [(row.line, row.fields, row.problem) for row in rows] == [
        (2, {"address": "+14155550601", "status": "opted_out"}, None)
    ]


# -- files that cannot be imported at all -------------------------------------------------

BAD_FILES = [
    ("empty", "", "line 1: the file is empty"),
    ("unknown-column", "address,status,colour\n", "line 1: unknown column 'colour'"),
    ("repeated-column", "address,status,Address\n", "line 1: column 'address' appears twice"),
    ("no-status", "address,reason\n", "line 1: the header has no 'status' column"),
    ("no-address", "status,line\n", "line 1: the header has no 'address' column"),
    ("data-first", "+14155550601,opted_out\n", "line 1: unknown column '+14155550601'"),
    ("blank-first-line", "\naddress,status\n", "line 1: the header has no 'address' column"),
    (
        "unclosed-quote",
        'address,"status\n',
        "line 1: not CSV: a quote is not closed on its line",
    ),
    ("huge-header", "address," * 9000 + "status\n", "line 1: not CSV: the line is longer than"),
]


@pytest.mark.parametrize(
    ("header", "message"),
    [(header, message) for _id, header, message in BAD_FILES],
    ids=[case for case, _header, _message in BAD_FILES],
)
def test_a_bad_header_refuses_the_file_before_anything_is_applied(
    acme: Acme, header: str, message: str
) -> None:
    reported: list[imports.RowResult] = []
    data = header + "+14155550602,opted_out\n" * (1 if header else 0)

    with pytest.raises(imports.BadFile) as raised:
        imports.run(
            acme.db,
            acme.org,
            imports.read_rows(stream(data)),
            actor=ACTOR,
            region="US",
            report=reported.append,
        )

    assert raised.value.message.startswith(message), raised.value.message
    assert raised.value.line == 1
    assert reported == []
    assert all_events(acme.db) == []


def test_an_import_needs_an_actor(acme: Acme) -> None:
    with pytest.raises(InvalidChange, match="actor"):
        run_import(acme, csv_file("+14155550601,opted_out,,,,,"), actor="  ")
    assert all_events(acme.db) == []


# -- batches ------------------------------------------------------------------------------

FIVE = [
    "+14155550701,opted_out,,,,,",
    "+14155550702,opted_in,,,,,",
    "+14155550703,nope,,,,,",
    "+14155550701,opted_out,,,,,",
    "+14155550705,opted_out,+14155550103,,,,",
]


def test_batches_report_every_row_once_in_file_order_after_it_is_committed(acme: Acme) -> None:
    seen: list[tuple[int, str, int]] = []

    def report(result: imports.RowResult) -> None:
        # Reported only once committed: another session already sees what it wrote.
        with acme.db.sessions() as session:
            events = session.scalar(
                sa.select(sa.func.count())
                .select_from(ConsentEvent)
                .where(ConsentEvent.address == result.address)
            )
        seen.append((result.row, result.result, int(events or 0)))

    imports.run(
        acme.db,
        acme.org,
        imports.read_rows(stream(csv_file(*FIVE))),
        actor=ACTOR,
        region="US",
        report=report,
        batch=2,
    )

    assert seen == [
        (2, "applied", 1),
        (3, "applied", 1),
        (4, "invalid", 0),
        (5, "unchanged", 1),
        (6, "applied", 1),
    ]


def test_a_batch_whose_commit_fails_is_neither_reported_nor_written(acme: Acme) -> None:
    commits = 0

    def fail_the_second(session: Any) -> None:
        nonlocal commits
        if session.in_nested_transaction():
            return  # a row's savepoint, not the batch's commit
        commits += 1
        if commits == 2:
            raise RuntimeError("the database went away")

    reported: list[imports.RowResult] = []
    sa.event.listen(acme.db.sessions, "before_commit", fail_the_second)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            imports.run(
                acme.db,
                acme.org,
                imports.read_rows(stream(csv_file(*FIVE))),
                actor=ACTOR,
                region="US",
                report=reported.append,
                batch=2,
            )
    finally:
        sa.event.remove(acme.db.sessions, "before_commit", fail_the_second)

    assert [(result.row, result.result) for result in reported] == [(2, "applied"), (3, "applied")]
    assert [event.address for event in all_events(acme.db)] == [number(701), number(702)]
    with acme.db.sessions() as session:
        known = set(session.scalars(sa.select(ContactAddress.value)))
    assert known == {number(701), number(702)}
    verify(acme.db)


def test_a_long_file_in_small_batches_keeps_the_history_whole(acme: Acme) -> None:
    rows = [
        f"+1415555{1000 + index:04d},{'opted_in' if index % 3 == 0 else 'opted_out'},"
        f"{'+14155550101' if index % 2 else ''},,{'voice' if index % 5 == 0 else ''},,"
        for index in range(60)
    ]

    totals, results = run_import(acme, csv_file(*rows), batch=7)

    assert [result.row for result in results] == list(range(2, 62))
    assert totals == {"applied": 60, "unchanged": 0, "refused": 0, "invalid": 0}
    assert len(all_events(acme.db)) == 60
    verify(acme.db)
    assert Channel.VOICE.value in {event.channel for event in all_events(acme.db)}


def test_a_topic_the_keyword_config_does_not_know_makes_its_row_invalid(acme: Acme) -> None:
    data = "address,status,topic\n+14155550123,opted_out,price_drop\n+14155550124,opted_out,sales\n"
    _totals, results = run_import(acme, data, topics={"price_drop", "new_arrival"})

    assert shape(results) == [(2, "+14155550123", "applied", 1), (3, "+14155550124", "invalid", 0)]
    assert results[1].message == (
        "topic 'sales' is not a topic of keywords.yaml (known: new_arrival, price_drop)"
    )
    assert [event.topic for event in all_events(acme.db)] == ["price_drop"]


def test_an_email_longer_than_smtp_carries_is_an_invalid_row(acme: Acme) -> None:
    email = "jo@" + "a" * 248 + ".com"  # 255 characters

    _totals, results = run_import(acme, f"address,status\n{email},opted_out\n")

    [row] = results
    assert (row.result, row.message) == (
        "invalid",
        f"{email[:80]!r} (and 175 more) is not a valid address: an email address has at most "
        "254 characters",
    )
