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
from app.data.models import HeldText, LineGroup, Organization
from app.keywords import Matcher, load
from app.messages import inbound
from app.sending import handoff
from app.settings import parse_send_rate


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
        rates = line_store.send_rates(session, [view.line for view in views], context.settings)
        rows: list[dict[str, Any]] = [
            {
                "line": view.line.address,
                "name": view.line.name,
                "organization": view.organization,
                "group": view.group,
                "provider_group": view.line.seen_group,
                "added": view.line.created_at.isoformat(timespec="seconds"),
                # The rate in force, whichever of line, group and default sets it.
                "send_rate": rates[view.line.id].per_second,
                "send_rate_source": rates[view.line.id].source,
            }
            for view in views
        ]
        described = {view.line.address: rates[view.line.id].describe(view.group) for view in views}
    if _json_or_nothing(rows, as_json, "no lines yet: add one with `optgate lines add NUMBER`"):
        return
    for row in rows:
        extra = "  ".join(f"{key}={row[key]}" for key in ("group", "name") if row[key])
        extra = f"rate={described[row['line']]}  {extra}"
        click.echo(f"{row['line']:<16} {row['organization']:<20} {extra}".rstrip())
        if row["provider_group"]:
            click.echo(
                f"  the provider has it in group {row['provider_group']}: move it with "
                f"`optgate lines move {row['line']} --group {row['provider_group']} "
                "--actor NAME` (opt-outs are kept in force)"
            )


@lines.command(
    "rate",
    # A negative RATE ("-5") is a word to check, not an unknown option.
    context_settings={"ignore_unknown_options": True},
)
@click.argument("words", nargs=-1, metavar="[NUMBER] [RATE]")
@click.option(
    "--group",
    help="Set the rate of this line group (a Twilio Messaging Service) instead: all its "
    "lines share it.",
)
@click.option(
    "--organization",
    help="The group's organization (default: the only one); with a NUMBER, the line "
    "must be this organization's.",
)
@click.option(
    "--clear",
    is_flag=True,
    help="Remove the rate set here: back to the group's rate, or the default of the line's kind.",
)
@pass_context
def rate(
    context: Context,
    words: tuple[str, ...],
    group: str | None,
    organization: str | None,
    clear: bool,
) -> None:
    """Set, clear or show how many messages per second a line (or a group) may send.

    \b
    optgate lines rate NUMBER 30         the line: at most 30 per second
    optgate lines rate --group MG1 50    the 50 per second all lines of group MG1 share
    optgate lines rate NUMBER --clear    back to its group's rate, or its kind's default
    optgate lines rate NUMBER            the rate in force, and where it comes from

    A line's own rate beats its group's, which beats the default of its kind
    (OPTGATE_SEND_RATE_LONG_CODE, _TOLL_FREE, _SHORT_CODE). RATE may have decimals
    (0.5: one message every 2 seconds). Workers pace the next batch at the new rate.
    """
    for word in words:
        if word.startswith("--") or (word.startswith("-") and word[1:2] not in _RATE_START):
            raise click.UsageError(f"no such option: {word}")
    if group is not None:
        if len(words) > 1:
            raise click.UsageError(
                "with --group, give only the RATE, e.g. `optgate lines rate --group MG1 50`"
            )
        raw_rate = words[0] if words else None
    else:
        if not words or len(words) > 2:
            raise click.UsageError(
                "give the line's NUMBER and a RATE, e.g. `optgate lines rate +14155550100 30` "
                "(or --group NAME RATE)"
            )
        raw_rate = words[1] if len(words) == 2 else None
    if raw_rate is not None and clear:
        raise click.UsageError("give a RATE or --clear, not both")
    try:
        new_rate = parse_send_rate(raw_rate) if raw_rate is not None else None
    except ValueError as error:
        # A zero or negative rate may mean "back to normal": say how that is written.
        hint = (
            "; --clear goes back to the group's rate or the default"
            if "above 0" in str(error)
            else ""
        )
        raise click.ClickException(f"{error}{hint}") from None
    change = clear or new_rate is not None
    with context.database.transaction() as session:
        if group is not None:
            said = _group_rate(context, session, organization, group, change, new_rate)
        else:
            said = _line_rate(context, session, organization, words[0], change, new_rate)
    click.echo(said)


#: How a negative RATE may start after its "-" ("-5", "-.5"): a word to check, not an option.
_RATE_START = frozenset("0123456789.")


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def _line_rate(
    context: Context,
    session: Session,
    organization: str | None,
    number: str,
    change: bool,
    new_rate: float | None,
) -> str:
    # --organization scopes the line: another organization's is one that does not exist.
    org = line_store.find_organization(session, organization) if organization else None
    line = line_store.find_line(
        session, number, context.settings.default_region, org.id if org else None
    )
    group = session.get(LineGroup, line.group_id) if line.group_id else None
    group_name = group.name if group else None
    before = line_store.send_rates(session, [line], context.settings)[line.id]
    if not change:
        return f"line {line.address}: {before.describe(group_name)}"
    if new_rate is None and line.send_rate is None:
        return (
            f"unchanged: line {line.address} has no rate of its own; it sends at "
            f"{before.describe(group_name)}"
        )
    if new_rate == line.send_rate:
        return f"unchanged: line {line.address} sends at {before.describe(group_name)} already"
    line_store.set_send_rate(line, new_rate)
    after = line_store.send_rates(session, [line], context.settings)[line.id]
    return f"line {line.address}: {after.describe(group_name)}, was {before.describe(group_name)}"


def _group_rate(
    context: Context,
    session: Session,
    organization: str | None,
    name: str,
    change: bool,
    new_rate: float | None,
) -> str:
    group = line_store.find_group(
        session, line_store.find_organization(session, organization), name
    )
    members = line_store.lines_in_group(session, group)
    own = sum(1 for line in members if line.send_rate is not None)
    has = "has" if own == 1 else "have"
    beaten = f"; {own} of them {has} a rate of their own, which beats it" if own else ""
    if not change:
        if group.send_rate is None:
            return (
                f"group {group.name!r} has no rate: each of its {_lines(len(members))} sends "
                "at its own, or its kind's default"
            )
        shared = f"{group.send_rate:g}/s shared by its {_lines(len(members))}"
        return f"group {group.name!r}: {shared}{beaten}"
    if new_rate is None and group.send_rate is None:
        return f"unchanged: group {group.name!r} has no rate"
    if new_rate == group.send_rate:
        return (
            f"unchanged: group {group.name!r} has {new_rate:g}/s already, shared by its "
            f"{_lines(len(members))}{beaten}"
        )
    old = line_store.set_send_rate(group, new_rate)
    was = f"was {old:g}/s" if old is not None else "had none"
    if new_rate is None:
        return (
            f"group {group.name!r}: no rate now ({was}); each of its {_lines(len(members))} "
            "sends at its own, or its kind's default"
        )
    return (
        f"group {group.name!r}: {new_rate:g}/s shared by its {_lines(len(members))}{beaten} ({was})"
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
