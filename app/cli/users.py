"""``optgate users``: the people who sign in to the admin console."""

from __future__ import annotations

import json
import sys

import click

from app.accounts import users as accounts
from app.cli import Context, json_option, pass_context
from app.data.models import Organization
from app.lines import find_organization
from app.settings import Role


@click.group()
def users() -> None:
    """Add, list and disable console users; set their passwords."""


def _password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        # One line: what a script pipes in (echo "$PASSWORD" | optgate users add ...).
        return sys.stdin.readline().rstrip("\r\n")
    entered: str = click.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
    )
    return entered


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    required=True,
    help="agent or manager.",
)
@click.option("--organization", help="The organization the user works for (default: the only one).")
@click.option(
    "--all-organizations", is_flag=True, help="The user reaches every organization (an operator)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--sso-only",
    is_flag=True,
    help="No password: the user signs in through the SSO proxy (OPTGATE_CONSOLE_USER_HEADER).",
)
@pass_context
def add(
    context: Context,
    name: str,
    role: str,
    organization: str | None,
    all_organizations: bool,
    password_stdin: bool,
    sso_only: bool,
) -> None:
    """Add the user NAME (their sign-in name, e.g. jane or jane@example.com).

    The password is asked for twice (at least 12 characters), unless --password-stdin
    or --sso-only.
    """
    if all_organizations and organization:
        raise click.UsageError("give --organization or --all-organizations, not both")
    name = accounts.canonical_name(name)
    with context.database.transaction() as session:
        # Checked before the password is asked for: a typo costs no typing.
        org = None if all_organizations else find_organization(session, organization)
        accounts.require_free_name(session, name)
    password = None if sso_only else _password(name, password_stdin)
    with context.database.transaction() as session:
        org = session.get(Organization, org.id) if org else None
        user = accounts.add_user(session, name, Role(role), org, password, "cli")
        where = f"organization {org.name!r}" if org else "every organization"
        click.echo(f"added {user.role.value} {user.name} ({where})")


@users.command("list")
@click.option("--organization", help="Only this organization's users.")
@json_option
@pass_context
def list_(context: Context, organization: str | None, as_json: bool) -> None:
    """Every user: name, role, organization, state and last sign-in."""
    with context.database.transaction() as session:
        org_id = find_organization(session, organization).id if organization else None
        names = {o.id: o.name for o in session.query(Organization)}
        rows = [
            {
                "name": user.name,
                "role": user.role.value,
                "organization": names.get(user.organization_id) if user.organization_id else "*",
                "state": "disabled" if user.disabled_at else "active",
                "sign_in": "sso only" if user.password_hash is None else "password",
                "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
            }
            for user in accounts.list_users(session, org_id)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no users yet: `optgate users add NAME --role manager`")
    for row in rows:
        last = row["last_login_at"] or "never signed in"
        click.echo(
            f"{row['name']}\t{row['role']}\t{row['organization']}\t{row['state']}\t"
            f"{row['sign_in']}\t{last}"
        )


@users.command("disable")
@click.argument("name")
@pass_context
def disable(context: Context, name: str) -> None:
    """NAME can no longer sign in; their open sessions end at once."""
    with context.database.transaction() as session:
        user = accounts.find_user(session, name)
        changed = accounts.disable(session, user)
    click.echo(f"disabled {user.name}" if changed else f"{user.name} was disabled already")


@users.command("enable")
@click.argument("name")
@pass_context
def enable(context: Context, name: str) -> None:
    """NAME may sign in again."""
    with context.database.transaction() as session:
        user = accounts.find_user(session, name)
        changed = accounts.enable(session, user)
    click.echo(f"enabled {user.name}" if changed else f"{user.name} was active already")


@users.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def password(context: Context, name: str, password_stdin: bool) -> None:
    """Set NAME's password (asked for twice); their other sessions end."""
    with context.database.transaction() as session:
        accounts.find_user(session, name)
    new = _password(name, password_stdin)
    with context.database.transaction() as session:
        user = accounts.find_user(session, name)
        accounts.set_password(session, user, new)
    click.echo(f"new password set for {user.name}; their other sessions have ended")
