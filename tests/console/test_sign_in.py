"""Signing in and out, sessions, CSRF, the waits after failed tries, SSO, headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.accounts import logins, users
from app.data.models import LoginFailure, User, utcnow
from app.settings import Settings
from tests.console.console import PASSWORD, Browser, open_console, signed_in, text_of
from tests.web.admin import CONTACT, Admin

PAGE = f"/console/contacts/{CONTACT}"


def test_a_visitor_is_sent_to_sign_in_and_back(console: Admin) -> None:
    browser = Browser(console.app.test_client())
    response = browser.get(PAGE)
    assert response.status_code == 302
    assert "/console/login?next=" in response.headers["Location"]
    browser.get(response.headers["Location"])
    done = browser.post("/console/login", {"name": "Alice", "password": PASSWORD, "next": PAGE})
    assert done.status_code == 303 and done.headers["Location"].endswith(PAGE)
    assert browser.get(PAGE).status_code == 200


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil", "/api/v1/x"]
)
def test_after_sign_in_only_a_console_page_is_a_destination(console: Admin, target: str) -> None:
    browser = Browser(console.app.test_client())
    browser.get("/console/login")
    done = browser.post("/console/login", {"name": "alice", "password": PASSWORD, "next": target})
    assert done.headers["Location"].endswith("/console/")


@pytest.mark.parametrize(
    ("name", "password"),
    [("alice", "wrong password!"), ("nobody", PASSWORD), ("alice", ""), ("a\x00", "x" * 5000)],
)
def test_a_wrong_sign_in_says_the_same_whatever_was_wrong(
    console: Admin, name: str, password: str
) -> None:
    browser = Browser(console.app.test_client())
    browser.get("/console/login")
    response = browser.post("/console/login", {"name": name, "password": password})
    assert response.status_code == 401
    assert "do not match an active account" in text_of(response)
    assert browser.get(PAGE).status_code == 302


def test_a_disabled_user_cannot_sign_in_and_their_session_ends(console: Admin) -> None:
    alice = signed_in(console, "alice")
    with console.database.transaction() as session:
        users.disable(session, users.find_user(session, "alice"))
    assert alice.get(PAGE).status_code == 302
    again = Browser(console.app.test_client()).sign_in("alice")
    assert again.status_code == 401


def test_a_new_password_ends_the_other_sessions(console: Admin) -> None:
    alice = signed_in(console, "alice")
    with console.database.transaction() as session:
        users.set_password(session, users.find_user(session, "alice"), "a new long password")
    assert alice.get(PAGE).status_code == 302
    assert (
        Browser(console.app.test_client()).sign_in("alice", "a new long password").status_code
        == 303
    )


def test_sign_out_ends_the_session(agent: Browser) -> None:
    assert agent.post("/console/logout").status_code == 303
    assert agent.get(PAGE).status_code == 302


def test_a_form_without_its_csrf_token_is_refused(console: Admin, agent: Browser) -> None:
    response = agent.post(
        f"{PAGE}/consent",
        {
            "csrf_token": None,
            "seen": "0",
            "status": "opted_out",
            "channel": "sms",
            "where": "organization",
        },
    )
    assert response.status_code == 400
    assert "This form has expired" in text_of(response)
    forged = agent.post(
        f"{PAGE}/consent",
        {
            "csrf_token": "forged",
            "seen": "0",
            "status": "opted_out",
            "channel": "sms",
            "where": "organization",
        },
    )
    assert forged.status_code == 400
    assert console.events() == []


def test_another_sessions_token_is_refused(console: Admin) -> None:
    alice, maria = signed_in(console, "alice"), signed_in(console, "maria")
    maria.get(PAGE)
    alice.token = maria.token
    response = alice.post("/console/logout")
    assert response.status_code == 400


def test_failed_tries_make_the_next_wait(console: Admin) -> None:
    browser = Browser(console.app.test_client())
    for _ in range(logins.FREE_PER_ACCOUNT):
        assert browser.sign_in("alice", "wrong password!").status_code == 401
    response = browser.sign_in("alice", PASSWORD)  # right, but too soon
    assert response.status_code == 429
    assert "try again in 1 second" in text_of(response)
    assert response.headers["Retry-After"] == "1"
    # Another account from elsewhere is not slowed by alice's.
    assert Browser(console.app.test_client()).sign_in("maria").status_code == 303


def test_the_waits_double(console: Admin) -> None:
    now = utcnow()
    tries = logins.FREE_PER_ACCOUNT + 3
    with console.database.transaction() as session:
        for _ in range(tries):
            with pytest.raises(logins.SignInRefused):
                logins.sign_in(session, "alice", "wrong", "10.0.0.1", now=now)
            last = now
            now += timedelta(minutes=5)  # long enough for every wait, within the hour
        assert session.get(LoginFailure, "user:alice").failures == tries
        with pytest.raises(logins.SignInThrottled) as waiting:
            logins.sign_in(session, "alice", PASSWORD, "10.0.0.1", now=last + timedelta(seconds=1))
        assert waiting.value.retry_after == 2**3 - 1
        assert logins.sign_in(
            session, "alice", PASSWORD, "10.0.0.1", now=last + timedelta(seconds=8)
        )
    assert [logins.wait_needed(n, 5).total_seconds() for n in (4, 5, 6, 7)] == [0, 1, 2, 4]
    assert logins.wait_needed(100, 5) == logins.MOST_WAIT


def test_failures_are_forgotten_an_hour_after_the_last(console: Admin) -> None:
    now = utcnow()
    with console.database.transaction() as session:
        for _ in range(logins.FREE_PER_ACCOUNT + 3):
            with pytest.raises(logins.SignInRefused):
                logins.sign_in(session, "alice", "wrong", "10.0.0.1", now=now)
            now += logins.FORGET_AFTER + timedelta(seconds=1)
        assert session.get(LoginFailure, "user:alice").failures == 1


def test_one_address_trying_many_accounts_is_slowed(console: Admin) -> None:
    now = utcnow()
    with console.database.transaction() as session:
        for number in range(logins.FREE_PER_ADDRESS):
            with pytest.raises(logins.SignInRefused):
                logins.sign_in(session, f"guess{number}", "wrong", "10.9.9.9", now=now)
        with pytest.raises(logins.SignInThrottled):
            logins.sign_in(session, "alice", PASSWORD, "10.9.9.9", now=now)
        assert logins.sign_in(session, "alice", PASSWORD, "10.1.1.1", now=now).name == "alice"


def test_a_success_forgets_the_accounts_failures(console: Admin) -> None:
    with console.database.transaction() as session:
        with pytest.raises(logins.SignInRefused):
            logins.sign_in(session, "alice", "wrong", "10.0.0.2")
        logins.sign_in(session, "alice", PASSWORD, "10.0.0.2")
        assert session.get(LoginFailure, "user:alice") is None
        user = session.scalars(sa.select(User).where(User.name == "alice")).one()
        assert user.last_login_at is not None


def test_passwords_are_stored_as_argon2id(console: Admin) -> None:
    with console.database.transaction() as session:
        stored = users.find_user(session, "alice").password_hash
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(console: Admin) -> None:
    client = console.app.test_client()
    client.get("/console/login")
    cookie = client.get_cookie("optgate_session", path="/console")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure
    secure = console.app.test_client()
    response = secure.get("/console/login", base_url="https://sms.example.com")
    assert "Secure" in response.headers["Set-Cookie"]


def test_pages_forbid_inline_script_and_caching(agent: Browser) -> None:
    response = agent.get(PAGE)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html


def test_the_api_and_webhooks_need_no_csrf_token(console: Admin) -> None:
    # The console's CSRF check must not reach the other blueprints.
    console.text("STOP")
    assert len(console.events()) == 1


def test_without_a_secret_key_the_console_is_off(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> None:
    from tests.web.admin import open_admin

    for admin in open_admin(make_settings, clean_database_url, redis_url):
        response = admin.client.get("/console/login")
        assert response.status_code == 503
        assert "OPTGATE_SECRET_KEY" in text_of(response)


@pytest.fixture
def sso(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    yield from open_console(
        make_settings, clean_database_url, redis_url, console_user_header="X-Forwarded-User"
    )


def test_behind_sso_the_proxys_user_is_believed(sso: Admin) -> None:
    client = sso.app.test_client()
    assert client.get(PAGE, headers={"X-Forwarded-User": "maria"}).status_code == 200
    stranger = client.get(PAGE, headers={"X-Forwarded-User": "mallory"})
    assert stranger.status_code == 403 and "optgate users add" in text_of(stranger)
    # No header: no password form either, only the word to sign in through SSO.
    login = client.get(client.get(PAGE).headers["Location"])
    assert "single sign-on" in text_of(login) and 'type="password"' not in login.get_data(
        as_text=True
    )
    with sso.database.transaction() as session:
        users.disable(session, users.find_user(session, "maria"))
    assert client.get(PAGE, headers={"X-Forwarded-User": "maria"}).status_code == 403


def test_without_the_sso_setting_the_header_means_nothing(console: Admin) -> None:
    client = console.app.test_client()
    assert client.get(PAGE, headers={"X-Forwarded-User": "maria"}).status_code == 302
