"""The Opt In & Out Snapshot, the consent-event export and imports.

The same domain calls as the API's (app/web/api/reports.py): ``reports.Snapshot``
and ``reports.iter_events`` read in one read-only transaction each and stream,
``imports.run`` applies a CSV through the ledger with the signed-in person as
actor. Everyone may see the snapshot and download it (it is the report agents
are asked for); the full consent-event export and imports are a manager's.

The snapshot's table is read a page at a time by keyset (the address id, in
``after``); its counts need a pass over every address, so the first page makes
that pass and later pages do not.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from app.consent import imports, reports
from app.consent.queries import EVENT_COLUMNS
from app.consent.values import Status
from app.data.models import Line, Organization
from app.errors import InvalidRequest, OptgateError
from app.runtime import heartbeat
from app.web import database, keywords, settings
from app.web import session as db_session
from app.web.api.reports import MAX_IMPORT_BYTES
from app.web.console import actor, blueprint, managers_only, organization, page, refusal

T = TypeVar("T")

#: Rows per page of the snapshot's table.
PAGE_SIZE = 50
#: Rows of an import's report shown on the page (the totals count them all).
SHOWN_RESULTS = 1000
#: The largest address id a cursor may name (what a BIGINT holds).
MOST_ID = 2**63 - 1

STATUS_WORDS = {"opted_in": "Opted in", "opted_out": "Opted out"}
RESULT_WORDS = {
    "applied": "Applied",
    "unchanged": "Unchanged",
    "refused": "Refused",
    "invalid": "Invalid",
}


def _beating(items: Iterable[T]) -> Iterator[T]:
    for item in items:
        heartbeat.beat()
        yield item


def _csv(chunks: Iterator[str], filename: str) -> Response:
    # The first chunk (the header and the first rows) is made now: a failure to start
    # is still an error page, not a download cut short.
    first = next(chunks, "")
    return Response(
        chain([first], chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _org_lines(org: Organization) -> list[Line]:
    return list(
        db_session().scalars(
            sa.select(Line).where(Line.organization_id == org.id).order_by(Line.address)
        )
    )


def _chosen_lines(org: Organization, lines: list[Line]) -> list[Line]:
    """The ``line`` parameters (line ids), each a line of ``org``; none: every line."""
    by_id = {str(line.id): line for line in lines}
    chosen = []
    for raw in request.args.getlist("line"):
        if raw not in by_id:
            # Another organisation's line is, here, one that does not exist.
            raise NotFound(f"There is no such line in {org.name}. Choose lines from the list.")
        if by_id[raw] not in chosen:
            chosen.append(by_id[raw])
    return chosen


# -- the snapshot ---------------------------------------------------------------------------


class _Choice:
    """What the snapshot form asks for, checked."""

    def __init__(self, org: Organization, lines: list[Line]) -> None:
        self.all_lines = lines
        self.lines = _chosen_lines(org, self.all_lines) or self.all_lines
        raw_status = request.args.get("status", "")
        if raw_status not in ("", *STATUS_WORDS):
            raise InvalidRequest("Status: choose any, opted in or opted out.")
        self.status = Status(raw_status) if raw_status else None
        self.topic = request.args.get("topic") or None
        topics = keywords().matcher.config.topics
        if self.topic is not None and self.topic not in topics:
            raise InvalidRequest("Topic: choose one of the topics in the list, or none.")
        self.report = reports.Snapshot(org.id, self.lines, self.status, self.topic)

    def query(self) -> dict[str, Any]:
        """The form's values as URL parameters (for the next page and the CSV)."""
        arguments: dict[str, Any] = {}
        if len(self.lines) != len(self.all_lines):
            arguments["line"] = [line.id for line in self.lines]
        if self.status is not None:
            arguments["status"] = self.status.value
        if self.topic is not None:
            arguments["topic"] = self.topic
        return arguments


def _cursor() -> int:
    raw = request.args.get("after", "0")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MOST_ID):
        raise InvalidRequest("This page link is broken: start again from the first page.")
    return int(raw)


@blueprint.get("/snapshot")
def snapshot() -> ResponseReturnValue:
    """For the chosen lines, a status and a topic: counts and a page of numbers."""
    org = organization()
    lines = _org_lines(org)
    topics = keywords().matcher.config.topics
    form: dict[str, Any] = {"nav": "snapshot", "all_lines": lines, "topics": topics}
    try:
        choice = _Choice(org, lines)
        after = _cursor()
    except InvalidRequest as error:
        return page("snapshot.html", 400, error=refusal(error)["reason"], chosen=None, **form)
    # The request's transaction ends before the long read (on SQLite it holds the
    # write lock); the report reads one snapshot of the database in its own.
    db_session().commit()
    found = choice.report.page(
        database().reads,
        after,
        PAGE_SIZE,
        # Counting is a pass over every address: the first page makes it, checking in
        # with the web server as it goes.
        counted=after == 0,
        progress=lambda _addresses: heartbeat.beat(),
    )
    return page(
        "snapshot.html",
        chosen=choice,
        chosen_ids={line.id for line in choice.lines},
        rows=found.rows,
        following=found.following,
        after=after,
        counts=choice.report.counts_dict() if after == 0 else None,
        numbers=choice.report.numbers,
        words=STATUS_WORDS,
        query=choice.query(),
        **form,
    )


@blueprint.get("/snapshot.csv")
def snapshot_csv() -> ResponseReturnValue:
    """Every row of the snapshot as CSV, streamed (millions of rows cost little memory)."""
    org = organization()
    lines = _org_lines(org)
    try:
        choice = _Choice(org, lines)
    except InvalidRequest as error:
        topics = keywords().matcher.config.topics
        return page(
            "snapshot.html",
            400,
            error=refusal(error)["reason"],
            chosen=None,
            nav="snapshot",
            all_lines=lines,
            topics=topics,
        )
    db_session().commit()
    rows = _beating(choice.report.rows(database().reads))
    return _csv(reports.csv_chunks(reports.SNAPSHOT_COLUMNS, rows), "snapshot.csv")


# -- the consent-event export -------------------------------------------------------------


def _bound(name: str, words: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return reports.parse_bound(raw[:64])
    except ValueError as error:
        raise InvalidRequest(f"{words}: {error}.") from None


def _export_filter(org: Organization) -> reports.EventFilter:
    since, until = _bound("since", "From"), _bound("until", "Until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("From must be before Until.")
    lines = _chosen_lines(org, _org_lines(org))
    return reports.EventFilter(org.id, since, until, lines)


@blueprint.get("/exports")
@managers_only
def exports() -> ResponseReturnValue:
    """The form for the consent-event export."""
    return page("exports.html", nav="exports", lines=_org_lines(organization()))


@blueprint.get("/exports/consent-events.csv")
@managers_only
def export_csv() -> ResponseReturnValue:
    """Every consent event (From <= time < Until, on the chosen lines), oldest first."""
    org = organization()
    try:
        wanted = _export_filter(org)
    except InvalidRequest as error:
        return page(
            "exports.html",
            400,
            nav="exports",
            lines=_org_lines(org),
            error=refusal(error)["reason"],
            since=request.args.get("since", "")[:64],
            until=request.args.get("until", "")[:64],
        )
    db_session().commit()
    rows = _beating(reports.iter_events(database().reads, wanted))
    return _csv(reports.csv_chunks(EVENT_COLUMNS, rows), "consent-events.csv")


# -- imports ----------------------------------------------------------------------------------


def _imports_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    return page(
        "imports.html",
        status,
        nav="imports",
        columns=imports.COLUMNS,
        statuses=imports.STATUSES,
        # The console's form is parsed (for its CSRF token) under the app's request limit.
        most_mb=MAX_IMPORT_BYTES // 2**20,
        shown_most=SHOWN_RESULTS,
        words=RESULT_WORDS,
        **context,
    )


@blueprint.route("/imports", methods=["GET", "POST"], endpoint="imports")
@managers_only
def import_consent() -> ResponseReturnValue:
    """Upload a CSV of consent changes; the page reports every row."""
    if request.method == "GET":
        return _imports_page()
    org = organization()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _imports_page(400, error="Choose a CSV file to import.")
    filename = upload.filename[:200]
    # Bytes that are not UTF-8 become U+FFFD: that row is reported invalid, the rest go on.
    text = io.TextIOWrapper(upload.stream, encoding="utf-8-sig", errors="replace", newline="")
    # The request's transaction ends first: each batch of the import is one of its own.
    db_session().commit()
    shown: list[imports.RowResult] = []

    def keep(result: imports.RowResult) -> None:
        # Beyond the first rows, results are counted, not kept: memory does not grow.
        heartbeat.beat()
        if len(shown) < SHOWN_RESULTS:
            shown.append(result)

    try:
        totals = imports.run(
            database(),
            org,
            imports.read_rows(text),
            actor=actor(),
            region=settings().default_region,
            report=keep,
            topics=keywords().matcher.config.topics,
            progress=heartbeat.beat,
        )
    except OptgateError as error:  # BadFile (its header): nothing was applied
        return _imports_page(400, error=refusal(error)["reason"], filename=filename)
    rows = sum(totals.values())
    return _imports_page(
        totals=totals, rows=rows, results=shown, more=rows - len(shown), filename=filename
    )
