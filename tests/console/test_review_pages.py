"""The console's review queue and keyword tester.

Every resolution is checked in the database (the message's outcome, the ledger's
events), and every refusal is checked to have changed nothing.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from app.consent.values import OVERALL
from app.data.models import ConsentEvent, Message
from app.web.console import review as review_view
from tests.console.console import OTHER_LINE, Browser, text_of
from tests.web.admin import CONTACT, GROUP, LINE_A, LINE_B, Admin

QUEUE = "/console/review"
STOP_REPLY = (
    "Acme Motors: You are unsubscribed and will receive no more messages. "
    "Reply START to resubscribe."
)


def said(response: Any) -> str:
    """What the page says, entities read (&#39; is ')."""
    return html.unescape(text_of(response))


def resolve(browser: Browser, text_id: int, **fields: str) -> Any:
    """Post a text's form as a person would: from the queue page (its CSRF token)."""
    browser.get(QUEUE)
    return browser.post(f"{QUEUE}/{text_id}", {"resolution": "opt_out", **fields})


def outcome(console: Admin, text_id: int) -> tuple[str | None, str | None]:
    message = console.message(text_id)
    return message.review_outcome, message.reviewed_by


# -- the queue ------------------------------------------------------------------------------


def test_waiting_texts_show_sender_line_time_and_body_oldest_first(
    console: Admin, agent: Browser
) -> None:
    first = console.inbound("please don't text me anymore")
    second = console.inbound("wrong number", sender="+14155550188", line=LINE_B)
    console.inbound("thanks", needs_review=False)

    response = agent.get(QUEUE)

    assert response.status_code == 200
    text = said(response)
    assert text.index(f"Text {first} from +1 415-555-0199") < text.index(
        f"Text {second} from +1 415-555-0188"
    )
    assert "please don't text me anymore" in text and "wrong number" in text
    assert "To line +1 415-555-0101" in text
    assert "thanks" not in text
    page = response.get_data(as_text=True)
    assert f'href="/console/contacts/{CONTACT}"' in page
    assert f'action="/console/review/{first}"' in page
    # Looking changes nothing.
    assert console.count(ConsentEvent) == 0


def test_an_agent_opts_the_sender_out_and_is_recorded_as_who(
    console: Admin, agent: Browser
) -> None:
    text_id = console.inbound("please don't text me anymore")

    response = resolve(agent, text_id, reason="asked in words")

    assert response.status_code == 303
    assert response.headers["Location"].endswith(QUEUE)
    assert outcome(console, text_id) == ("opt_out", "alice (console)")
    [event] = console.events()
    assert (event.new_value, event.source.value, event.actor) == (
        "opted_out",
        "manual",
        "alice (console)",
    )
    assert (event.message_id, event.reason, event.topic) == (text_id, "asked in words", OVERALL)
    after = agent.get(QUEUE)
    assert f"Text {text_id}: the sender is opted out" in said(after)
    assert "No text is waiting for review" in said(after)
    resolved = said(agent.get(QUEUE, query_string={"state": "resolved"}))
    assert "please don't text me anymore" in resolved
    assert "Opted out alice (console)" in resolved


def test_an_opt_out_of_one_topic(console: Admin, agent: Browser) -> None:
    text_id = console.inbound("no more price texts please")

    assert resolve(agent, text_id, topic="price_drop").status_code == 303

    [event] = console.events()
    assert (event.topic, event.new_value) == ("price_drop", "opted_out")
    assert "the topic Price Reduction notifications" in said(agent.get(QUEUE))


def test_dismissing_changes_no_consent_even_with_a_topic_chosen(
    console: Admin, agent: Browser
) -> None:
    text_id = console.inbound("stopp")

    response = resolve(agent, text_id, resolution="dismissed", topic="price_drop")

    assert response.status_code == 303
    assert outcome(console, text_id) == ("dismissed", "alice (console)")
    assert console.count(ConsentEvent) == 0
    assert f"Text {text_id} dismissed: no consent changed." in said(agent.get(QUEUE))


def test_the_opt_out_waits_for_hand_offs_after_its_commit(
    console: Admin, agent: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    text_id = console.inbound("please stop")
    seen: list[tuple[int, str, str | None]] = []

    def waited(database: Any, organization_id: int, address: str) -> None:
        # Another connection already sees the resolution: the commit came first.
        seen.append((organization_id, address, console.message(text_id).review_outcome))

    monkeypatch.setattr(review_view.handoff, "wait_for_hand_offs", waited)
    resolve(agent, text_id)
    resolve(agent, console.inbound("stopp"), resolution="dismissed")

    assert seen == [(console.org_id(), CONTACT, "opt_out")]


def test_resolving_twice_says_who_did_it_first_and_changes_nothing(
    console: Admin, agent: Browser, manager: Browser
) -> None:
    text_id = console.inbound("please don't text me anymore")
    assert resolve(agent, text_id).status_code == 303
    events = console.count(ConsentEvent)

    again = resolve(manager, text_id, resolution="dismissed")

    assert again.status_code == 409
    text = said(again)
    assert f"Text {text_id}: nothing was changed." in text
    assert "already resolved as opt_out by alice (console)" in text
    assert outcome(console, text_id) == ("opt_out", "alice (console)")
    assert console.count(ConsentEvent) == events


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"resolution": "maybe"}, "Choose Opt out or Dismiss."),
        ({"resolution": ""}, "Choose Opt out or Dismiss."),
        ({"topic": "sports"}, "'sports' is not a topic of keywords.yaml"),
        ({"reason": "bad\x00reason"}, "control character U+0000"),
        ({"reason": "x" * 501}, "Reason: at most 500 characters."),
    ],
    ids=["unknown-resolution", "no-resolution", "unknown-topic", "control", "long-reason"],
)
def test_bad_input_is_said_on_the_page_and_changes_nothing(
    console: Admin, agent: Browser, fields: dict[str, str], says: str
) -> None:
    text_id = console.inbound("please don't text me anymore")

    response = resolve(agent, text_id, **fields)

    assert response.status_code == 400
    assert says in said(response)
    assert "nothing was changed" in said(response)
    assert outcome(console, text_id) == (None, None)
    assert console.count(ConsentEvent) == 0
    # The queue is still there, the text still waiting in it.
    assert f'action="/console/review/{text_id}"' in response.get_data(as_text=True)


def test_a_text_from_an_email_sender_cannot_be_opted_out(console: Admin, agent: Browser) -> None:
    text_id = console.inbound("unsubscribe me", sender="ann@example.com")

    response = resolve(agent, text_id)

    assert response.status_code == 400
    assert "not a phone number" in said(response)
    assert outcome(console, text_id) == (None, None)


def test_another_organisations_text_is_answered_as_one_that_does_not_exist(
    console: Admin, agent: Browser
) -> None:
    theirs = console.inbound("please stop texting", line=OTHER_LINE)
    plain = console.inbound("see you at 5", needs_review=False)

    assert f"Text {theirs}" not in said(agent.get(QUEUE))
    answers = {
        text_id: resolve(agent, text_id) for text_id in (theirs, plain, theirs + plain + 1000)
    }

    for text_id, response in answers.items():
        assert response.status_code == 404
        assert f"There is no text {text_id} waiting for review." in said(response)
    assert outcome(console, theirs) == (None, None)
    assert console.count(ConsentEvent) == 0


def test_a_form_without_its_csrf_token_changes_nothing(console: Admin, agent: Browser) -> None:
    text_id = console.inbound("please don't text me anymore")

    response = agent.post(f"{QUEUE}/{text_id}", {"resolution": "opt_out", "csrf_token": None})

    assert response.status_code == 400
    assert outcome(console, text_id) == (None, None)


def test_the_queue_pages_by_the_last_text_shown(console: Admin, agent: Browser) -> None:
    ids = [console.inbound(f"text number {n}") for n in range(review_view.PAGE_SIZE + 1)]

    first = agent.get(QUEUE)
    page = first.get_data(as_text=True)
    assert page.count('name="resolution" value="opt_out"') == review_view.PAGE_SIZE
    following = re.search(r'href="(/console/review\?after=([0-9]+))">Next page', page)
    assert following is not None
    assert int(following.group(2)) == ids[review_view.PAGE_SIZE - 1]

    second = agent.get(following.group(1).replace("&amp;", "&"))
    text = said(second)
    assert f"Text {ids[-1]} from" in text
    assert f"Text {ids[0]} from" not in text
    assert "Next page" not in text


def test_resolved_texts_page_too(console: Admin, agent: Browser) -> None:
    ids = [console.inbound(f"text number {n}") for n in range(review_view.PAGE_SIZE + 1)]
    for text_id in ids:
        with console.database.transaction() as session:
            message = session.get(Message, text_id)
            assert message is not None
            message.review_outcome = "dismissed"
            message.reviewed_by = "bob (console)"
            message.reviewed_at = message.created_at

    page = agent.get(QUEUE, query_string={"state": "resolved"}).get_data(as_text=True)

    assert page.count("bob (console)") == review_view.PAGE_SIZE
    assert f"state=resolved&amp;after={ids[review_view.PAGE_SIZE - 1]}" in page


# -- the keyword tester -------------------------------------------------------------------------

TESTER = "/console/keywords"


def test_the_tester_offers_the_organisations_lines_only(agent: Browser) -> None:
    response = agent.get(TESTER)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<option value="{LINE_A}"' in page and f'<option value="{LINE_B}"' in page
    assert OTHER_LINE not in page
    assert "What “" not in page  # nothing tested yet


def test_stop_is_an_opt_out_with_its_reply(console: Admin, agent: Browser) -> None:
    response = agent.post(TESTER, {"text": "STOP", "line": ""})

    assert response.status_code == 200
    text = said(response)
    assert "Intent Opt out (stop everything on this line) (opt_out)" in text
    assert "Keyword STOP (the whole text)" in text
    assert STOP_REPLY in text
    assert "Configuration in force, without errors" in text
    assert (console.count(ConsentEvent), console.messages()) == (0, [])


@pytest.mark.parametrize(
    ("query", "shows"),
    [
        ({"text": "stop price drop"}, ["Topics Price Reduction notifications", "topic_opt_out"]),
        ({"text": "stopp"}, ["Needs a person Yes", "Reply no reply"]),
        ({"text": "HELP", "line": LINE_B}, [f"on +1 415-555-0101 (group {GROUP})", "(help)"]),
        ({"text": "STOP", "line": "(415) 555-0100"}, ["on +1 415-555-0100", "(opt_out)"]),
        ({"text": "hours", "line": LINE_A}, ["Responder hours", "Open Mon-Sat"]),
    ],
    ids=["topic", "needs-review", "group", "line-in-another-form", "responder"],
)
def test_the_tester_says_what_a_text_would_do(
    console: Admin, agent: Browser, query: dict[str, str], shows: list[str]
) -> None:
    text = said(agent.post(TESTER, query))

    for words in shows:
        assert words in text
    assert console.count(ConsentEvent) == 0


def test_another_organisations_line_cannot_be_tested(agent: Browser) -> None:
    for line in (OTHER_LINE, "+14155550999"):
        response = agent.post(TESTER, {"text": "STOP", "line": line})
        assert response.status_code == 404
        assert "There is no line" in said(response)
        assert "Other's line" not in said(response)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"text": "STOP", "line": "front desk"}, "'front desk' is not a valid address"),
        ({"text": "STOP\x00"}, "control character U+0000"),
        ({"text": "x" * 2001}, "Text: at most 2000 characters."),
    ],
    ids=["bad-line", "control", "long"],
)
def test_what_the_tester_cannot_test_is_said_on_the_page(
    agent: Browser, query: dict[str, str], says: str
) -> None:
    response = agent.post(TESTER, query)

    assert response.status_code == 400
    assert says in said(response)
    assert "<textarea" in response.get_data(as_text=True)  # the form, to try again
