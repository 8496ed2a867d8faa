"""``optgate lines``: our sending numbers and short codes."""

from __future__ import annotations

import json
from typing import Any

import click
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import lines as line_store
from app.addresses import normalize_line
from app.cli import Context, json_option, pass_context
from app.consent.moves import move_line
from app.data.models import HeldText, Organization
from app.keywords import Matcher, load
from app.messages import inbound
from app.sending import handoff


@click.group()
def lines() -> None:
    """Add, move and list lines (our numbers and short codes)."""


@lines.command("add")
@click.argument("number")
@click.option(
    "--organization",
    help="Organization the line belongs to (created when new). Default: the setting "
    "OPTGATE_DEFAULT_ORGANIZATION, else the only organization, else 'default' when "
    "there is none yet.",
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
    """Add the line NUMBER (any written form; a short code as digits).

    Texts that arrived for NUMBER before it was added (held, see `optgate lines held`)
    are applied now, their opt-outs included; the command ends once no message to those
    who opted out is still on its way to the provider.
    """
    settings = context.settings
    address = normalize_line(number, settings.default_region)
    with context.database.transaction() as session:
        org = _organization_for_new_line(session, organization or settings.default_organization)
        line_group = line_store.get_or_create_group(session, org, group) if group else None
        line, created = line_store.add_line(session, address, org, line_group, name)
        held = _held_count(session, line.address)
        stops = inbound.apply_held(session, line, _matcher(context), settings) if held else []
        where = f"organization {org.name!r}" + (f", group {group!r}" if group else "")
        verb = "added" if created else "already there:"
    for organization_id, contact in stops:
        handoff.wait_for_hand_offs(context.database, organization_id, contact)
    click.echo(f"{verb} line {line.address} in {where}")
    if held:
        click.echo(f"applied {held} held texts to it ({len(stops)} asked to stop)")


def _organization_for_new_line(session: Session, name: str | None) -> Organization:
    if name is not None:
        return line_store.get_or_create_organization(session, name)
    if session.scalar(sa.select(sa.func.count()).select_from(Organization)) == 0:
        return line_store.get_or_create_organization(session, "default")
    return line_store.find_organization(session, None)


def _matcher(context: Context) -> Matcher:
    settings = context.settings
    return Matcher(load(settings.keywords_path, settings.default_region))


def _held_count(session: Session, line: str) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count()).select_from(HeldText).where(HeldText.line == line)
        )
        or 0
    )


@lines.command("move")
@click.argument("number")
@click.option("--group", help="The group it moves to (created when new).")
@click.option("--no-group", is_flag=True, help="Take it out of any group.")
@click.option("--actor", required=True, help="Who moves it (your name).")
@pass_context
def move(context: Context, number: str, group: str | None, no_group: bool, actor: str) -> None:
    """Move the line NUMBER to another group, keeping every opt-out in force.

    Opt-outs of its old group stop covering a line that leaves it; for every number
    opted out there, an opt-out is written on the line itself (with its source and a
    history event), so the move lifts none. Use it when the provider moved the number,
    e.g. to another Twilio Messaging Service (`optgate lines list` shows such moves).
    """
    if bool(group) == no_group:
        raise click.UsageError("give --group NAME or --no-group")
    address = normalize_line(number, context.settings.default_region)
    moved = move_line(context.database, address.value, group, actor=actor)
    if not moved.changed:
        click.echo(f"unchanged: line {moved.line} is in {_group(moved.new_group)} already")
        return
    click.echo(
        f"moved line {moved.line} from {_group(moved.old_group)} to "
        f"{_group(moved.new_group)}; kept {moved.carried} opt-outs of {moved.addresses} "
        "numbers in force on it (history events written)"
    )


def _group(name: str | None) -> str:
    return f"group {name!r}" if name else "no group"


@lines.command("held")
@json_option
@pass_context
def held(context: Context, as_json: bool) -> None:
    """Texts to numbers no organization has, waiting for `optgate lines add`."""
    with context.database.reads() as session:
        rows = session.execute(
            sa.select(
                HeldText.line,
                sa.func.count(),
                sa.func.min(HeldText.received_at),
                sa.func.max(HeldText.received_at),
            )
            .group_by(HeldText.line)
            .order_by(HeldText.line)
        ).all()
    found = [
        {
            "line": line,
            "texts": count,
            "first": first.isoformat(timespec="seconds"),
            "last": last.isoformat(timespec="seconds"),
        }
        for line, count, first, last in rows
    ]
    if _json_or_nothing(
        found, as_json, "no texts are held: every text went to a line an organization has"
    ):
        return
    for row in found:
        click.echo(
            f"{row['line']:<16} {row['texts']} texts ({row['first']} to {row['last']}): "
            f"add it with `optgate lines add {row['line']} --organization NAME`"
        )


@lines.command("list")
@click.option("--organization", help="Only this organization's lines.")
@json_option
@pass_context
def list_(context: Context, organization: str | None, as_json: bool) -> None:
    """List the lines (and moves the provider reported that wait for `optgate lines move`)."""
    with context.database.transaction() as session:
        org = line_store.find_organization(session, organization) if organization else None
        views = line_store.list_lines(session, org)
        rows: list[dict[str, Any]] = [
            {
                "line": view.line.address,
                "name": view.line.name,
                "organization": view.organization,
                "group": view.group,
                "provider_group": view.line.seen_group,
                "added": view.line.created_at.isoformat(timespec="seconds"),
            }
            for view in views
        ]
    if _json_or_nothing(rows, as_json, "no lines yet: add one with `optgate lines add NUMBER`"):
        return
    for row in rows:
        extra = "  ".join(f"{key}={row[key]}" for key in ("group", "name") if row[key])
        click.echo(f"{row['line']:<16} {row['organization']:<20} {extra}".rstrip())
        if row["provider_group"]:
            click.echo(
                f"  the provider has it in group {row['provider_group']}: move it with "
                f"`optgate lines move {row['line']} --group {row['provider_group']} "
                "--actor NAME` (opt-outs are kept in force)"
            )


def _json_or_nothing(rows: list[dict[str, Any]], as_json: bool, none: str) -> bool:
    """Print ``rows`` as JSON, or ``none`` when there are no rows; False when neither (the
    caller then lists the rows as text)."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return True
    if not rows:
        click.echo(none)
        return True
    return False
