"""The console's snapshot, consent-event export and imports.

Downloads are compared byte for byte with the API's (the same domain calls); an
import is checked in the database, and every refusal to have changed nothing.
"""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import pytest
from werkzeug.test import TestResponse

from app.addresses import normalize
from app.consent import ledger
from app.consent.values import Channel, Scope, Source, Status
from app.data.models import ConsentEvent
from app.web.console import reports as reports_view
from tests.console.console import OTHER_LINE, Browser, text_of
from tests.web.admin import API, CONTACT, LINE_A, LINE_B, LINE_C, MANAGER_SECRET, Admin, bearer

SNAPSHOT = "/console/snapshot"
EXPORTS = "/console/exports"
EXPORT_CSV = "/console/exports/consent-events.csv"
IMPORTS = "/console/imports"


def said(response: TestResponse) -> str:
    """What the page says, entities read (&#39; is ')."""
    return html.unescape(text_of(response))


def number(index: int) -> str:
    return f"+1415555{index:04d}"


def record(
    console: Admin,
    address: str,
    line: str = LINE_A,
    status: Status = Status.OPTED_OUT,
    *,
    source: Source = Source.KEYWORD,
    actor: str | None = None,
    topic: str | None = None,
) -> None:
    """A consent change through the ledger, as optgate itself makes one."""
    org_id, line_id = console.org_id(), console.line_id(line)
    with console.database.transaction() as session:
        ledger.apply(
            session,
            ledger.Change(
                organization_id=org_id,
                address=normalize(address),
                scope=Scope.line(line_id),
                status=status,
                source=source,
                actor=actor or address,
                channel=Channel.SMS,
                topic=topic,
                reason="test",
                via_line_id=line_id,
            ),
        )


def rows_of(response: TestResponse, table: int = -1) -> list[list[str]]:
    """The cells of one of the page's tables (default: the last), a list a row (without
    its header)."""
    tables = re.findall(r"<tbody>(.*?)</tbody>", response.get_data(as_text=True), flags=re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", tables[table], flags=re.S)
    return [
        [
            html.unescape(" ".join(re.sub(r"<[^>]+>", " ", cell).split()))
            for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)
        ]
        for row in rows
    ]


def csv_rows(response: TestResponse) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


# -- the snapshot ---------------------------------------------------------------------------


def test_the_snapshot_counts_each_line_and_lists_each_number(
    console: Admin, agent: Browser
) -> None:
    record(console, CONTACT, LINE_A)
    record(console, number(188), LINE_B, Status.OPTED_IN)
    record(console, number(187), LINE_C, source=Source.MANUAL, actor="maria (console)")

    response = agent.get(SNAPSHOT)

    assert response.status_code == 200
    text = said(response)
    assert "Numbers per line (3 numbers listed)" in text
    assert "+1 415-555-0100 0 1" in text  # line A: 0 in, 1 out
    assert "+1 415-555-0101 1 0" in text
    assert "+1 415-555-0102 0 1" in text
    rows = rows_of(response)
    assert [row[:5] for row in rows] == [
        ["+1 415-555-0199", "+1 415-555-0100", "Opted out", "keyword", CONTACT],
        ["+1 415-555-0188", "+1 415-555-0101", "Opted in", "keyword", number(188)],
        ["+1 415-555-0187", "+1 415-555-0102", "Opted out", "manual", "maria (console)"],
    ]
    assert all(re.fullmatch(r"20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8}", row[5]) for row in rows)
    assert f'href="/console/contacts/{CONTACT}"' in response.get_data(as_text=True)
    assert console.count(ConsentEvent) == 3  # looking changes nothing


def test_the_snapshot_of_chosen_lines_a_status_and_a_topic(console: Admin, agent: Browser) -> None:
    record(console, CONTACT, LINE_A)
    record(console, number(188), LINE_B, Status.OPTED_IN)
    record(console, number(187), LINE_B, topic="price_drop")
    line_b = console.line_id(LINE_B)

    only_b = agent.get(SNAPSHOT, query_string={"line": line_b})
    assert [row[0] for row in rows_of(only_b)] == ["+1 415-555-0188"]
    # Line A is neither counted nor listed.
    assert rows_of(only_b, 0) == [["+1 415-555-0101", "1", "0"]]
    page = only_b.get_data(as_text=True)
    assert f'value="{line_b}" checked' in page
    assert f'value="{console.line_id(LINE_A)}">' in page  # not ticked

    opted_out = agent.get(SNAPSHOT, query_string={"status": "opted_out"})
    assert [row[0] for row in rows_of(opted_out)] == ["+1 415-555-0199"]
    assert "+1 415-555-0101 1 0" in said(opted_out)  # the counts count both statuses

    topic = agent.get(SNAPSHOT, query_string={"topic": "price_drop", "line": line_b})
    assert [row[0] for row in rows_of(topic)] == ["+1 415-555-0188", "+1 415-555-0187"]
    assert "topic Price Reduction notifications" in said(topic)
    assert [row[2] for row in rows_of(topic)] == ["Opted in", "Opted out"]


def test_the_second_page_is_read_after_the_cursor_and_has_no_counts(
    console: Admin, agent: Browser
) -> None:
    size = reports_view.PAGE_SIZE
    for index in range(size + 7):
        record(console, number(300 + index), LINE_A)

    first = agent.get(SNAPSHOT, query_string={"status": "opted_out"})
    assert [row[0] for row in rows_of(first)] == [
        f"+1 415-555-{300 + index:04d}" for index in range(size)
    ]
    assert f"+1 415-555-0100 0 {size + 7}" in said(first)
    following = re.search(
        r'href="([^"]*after=[0-9]+[^"]*)">Next page', first.get_data(as_text=True)
    )
    assert following is not None
    link = html.unescape(following.group(1))
    assert "status=opted_out" in link  # the choice is kept

    second = agent.get(link)
    assert second.status_code == 200
    assert [row[0] for row in rows_of(second)] == [
        f"+1 415-555-{300 + index:04d}" for index in range(size, size + 7)
    ]
    assert "The counts are on the first page" in said(second)
    assert "Next page" not in said(second)
    assert "First page" in said(second)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"status": "maybe"}, "Status: choose any, opted in or opted out."),
        ({"topic": "sports"}, "Topic: choose one of the topics in the list, or none."),
        ({"after": "-1"}, "This page link is broken"),
        ({"after": "9" * 30}, "This page link is broken"),
    ],
    ids=["status", "topic", "negative-cursor", "huge-cursor"],
)
def test_a_bad_choice_is_said_on_the_page(
    console: Admin, agent: Browser, query: dict[str, str], says: str
) -> None:
    record(console, CONTACT, LINE_A)

    response = agent.get(SNAPSHOT, query_string=query)

    assert response.status_code == 400
    assert says in said(response)
    assert "+1 415-555-0199" not in said(response)
    assert 'name="status"' in response.get_data(as_text=True)  # the form, to try again


def test_another_organisations_line_is_not_found(console: Admin, agent: Browser) -> None:
    theirs = console.line_id(OTHER_LINE)

    for path in (SNAPSHOT, SNAPSHOT + ".csv"):
        for line in (theirs, theirs + 100, "A"):
            response = agent.get(path, query_string={"line": line})
            assert response.status_code == 404, (path, line)
            assert "There is no such line in default." in said(response)


def test_the_snapshot_csv_is_the_apis_and_anyone_may_download_it(
    console: Admin, agent: Browser
) -> None:
    record(console, CONTACT, LINE_A)
    record(console, number(188), LINE_B, Status.OPTED_IN, source=Source.IMPORT, actor="=2+5")
    query = {"line": [console.line_id(LINE_A), console.line_id(LINE_B)]}

    download = agent.get(SNAPSHOT + ".csv", query_string=query)
    api = console.client.get(
        f"{API}/reports/snapshot",
        query_string={"format": "csv", "line": [LINE_A, LINE_B], "organization": "default"},
        headers=bearer(MANAGER_SECRET),
    )

    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == 'attachment; filename="snapshot.csv"'
    assert download.get_data() == api.get_data()
    rows = csv_rows(download)
    assert rows[0] == ["address", "line", "status", "source", "actor", "at", "scope", "because"]
    # The actor a person typed is text to a spreadsheet, not a formula; numbers stay numbers.
    assert [(row[0], row[4]) for row in rows[1:]] == [(CONTACT, CONTACT), (number(188), "'=2+5")]
    # The page shows what was written, as written (escaped, never run).
    assert "=2+5" in said(agent.get(SNAPSHOT))


def test_the_snapshot_page_links_its_download_with_the_same_choice(
    console: Admin, agent: Browser
) -> None:
    line_b = console.line_id(LINE_B)
    page = agent.get(SNAPSHOT, query_string={"line": line_b, "status": "opted_in"})

    link = re.search(r'href="(/console/snapshot\.csv[^"]*)"', page.get_data(as_text=True))

    assert link is not None
    assert html.unescape(link.group(1)) == f"/console/snapshot.csv?line={line_b}&status=opted_in"


# -- the consent-event export ---------------------------------------------------------------


def test_an_agent_gets_the_403_page_for_the_manager_pages(console: Admin, agent: Browser) -> None:
    upload = {"file": (io.BytesIO(b"address,status\n+14155550199,opted_out\n"), "c.csv")}
    agent.get(SNAPSHOT)
    answers = [agent.get(EXPORTS), agent.get(EXPORT_CSV), agent.get(IMPORTS)]
    answers.append(agent.post(IMPORTS, upload))

    for response in answers:
        assert response.status_code == 403
        assert response.mimetype == "text/html"
        assert "This page is for managers" in said(response)
    assert console.count(ConsentEvent) == 0
    assert f'href="{EXPORTS}"' not in agent.get(SNAPSHOT).get_data(as_text=True)  # no menu item


def test_the_export_is_the_apis_with_its_bounds_and_lines(console: Admin, manager: Browser) -> None:
    record(console, CONTACT, LINE_A, actor="@SUM(A1)")
    record(console, number(188), LINE_B)

    page = manager.get(EXPORTS)
    assert page.status_code == 200
    assert 'name="since"' in page.get_data(as_text=True)

    query = {"since": "2000-01-01", "until": "2999-01-01"}
    whole = manager.get(EXPORT_CSV, query_string=query)
    api = console.client.get(
        f"{API}/exports/consent-events.csv",
        query_string={**query, "organization": "default"},
        headers=bearer(MANAGER_SECRET),
    )
    assert whole.status_code == 200
    assert whole.headers["Content-Disposition"] == 'attachment; filename="consent-events.csv"'
    assert whole.get_data() == api.get_data()
    rows = csv_rows(whole)
    assert len(rows) == 3
    assert rows[1][rows[0].index("actor")] == "'@SUM(A1)"  # neutralised

    only_b = csv_rows(manager.get(EXPORT_CSV, query_string={"line": console.line_id(LINE_B)}))
    assert [row[rows[0].index("address")] for row in only_b[1:]] == [number(188)]
    none_yet = csv_rows(manager.get(EXPORT_CSV, query_string={"until": "2000-01-01"}))
    assert none_yet == [rows[0]]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"since": "yesterday"}, "From: 'yesterday' is not a day such as 2026-12-01"),
        ({"until": "2026-12-01T09:00:00"}, "Until: '2026-12-01T09:00:00' has no time zone"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "From must be before Until."),
    ],
    ids=["not-a-day", "no-zone", "reversed"],
)
def test_bad_dates_are_said_on_the_page_and_nothing_is_downloaded(
    console: Admin, manager: Browser, query: dict[str, str], says: str
) -> None:
    record(console, CONTACT, LINE_A)

    response = manager.get(EXPORT_CSV, query_string=query)

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert says in said(response)
    assert "Nothing was downloaded." in said(response)


def test_the_export_of_another_organisations_line_is_not_found(manager: Browser) -> None:
    manager.get(EXPORTS)
    response = manager.get(EXPORT_CSV, query_string={"line": "999999"})

    assert response.status_code == 404
    assert response.mimetype == "text/html"


# -- imports --------------------------------------------------------------------------------


def upload(browser: Browser, content: bytes, filename: str = "consent.csv") -> TestResponse:
    """The imports form, posted as a browser posts it (multipart, from the page)."""
    browser.get(IMPORTS)
    return browser.post(IMPORTS, {"file": (io.BytesIO(content), filename)})


FILE = (
    "address,status,line,reason\n"
    "(415) 555-0199,opted_out,+14155550100,asked on the phone\n"
    "call me,opted_out,,\n"
    "+14155550188,opted_in,+14155550100,\n"
    "+14155550199,opted_out,+14155550100,again\n"
    f"+14155550186,opted_out,{OTHER_LINE},\n"
).encode()


def test_an_import_reports_every_row_and_records_the_manager(
    console: Admin, manager: Browser
) -> None:
    record(console, number(188), LINE_A)  # texted STOP: an import cannot lift it

    response = upload(manager, FILE)

    assert response.status_code == 200
    text = said(response)
    assert "consent.csv: 5 rows read" in text
    assert "Applied 1 Unchanged 1 Refused 1 Invalid 2" in text
    report = rows_of(response, 1)
    assert [row[:3] for row in report] == [
        ["2", "+1 415-555-0199", "Applied (1 change)"],
        ["3", "call me", "Invalid"],
        ["4", "+1 415-555-0188", "Refused"],
        ["5", "+1 415-555-0199", "Unchanged"],
        ["6", "+1 415-555-0186", "Invalid"],
    ]
    assert "is not a valid address" in report[1][3]
    assert "START" in report[2][3]  # what would work
    assert report[4][3]  # another organisation's line is, here, no line
    [event] = console.events()
    assert (event.source, event.actor, event.reason) == (
        Source.IMPORT,
        "maria (console)",
        "asked on the phone",
    )
    assert console.events(number(186)) == []
    assert "more row" not in text


def test_a_long_import_shows_its_first_rows_and_counts_the_rest(
    console: Admin, manager: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports_view, "SHOWN_RESULTS", 3)
    lines = [f"{number(500 + index)},opted_out" for index in range(8)]

    response = upload(manager, ("address,status\n" + "\n".join(lines) + "\n").encode())

    assert response.status_code == 200
    assert len(rows_of(response, 1)) == 3
    assert "Every row: the first 3" in said(response)
    assert "5 more rows not shown here" in said(response)
    assert "Applied 8" in said(response)
    assert all(console.events(number(500 + index)) for index in range(8))


@pytest.mark.parametrize(
    ("content", "filename", "says"),
    [
        (None, "", "Choose a CSV file to import."),
        (b"", "empty.csv", "line 1: the file is empty"),
        (b"number,status\n+14155550199,opted_out\n", "bad.csv", "unknown column 'number'"),
        (b"address,line\n+14155550199,\n", "bad.csv", "the header has no 'status' column"),
    ],
    ids=["no-file", "empty", "unknown-column", "no-status"],
)
def test_a_file_that_cannot_be_imported_is_said_and_changes_nothing(
    console: Admin, manager: Browser, content: bytes | None, filename: str, says: str
) -> None:
    manager.get(IMPORTS)
    form: dict[str, Any] = {}
    if content is not None:
        form["file"] = (io.BytesIO(content), filename)

    response = manager.post(IMPORTS, form)

    assert response.status_code == 400
    assert says in said(response)
    assert "Nothing was imported" in said(response)
    assert console.count(ConsentEvent) == 0
    assert 'enctype="multipart/form-data"' in response.get_data(as_text=True)


def test_the_imports_page_documents_the_columns(manager: Browser) -> None:
    text = said(manager.get(IMPORTS))

    for column in ("address", "status", "line", "group", "channel", "topic", "reason"):
        assert f"{column} " in text
    assert "opted_in , opted_out , do_not_contact ." in text
