"""The managers' page of users: list, add, disable and enable, new passwords.

Every change is checked in the database and by signing in; every refusal is
checked to have changed nothing, and no password to appear anywhere.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.test import TestResponse

from app.accounts import users
from app.data.models import User
from app.settings import Role
from tests.console.console import PASSWORD, Browser, signed_in, text_of
from tests.web.admin import Admin

USERS = "/console/users"
NEW_PASSWORD = "a new and longer secret"


def said(response: TestResponse) -> str:
    return html.unescape(text_of(response))


def person(console: Admin, name: str) -> User | None:
    with console.database.transaction() as session:
        return session.scalars(sa.select(User).where(User.name == name)).one_or_none()


def everyone(console: Admin) -> list[tuple[str, int | None, bool, int]]:
    """Every user as (name, organisation, disabled, session version)."""
    with console.database.transaction() as session:
        return [
            (user.name, user.organization_id, user.disabled_at is not None, user.session_version)
            for user in users.list_users(session)
        ]


def can_sign_in(console: Admin, name: str, password: str) -> bool:
    return Browser(console.app.test_client()).sign_in(name, password).status_code == 303


def add(browser: Browser, **fields: str) -> TestResponse:
    form = {"name": "jane", "role": "agent", "password": NEW_PASSWORD} | fields
    form.setdefault("password_again", form["password"])
    browser.get(USERS)
    return browser.post(USERS, form)


def act(browser: Browser, name: str, what: str, **fields: str) -> TestResponse:
    browser.get(USERS)
    return browser.post(f"{USERS}/{name}/{what}", fields)


def no_password_in(response: TestResponse) -> None:
    for secret in (NEW_PASSWORD, PASSWORD):
        assert secret not in response.get_data(as_text=True)
        assert secret not in response.headers.get("Location", "")


# -- who sees whom ---------------------------------------------------------------------------


def test_a_manager_sees_the_users_of_their_organisation_only(manager: Browser) -> None:
    response = manager.get(USERS)

    assert response.status_code == 200
    rows = said(response)
    assert "The users of default" in rows
    assert "alice Agent default Active password never" in rows
    assert "maria (you) Manager default Active password" in rows
    assert "otto" not in rows and "zed" not in rows
    assert "Every organization (an operator)" not in rows  # they cannot make one
    no_password_in(response)


def test_an_operator_sees_everyone_and_chooses_the_organisation(console: Admin) -> None:
    otto = signed_in(console, "otto")

    text = said(otto.get(USERS))

    assert "Every user" in text
    for shown in (
        "alice Agent default",
        "otto (you) Manager Every organization",
        "zed Agent other",
    ):
        assert shown in text
    assert "Every organization (an operator)" in text


def test_an_agent_gets_the_403_page_and_changes_nothing(console: Admin, agent: Browser) -> None:
    before = everyone(console)
    agent.get("/console/")
    answers = [
        agent.get(USERS),
        agent.post(USERS, {"name": "jane", "role": "manager", "password": NEW_PASSWORD}),
        agent.post(f"{USERS}/maria/disable"),
        agent.post(f"{USERS}/maria/password", {"password": NEW_PASSWORD}),
    ]

    for response in answers:
        assert response.status_code == 403
        assert "This page is for managers" in said(response)
    assert everyone(console) == before
    assert can_sign_in(console, "maria", PASSWORD)


# -- adding ------------------------------------------------------------------------------------


def test_a_manager_adds_a_user_to_their_organisation(console: Admin, manager: Browser) -> None:
    response = add(manager, name="Jane", role="manager")

    assert response.status_code == 303
    assert response.headers["Location"].endswith(USERS)
    no_password_in(response)
    jane = person(console, "jane")
    assert jane is not None
    assert (jane.role, jane.organization_id, jane.created_by) == (
        Role.MANAGER,
        console.org_id(),
        "maria (console)",
    )
    assert jane.password_hash and NEW_PASSWORD not in jane.password_hash
    page = manager.get(USERS)
    assert "Added manager jane (default)." in said(page)
    no_password_in(page)
    assert can_sign_in(console, "jane", NEW_PASSWORD)


@pytest.mark.parametrize("organization", ["", "other"])
def test_a_manager_cannot_add_a_user_elsewhere(
    console: Admin, manager: Browser, organization: str
) -> None:
    chosen = str(console.org_id("other")) if organization else ""

    assert add(manager, organization=chosen).status_code == 303

    jane = person(console, "jane")
    assert jane is not None and jane.organization_id == console.org_id()


def test_an_operator_adds_users_to_any_organisation_or_every_one(console: Admin) -> None:
    otto = signed_in(console, "otto")

    assert add(otto, name="olga", organization=str(console.org_id("other"))).status_code == 303
    assert add(otto, name="omar", role="manager", organization="").status_code == 303
    refused = add(otto, name="oz", organization="12345")

    olga, omar = person(console, "olga"), person(console, "omar")
    assert olga is not None and olga.organization_id == console.org_id("other")
    assert omar is not None and (omar.organization_id, omar.role) == (None, Role.MANAGER)
    assert refused.status_code == 400
    assert "Organization: choose one from the list." in said(refused)
    assert person(console, "oz") is None


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"password_again": "something else entirely"}, 400, "The two passwords differ"),
        ({"password": "short"}, 400, "password: at least 12 characters"),
        (
            {"name": "longenoughname", "password": "LongEnoughName"},
            400,
            "password: must not be the user name",
        ),
        ({"name": "Alice"}, 409, "there is a user 'alice' already"),
        ({"name": "jane doe"}, 400, "name: one word, without spaces"),
        ({"name": ""}, 400, "name: say whose account it is"),
        ({"role": "operator"}, 400, "Role: choose agent or manager."),
    ],
    ids=["mismatch", "short", "name-as-password", "taken", "space", "no-name", "role"],
)
def test_a_user_that_cannot_be_added_is_said_and_nothing_changes(
    console: Admin, manager: Browser, fields: dict[str, str], status: int, says: str
) -> None:
    before = everyone(console)

    response = add(manager, **fields)

    assert response.status_code == status
    assert says in said(response)
    assert "Nothing was changed." in said(response)
    assert everyone(console) == before
    no_password_in(response)
    assert fields.get("password", NEW_PASSWORD) not in response.get_data(as_text=True)


def test_a_form_without_its_csrf_token_adds_no_one(console: Admin, manager: Browser) -> None:
    manager.get(USERS)
    response = manager.post(
        USERS, {"name": "jane", "role": "agent", "password": NEW_PASSWORD, "csrf_token": None}
    )

    assert response.status_code == 400
    assert person(console, "jane") is None


# -- disabling, enabling, passwords --------------------------------------------------------------


def test_a_disabled_user_is_signed_out_and_cannot_sign_in_until_enabled(
    console: Admin, manager: Browser
) -> None:
    alice = signed_in(console, "alice")

    assert act(manager, "alice", "disable").status_code == 303

    assert "alice is disabled" in said(manager.get(USERS))
    assert "alice Agent default Disabled" in said(manager.get(USERS))
    assert alice.get("/console/").status_code == 302  # to the sign-in page
    assert not can_sign_in(console, "alice", PASSWORD)
    again = act(manager, "alice", "disable")
    assert again.status_code == 303
    assert "Nothing changed: alice was disabled already." in said(manager.get(USERS))

    assert act(manager, "alice", "enable").status_code == 303
    assert "alice is enabled" in said(manager.get(USERS))
    assert can_sign_in(console, "alice", PASSWORD)


def test_a_manager_cannot_disable_themself(console: Admin, manager: Browser) -> None:
    before = everyone(console)

    response = act(manager, "maria", "disable")

    assert response.status_code == 400
    assert "You cannot disable yourself" in said(response)
    assert everyone(console) == before
    assert manager.get(USERS).status_code == 200  # still signed in


@pytest.mark.parametrize("name", ["zed", "otto", "nobody"])
@pytest.mark.parametrize("what", ["disable", "enable", "password"])
def test_users_of_another_organisation_are_answered_as_no_user(
    console: Admin, manager: Browser, name: str, what: str
) -> None:
    before = everyone(console)
    fields: dict[str, Any] = {}
    if what == "password":
        fields = {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}

    response = act(manager, name, what, **fields)

    assert response.status_code == 404
    assert f"there is no user '{name}'" in said(response)
    assert everyone(console) == before
    if name != "nobody":
        assert can_sign_in(console, name, PASSWORD)


def test_a_new_password_ends_the_users_sessions(console: Admin, manager: Browser) -> None:
    alice = signed_in(console, "alice")

    response = act(manager, "alice", "password", password=NEW_PASSWORD, password_again=NEW_PASSWORD)

    assert response.status_code == 303
    no_password_in(response)
    page = manager.get(USERS)
    assert "A new password is set for alice; their sessions have ended." in said(page)
    no_password_in(page)
    assert alice.get("/console/").status_code == 302
    assert not can_sign_in(console, "alice", PASSWORD)
    assert can_sign_in(console, "alice", NEW_PASSWORD)


def test_a_new_password_typed_differently_twice_changes_nothing(
    console: Admin, manager: Browser
) -> None:
    before = everyone(console)

    response = act(
        manager, "alice", "password", password=NEW_PASSWORD, password_again=NEW_PASSWORD + "!"
    )

    assert response.status_code == 400
    assert "The two passwords differ" in said(response)
    no_password_in(response)
    assert everyone(console) == before
    assert can_sign_in(console, "alice", PASSWORD)


def test_a_managers_own_new_password_keeps_them_signed_in(console: Admin, manager: Browser) -> None:
    elsewhere = signed_in(console, "maria")

    response = act(manager, "maria", "password", password=NEW_PASSWORD, password_again=NEW_PASSWORD)

    assert response.status_code == 303
    assert manager.get(USERS).status_code == 200
    assert elsewhere.get(USERS).status_code == 302
    assert can_sign_in(console, "maria", NEW_PASSWORD)
