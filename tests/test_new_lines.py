"""A text to a number nobody added: registered where it belongs, or held for a person.

Wave 1 registered such a line in an organisation ``default`` that nobody had
asked for; every command without --organization then failed with "several
organizations". Now a new line joins OPTGATE_DEFAULT_ORGANIZATION when it is
set, else the only organisation there is; with none or several the text is
held (a provider does not send it again) and applied by `optgate lines add`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from app import create_app
from app.data.db import Database
from app.data.models import HeldText, Line, Message, Organization
from app.lines import get_or_create_organization
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS
from tests.test_cli import Run, cli_on
from tests.web.test_webhooks import Twilio, reply_of

LINE = "+14155550100"
CONTACT = "+14155550199"
STOP_SID = "SM" + "7" * 32


@dataclass
class Service:
    twilio: Twilio
    database: Database

    def organizations(self) -> list[str]:
        with self.database.transaction() as session:
            return list(session.scalars(sa.select(Organization.name).order_by(Organization.name)))

    def line_organization(self, line: str = LINE) -> str | None:
        with self.database.transaction() as session:
            return session.scalar(
                sa.select(Organization.name)
                .join(Line, Line.organization_id == Organization.id)
                .where(Line.address == line)
            )

    def count(self, table: type[object]) -> int:
        with self.database.transaction() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


@pytest.fixture
def build(
    make_settings: Callable[..., Settings], clean_database_url: str
) -> Iterator[Callable[..., Service]]:
    opened: list[tuple[Database, Database]] = []

    def make(*organizations: str, default_organization: str | None = None) -> Service:
        database = Database(clean_database_url)
        with database.transaction() as session:
            for name in organizations:
                get_or_create_organization(session, name)
        app = create_app(
            make_settings(database_url=clean_database_url, default_organization=None).replace(
                default_organization=default_organization
            )
        )
        opened.append((database, app.extensions["optgate.database"]))
        return Service(Twilio(app.test_client(), database), database)

    yield make
    for database, app_database in opened:
        database.dispose()
        app_database.dispose()


@pytest.fixture
def optgate(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("OPTGATE_KEYWORDS", str(SHIPPED_KEYWORDS))
    monkeypatch.delenv("OPTGATE_DEFAULT_ORGANIZATION", raising=False)
    return cli_on(clean_database_url, monkeypatch, capsys)


def test_a_text_to_a_new_line_joins_the_only_organization(build: Callable[..., Service]) -> None:
    service = build("acme")

    assert reply_of(service.twilio.text("HOURS", sender=CONTACT, to=LINE)) is not None

    assert service.line_organization() == "acme"
    assert service.organizations() == ["acme"]


def test_a_text_to_a_new_line_joins_the_organization_the_setting_names(
    build: Callable[..., Service],
) -> None:
    service = build("acme", "beta", default_organization="beta")

    service.twilio.text("hello", sender=CONTACT, to=LINE)

    assert service.line_organization() == "beta"


@pytest.mark.parametrize("organizations", [(), ("acme", "beta")], ids=["none", "several"])
def test_with_no_organization_to_join_a_stop_is_held_not_lost_and_nothing_is_created(
    build: Callable[..., Service], organizations: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    service = build(*organizations)

    with caplog.at_level(logging.WARNING, logger="optgate.inbound"):
        first = service.twilio.text("STOP", sender=CONTACT, to=LINE, message_id=STOP_SID)
        again = service.twilio.text("STOP", sender=CONTACT, to=LINE, message_id=STOP_SID)

    assert reply_of(first) is None and reply_of(again) is None  # answered 200, no reply
    assert service.organizations() == sorted(organizations)
    assert (service.count(Line), service.count(Message), service.count(HeldText)) == (0, 0, 1)
    [record] = [r for r in caplog.records if r.name == "optgate.inbound"][:1]
    assert "held a text to line" in record.getMessage()
    assert "optgate lines add" in record.getMessage()


def test_lines_add_applies_the_held_stop_and_says_so(
    build: Callable[..., Service], optgate: Run
) -> None:
    service = build("acme", "beta")
    service.twilio.text("STOP", sender=CONTACT, to=LINE, message_id=STOP_SID)
    service.twilio.text("HELP", sender=CONTACT, to=LINE)
    assert optgate("lines", "held").code == 0
    assert optgate.out.startswith(f"{LINE:<16} 2 texts (")

    assert optgate("lines", "add", LINE, "--organization", "acme").code == 0

    assert optgate.out == (
        f"added line {LINE} in organization 'acme'\napplied 2 held texts to it (1 asked to stop)\n"
    )
    assert service.count(HeldText) == 0
    assert optgate("consent", "show", CONTACT, "--organization", "acme", "--json").code == 0
    [entry] = optgate.json()["lines"]
    assert (entry["line"], entry["status"], entry["source"]) == (LINE, "opted_out", "keyword")
    # The texts are kept as if they had come now; a late retry of the STOP changes nothing.
    assert service.count(Message) == 2
    service.twilio.text("STOP", sender=CONTACT, to=LINE, message_id=STOP_SID)
    assert service.count(Message) == 2
    assert optgate("lines", "held").out.startswith("no texts are held")


def test_lines_add_without_an_organization_needs_one_when_there_are_several(
    build: Callable[..., Service], optgate: Run
) -> None:
    build("acme", "beta")

    assert optgate("lines", "add", LINE).code == 1

    assert optgate.error_line == (
        "error: there are several organizations (acme, beta): name one with --organization"
    )


def test_lines_add_on_a_new_database_creates_organization_default(optgate: Run) -> None:
    assert optgate("lines", "add", LINE).code == 0
    assert optgate.out == f"added line {LINE} in organization 'default'\n"
    assert optgate("lines", "add", "+14155550101").code == 0  # the only one now
    assert "organization 'default'" in optgate.out
