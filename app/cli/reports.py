"""``optgate consent export | snapshot | import``: the organisation-wide reports and imports.

The same code as the HTTP API (app/consent/reports.py, imports.py), with a
progress bar on stderr when it is a terminal. Output goes to a file or to
stdout, so it pipes.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO

import click

from app import lines as line_store
from app.cli import Context, organization_option, pass_context
from app.consent import imports, reports
from app.consent.queries import EVENT_COLUMNS
from app.consent.values import Status
from app.data.db import Database
from app.data.models import Line, Organization

#: The longest actor the history stores (models.ConsentEvent.actor).
MOST_ACTOR = imports.MOST_ACTOR
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

line_option = click.option(
    "--line",
    "line_names",
    multiple=True,
    help="Only this line (any written form); repeat for several.",
)
output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: stdout).",
)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return reports.parse_bound(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=name) from None


def _place(
    database: Database, organization: str | None, line_names: tuple[str, ...], region: str
) -> tuple[Organization, list[Line]]:
    with database.reads() as session:
        org = line_store.find_organization(session, organization)
        found = [line_store.find_line(session, name, region) for name in line_names]
        for line in found:
            if line.organization_id != org.id:
                raise click.ClickException(f"line {line.address} is not a line of {org.name!r}")
    return org, found


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as file:
        yield file


def _progress(length: Callable[[], int], label: str) -> Any:
    """A progress bar on stderr, drawn only when stderr is a terminal (and only then is
    ``length`` counted: a count over millions of rows is not free)."""
    if not sys.stderr.isatty():
        return click.progressbar(length=0, label=label, file=io.StringIO())
    return click.progressbar(
        length=length(),
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_percent=True,
    )


@click.command()
@organization_option
@click.option("--since", help="From this day (UTC) or time (ISO 8601 with offset), inclusive.")
@click.option("--until", help="Until this day or time, exclusive.")
@line_option
@output_option
@pass_context
def export(
    context: Context,
    organization: str | None,
    since: str | None,
    until: str | None,
    line_names: tuple[str, ...],
    output: Path | None,
) -> None:
    """Every consent event as CSV (the history's columns), oldest first."""
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start >= end:
        raise click.BadParameter("must be before --until", param_hint="--since")
    database = context.database
    org, lines = _place(database, organization, line_names, context.settings.default_region)
    wanted = reports.EventFilter(org.id, start, end, lines)
    count = 0
    with (
        _output(output) as out,
        _progress(
            lambda: reports.count_events(database.reads, wanted), "exporting consent events"
        ) as bar,
    ):
        for chunk in reports.csv_chunks(
            EVENT_COLUMNS, _counted(reports.iter_events(database.reads, wanted), bar)
        ):
            out.write(chunk)
        count = bar.pos
    click.echo(f"exported {count} events" + (f" to {output}" if output else ""), err=True)


def _counted(rows: Iterator[dict[str, Any]], bar: Any) -> Iterator[dict[str, Any]]:
    for row in rows:
        bar.update(1)
        yield row


@click.command()
@organization_option
@line_option
@click.option(
    "--status",
    type=click.Choice([Status.OPTED_IN.value, Status.OPTED_OUT.value]),
    help="Only this status.",
)
@click.option("--topic", help="The status for this topic (default: the overall status).")
@click.option(
    "--format",
    "shape",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
)
@output_option
@pass_context
def snapshot(
    context: Context,
    organization: str | None,
    line_names: tuple[str, ...],
    status: str | None,
    topic: str | None,
    shape: str,
    output: Path | None,
) -> None:
    """For the chosen lines (default: all), each number's status on each, with counts."""
    database = context.database
    org, lines = _place(database, organization, line_names, context.settings.default_region)
    if not lines:
        with database.reads() as session:
            lines = list(
                session.query(Line).filter_by(organization_id=org.id).order_by(Line.address)
            )
    report = reports.Snapshot(org.id, lines, Status(status) if status else None, topic)
    with (
        _output(output) as out,
        _progress(lambda: report.count_addresses(database.reads), "reading consent") as bar,
    ):
        rows = report.rows(database.reads, progress=bar.update)
        if shape == "csv":
            for chunk in reports.csv_chunks(reports.SNAPSHOT_COLUMNS, rows):
                out.write(chunk)
        else:
            out.write("[")
            for number, row in enumerate(rows):
                out.write(("," if number else "") + "\n" + json.dumps(row))
            out.write("\n]\n")
    for line, counts in report.counts_dict().items():
        click.echo(
            f"{line}: {counts['opted_in']} opted in, {counts['opted_out']} opted out", err=True
        )
    click.echo(f"{report.numbers} numbers listed" + (f" in {output}" if output else ""), err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@organization_option
@click.option("--actor", required=True, help="Who imports it (recorded on every change).")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every row's result to this file, one JSON object a line.",
)
@pass_context
def import_(
    context: Context,
    file: Path,
    organization: str | None,
    actor: str,
    results: Path | None,
) -> None:
    """Apply a CSV FILE of consent through the rules (source: import).

    Columns: address, status (opted_in, opted_out or do_not_contact), and optionally line,
    group, channel, topic, reason. Each line is one row (a quoted field cannot hold a line
    break). An import never lifts an opt-out. Refused and invalid rows are printed as
    FILE:LINE: message; the command exits 1 when a row was invalid.
    A row that opts a number out is reported only once no message to it is still on its
    way to the provider.
    """
    _check_actor(actor)
    database = context.database
    with database.reads() as session:
        org = line_store.find_organization(session, organization)
    from app.keywords import load  # the rules' reader, only for an import (its topics)

    topics = load(context.settings.keywords_path, context.settings.default_region).topics
    kept: IO[str] | None = results.open("w", encoding="utf-8") if results else None
    try:
        with (
            file.open(encoding="utf-8-sig", errors="replace", newline="") as source,
            _progress(lambda: _count_rows(file), f"importing {file.name}") as bar,
        ):

            def report(result: imports.RowResult) -> None:
                bar.update(1)
                if kept is not None:
                    kept.write(json.dumps(result.as_dict()) + "\n")
                if result.result in ("refused", "invalid"):
                    detail = f" {result.hint}" if result.hint else ""
                    # Past the progress bar's line, when there is one.
                    start = "\n" if sys.stderr.isatty() else ""
                    click.echo(
                        f"{start}{file}:{result.row}: {result.result}: {result.message}{detail}",
                        err=True,
                    )

            try:
                totals = imports.run(
                    database,
                    org,
                    imports.read_rows(source),
                    actor=actor,
                    region=context.settings.default_region,
                    report=report,
                    topics=topics,
                )
            except imports.BadFile as error:
                raise click.ClickException(f"{file}:{error.line}: {error.problem}") from None
    finally:
        if kept is not None:
            kept.close()
    summary = ", ".join(f"{count} {result}" for result, count in totals.items())
    click.echo(f"{file}: {sum(totals.values())} rows: {summary}", err=True)
    if totals["invalid"]:
        raise click.exceptions.Exit(1)


def _check_actor(actor: str) -> None:
    """Refuse, before any row, an actor every row's change would fail to store: longer
    than the history's column (PostgreSQL refuses it), or holding a control character."""
    if len(actor.strip()) > MOST_ACTOR:
        raise click.BadParameter(f"at most {MOST_ACTOR} characters", param_hint="--actor")
    if control := _CONTROL.search(actor):
        raise click.BadParameter(
            f"holds the control character U+{ord(control.group()):04X}; remove it",
            param_hint="--actor",
        )


def _count_rows(file: Path) -> int:
    """Lines after the header: the progress bar's length (an estimate: blank lines count,
    and a file whose lines end in a lone \\r counts as one line)."""
    with file.open("rb") as source:
        return max(sum(1 for _ in source) - 1, 0)
