"""``optgate lines``: our sending numbers and short codes."""

from __future__ import annotations

import json

import click

from app import lines as line_store
from app.addresses import normalize_line
from app.cli import Context, json_option, pass_context


@click.group()
def lines() -> None:
    """Add and list lines (our numbers and short codes)."""


@lines.command("add")
@click.argument("number")
@click.option(
    "--organization",
    help="Organization the line belongs to (default: the setting "
    "OPTGATE_DEFAULT_ORGANIZATION; created when new).",
)
@click.option(
    "--group",
    help="Group of lines that share opt-outs, e.g. a Twilio Messaging "
    "Service SID (created when new).",
)
@click.option("--name", help="A name people recognise, e.g. 'Sales'.")
@pass_context
def add(
    context: Context, number: str, organization: str | None, group: str | None, name: str | None
) -> None:
    """Add the line NUMBER (any written form; a short code as digits)."""
    settings = context.settings
    address = normalize_line(number, settings.default_region)
    with context.database.transaction() as session:
        org = line_store.get_or_create_organization(
            session, organization or settings.default_organization
        )
        line_group = line_store.get_or_create_group(session, org, group) if group else None
        line, created = line_store.add_line(session, address, org, line_group, name)
        where = f"organization {org.name!r}" + (f", group {group!r}" if group else "")
        verb = "added" if created else "already there:"
        click.echo(f"{verb} line {line.address} in {where}")


@lines.command("list")
@click.option("--organization", help="Only this organization's lines.")
@json_option
@pass_context
def list_(context: Context, organization: str | None, as_json: bool) -> None:
    """List the lines."""
    with context.database.transaction() as session:
        org = line_store.find_organization(session, organization) if organization else None
        views = line_store.list_lines(session, org)
        rows = [
            {
                "line": view.line.address,
                "name": view.line.name,
                "organization": view.organization,
                "group": view.group,
                "added": view.line.created_at.isoformat(timespec="seconds"),
            }
            for view in views
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no lines yet: add one with `optgate lines add NUMBER`")
        return
    for row in rows:
        extra = "  ".join(f"{key}={row[key]}" for key in ("group", "name") if row[key])
        click.echo(f"{row['line']:<16} {row['organization']:<20} {extra}".rstrip())
