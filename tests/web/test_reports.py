"""The export, the snapshot and imports through the HTTP API, on SQLite and PostgreSQL.

The answers are the domain's (app/consent/reports.py, imports.py) as CSV or
JSON: each is compared with what the domain gives for the same question.
Every refusal is a JSON 4xx sent before any CSV, and writes nothing.

acme: group MG1 with lines A (+14155550101) and B (+14155550102), line C
(+14155550103) alone. other: line D (+14155550104).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.addresses import normalize
from app.consent import history, ledger, reports
from app.consent.queries import EVENT_COLUMNS
from app.consent.values import Scope, Source, Status
from app.data.db import Database
from app.data.models import ConsentEvent, ContactAddress, Organization
from app.lines import add_line, get_or_create_group
from tests.consent.conftest import Acme, build_acme
from tests.consent.test_reports import (
    T0,
    Clock,
    line_filter_world,
    number,
    snapshot_world,
    varied_history,
)
from tests.web.admin import AGENT_SECRET, MANAGER_SECRET, bearer

EXPORT = "/api/v1/exports/consent-events.csv"
SNAPSHOT = "/api/v1/reports/snapshot"
IMPORT = "/api/v1/imports/consent"
A, B, C, D = "+14155550101", "+14155550102", "+14155550103", "+14155550104"


@dataclass
class Api:
    client: FlaskClient
    acme: Acme

    def get(self, path: str, secret: str | None = MANAGER_SECRET, **query: Any) -> TestResponse:
        query.setdefault("organization", "acme")
        headers = bearer(secret) if secret else {}
        return self.client.get(path, query_string=query, headers=headers)

    def upload(
        self,
        data: bytes | str | dict[str, Any],
        *,
        content_type: str = "text/csv",
        secret: str | None = MANAGER_SECRET,
        **query: Any,
    ) -> TestResponse:
        query.setdefault("organization", "acme")
        query.setdefault("actor", "jane")
        headers = bearer(secret) if secret else {}
        return self.client.post(
            IMPORT, query_string=query, data=data, content_type=content_type, headers=headers
        )

    def events(self) -> list[ConsentEvent]:
        with self.acme.db.sessions() as session:
            return list(session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id)))

    def lines(self, *numbers: str) -> list[Any]:
        by_number = {line.address: line for line in (self.acme.a, self.acme.b, self.acme.c)}
        return [by_number[n] for n in numbers]


@pytest.fixture
def api(api_and_database: tuple[Flask, Database], redis_client: redis.Redis) -> Api:
    app, database = api_and_database
    return Api(app.test_client(), build_acme(database))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(ledger, "utcnow", clock)
    return clock


def refusal(response: TestResponse, status: int, error: str) -> str:
    """The message of a JSON refusal (no CSV, no attachment), after checking its status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert "Content-Disposition" not in response.headers
    body = json.loads(response.get_data(as_text=True))
    assert set(body) >= {"error", "message"}
    assert body["error"] == error, body
    message: str = body["message"]
    return message


def parse_csv(response: TestResponse) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))


def domain_csv(columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> str:
    return "".join(reports.csv_chunks(columns, rows))


# -- the export ---------------------------------------------------------------------------


def test_the_export_streams_every_event_as_csv_for_a_manager(api: Api, clock: Clock) -> None:
    varied_history(api.acme, clock)

    response = api.get(EXPORT)

    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="consent-events.csv"'
    header, *rows = parse_csv(response)
    assert header == list(EVENT_COLUMNS)
    addresses = [*(number(n) for n in (201, 202, 203, 204)), "jo@example.com"]
    expected = sorted(
        (event for address in addresses for event in api.acme.history(address)),
        key=lambda event: event["id"],
    )
    assert len(expected) == 7
    assert rows == [
        ["" if event[name] is None else str(event[name]) for name in EVENT_COLUMNS]
        for event in expected
    ]


#: (case, query, the same question to the domain: since, until, lines; rows expected).
EXPORT_FILTERS: list[
    tuple[str, dict[str, Any], datetime | None, datetime | None, tuple[str, ...], int]
] = [
    ("since", {"since": "2026-03-01T12:01:00Z"}, T0 + timedelta(minutes=1), None, (), 12),
    (
        "until-with-offset",
        {"until": "2026-03-01T07:01:00-05:00"},
        None,
        T0 + timedelta(minutes=1),
        (),
        1,
    ),
    (
        "both",
        {"since": "2026-03-01T12:01:00+00:00", "until": "2026-03-01T12:02:00.000250+00:00"},
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=2, microseconds=250),
        (),
        2,
    ),
    (
        "days",
        {"since": "2026-03-01", "until": "2026-03-02"},
        T0 - timedelta(hours=12),
        T0 + timedelta(hours=12),
        (),
        13,
    ),
    ("a-later-day", {"since": "2026-03-02"}, T0 + timedelta(hours=12), None, (), 0),
    ("one-line", {"line": [C]}, None, None, (C,), 7),
    ("two-lines", {"line": [A, "(415) 555-0103"]}, None, None, (A, C), 12),
]


def test_the_export_filters_as_the_domain_export_does(api: Api, clock: Clock) -> None:
    varied_history(api.acme, clock)
    line_filter_world(api.acme)

    for case, query, since, until, lines, count in EXPORT_FILTERS:
        wanted = reports.EventFilter(api.acme.org.id, since, until, api.lines(*lines))
        expected = domain_csv(EVENT_COLUMNS, reports.iter_events(api.acme.db.reads, wanted))
        response = api.get(EXPORT, **query)
        assert response.status_code == 200, (case, response.get_data(as_text=True))
        assert response.get_data(as_text=True) == expected, case
        assert len(parse_csv(response)) == 1 + count, case


def test_a_line_keeps_its_own_its_groups_and_organization_wide_events(api: Api) -> None:
    names = line_filter_world(api.acme)

    response = api.get(EXPORT, line=[B])

    header, *rows = parse_csv(response)
    assert [names[row[header.index("address")]] for row in rows] == ["B", "MG1", "org", "flag"]


def test_events_of_another_organization_are_never_exported(api: Api) -> None:
    names = line_filter_world(api.acme)

    acme_rows = parse_csv(api.get(EXPORT))[1:]
    other_rows = parse_csv(api.get(EXPORT, organization="other"))[1:]

    assert [names[row[EVENT_COLUMNS.index("address")]] for row in acme_rows] == [
        "A",
        "B",
        "MG1",
        "C",
        "org",
        "flag",
    ]
    assert [names[row[EVENT_COLUMNS.index("address")]] for row in other_rows] == [
        "other D",
        "other org",
    ]


def test_the_export_guards_free_text_against_formulas(api: Api) -> None:
    api.acme.change(number(201), Status.OPTED_OUT, actor="=HYPERLINK(1)", reason="@cmd")

    header, row = parse_csv(api.get(EXPORT))

    cells = dict(zip(header, row, strict=True))
    assert (cells["address"], cells["actor"], cells["reason"]) == (
        number(201),
        "'=HYPERLINK(1)",
        "'@cmd",
    )


def agent_opts_out(api: Api, address: str, actor: str, reason: str) -> None:
    """An agent's opt-out through the API, of the whole organisation."""
    response = api.client.post(
        f"/api/v1/contacts/{quote(address, safe='')}/consent",
        query_string={"organization": "acme"},
        json={"status": "opted_out", "scope": "organization", "actor": actor, "reason": reason},
        headers=bearer(AGENT_SECRET),
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def test_what_an_agent_writes_reaches_a_managers_export_as_text_not_formulas(api: Api) -> None:
    # Email local parts may start with = + - (RFC 5322 allows them): an agent can record one.
    for address in ('=HYPERLINK("evil.example")@example.com', "+1+1@example.com", "-2@example.com"):
        agent_opts_out(api, address, actor="@jane", reason="\t=1+1")
    with api.acme.db.transaction() as session:
        org = session.get(Organization, api.acme.org.id)
        assert org is not None
        group = get_or_create_group(session, org, "=HYPERLINK(2)")
        line, _ = add_line(session, normalize("+14155550105"), org, group)
        group_id = group.id
    api.acme.change(number(201), Status.OPTED_OUT, Source.KEYWORD, Scope.group(group_id), via=line)

    header, *rows = parse_csv(api.get(EXPORT))

    cells = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(c["address"], c["group"], c["actor"], c["reason"]) for c in cells] == [
        ('\'=hyperlink("evil.example")@example.com', "", "'@jane (token agent1)", "'\t=1+1"),
        ("'+1+1@example.com", "", "'@jane (token agent1)", "'\t=1+1"),
        ("'-2@example.com", "", "'@jane (token agent1)", "'\t=1+1"),
        (number(201), "'=HYPERLINK(2)", "contact", ""),
    ]


def test_the_snapshot_csv_guards_its_cells_but_leaves_numbers_as_numbers(api: Api) -> None:
    agent_opts_out(api, number(201), actor="=cmd|' /C calc'!A0", reason="x")

    header, *rows = parse_csv(api.get(SNAPSHOT, format="csv", line=[A]))

    [cells] = [dict(zip(header, row, strict=True)) for row in rows]
    assert (cells["address"], cells["line"], cells["actor"]) == (
        number(201),
        A,
        "'=cmd|' /C calc'!A0 (token agent1)",
    )


#: (case, query, status, error, a part of the message).
BAD_EXPORTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("since-without-offset", {"since": "2026-03-01T10:00:00"}, 400, "InvalidRequest", "since:"),
    ("since-not-a-time", {"since": "yesterday"}, 400, "InvalidRequest", "since: 'yesterday'"),
    ("until-not-a-time", {"until": "2026-13-01"}, 400, "InvalidRequest", "until:"),
    (
        "since-after-until",
        {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
        400,
        "InvalidRequest",
        "since: must be before until",
    ),
    (
        "since-equals-until",
        {"since": "2026-03-01T05:00:00-05:00", "until": "2026-03-01T10:00:00Z"},
        400,
        "InvalidRequest",
        "since: must be before until",
    ),
    ("unknown-line", {"line": ["+14155559999"]}, 404, "NotFound", "there is no line"),
    ("line-not-a-number", {"line": ["front desk"]}, 400, "InvalidAddress", "'front desk'"),
    ("line-of-another-org", {"line": [D]}, 400, "InvalidRequest", "is not a line of 'acme'"),
    ("unknown-organization", {"organization": "nope"}, 404, "NotFound", "no organization 'nope'"),
]


def test_a_bad_export_request_answers_json_before_any_csv(api: Api) -> None:
    api.acme.change(number(201), Status.OPTED_OUT)

    for case, query, status, error, message in BAD_EXPORTS:
        response = api.get(EXPORT, **query)
        assert message in refusal(response, status, error), case


def test_without_an_organization_and_with_several_the_export_asks_for_one(api: Api) -> None:
    response = api.client.get(EXPORT, headers=bearer(MANAGER_SECRET))

    assert "?organization=" in refusal(response, 404, "NotFound")


@pytest.mark.parametrize("path", [EXPORT, SNAPSHOT])
def test_reports_are_for_managers_only(api: Api, path: str) -> None:
    api.acme.change(number(201), Status.OPTED_OUT)

    agent = api.get(path, secret=AGENT_SECRET)
    nobody = api.get(path, secret=None)

    assert refusal(agent, 403, "Forbidden") == (
        "the token 'agent1' has the role agent; this needs manager"
    )
    assert "Authorization: Bearer" in refusal(nobody, 401, "Unauthorized")


# -- the snapshot -------------------------------------------------------------------------

SNAPSHOT_KEYS = {
    "organization",
    "generated_at",
    "lines",
    "status",
    "topic",
    "rows",
    "counts",
    "numbers",
}


def domain_snapshot(
    api: Api, lines: list[Any], status: Status | None = None, topic: str | None = None
) -> tuple[reports.Snapshot, list[dict[str, Any]]]:
    report = reports.Snapshot(api.acme.org.id, lines, status, topic)
    return report, list(report.rows(api.acme.db.reads))


#: (query, the same question to the domain: lines, status, topic).
SNAPSHOTS: list[tuple[dict[str, Any], tuple[str, ...], Status | None, str | None]] = [
    ({}, (A, B, C), None, None),
    ({"status": "opted_out"}, (A, B, C), Status.OPTED_OUT, None),
    ({"status": "opted_in", "line": [C]}, (C,), Status.OPTED_IN, None),
    ({"topic": "price_drop", "line": [A, B]}, (A, B), None, "price_drop"),
]


def test_the_snapshot_answers_valid_json_with_the_domains_rows_and_counts(api: Api) -> None:
    snapshot_world(api.acme)

    for query, lines, status, topic in SNAPSHOTS:
        report, rows = domain_snapshot(api, api.lines(*lines), status, topic)
        response = api.get(SNAPSHOT, **query)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        body = json.loads(response.get_data(as_text=True))
        assert set(body) == SNAPSHOT_KEYS
        assert (body["organization"], body["status"], body["topic"]) == (
            "acme",
            query.get("status"),
            topic,
        )
        assert body["lines"] == list(lines), query  # by number, like the CLI's
        assert body["generated_at"].endswith("Z")
        assert body["rows"] == rows, query
        assert rows, query  # the scenario lists someone in every case
        assert body["counts"] == report.counts_dict(), query
        assert body["numbers"] == report.numbers == len({row["address"] for row in rows})


def test_by_default_the_snapshot_covers_every_line_of_the_organization_by_number(
    api: Api,
) -> None:
    with api.acme.db.transaction() as session:
        later, _ = add_line(session, normalize("+14155550100"), api.acme.org, None, "E")
    api.acme.change(number(201), Status.OPTED_OUT)  # organisation-wide

    body = json.loads(api.get(SNAPSHOT).get_data(as_text=True))

    assert body["lines"] == [later.address, A, B, C]
    assert [row["line"] for row in body["rows"]] == [later.address, A, B, C]
    assert list(body["counts"]) == [later.address, A, B, C]


def test_the_snapshot_counts_both_statuses_whatever_it_lists(api: Api) -> None:
    snapshot_world(api.acme)

    body = json.loads(api.get(SNAPSHOT, status="opted_in").get_data(as_text=True))

    assert body["counts"] == {
        A: {"opted_in": 2, "opted_out": 4},
        B: {"opted_in": 2, "opted_out": 3},
        C: {"opted_in": 4, "opted_out": 2},
    }
    assert {row["status"] for row in body["rows"]} == {"opted_in"}
    assert body["numbers"] == 4


def test_the_snapshot_of_an_organization_without_records_is_empty_json(api: Api) -> None:
    body = json.loads(api.get(SNAPSHOT).get_data(as_text=True))

    assert (body["rows"], body["numbers"]) == ([], 0)
    assert body["counts"] == {line: {"opted_in": 0, "opted_out": 0} for line in (A, B, C)}


def test_the_snapshot_as_csv_has_the_snapshot_columns(api: Api) -> None:
    snapshot_world(api.acme)
    _report, rows = domain_snapshot(api, api.lines(A, B, C), Status.OPTED_OUT)

    response = api.get(SNAPSHOT, format="csv", status="opted_out")

    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="snapshot.csv"'
    header, *cells = parse_csv(response)
    assert header == list(reports.SNAPSHOT_COLUMNS)
    assert cells == [[str(row[name]) for name in reports.SNAPSHOT_COLUMNS] for row in rows]


def test_the_snapshot_of_another_organization_lists_its_own_numbers(api: Api) -> None:
    snapshot_world(api.acme)

    body = json.loads(api.get(SNAPSHOT, organization="other").get_data(as_text=True))

    assert body["lines"] == [D]
    assert {row["address"] for row in body["rows"]} == {number(209), number(204), number(201)}


BAD_SNAPSHOTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("unknown-status", {"status": "not_defined"}, 400, "InvalidRequest", "status: 'not_defined'"),
    ("unknown-format", {"format": "xlsx"}, 400, "InvalidRequest", "format: 'xlsx'"),
    ("unknown-topic", {"topic": "weather"}, 400, "InvalidRequest", "topic: 'weather'"),
    ("unknown-line", {"line": ["+14155559999"]}, 404, "NotFound", "there is no line"),
    ("line-of-another-org", {"line": [D]}, 400, "InvalidRequest", "is not a line of 'acme'"),
]


def test_a_bad_snapshot_request_answers_json(api: Api) -> None:
    snapshot_world(api.acme)

    for case, query, status, error, message in BAD_SNAPSHOTS:
        response = api.get(SNAPSHOT, **query)
        assert message in refusal(response, status, error), case


# -- imports ------------------------------------------------------------------------------

FILE = "\n".join(
    [
        "address,status,line,group,reason",
        "+14155550401,opted_out,,,moved away",
        "+14155550402,opted_out,+14155550101,,",
        "+14155550403,opted_out,,MG1,",
        "+14155550401,opted_out,,,again",
        "+14155550301,opted_in,+14155550101,,",
        "+14155550404,maybe,,,",
        "+14155550405,do_not_contact,,,",
        "+14155550405,opted_in,,,",
    ]
)


def check_import_answer(api: Api, response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body["organization"] == "acme"
    assert body["actor"] == "jane (token boss)"
    counts = Counter(result["result"] for result in body["results"])
    assert {name: body[name] for name in ("applied", "unchanged", "refused", "invalid")} == {
        name: counts[name] for name in ("applied", "unchanged", "refused", "invalid")
    }
    assert body["rows"] == len(body["results"])
    return body


@pytest.mark.parametrize("how", ["text/csv", "text/plain", "multipart"])
def test_an_import_applies_a_csv_body_or_form_file_and_reports_every_row(
    api: Api, how: str
) -> None:
    api.acme.change(number(301), Status.OPTED_OUT, Source.KEYWORD, Scope.line(api.acme.a.id))
    if how == "multipart":
        response = api.upload(
            {"file": (io.BytesIO(FILE.encode()), "consent.csv")},
            content_type="multipart/form-data",
        )
    else:
        response = api.upload(FILE.encode(), content_type=how)

    body = check_import_answer(api, response)
    assert [(r["row"], r["address"], r["result"], r["events"]) for r in body["results"]] == [
        (2, "+14155550401", "applied", 1),
        (3, "+14155550402", "applied", 1),
        (4, "+14155550403", "applied", 1),
        (5, "+14155550401", "unchanged", 0),
        (6, "+14155550301", "refused", 0),
        (7, "+14155550404", "invalid", 0),
        (8, "+14155550405", "applied", 1),
        (9, "+14155550405", "refused", 0),
    ]
    assert body["results"][4]["hint"].startswith("An import never lifts an opt-out")
    assert body["results"][5]["message"].startswith("status 'maybe'")
    written = [event for event in api.events() if event.source is Source.IMPORT]
    assert len(written) == body["applied"] == 4
    assert {event.actor for event in written} == {"jane (token boss)"}
    with api.acme.db.sessions() as session:
        assert history.verify(session)[1] is None


def test_an_import_reads_a_bom_and_reports_bytes_that_are_not_utf8(api: Api) -> None:
    data = b"\xef\xbb\xbfAddress,Status,Reason\r\n+14155550401,opted_out,caf\xe9\r\n"
    data += b"+14155550402,opted_out,ok\r\n"

    body = check_import_answer(api, api.upload(data))

    assert [(r["row"], r["result"]) for r in body["results"]] == [(2, "invalid"), (3, "applied")]
    assert "UTF-8" in body["results"][0]["message"]
    assert [event.address for event in api.events()] == [number(402)]


#: A BOM, CRLF line ends, blank lines, a quote that a CSV reader would carry over the
#: next lines, and one on the last line, which has no line end.
BROKEN_QUOTES = (
    "\ufeffaddress,status,reason\r\n"  # 1
    '+14155550401,opted_out,"moved\r\n'  # 2: invalid
    "+14155550402,opted_out,\r\n"  # 3
    "\r\n"  # 4: blank
    '+14155550403,opted_out,away"\r\n'  # 5: a quote inside a field, as written
    "  ,  ,\r\n"  # 6: blank
    '+14155550404,opted_out,"two, words"\r\n'  # 7
    '+14155550405,opted_out,"no end'  # 8: invalid
)


@pytest.mark.parametrize("how", ["text/csv", "multipart"])
def test_an_import_reports_every_line_of_the_file_whatever_its_quotes(api: Api, how: str) -> None:
    data = BROKEN_QUOTES.encode()
    if how == "multipart":
        response = api.upload(
            {"file": (io.BytesIO(data), "consent.csv")}, content_type="multipart/form-data"
        )
    else:
        response = api.upload(data)

    body = check_import_answer(api, response)
    assert [(r["row"], r["address"], r["result"]) for r in body["results"]] == [
        (2, number(401), "invalid"),
        (3, number(402), "applied"),
        (5, number(403), "applied"),
        (7, number(404), "applied"),
        (8, number(405), "invalid"),
    ]
    assert body["rows"] == 5
    for result in (body["results"][0], body["results"][4]):
        assert result["message"].startswith("not CSV: a quote is not closed on its line")
    assert [event.address for event in api.events()] == [number(402), number(403), number(404)]
    assert [event.reason for event in api.events()] == [None, 'away"', "two, words"]


def test_nul_and_overlong_values_are_invalid_rows_never_a_500_and_lose_no_row(api: Api) -> None:
    rows = [
        "address,status,group,reason",
        "+14155550401,opted_out,,ok",  # 2
        "+14155550402,opted_out,,moved\x00away",  # 3: PostgreSQL cannot store a NUL
        "jo\x00@example.com,opted_out,,",  # 4
        "jo@" + "a" * 400 + ".com,opted_out,,",  # 5: longer than the column
        "+14155550405,opted_out,MG1\x00,",  # 6
        "+14155550406,opted_out,,ok",  # 7
    ]

    body = check_import_answer(api, api.upload("\n".join(rows).encode()))

    assert [(r["row"], r["result"], r["message"]) for r in body["results"]] == [
        (2, "applied", None),
        (3, "invalid", "reason: contains a NUL character, which cannot be stored"),
        (4, "invalid", "address: contains a NUL character, which cannot be stored"),
        (5, "invalid", "address: longer than 320 characters"),
        (6, "invalid", "group: contains a NUL character, which cannot be stored"),
        (7, "applied", None),
    ]
    assert [event.address for event in api.events()] == [number(401), number(406)]


def test_an_actor_with_a_nul_is_refused_before_any_row(api: Api) -> None:
    response = api.upload(FILE.encode(), actor="ja\x00ne")

    assert "actor:" in refusal(response, 400, "InvalidRequest")
    assert api.events() == []


#: (case, upload options, status, error, a part of the message).
BAD_IMPORTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("json-body", {"content_type": "application/json"}, 415, "UnsupportedMediaType", "text/csv"),
    ("no-actor", {"actor": ""}, 400, "InvalidRequest", "actor: say who imports the file"),
    ("blank-actor", {"actor": "   "}, 400, "InvalidRequest", "actor:"),
    ("long-actor", {"actor": "x" * 121}, 400, "InvalidRequest", "actor: at most 120"),
    ("agent", {"secret": AGENT_SECRET}, 403, "Forbidden", "this needs manager"),
    ("no-token", {"secret": None}, 401, "Unauthorized", "Authorization: Bearer"),
    ("unknown-organization", {"organization": "nope"}, 404, "NotFound", "'nope'"),
]


def test_a_bad_import_request_answers_json_and_writes_nothing(api: Api) -> None:
    for case, options, status, error, message in BAD_IMPORTS:
        response = api.upload(FILE.encode(), **options)
        assert message in refusal(response, status, error), case
    assert api.events() == []


def test_a_form_without_the_file_field_is_refused(api: Api) -> None:
    response = api.upload(
        {"upload": (io.BytesIO(FILE.encode()), "consent.csv")}, content_type="multipart/form-data"
    )

    assert "'file'" in refusal(response, 400, "InvalidRequest")
    assert api.events() == []


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("address,status,colour", "line 1: unknown column 'colour'"),
        ("address,line", "line 1: the header has no 'status' column"),
        ("", "line 1: the file is empty"),
    ],
    ids=["unknown-column", "no-status", "empty"],
)
def test_a_bad_header_answers_400_and_applies_nothing(api: Api, header: str, message: str) -> None:
    data = header + ("\n+14155550401,opted_out,x\n" if header else "")

    response = api.upload(data.encode())

    assert refusal(response, 400, "BadFile").startswith(message)
    assert api.events() == []
    with api.acme.db.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ContactAddress)) == 0


def test_an_import_of_several_batches_reports_every_row_once_in_file_order(api: Api) -> None:
    rows = 1200  # three transactions of 500; the speed is measured by bench/reports.py
    lines = ["address,status,line"] + [
        f"+1628555{index:04d},{'opted_in' if index % 4 == 0 else 'opted_out'},"
        f"{A if index % 2 else ''}"
        for index in range(rows)
    ]

    response = api.upload("\n".join(lines).encode())

    body = check_import_answer(api, response)
    assert (body["rows"], body["applied"]) == (rows, rows)
    assert [result["row"] for result in body["results"]] == list(range(2, rows + 2))
    assert len(api.events()) == rows


def test_an_import_may_be_larger_than_other_requests_but_not_without_bound(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web.api import reports as views
    from app.web.factory import MAX_REQUEST_BYTES

    # Past the 32 MB that bounds every other request: the file is read, here up to its
    # header, which it refuses (and nothing is applied).
    big = b"address,state\n" + b"+14155550123,opted_out\n" * (MAX_REQUEST_BYTES // 23 + 1000)
    assert len(big) > MAX_REQUEST_BYTES
    response = api.upload(big)
    assert refusal(response, 400, "BadFile").startswith("line 1: unknown column 'state'")

    # Past the import's own bound: 413 before anything is read.
    monkeypatch.setattr(views, "MAX_IMPORT_BYTES", 1024)
    response = api.upload(b"address,status\n" + b"+14155550123,opted_out\n" * 100)
    assert "larger than" in refusal(response, 413, "RequestEntityTooLarge")
    assert api.events() == []


def test_an_import_body_without_a_length_is_refused_before_any_row_is_applied(
    api: Api,
) -> None:
    # Chunked: the size limit could only cut it once some rows were committed.
    body = io.BytesIO(b"address,status\n+14155550123,opted_out\n")
    response = api.client.post(
        IMPORT,
        query_string={"organization": "acme", "actor": "jane"},
        input_stream=body,
        content_type="text/csv",
        headers={**bearer(MANAGER_SECRET), "Transfer-Encoding": "chunked"},
    )
    assert "Content-Length" in refusal(response, 411, "LengthRequired")
    assert api.events() == []
