"""What optgate answers a contact must be true and must reach them.

- The one confirmation of an opt-out, and the answer to HELP, are never held back by the
  reply-loop limit (on a short code nobody else would send them).
- A number on do-not-contact is never told it is subscribed: nothing will be sent to it.
- With ``opt_out_scope: organization`` a STOP stops every line, and a START starts only
  the line it was texted to (and its Messaging Service): consent is not widened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.addresses import normalize
from app.consent import ledger
from app.consent.values import Flag, Source
from app.data.db import Database
from app.data.models import Organization
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS
from tests.web.test_webhooks import Twilio, reply_of

SHORT_CODE = "12345"
LINE_A, LINE_B = "+14155550100", "+14155550101"
CONTACT = "+14155550199"


@pytest.fixture
def build(
    make_settings: Callable[..., Settings], clean_database_url: str
) -> Iterator[Callable[..., Twilio]]:
    apps: list[Flask] = []
    database = Database(clean_database_url)

    def make(**values: object) -> Twilio:
        app = create_app(make_settings(database_url=clean_database_url, **values))
        apps.append(app)
        return Twilio(app.test_client(), database)

    yield make
    for app in apps:
        app.extensions["optgate.database"].dispose()
    database.dispose()


def flag(twilio: Twilio, name: Flag) -> None:
    with twilio.database.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        ledger.set_flag(
            session,
            ledger.FlagChange(org.id, normalize(CONTACT), name, True, Source.MANUAL, "alice"),
        )


@pytest.mark.parametrize(
    ("text", "says"), [("STOP", "You are unsubscribed"), ("HELP", "For help call")]
)
def test_the_reply_loop_limit_never_holds_back_an_opt_out_confirmation_or_help(
    build: Callable[..., Twilio], text: str, says: str
) -> None:
    twilio = build(reply_limit_per_hour="2")
    for _ in range(2):
        assert reply_of(twilio.text("HOURS", to=SHORT_CODE)) is not None
    assert reply_of(twilio.text("HOURS", to=SHORT_CODE)) is None  # the limit holds

    answer = reply_of(twilio.text(text, to=SHORT_CODE))

    assert answer is not None and says in answer


def test_a_topic_stop_is_confirmed_past_the_limit_too(build: Callable[..., Twilio]) -> None:
    twilio = build(reply_limit_per_hour="1")
    twilio.text("HOURS", to=SHORT_CODE)

    answer = reply_of(twilio.text("STOP PRICE DROP", to=SHORT_CODE))

    assert answer is not None and "Price Reduction" in answer


@pytest.mark.parametrize("text", ["START", "JOIN", "START PRICE DROP", "HOURS"])
def test_a_number_on_do_not_contact_is_never_told_it_is_subscribed(
    build: Callable[..., Twilio], text: str
) -> None:
    twilio = build()
    twilio.text("hello", to=SHORT_CODE)  # the line, the organisation
    flag(twilio, Flag.DO_NOT_CONTACT)

    assert reply_of(twilio.text(text, to=SHORT_CODE)) is None


def test_a_number_on_do_not_contact_still_gets_its_stop_confirmed(
    build: Callable[..., Twilio],
) -> None:
    twilio = build()
    twilio.text("hello", to=SHORT_CODE)
    flag(twilio, Flag.DO_NOT_CONTACT)

    answer = reply_of(twilio.text("STOP", to=SHORT_CODE))

    assert answer is not None and "unsubscribed" in answer


def test_with_organization_scope_a_start_starts_only_the_line_it_was_texted_to(
    build: Callable[..., Twilio], tmp_path: Path
) -> None:
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text(
        SHIPPED_KEYWORDS.read_text().replace("opt_out_scope: line", "opt_out_scope: organization")
    )
    twilio = build(keywords_path=keywords)
    twilio.text("hello", to=LINE_B)
    twilio.text("STOP", to=LINE_A)
    assert [twilio.status_of(line=line) for line in (LINE_A, LINE_B)] == ["opted_out"] * 2

    twilio.text("START", to=LINE_A)

    assert twilio.status_of(line=LINE_A) == "opted_in"
    assert twilio.status_of(line=LINE_B) == "opted_out"


@pytest.mark.parametrize("text", ["STOP", "Stop", " stop ", "START", "help"])
def test_what_twilio_itself_answers_on_a_long_code_gets_no_second_answer(
    build: Callable[..., Twilio], text: str
) -> None:
    assert reply_of(build().text(text, to=LINE_A)) is None


@pytest.mark.parametrize(
    "text", ["STOP!", "S T O P", "STOP ALL", "\uff33\uff34\uff2f\uff30", "stop."]
)
def test_a_stop_twilio_does_not_match_exactly_is_confirmed_by_optgate(
    build: Callable[..., Twilio], text: str
) -> None:
    """Twilio's filter takes the whole text as one of its words, nothing more; optgate
    reads these as STOP too, and nobody else would confirm them."""
    twilio = build()

    answer = reply_of(twilio.text(text, to=LINE_A))

    assert answer is not None and "You are unsubscribed" in answer
    assert twilio.status_of(line=LINE_A) == "opted_out"
