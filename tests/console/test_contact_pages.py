"""The console's contact pages: find, preferences, flags, history, messages.

Every change is checked in the database (the ledger's events), not only on the
page, and every refusal is checked to have changed nothing.
"""

from __future__ import annotations

import csv
import io

import pytest

from app.consent.values import Flag, Source
from app.data.models import MessageStatus
from tests.conftest import add_message
from tests.console.console import OTHER_LINE, Browser, signed_in, text_of
from tests.web.admin import CONTACT, LINE_A, LINE_B, LINE_C, Admin

PAGE = f"/console/contacts/{CONTACT}"


@pytest.mark.parametrize(
    "typed",
    [
        "(415) 555-0199",
        "+1 415 555 0199",
        "4155550199",
        "+1 (415) 555-0199",
        "４１５５５５０１９９",
    ],
)
def test_a_number_in_any_written_form_finds_the_contact(agent: Browser, typed: str) -> None:
    response = agent.get("/console/", query_string={"q": typed})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/console/contacts/{CONTACT}")


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("415-555", "is not a valid"),
        ("call me", "is not a valid"),
        ("+1415\x005550199", "control character"),
        ("9" * 5000, "is not a valid"),
        ("", "empty"),
    ],
)
def test_what_is_not_a_number_is_said_on_the_page(agent: Browser, typed: str, words: str) -> None:
    response = agent.get("/console/", query_string={"q": typed})
    assert response.status_code == 400
    assert words in text_of(response)
    assert "Type a phone number" in text_of(response)
    assert len(response.get_data()) < 20_000  # a long input is not echoed whole


def test_an_unknown_contact_is_not_defined_on_every_line(agent: Browser) -> None:
    html = agent.get(PAGE).get_data(as_text=True)
    text = text_of(agent.get(PAGE))
    assert "Overall: Unknown" in text
    assert html.count('"state not_defined"') == 2 * 3  # SMS and phone calls, on three lines
    assert "+1 415-555-0100" in text and "Main" in text and "group west" in text


def test_a_keyword_stop_shows_on_its_line_only(console: Admin, agent: Browser) -> None:
    console.contact_stop(LINE_A)
    html = agent.get(PAGE).get_data(as_text=True)
    assert "Overall: Opted out" in text_of(agent.get(PAGE)) and "keyword" in html
    assert html.count('"state not_defined"') == 2 * 3 - 1
    assert html.count('"state opted_out"') == 2  # the line's SMS, and the overall state


def test_an_agent_unticks_sms_for_one_line_and_is_the_actor(console: Admin, agent: Browser) -> None:
    response = agent.change(
        CONTACT, status="opted_out", channel="sms", where=f"line:{console.line_id(LINE_B)}"
    )
    assert response.status_code == 303
    [event] = console.events()
    assert (event.new_value, event.source, event.actor) == (
        "opted_out",
        Source.MANUAL,
        "alice (console)",
    )
    assert event.line_id == console.line_id(LINE_B)
    page = text_of(agent.get(response.headers["Location"]))
    assert "Opted out: SMS on line +1 415-555-0101." in page

    again = agent.change(
        CONTACT, status="opted_out", channel="sms", where=f"line:{console.line_id(LINE_B)}"
    )
    assert again.status_code == 303
    assert "Nothing changed" in text_of(agent.get(again.headers["Location"]))
    assert len(console.events()) == 1


def test_an_actor_typed_into_the_form_is_ignored(console: Admin, agent: Browser) -> None:
    agent.change(CONTACT, status="opted_out", channel="all", where="organization", actor="mallory")
    [event] = console.events()
    assert event.actor == "alice (console)"


def test_an_agent_may_not_opt_in(console: Admin, agent: Browser) -> None:
    response = agent.change(CONTACT, status="opted_in", channel="sms", where="organization")
    assert response.status_code == 403
    assert "opting in needs a manager" in text_of(response)
    assert console.events() == []


def test_staff_cannot_lift_a_keyword_opt_out_and_the_page_says_what_would(
    console: Admin, manager: Browser
) -> None:
    console.contact_stop(LINE_A)
    before = len(console.events())
    response = manager.change(
        CONTACT, status="opted_in", channel="sms", where=f"line:{console.line_id(LINE_A)}"
    )
    assert response.status_code == 409
    text = text_of(response)
    assert "START" in text and "+1 415-555-0100" in text.replace("+14155550100", "+1 415-555-0100")
    assert "<html" in response.get_data(as_text=True)  # the whole page, not a bare error
    assert len(console.events()) == before


def test_a_refusal_through_htmx_is_the_preferences_part_alone(
    console: Admin, manager: Browser
) -> None:
    console.contact_stop(LINE_A)
    page = manager.get(PAGE).get_data(as_text=True)
    seen = page.split('name="seen" value="')[1].split('"')[0]
    response = manager.post(
        f"{PAGE}/consent",
        {
            "seen": seen,
            "status": "opted_in",
            "channel": "sms",
            "where": f"line:{console.line_id(LINE_A)}",
        },
        headers={"HX-Request": "true"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert html.lstrip().startswith('<section id="preferences"') or 'id="preferences"' in html
    assert "<html" not in html
    assert "START" in html


def test_a_change_through_htmx_redraws_the_part_in_place(console: Admin, agent: Browser) -> None:
    page = agent.get(PAGE).get_data(as_text=True)
    seen = page.split('name="seen" value="')[1].split('"')[0]
    response = agent.post(
        f"{PAGE}/consent",
        {"seen": seen, "status": "opted_out", "channel": "voice", "where": "organization"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and "Opted out: Phone calls on every line of default." in html
    assert 'name="seen" value="1"' in html  # the redrawn forms carry the new position


def test_a_form_drawn_before_another_change_is_refused(console: Admin, agent: Browser) -> None:
    page = agent.get(PAGE).get_data(as_text=True)
    seen = page.split('name="seen" value="')[1].split('"')[0]
    console.contact_stop(LINE_C)  # the contact texts STOP meanwhile
    response = agent.post(
        f"{PAGE}/consent",
        {"seen": seen, "status": "opted_out", "channel": "sms", "where": "organization"},
    )
    assert response.status_code == 400
    assert "changed since the page was drawn" in text_of(response)
    assert len(console.events()) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "maybe", "channel": "sms", "where": "organization"},
        {"status": "opted_out", "channel": "email", "where": "organization"},
        {"status": "opted_out", "channel": "sms", "where": "line:999999"},
        {"status": "opted_out", "channel": "sms", "where": "line:abc"},
        {"status": "opted_out", "channel": "sms", "where": "organization", "topic": "nope"},
        {"status": "opted_out", "channel": "sms", "where": "organization", "reason": "x\x00y"},
        {"status": "opted_out", "channel": "sms", "where": "organization", "reason": "r" * 501},
    ],
)
def test_bad_fields_are_said_and_change_nothing(
    console: Admin, agent: Browser, fields: dict[str, str]
) -> None:
    response = agent.change(CONTACT, **fields)
    assert response.status_code == 400, text_of(response)
    assert "<html" in response.get_data(as_text=True)
    assert console.events() == []


def test_another_organizations_line_is_no_choice(console: Admin) -> None:
    zed = signed_in(console, "zed")  # an agent of "other"
    text = text_of(zed.get(PAGE))
    assert "+1 415-555-0177" in text and "+1 415-555-0100" not in text
    response = zed.change(
        CONTACT, status="opted_out", channel="sms", where=f"line:{console.line_id(LINE_A)}"
    )
    assert response.status_code == 400
    assert console.events() == []
    zed.change(
        CONTACT, status="opted_out", channel="sms", where=f"line:{console.line_id(OTHER_LINE)}"
    )
    [event] = console.events()
    assert event.organization_id == console.org_id("other")
    assert "Not defined" in text_of(signed_in(console, "alice").get(PAGE))


def test_do_not_contact_asks_once_more_then_holds(console: Admin, agent: Browser) -> None:
    first = agent.change(CONTACT, "flags", action="do-not-contact", reason="asked on the phone")
    assert first.status_code == 200
    assert "permanent" in text_of(first)
    assert console.events() == []

    page = first.get_data(as_text=True)
    seen = page.split('name="seen" value="')[1].split('"')[0]
    done = agent.post(
        f"{PAGE}/flags",
        {"seen": seen, "action": "do-not-contact", "confirm": "yes", "reason": "asked"},
    )
    assert done.status_code == 303
    [event] = console.events()
    assert (event.subject, event.new_value, event.actor) == (
        "do_not_contact",
        "set",
        "alice (console)",
    )
    assert "Overall: Opted out" in text_of(agent.get(PAGE))


def test_agents_silence_but_only_managers_lift_it_or_clear_a_bounce(
    console: Admin, agent: Browser, manager: Browser
) -> None:
    assert agent.change(CONTACT, "flags", action="silence").status_code == 303
    assert agent.change(CONTACT, "flags", action="unsilence").status_code == 403
    assert manager.change(CONTACT, "flags", action="unsilence").status_code == 303
    console.set_flag(Flag.BOUNCED)
    assert agent.change(CONTACT, "flags", action="clear-bounce").status_code == 403
    assert manager.change(CONTACT, "flags", action="clear-bounce").status_code == 303
    assert [(e.subject, e.new_value) for e in console.events()] == [
        ("silenced", "set"),
        ("silenced", "clear"),
        ("bounced", "set"),
        ("bounced", "clear"),
    ]


def test_history_shows_who_and_downloads_as_csv(console: Admin, agent: Browser) -> None:
    console.contact_stop(LINE_A)
    agent.change(
        CONTACT, status="opted_out", channel="all", where="organization", reason="=HYPERLINK(1)"
    )
    text = text_of(agent.get(f"{PAGE}/history"))
    assert "alice (console)" in text and "keyword" in text and "Opted out" in text
    assert text.index("alice (console)") < text.index("keyword")  # newest first

    response = agent.get(f"{PAGE}/history.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["actor"] for row in rows] == [CONTACT, "alice (console)"]
    assert rows[1]["reason"] == "'=HYPERLINK(1)"


def test_history_pages(console: Admin, agent: Browser) -> None:
    for _ in range(30):
        agent.change(CONTACT, "flags", action="silence")
        signed_in(console, "maria").change(CONTACT, "flags", action="unsilence")
    first = text_of(agent.get(f"{PAGE}/history"))
    assert "Page 1 of 2" in first and "60 in all" in first
    second = agent.get(f"{PAGE}/history", query_string={"page": "2"})
    assert text_of(second).count("silenced") == 10
    assert agent.get(f"{PAGE}/history", query_string={"page": "x"}).status_code == 200


def test_messages_say_why_a_text_did_not_go(console: Admin, agent: Browser) -> None:
    from app.data.models import Direction

    add_message(
        console.database,
        LINE_A,
        direction=Direction.OUTBOUND,
        address=CONTACT,
        body="Big sale <b>today</b>",
        status=MessageStatus.BLOCKED,
        block_reason="opted_out",
    )
    console.inbound("STOP", needs_review=False)
    html = agent.get(f"{PAGE}/messages").get_data(as_text=True)
    assert "the recipient opted out of texts from this line" in html
    assert "Big sale &lt;b&gt;today&lt;/b&gt;" in html  # escaped, never markup
    assert "from the contact" in html


def test_an_email_address_has_its_own_channel(console: Admin, agent: Browser) -> None:
    response = agent.get("/console/", query_string={"q": "Jane@Example.com"})
    page = agent.get(response.headers["Location"])
    assert page.status_code == 200
    assert "Email" in text_of(page)
    done = agent.change(
        "jane@example.com", status="opted_out", channel="email", where="organization"
    )
    assert done.status_code == 303
    assert console.events("jane@example.com")[0].channel == "email"


def test_nothing_opts_in_against_do_not_contact(console: Admin, manager: Browser) -> None:
    console.set_flag(Flag.DO_NOT_CONTACT, Source.MANUAL)
    before = len(console.events())
    response = manager.change(CONTACT, status="opted_in", channel="sms", where="organization")
    assert response.status_code == 409
    assert "do not contact" in text_of(response).lower()
    assert len(console.events()) == before
