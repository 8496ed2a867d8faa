"""Organisation-wide reads and writes: the consent-event export, the snapshot, imports.

Answers stream: the export and the snapshot read the database a batch at a
time while they answer, and an import reads the upload as it arrives. Each
checks in with the web server as it goes (app/runtime/heartbeat.py), so a long one
is not taken for a hung worker. Errors in the request are found before the
first byte is sent, so they still answer a JSON 4xx.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import IO, Any, TextIO, TypeVar

from flask import Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import LengthRequired, RequestEntityTooLarge, UnsupportedMediaType

from app.consent import imports, reports
from app.consent.queries import EVENT_COLUMNS, iso
from app.consent.values import Status
from app.data.models import Line, Organization, utcnow
from app.errors import InvalidRequest
from app.runtime import heartbeat
from app.settings import Role
from app.web import database, keywords, session, settings
from app.web.api import (
    actor_of,
    blueprint,
    end_reads,
    organization,
    query_choice,
    query_time,
    reachable_line,
    requires,
)

#: The largest CSV upload: it is streamed, so this bounds time, not memory.
MAX_IMPORT_BYTES = 1024 * 1024 * 1024
T = TypeVar("T")


def _lines(org: Organization) -> list[Line]:
    """The ``line`` parameters (any number of them), each a line of ``org``."""
    found = []
    for raw in request.args.getlist("line"):
        line = reachable_line(raw)  # a token of one organisation: 404 for another's
        if line.organization_id != org.id:
            raise InvalidRequest(f"line: {line.address} is not a line of {org.name!r}")
        found.append(line)
    return found


#: How app/consent/imports.py reports a row naming another organisation's line.
def _beating(items: Iterable[T]) -> Iterator[T]:
    for item in items:
        heartbeat.beat()
        yield item


def _started(chunks: Iterator[str]) -> Iterator[str]:
    """Run the stream up to its first chunk now, so a bad start is still an error answer."""
    first = next(chunks, "")
    return chain([first], chunks)


def _csv(chunks: Iterator[str], filename: str) -> Response:
    return Response(
        _started(chunks),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@blueprint.get("/exports/consent-events.csv")
@requires(Role.MANAGER)
def export_events() -> ResponseReturnValue:
    """Every consent event (``since`` <= time < ``until``, on the ``line``s), oldest first."""
    org = organization()
    since, until = query_time("since"), query_time("until")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("since: must be before until")
    wanted = reports.EventFilter(org.id, since, until, _lines(org))
    end_reads()
    rows = reports.iter_events(database().reads, wanted)
    return _csv(reports.csv_chunks(EVENT_COLUMNS, _beating(rows)), "consent-events.csv")


@blueprint.get("/reports/snapshot")
@requires(Role.MANAGER)
def snapshot() -> ResponseReturnValue:
    """For the chosen lines (default: all), each number's status on each, with counts."""
    org = organization()
    lines = _lines(org) or list(
        session().query(Line).filter_by(organization_id=org.id).order_by(Line.address)
    )
    status = query_choice("status", [Status.OPTED_IN, Status.OPTED_OUT], None)
    topic = request.args.get("topic")
    if why := keywords().matcher.config.unknown_topic(topic):
        raise InvalidRequest(f"topic: {why}")
    shape = query_choice("format", ["json", "csv"], "json")
    report = reports.Snapshot(org.id, lines, Status(status) if status else None, topic)
    end_reads()
    rows = _beating(report.rows(database().reads))
    if shape == "csv":
        return _csv(reports.csv_chunks(reports.SNAPSHOT_COLUMNS, rows), "snapshot.csv")
    head = {
        "organization": org.name,
        "generated_at": iso(utcnow()),
        "lines": [line.address for line in lines],
        "status": status,
        "topic": topic,
    }

    def body() -> Iterator[str]:
        # The counts are known once every row is out: they come last.
        yield json.dumps(head)[:-1] + ', "rows": ['
        for number, row in enumerate(rows):
            yield ("," if number else "") + json.dumps(row)
        tail = {"counts": report.counts_dict(), "numbers": report.numbers}
        yield "], " + json.dumps(tail)[1:]

    return Response(_started(body()), mimetype="application/json")


@blueprint.post("/imports/consent")
@requires(Role.MANAGER)
def import_consent() -> ResponseReturnValue:
    """A CSV file through the ledger (source ``import``); the answer reports every row."""
    org = organization()
    name = request.args.get("actor", "")
    if not name.strip():
        raise InvalidRequest("actor: say who imports the file, e.g. ?actor=jane")
    actor = actor_of(name)
    upload = _upload()
    end_reads()
    # Closed by _report once the answer is sent (or here, if the import fails).
    results = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+")  # noqa: SIM115
    try:

        def keep(result: imports.RowResult) -> None:
            heartbeat.beat()
            results.write(json.dumps(result.as_dict()) + "\n")

        totals = imports.run(
            database(),
            org,
            imports.read_rows(upload),
            actor=actor,
            region=settings().default_region,
            report=keep,
            topics=keywords().matcher.config.topics,
            progress=heartbeat.beat,
        )
    except BaseException:
        results.close()
        raise
    head = {"organization": org.name, "actor": actor, "rows": sum(totals.values()), **totals}
    return Response(_report(head, results), mimetype="application/json")


def _upload() -> TextIO:
    """The CSV text of the request: its body (text/csv) or its ``file`` field (multipart)."""
    request.max_content_length = MAX_IMPORT_BYTES
    if (request.content_length or 0) > MAX_IMPORT_BYTES:
        raise RequestEntityTooLarge(
            f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB; split it, or use "
            "`optgate consent import`"
        )
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidRequest("file: send the CSV file in a form field called 'file'")
        raw: IO[bytes] = upload.stream
    elif request.mimetype in ("text/csv", "text/plain"):
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if chunked and request.content_length is None:
            # A body without a length (chunked) would be cut at the size limit only
            # once some of its rows had been applied: refused before any is.
            raise LengthRequired(
                "send the file with a Content-Length header (curl --data-binary @file.csv), "
                "or as the field 'file' of a multipart/form-data form"
            )
        raw = request.stream
    else:
        raise UnsupportedMediaType(
            "send the CSV file as the body with Content-Type: text/csv, or as the field "
            "'file' of a multipart/form-data form"
        )
    # Bytes that are not UTF-8 become U+FFFD: that row is reported invalid, the rest go on.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _report(head: dict[str, Any], results: IO[str]) -> Iterator[str]:
    try:
        yield json.dumps(head)[:-1] + ', "results": ['
        results.seek(0)
        for number, line in enumerate(results):
            yield ("," if number else "") + line.rstrip("\n")
        yield "]}"
    finally:
        results.close()
