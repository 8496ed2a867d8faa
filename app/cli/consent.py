"""``optgate consent``: look up and change one number's consent, read and verify history."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.orm import Session

from app import lines as line_store
from app.addresses import Address, normalize
from app.cli import Context, json_option, organization_option, pass_context
from app.consent import history, ledger, queries
from app.consent.values import Channel, Flag, Scope, Source, Status, default_channel
from app.data.models import Organization
from app.errors import InvalidChange
from app.sending import handoff


@click.group()
def consent() -> None:
    """Look up and change consent; read and verify its history."""


@consent.command()
@click.argument("number")
@organization_option
@click.option(
    "--channel",
    type=click.Choice([Channel.SMS.value, Channel.VOICE.value, Channel.EMAIL.value]),
    help="Channel to show: sms (default for numbers), voice, or email (for emails).",
)
@json_option
@pass_context
def show(
    context: Context, number: str, organization: str | None, channel: str | None, as_json: bool
) -> None:
    """NUMBER's consent on every line of its organization (one entry a line), with
    topics and flags."""
    address = normalize(number, context.settings.default_region)
    shown = Channel(channel) if channel else default_channel(address)
    with context.database.transaction() as session:
        org = line_store.find_organization(session, organization)
        status = queries.address_status(session, org, address, channels=[shown]).as_dict()
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"{status['address']} in organization {status['organization']!r}")
    if not status["lines"]:
        click.echo("  no lines yet: add one with `optgate lines add NUMBER`")
    for entry in status["lines"]:
        click.echo("  " + _entry_line(entry))
    flags = status["flags"]
    click.echo(
        "  flags: "
        + ", ".join(
            f"{name.replace('_', '-')} {'SET by ' + value['actor'] if value['set'] else 'no'}"
            for name, value in flags.items()
        )
    )


def _entry_line(entry: dict[str, Any]) -> str:
    where = entry["line"] or "(organization)"
    text = f"{where:<16} {entry['channel']:<6} {entry['status']:<12}"
    if entry["source"]:
        text += f" {entry['source']} by {entry['actor']} at {entry['at']} ({entry['scope']} scope)"
    topics = ", ".join(f"{name}={value['status']}" for name, value in entry["topics"].items())
    return text.rstrip() + (f"  topics: {topics}" if topics else "")


@consent.command("set")
@click.argument("number")
@click.option("--line", help="Change it on this line only.")
@click.option("--group", help="Change it on every line of this line group.")
@click.option(
    "--organization",
    help="Change it on every line of this organization (with --group: the group's organization).",
)
@click.option("--status", type=click.Choice(["opted_in", "opted_out"]), required=True)
@click.option("--topic", help="A topic id (e.g. price_drop); without it, the overall status.")
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel]),
    help="sms (default for numbers), voice, email (default for emails) or all.",
)
@click.option("--actor", required=True, help="Who makes the change (your name).")
@click.option("--reason", help="Why, e.g. 'asked by phone on 2026-11-20'.")
@pass_context
def set_(
    context: Context,
    number: str,
    line: str | None,
    group: str | None,
    organization: str | None,
    status: str,
    topic: str | None,
    channel: str | None,
    actor: str,
    reason: str | None,
) -> None:
    """Change NUMBER's consent by hand (source: manual).

    An opt-out returns only once no message to NUMBER is still on its way to the
    provider: from then on, nothing more reaches it.
    """
    settings = context.settings
    address = normalize(number, settings.default_region)
    with context.database.transaction() as session:
        org, scope, where = _scope(session, settings.default_region, line, group, organization)
        change = ledger.Change(
            organization_id=org.id,
            address=address,
            scope=scope,
            status=Status(status),
            source=Source.MANUAL,
            actor=actor,
            channel=Channel(channel) if channel else default_channel(address),
            topic=topic,
            reason=reason,
        )
        outcome = ledger.apply(session, change)
    if change.status is Status.OPTED_OUT:
        _wait_for_hand_offs(context, org, address)
    what = f"{address} {status}" + (f" for topic {topic}" if topic else "")
    if outcome.changed:
        seqs = ", ".join(f"#{event.seq}" for event in outcome.events)
        click.echo(f"changed: {what} on {where} ({change.channel}); history {seqs}")
    else:
        click.echo(f"unchanged: {address} was already {status} there ({change.channel})")


def _scope(
    session: Session,
    region: str,
    line: str | None,
    group: str | None,
    organization: str | None,
) -> tuple[Organization, Scope, str]:
    if line and (group or organization):
        raise InvalidChange("name one place: --line, or --group, or --organization")
    if line:
        found = line_store.find_line(session, line, region)
        org = session.get(Organization, found.organization_id)
        assert org is not None
        return org, Scope.line(found.id), f"line {found.address}"
    if not group and not organization:
        raise InvalidChange("say where the change applies: --line, --group or --organization")
    org = line_store.find_organization(session, organization)
    if group:
        found_group = line_store.find_group(session, org, group)
        return org, Scope.group(found_group.id), f"every line of group {group}"
    return org, Scope.organization(), f"every line of organization {org.name}"


@consent.command()
@click.argument("number")
@click.argument("flag", type=click.Choice([f.value for f in Flag]))
@click.option("--set/--clear", "set_flag", required=True, help="Set or clear the flag.")
@organization_option
@click.option("--actor", required=True, help="Who makes the change (your name).")
@click.option("--reason", help="Why.")
@pass_context
def flag(
    context: Context,
    number: str,
    flag: str,
    set_flag: bool,
    organization: str | None,
    actor: str,
    reason: str | None,
) -> None:
    """Set or clear FLAG on NUMBER: silenced, do_not_contact (permanent) or bounced.

    Setting a flag returns only once no message to NUMBER is still on its way to the
    provider.
    """
    address = normalize(number, context.settings.default_region)
    with context.database.transaction() as session:
        org = line_store.find_organization(session, organization)
        outcome = ledger.set_flag(
            session,
            ledger.FlagChange(org.id, address, Flag(flag), set_flag, Source.MANUAL, actor, reason),
        )
    if set_flag:
        _wait_for_hand_offs(context, org, address)
    state = "set" if set_flag else "cleared"
    if outcome.changed:
        click.echo(f"changed: {flag} {state} on {address}; history #{outcome.events[0].seq}")
    else:
        click.echo(f"unchanged: {flag} was already {state} on {address}")


def _wait_for_hand_offs(context: Context, org: Organization, address: Address) -> None:
    """Committed; as a texted STOP's answer, the command ends only once nothing is in
    flight to the address (app/sending/handoff.py), whether or not it changed anything."""
    handoff.wait_for_hand_offs(context.database, org.id, address.value)


@consent.command("history")
@click.argument("number")
@organization_option
@json_option
@pass_context
def history_(context: Context, number: str, organization: str | None, as_json: bool) -> None:
    """Every change to NUMBER's consent and flags, oldest first."""
    address = normalize(number, context.settings.default_region)
    with context.database.transaction() as session:
        org = line_store.find_organization(session, organization)
        events = queries.address_history(session, org, address)
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    if not events:
        click.echo(f"no history for {address}: its consent is not defined anywhere")
    for event in events:
        where = event["line"] or event["group"] or "organization"
        topic = f" topic {event['topic']}" if event["topic"] else ""
        reason = f" ({event['reason']})" if event["reason"] else ""
        click.echo(
            f"#{event['seq']:<4} {event['at']}  {event['subject']}{topic} on {where} "
            f"[{event['channel']}]: {event['old']} -> {event['new']}  "
            f"{event['source']} by {event['actor']}{reason}"
        )


@consent.command("verify-history")
@pass_context
def verify_history(context: Context) -> None:
    """Check every history chain and that it reproduces the stored consent."""
    with context.database.transaction() as session:
        checked, problem = history.verify(session)
    if problem is not None:
        raise click.ClickException(str(problem))
    click.echo(
        f"history verified: {checked} events, every chain intact, state matches, "
        "every line in the group its history says"
    )
