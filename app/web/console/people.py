"""The managers' page of users: list, add, disable and enable, set a password.

Through app/accounts/users.py, as ``optgate users`` does. A manager of one
organisation sees and changes that organisation's users only (another's is
answered as one that does not exist) and adds users to it; an operator (a
manager of every organisation) sees everyone and chooses the organisation,
or every one. Nobody disables themself. Passwords are never shown, logged or
put in a URL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from app.accounts import users
from app.data.models import Organization, User
from app.errors import InvalidRequest, OptgateError
from app.settings import Role
from app.web import session as db_session
from app.web.console import actor, blueprint, managers_only, page, refusal, user
from app.web.errors import status_of

ROLE_WORDS = {Role.AGENT: "Agent", Role.MANAGER: "Manager"}


def _operator() -> bool:
    return user().organization_id is None


def _people_page(status: int = 200, **extra: Any) -> ResponseReturnValue:
    db = db_session()
    own = user().organization_id
    organizations = list(db.scalars(sa.select(Organization).order_by(Organization.name)))
    return page(
        "people.html",
        status,
        nav="users",
        people=users.list_users(db, own),
        names={org.id: org.name for org in organizations},
        organizations=organizations if own is None else [],
        operator=own is None,
        me=user(),
        roles=ROLE_WORDS,
        least=users.LEAST_PASSWORD,
        **extra,
    )


def _refused(error: OptgateError, **extra: Any) -> ResponseReturnValue:
    db_session().rollback()
    return _people_page(status_of(error), refused=refusal(error), **extra)


@blueprint.get("/users")
@managers_only
def people() -> ResponseReturnValue:
    """The organisation's users (an operator's: every user)."""
    return _people_page()


def _new_password() -> str:
    password = request.form.get("password", "")[: users.MOST_PASSWORD + 1]
    again = request.form.get("password_again", "")[: users.MOST_PASSWORD + 1]
    if password != again:
        raise InvalidRequest("The two passwords differ: type the same one twice.")
    return password


def _organization_chosen() -> Organization | None:
    """The new user's organisation: a manager's own; an operator's choice (empty: all)."""
    db = db_session()
    own = user().organization_id
    if own is not None:
        found = db.get(Organization, own)
        assert found is not None
        return found
    raw = request.form.get("organization", "")
    if raw == "":
        return None
    chosen = db.get(Organization, int(raw)) if raw.isascii() and raw.isdigit() else None
    if chosen is None:
        raise InvalidRequest("Organization: choose one from the list.")
    return chosen


@blueprint.post("/users")
@managers_only
def add_person() -> ResponseReturnValue:
    """A new account: name, role, organisation, password (twice)."""
    name = request.form.get("name", "")[: users.MOST_NAME + 1]
    shown = {"name": name[: users.MOST_NAME], "role": request.form.get("role", "")}
    try:
        raw_role = request.form.get("role", "")
        if raw_role not in list(Role):
            raise InvalidRequest("Role: choose agent or manager.")
        organization = _organization_chosen()
        password = None if request.form.get("sso_only") == "yes" else _new_password()
        added = users.add_user(db_session(), name, Role(raw_role), organization, password, actor())
    except OptgateError as error:
        return _refused(error, new=shown)
    where = organization.name if organization else "every organization"
    flash(f"Added {ROLE_WORDS[added.role].lower()} {added.name} ({where}).")
    db_session().commit()
    return redirect(url_for(".people"), 303)


def _person(name: str) -> User:
    """The user ``name``, if the signed-in manager may see them (else NotFound, in the
    same words as for a name that does not exist)."""
    return users.find_user(db_session(), name[: users.MOST_NAME + 1], user().organization_id)


@blueprint.post("/users/<path:name>/disable")
@managers_only
def disable_person(name: str) -> ResponseReturnValue:
    """The user can no longer sign in; their sessions end."""
    try:
        person = _person(name)
        if person.id == user().id:
            raise InvalidRequest(
                "You cannot disable yourself: ask another manager, or an operator "
                "(`optgate users disable`)."
            )
        changed = users.disable(db_session(), person)
    except OptgateError as error:
        return _refused(error)
    db_session().commit()
    flash(
        f"{person.name} is disabled: they cannot sign in, and their sessions have ended."
        if changed
        else f"Nothing changed: {person.name} was disabled already."
    )
    return redirect(url_for(".people"), 303)


@blueprint.post("/users/<path:name>/enable")
@managers_only
def enable_person(name: str) -> ResponseReturnValue:
    """A disabled user may sign in again."""
    try:
        person = _person(name)
        changed = users.enable(db_session(), person)
    except OptgateError as error:
        return _refused(error)
    db_session().commit()
    flash(
        f"{person.name} is enabled: they may sign in again."
        if changed
        else f"Nothing changed: {person.name} was enabled already."
    )
    return redirect(url_for(".people"), 303)


@blueprint.post("/users/<path:name>/password")
@managers_only
def reset_password(name: str) -> ResponseReturnValue:
    """A new password (typed twice); the user's sessions end (not the manager's own)."""
    try:
        person = _person(name)
        users.set_password(db_session(), person, _new_password())
    except OptgateError as error:
        return _refused(error, password_for=name[: users.MOST_NAME])
    db_session().commit()
    if person.id == user().id:
        # Their own: this session goes on, every other one of theirs ends.
        session["version"] = person.session_version
        flash("Your new password is set; your other sessions have ended.")
    else:
        flash(f"A new password is set for {person.name}; their sessions have ended.")
    return redirect(url_for(".people"), 303)
