"""What the console tests share: the admin API's app (tests/web/admin.py) with a
secret key, its users, and a test client that signs in and sends each form's CSRF token.

Users (password PASSWORD):
- alice, agent of "default"; maria, manager of "default";
- otto, manager of every organization (an operator);
- zed, agent of "other", which has the line +14155550177.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.accounts import users
from app.addresses import normalize_line
from app.data.models import Organization
from app.lines import add_line, get_or_create_organization
from app.settings import Role, Settings
from tests.web.admin import Admin, open_admin

SECRET_KEY = "k" * 48
PASSWORD = "correct horse battery"
OTHER_LINE = "+14155550177"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SEEN = re.compile(r'name="seen" value="([0-9]+)"')


def add_users(admin: Admin, *, other: bool = True) -> None:
    """The users above; without ``other``, neither that organisation nor zed."""
    with admin.database.transaction() as session:
        default = session.query(Organization).filter_by(name="default").one()
        people: list[tuple[str, Role, Organization | None]] = [
            ("alice", Role.AGENT, default),
            ("maria", Role.MANAGER, default),
            ("otto", Role.MANAGER, None),
        ]
        if other:
            second = get_or_create_organization(session, "other")
            add_line(session, normalize_line(OTHER_LINE), second, name="Other's line")
            people.append(("zed", Role.AGENT, second))
        for name, role, org in people:
            users.add_user(session, name, role, org, PASSWORD, "test")


def open_console(
    make_settings: Callable[..., Settings],
    database_url: str,
    redis_url: str,
    *,
    other: bool = True,
    **settings: Any,
) -> Iterator[Admin]:
    """``open_admin`` with the console on (a secret key) and the users above."""
    for admin in open_admin(
        make_settings, database_url, redis_url, secret_key=SECRET_KEY, **settings
    ):
        add_users(admin, other=other)
        yield admin


@dataclass
class Browser:
    """A test client that behaves like a browser on the console's forms."""

    client: FlaskClient
    token: str = ""
    last: TestResponse | None = field(default=None, repr=False)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        response = self.client.get(path, **kwargs)
        self._remember(response)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        """POST a form with the CSRF token of the last page (``csrf_token=None``: without)."""
        form = dict(data or {})
        if "csrf_token" not in form:
            form["csrf_token"] = self.token or self._fresh_token()
        elif form["csrf_token"] is None:
            del form["csrf_token"]
        response = self.client.post(path, data=form, **kwargs)
        self._remember(response)
        return response

    def change(self, address: str, what: str = "consent", **fields: str) -> TestResponse:
        """Post one of the contact page's forms (``what``: consent or flags) as drawn now."""
        page = self.get(f"/console/contacts/{address}")
        assert page.status_code == 200, page.get_data(as_text=True)
        seen = _SEEN.search(page.get_data(as_text=True))
        assert seen, "the contact page has no form"
        return self.post(f"/console/contacts/{address}/{what}", {"seen": seen.group(1), **fields})

    def sign_in(self, name: str, password: str = PASSWORD) -> TestResponse:
        self.get("/console/login")
        return self.post("/console/login", {"name": name, "password": password})

    def _fresh_token(self) -> str:
        self.get("/console/login")
        return self.token

    def _remember(self, response: TestResponse) -> None:
        self.last = response
        if response.mimetype == "text/html":
            found = _TOKEN.search(response.get_data(as_text=True))
            if found:
                self.token = found.group(1)


def signed_in(admin: Admin, name: str) -> Browser:
    browser = Browser(admin.app.test_client())
    response = browser.sign_in(name)
    assert response.status_code == 303, response.get_data(as_text=True)
    browser.get(response.headers["Location"])  # a sign-in starts a new session and token
    return browser


def text_of(response: TestResponse) -> str:
    """The page's text without tags, spaces collapsed (what a person reads)."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())
