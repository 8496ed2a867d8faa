"""``optgate users``: the console's accounts from the command line."""

from __future__ import annotations

import io
import json

import pytest

from app.accounts import logins
from app.data.db import Database
from tests.test_cli import Run, cli_on

PASSWORD = "a long enough password"


@pytest.fixture
def optgate(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    return cli_on(clean_database_url, monkeypatch, capsys)


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    feed = io.StringIO()
    monkeypatch.setattr("sys.stdin", feed)
    return feed


def add(optgate: Run, stdin: io.StringIO, *args: str, password: str = PASSWORD) -> Run:
    stdin.seek(0)
    stdin.truncate()
    stdin.write(password + "\n")
    stdin.seek(0)
    return optgate("users", "add", *args, "--password-stdin")


@pytest.fixture
def organization(optgate: Run) -> None:
    assert optgate("lines", "add", "+14155550100", "--organization", "acme").code == 0


@pytest.mark.usefixtures("organization")
def test_add_list_disable_enable(optgate: Run, stdin: io.StringIO, clean_database_url: str) -> None:
    done = add(optgate, stdin, "Jane", "--role", "manager")
    assert done.code == 0, done.err
    assert done.out.strip() == "added manager jane (organization 'acme')"
    assert PASSWORD not in done.out + done.err
    assert add(optgate, stdin, "ops", "--role", "agent", "--all-organizations").code == 0

    rows = optgate("users", "list", "--json").json()
    assert [(r["name"], r["role"], r["organization"], r["state"]) for r in rows] == [
        ("jane", "manager", "acme", "active"),
        ("ops", "agent", "*", "active"),
    ]
    assert optgate("users", "disable", "jane").out.strip() == "disabled jane"
    assert optgate("users", "disable", "jane").out.strip() == "jane was disabled already"
    database = Database(clean_database_url)
    with database.transaction() as session, pytest.raises(logins.SignInRefused):
        logins.sign_in(session, "jane", PASSWORD, "127.0.0.1")
    assert optgate("users", "enable", "JANE").out.strip() == "enabled jane"
    with database.transaction() as session:
        assert logins.sign_in(session, "jane", PASSWORD, "127.0.0.1").name == "jane"
    database.dispose()


@pytest.mark.usefixtures("organization")
def test_a_new_password(optgate: Run, stdin: io.StringIO, clean_database_url: str) -> None:
    add(optgate, stdin, "jane", "--role", "agent")
    stdin.seek(0)
    stdin.truncate()
    stdin.write("another long password\n")
    stdin.seek(0)
    done = optgate("users", "password", "jane", "--password-stdin")
    assert done.code == 0 and "other sessions have ended" in done.out
    database = Database(clean_database_url)
    with database.transaction() as session:
        assert logins.sign_in(session, "jane", "another long password", "127.0.0.1")
    database.dispose()


@pytest.mark.usefixtures("organization")
@pytest.mark.parametrize(
    ("args", "password", "says"),
    [
        (["jane", "--role", "agent"], "short", "at least 12 characters"),
        (["jane", "--role", "agent"], "jane", "at least 12 characters"),
        (["jane", "--role", "agent"], "x" * 600, "at most 512"),
        (["jane doe", "--role", "agent"], PASSWORD, "one word"),
        (["jane\x00", "--role", "agent"], PASSWORD, "control characters"),
        (["u" * 121, "--role", "agent"], PASSWORD, "at most 120"),
        (["jane", "--role", "boss"], PASSWORD, "'boss' is not one of"),
        (["jane", "--role", "agent", "--organization", "nope"], PASSWORD, "no organization 'nope'"),
        (["jane", "--role", "agent", "--organization", "acme", "--all-organizations"], PASSWORD,
         "not both"),
    ],
)  # fmt: skip
def test_a_bad_account_is_one_line_and_adds_nothing(
    optgate: Run, stdin: io.StringIO, args: list[str], password: str, says: str
) -> None:
    done = add(optgate, stdin, *args, password=password)
    assert done.code == 1
    assert says in done.error_line
    assert password not in done.err or password == "jane"
    assert optgate("users", "list", "--json").json() == []


@pytest.mark.usefixtures("organization")
def test_a_taken_name_is_refused_before_the_password_is_asked(
    optgate: Run, stdin: io.StringIO
) -> None:
    add(optgate, stdin, "jane", "--role", "agent")
    stdin.seek(0)
    stdin.truncate()  # no password to read: asking for one would fail differently
    done = optgate("users", "add", "Jane", "--role", "manager")
    assert done.code == 1
    assert "there is a user 'jane' already" in done.error_line
    assert json.dumps(optgate("users", "list", "--json").json()).count("jane") == 1


def test_an_sso_user_has_no_password(optgate: Run, stdin: io.StringIO) -> None:
    done = optgate("users", "add", "sam", "--role", "agent", "--all-organizations", "--sso-only")
    assert done.code == 0, done.err
    [row] = optgate("users", "list", "--json").json()
    assert row["sign_in"] == "sso only"


def test_an_unknown_user(optgate: Run) -> None:
    done = optgate("users", "disable", "nobody")
    assert done.code == 1 and "there is no user 'nobody'" in done.error_line
