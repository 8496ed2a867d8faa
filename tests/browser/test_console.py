"""The admin console in real Chromium, against a live gunicorn (``optgate web``).

One server per module (starting gunicorn is most of a test's time): every test
works on contacts of its own, so the order of the tests does not matter. Users
and lines are seeded with the optgate CLI, texts through the signed Twilio
webhook, as in production. Users sign in once per module; each test opens a
fresh browser context with that session's cookie (``as_user``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import BrowserLog, LiveServer, assert_accessible, server_environment
from tests.conftest import free_port, inbound_form
from tests.processes.test_processes import (
    cleaned_up,
    start,
    twilio_request,
    wait_ready,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

PASSWORD = "correct horse battery"
AGENT, MANAGER = "alice", "maria"
LINE_A, LINE_B, LINE_C = "+14155550100", "+14155550101", "+14155550102"
SHOWN = {LINE_A: "+1 415-555-0100", LINE_B: "+1 415-555-0101", LINE_C: "+1 415-555-0102"}
#: The contact of the sign-in and find tests: nothing ever changes it.
UNTOUCHED = "+14155550199"
_sids = iter(range(1, 10**6))


def shown(number: str) -> str:
    """+14155550123 as the console writes it: +1 415-555-0123."""
    return f"{number[:2]} {number[2:5]}-{number[5:8]}-{number[8:]}"


# -- the server, its data, its users ------------------------------------------------------


@pytest.fixture(scope="module")
def console(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """``optgate web`` on a SQLite file of its own, with three lines and two users."""
    folder = tmp_path_factory.mktemp("console-server")
    shutil.copy(sqlite_template, folder / "optgate.sqlite3")
    database_url = f"sqlite:///{folder / 'optgate.sqlite3'}"
    env = server_environment(folder, database_url)
    port = free_port()
    with cleaned_up(folder):
        process = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env, folder)
        try:
            server = LiveServer(f"http://127.0.0.1:{port}", env, database_url, folder, process)
            for args in (
                ["lines", "add", LINE_A, "--organization", "default", "--name", "Sales"],
                ["lines", "add", LINE_B, "--name", "Service", "--group", "west"],
                ["lines", "add", LINE_C, "--name", "Parts", "--group", "west"],
            ):
                server.ok(*args)
            for name, role in ((AGENT, "agent"), (MANAGER, "manager")):
                server.ok("users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
            wait_ready(server.url, process, folder, timeout=30)
            yield server
        finally:
            process.terminate()
            with contextlib.suppress(Exception):
                process.wait(timeout=15)


def text_in(server: LiveServer, sender: str, body: str, line: str = LINE_A) -> str:
    """A text from ``sender`` to ``line`` through the signed Twilio webhook; the reply."""
    url = f"{server.url}/webhooks/twilio/messages"
    form = inbound_form(f"SM{next(_sids):032x}", sender, line, body)
    with urllib.request.urlopen(twilio_request(url, form), timeout=10) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def sessions(console: LiveServer, browser: Browser) -> dict[str, Any]:
    """Each user's browser storage (their session cookie) after signing in once."""
    states = {}
    for name in (AGENT, MANAGER):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{console.url}/console/login")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Find a contact")).to_be_visible()
        states[name] = context.storage_state()
        context.close()
    return states


@pytest.fixture
def as_user(new_page: Callable[..., Page], sessions: dict[str, Any]) -> Callable[..., Page]:
    """``as_user(name, javascript=True, bypass_csp=False)``: a fresh page, signed in."""

    def make(name: str, **options: Any) -> Page:
        return new_page(storage_state=sessions[name], **options)

    return make


def contact_url(console: LiveServer, number: str, part: str = "") -> str:
    return f"{console.url}/console/contacts/{number}{part}"


def cell(page: Page, line: str, channel: str = "SMS") -> Any:
    """The preferences table's cell of ``line`` and ``channel``."""
    column = {"SMS": 2, "Phone calls": 3}[channel]
    row = page.locator("#preferences tbody tr").filter(has=page.locator("th", has_text=SHOWN[line]))
    return row.locator(f"td:nth-child({column})")


# -- signing in and out --------------------------------------------------------------------


def test_a_visitor_who_is_not_signed_in_signs_in_and_lands_on_the_page_they_asked_for(
    console: LiveServer, page: Page, browser_log: BrowserLog
) -> None:
    wanted = contact_url(console, UNTOUCHED)

    page.goto(wanted)

    expect(page).to_have_url(re.compile(r"/console/login\?next=.*contacts"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("User name").fill(AGENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(wanted)
    expect(page.get_by_role("heading", level=1)).to_have_text(shown(UNTOUCHED))
    browser_log.assert_quiet()


def test_a_wrong_password_is_refused_on_the_sign_in_page(
    console: LiveServer, page: Page, browser_log: BrowserLog
) -> None:
    page.goto(f"{console.url}/console/login")
    page.get_by_label("User name").fill(MANAGER)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/console/login"))
    # 401 is the page's status, not a failed load: the console logs nothing else.
    assert [p for p in browser_log.problems() if "401" not in p] == []


def test_signing_out_ends_the_session(
    console: LiveServer, new_page: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = new_page()
    page.goto(f"{console.url}/console/login")
    page.get_by_label("User name").fill(AGENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Find a contact")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(f"{console.url}/console/login")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{console.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    browser_log.assert_quiet()


# -- find a contact and their preferences --------------------------------------------------


def test_a_number_typed_as_people_write_it_finds_the_contact_with_every_line_not_defined(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/")

    page.get_by_label("Phone number or email").fill("(415) 555-0199")
    page.get_by_role("button", name="Find").click()

    expect(page).to_have_url(contact_url(console, UNTOUCHED))
    expect(page.locator("#overall-heading")).to_have_text(re.compile(r"Overall:\s+Unknown"))
    states = page.locator("#preferences tbody td .state")
    expect(states).to_have_count(3 * 2)  # three lines, SMS and phone calls
    expect(states).to_have_text(["Not defined"] * 6)
    for line in (LINE_A, LINE_B, LINE_C):
        expect(page.locator("#preferences tbody th", has_text=SHOWN[line])).to_be_visible()
    browser_log.assert_quiet()


def test_something_that_is_not_a_number_says_why_on_the_find_page(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/")

    page.get_by_label("Phone number or email").fill("call me maybe")
    page.get_by_role("button", name="Find").click()

    expect(page.get_by_role("alert")).to_contain_text("Type a phone number such as")
    expect(page.get_by_label("Phone number or email")).to_have_value("call me maybe")
    assert [p for p in browser_log.problems() if "400" not in p] == []


def test_an_agent_opts_out_sms_on_one_line_in_place_with_javascript(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550201"
    page = as_user(AGENT)
    page.goto(contact_url(console, number))
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.notReloaded = true")

    page.get_by_role("button", name=f"Opt out of SMS on {SHOWN[LINE_A]}").click()

    expect(page.locator("#preferences .notice")).to_have_text(
        f"Opted out: SMS on line {SHOWN[LINE_A]}."
    )
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Opted out")
    expect(cell(page, LINE_A, "Phone calls").locator(".state")).to_have_text("Not defined")
    expect(cell(page, LINE_B).locator(".state")).to_have_text("Not defined")
    expect(page.locator("#overall-heading")).to_contain_text("Opted out")
    # The part was swapped in: the same document, no navigation.
    assert page.evaluate("window.notReloaded") is True
    assert navigations == []
    # An agent cannot opt in: the opted-out cell has no button any more.
    expect(cell(page, LINE_A).get_by_role("button")).to_have_count(0)
    page.reload()
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Opted out")
    browser_log.assert_quiet()


def test_the_same_button_works_without_javascript_by_a_post_and_a_redirect(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550202"
    page = as_user(AGENT, javascript=False)
    page.goto(contact_url(console, number))

    with page.expect_navigation():
        page.get_by_role("button", name=f"Opt out of Phone calls on {SHOWN[LINE_B]}").click()

    expect(page).to_have_url(contact_url(console, number) + "#preferences")
    expect(page.get_by_role("status")).to_have_text(
        f"Opted out: Phone calls on line {SHOWN[LINE_B]}."
    )
    expect(cell(page, LINE_B, "Phone calls").locator(".state")).to_have_text("Opted out")
    expect(cell(page, LINE_B).locator(".state")).to_have_text("Not defined")
    browser_log.assert_quiet()


def test_a_manager_cannot_opt_in_a_contact_who_texted_stop_and_sees_why_inline(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550203"
    text_in(console, number, "STOP", line=LINE_A)
    page = as_user(MANAGER)
    page.goto(contact_url(console, number))
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Opted out")
    page.evaluate("window.notReloaded = true")

    page.get_by_role("button", name=f"Opt in to SMS on {SHOWN[LINE_A]}").click()

    refusal = page.locator("#preferences").get_by_role("alert")
    expect(refusal).to_contain_text("by texting a stop keyword")
    expect(refusal).to_contain_text("Staff cannot opt them back in")
    expect(refusal.locator(".hint")).to_contain_text(f"texting START to {LINE_A}")
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Opted out")
    assert page.evaluate("window.notReloaded") is True
    # The refusal is a 409 that htmx swaps in; Chromium logs the failed status, nothing else.
    assert [p for p in browser_log.problems() if "409" not in p] == []


def test_the_refusal_is_shown_without_javascript_too(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550204"
    text_in(console, number, "STOP", line=LINE_B)
    page = as_user(MANAGER, javascript=False)
    page.goto(contact_url(console, number))

    page.get_by_role("button", name=f"Opt in to SMS on {SHOWN[LINE_B]}").click()

    expect(page.get_by_role("alert")).to_contain_text("by texting a stop keyword")
    expect(page.locator(".problem .hint")).to_contain_text("START")
    expect(cell(page, LINE_B).locator(".state")).to_have_text("Opted out")


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550205"
    page = as_user(AGENT, javascript=False)
    page.goto(contact_url(console, number))
    button = page.get_by_role("button", name=f"Opt out of SMS on {SHOWN[LINE_C]}")
    removed = button.evaluate(
        "button => { const token = button.form.querySelector('[name=csrf_token]');"
        " token.remove(); return token.name }"
    )
    assert removed == "csrf_token"

    with page.expect_navigation() as navigation:
        button.click()

    response = navigation.value
    assert response is not None and response.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("This form has expired")
    expect(page.locator(".problem")).to_contain_text("Nothing was changed")
    page.goto(contact_url(console, number))
    expect(cell(page, LINE_C).locator(".state")).to_have_text("Not defined")
    history = console.ok("consent", "history", number)
    assert "opted_out" not in history, history


def test_a_form_posted_by_htmx_without_its_token_is_refused_in_place(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550206"
    page = as_user(AGENT)
    page.goto(contact_url(console, number))
    page.locator("#preferences input[name=csrf_token]").evaluate_all(
        "tokens => tokens.forEach(token => token.remove())"
    )

    page.get_by_role("button", name=f"Opt out of SMS on {SHOWN[LINE_A]}").click()

    refusal = page.locator("#preferences").get_by_role("alert")
    expect(refusal).to_contain_text("Nothing was changed")
    expect(page.locator("#preferences h2")).to_have_text("This form has expired")
    # In place of the part, not a page inside the page: one header, one main.
    expect(page.locator("main")).to_have_count(1)
    expect(page.locator("header")).to_have_count(1)
    page.get_by_role("link", name="Reload this page").click()
    expect(page).to_have_url(contact_url(console, number))
    page.goto(contact_url(console, number))
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Not defined")
    assert "opted_out" not in console.ok("consent", "history", number)


def test_do_not_contact_asks_for_confirmation_then_is_set(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550207"
    page = as_user(AGENT)
    page.goto(contact_url(console, number))
    flags = page.get_by_role("list", name="Flags")

    page.get_by_role("button", name="Do not contact…").click()

    confirmation = page.locator("#preferences").get_by_role("alert")
    expect(confirmation).to_contain_text("permanent")
    expect(flags).to_contain_text("Do not contact: off")
    assert "do_not_contact" not in console.ok("consent", "history", number)

    page.get_by_role("button", name="Yes, never contact this number").click()

    expect(page.locator("#preferences .notice")).to_have_text("Do not contact: set.")
    expect(flags.locator("li.on")).to_contain_text("Do not contact: on")
    expect(page.get_by_role("button", name="Do not contact…")).to_have_count(0)
    assert "do_not_contact" in console.ok("consent", "history", number)
    browser_log.assert_quiet()


# -- history and messages ------------------------------------------------------------------


def test_the_history_lists_a_change_with_the_agent_who_made_it(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550208"
    text_in(console, number, "STOP", line=LINE_B)
    page = as_user(AGENT)
    page.goto(contact_url(console, number))
    page.get_by_role("button", name=f"Opt out of SMS on {SHOWN[LINE_A]}").click()
    expect(page.locator("#preferences .notice")).to_be_visible()

    page.get_by_role("link", name="History").click()

    expect(page).to_have_url(contact_url(console, number, "/history"))
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    newest = rows.first
    expect(newest).to_contain_text(f"line {SHOWN[LINE_A]}")
    expect(newest).to_contain_text("Not defined → Opted out")
    expect(newest.locator("td:nth-child(5)")).to_have_text("manual")
    expect(newest.locator("td:nth-child(6)")).to_have_text(f"{AGENT} (console)")
    expect(rows.last.locator("td:nth-child(5)")).to_have_text("keyword")
    browser_log.assert_quiet()


def test_the_messages_page_shows_the_contacts_texts(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550209"
    text_in(console, number, "What time do you open tomorrow?", line=LINE_C)
    page = as_user(AGENT)
    page.goto(contact_url(console, number))

    page.get_by_role("link", name="Messages").click()

    expect(page).to_have_url(contact_url(console, number, "/messages"))
    row = page.locator("table tbody tr").first
    expect(row).to_contain_text("from the contact")
    expect(row).to_contain_text("What time do you open tomorrow?")
    expect(row).to_contain_text(SHOWN[LINE_C])
    browser_log.assert_quiet()


# -- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/users", "/console/imports", "/console/exports"])
def test_an_agent_gets_the_403_page_on_a_managers_page(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog, path: str
) -> None:
    page = as_user(AGENT)

    response = page.goto(console.url + path)

    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not for your role")
    expect(page.locator(".problem")).to_contain_text("This page is for managers")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(
        ["Find a contact", "Review queue", "Snapshot", "Keyword tester"]
    )


def test_a_manager_sees_the_managers_pages(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = as_user(MANAGER)
    page.goto(f"{console.url}/console/")
    nav = page.get_by_role("navigation", name="Main")

    for name, heading in (
        ("Exports", "Exports"),
        ("Imports", "Import consent"),
        ("Users", "Users"),
    ):
        nav.get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    browser_log.assert_quiet()


# -- the review queue, the snapshot, the keyword tester ------------------------------------


def test_an_agent_opts_out_the_sender_of_a_text_in_the_review_queue(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550210"
    text_in(console, number, "who is this??", line=LINE_A)
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/review")
    text = page.locator("section.text").filter(has_text=shown(number))
    expect(text.locator("blockquote")).to_have_text("who is this??")

    text.get_by_role("button", name="Opt out").click()

    expect(page.get_by_role("status")).to_contain_text("the sender is opted out of SMS")
    expect(page.locator("section.text").filter(has_text=shown(number))).to_have_count(0)
    page.get_by_role("link", name="Resolved").click()
    row = page.locator("table tbody tr").filter(has_text=shown(number))
    expect(row).to_contain_text("Opted out")
    expect(row).to_contain_text(f"{AGENT} (console)")
    page.goto(contact_url(console, number))
    expect(cell(page, LINE_A).locator(".state")).to_have_text("Opted out")
    browser_log.assert_quiet()


def test_a_dismissed_text_leaves_the_queue_and_changes_no_consent(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    number = "+14155550211"
    text_in(console, number, "who dis", line=LINE_B)
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/review")
    text = page.locator("section.text").filter(has_text=shown(number))

    text.get_by_role("button", name="Dismiss").click()

    expect(page.get_by_role("status")).to_contain_text("dismissed: no consent changed")
    expect(page.locator("section.text").filter(has_text=shown(number))).to_have_count(0)
    page.goto(contact_url(console, number))
    expect(page.locator("#overall-heading")).to_contain_text("Unknown")
    browser_log.assert_quiet()


def test_the_snapshot_lists_the_opted_out_numbers_of_the_chosen_line(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    out, other = "+14155550212", "+14155550213"
    console.ok("consent", "set", out, "--line", LINE_C, "--status", "opted_out", "--actor", "t")
    console.ok("consent", "set", other, "--line", LINE_A, "--status", "opted_out", "--actor", "t")
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Snapshot").click()

    for line in (LINE_A, LINE_B):
        page.get_by_role("checkbox", name=re.compile(re.escape(SHOWN[line]))).uncheck()
    page.get_by_label("Status").select_option("opted_out")
    page.get_by_role("button", name="Show").click()

    expect(page).to_have_url(re.compile(r"/console/snapshot\?.*status=opted_out"))
    counts = page.locator("table.counts tbody tr")
    expect(counts).to_have_count(1)
    expect(counts.first.locator("th")).to_have_text(SHOWN[LINE_C])
    numbers = page.locator("table:not(.counts) tbody tr")
    expect(numbers.filter(has_text=shown(out))).to_have_count(1)
    expect(numbers.filter(has_text=shown(other))).to_have_count(0)
    expect(numbers.filter(has_text=shown(out))).to_contain_text("Opted out")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download every row as CSV").click()
    assert out in Path(download.value.path()).read_text()
    browser_log.assert_quiet()


def test_the_keyword_tester_shows_the_intent_and_the_reply(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = as_user(AGENT)
    page.goto(f"{console.url}/console/keywords")

    page.get_by_label("Text").fill("STOP PRICE DROP")
    page.get_by_label("Line").select_option(LINE_B)
    page.get_by_role("button", name="Test").click()

    result = page.locator("table")
    expect(result.locator("caption")).to_contain_text(f"on {SHOWN[LINE_B]} (group west)")
    expect(result.locator("tr", has_text="Intent")).to_contain_text("Opt out of a topic")
    expect(result.locator("tr", has_text="Topics")).to_contain_text("Price Reduction")
    expect(result.locator("tr", has_text="Reply").locator("td")).not_to_have_text("no reply")
    expect(page.get_by_label("Text")).to_have_value("STOP PRICE DROP")
    browser_log.assert_quiet()


def test_a_manager_imports_a_csv_and_sees_the_report_of_every_row(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    stopped = "+14155550214"
    text_in(console, stopped, "STOP", line=LINE_A)
    page = as_user(MANAGER)
    page.goto(f"{console.url}/console/imports")
    csv = f"address,status,line\n(415) 555-0215,opted_out,{LINE_A}\n{stopped},opted_in,{LINE_A}\n"

    page.get_by_label("CSV file").set_input_files(
        {"name": "consent.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    page.get_by_role("button", name="Import").click()

    expect(page.get_by_role("status")).to_contain_text("consent.csv: 2 rows read")
    rows = page.locator("table").nth(1).locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Applied")
    expect(rows.nth(1)).to_contain_text("Refused")
    expect(rows.nth(1)).to_contain_text("START")
    browser_log.assert_quiet()


def test_a_manager_adds_an_agent_on_the_users_page(
    console: LiveServer, as_user: Callable[..., Page], browser_log: BrowserLog
) -> None:
    page = as_user(MANAGER)
    page.goto(f"{console.url}/console/users")

    page.get_by_label("User name").fill("bob")
    page.get_by_label("Role").select_option("agent")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("The same again").last.fill(PASSWORD)
    page.get_by_role("button", name="Add", exact=True).click()

    row = page.locator("table tbody tr").filter(has=page.get_by_role("rowheader", name="bob"))
    expect(row.get_by_role("cell").first).to_have_text("Agent")
    assert "bob" in console.ok("users", "list")
    browser_log.assert_quiet()


# -- accessibility -------------------------------------------------------------------------

A11Y_NUMBER = "+14155550290"


def _refused(page: Page, console: LiveServer) -> None:
    page.goto(contact_url(console, A11Y_NUMBER))
    page.get_by_role("button", name=f"Opt in to SMS on {SHOWN[LINE_A]}").click()
    expect(page.locator("#preferences").get_by_role("alert")).to_be_visible()


def _tested_keyword(page: Page, console: LiveServer) -> None:
    page.goto(f"{console.url}/console/keywords")
    page.get_by_label("Text").fill("STOP")
    page.get_by_role("button", name="Test").click()
    expect(page.locator("table caption")).to_be_visible()


def _confirm(page: Page, console: LiveServer) -> None:
    page.goto(contact_url(console, "+14155550291"))
    page.get_by_role("button", name="Do not contact…").click()
    expect(page.locator("#preferences").get_by_role("alert")).to_be_visible()


#: (test id, who, the page: a path, or a function that opens it)
PAGES: list[tuple[str, str | None, str | Callable[[Page, LiveServer], None]]] = [
    ("login", None, "/console/login"),
    ("find", AGENT, "/console/"),
    ("find-error", AGENT, "/console/?q=nonsense"),
    ("contact", MANAGER, f"/console/contacts/{A11Y_NUMBER}"),
    ("contact-refusal", MANAGER, _refused),
    ("contact-confirmation", AGENT, _confirm),
    ("history", AGENT, f"/console/contacts/{A11Y_NUMBER}/history"),
    ("messages", AGENT, f"/console/contacts/{A11Y_NUMBER}/messages"),
    ("review", AGENT, "/console/review"),
    ("review-resolved", AGENT, "/console/review?state=resolved"),
    ("snapshot", AGENT, "/console/snapshot?status=opted_out"),
    ("keywords", AGENT, _tested_keyword),
    ("exports", MANAGER, "/console/exports"),
    ("imports", MANAGER, "/console/imports"),
    ("users", MANAGER, "/console/users"),
    ("403", AGENT, "/console/users"),
    ("404", AGENT, "/console/no-such-page"),
]


@pytest.fixture(scope="module")
def accessibility_data(console: LiveServer) -> None:
    """A contact with a keyword opt-out, a text and a manual change; a text to review."""
    text_in(console, A11Y_NUMBER, "STOP", line=LINE_A)
    console.ok(
        "consent",
        "set",
        A11Y_NUMBER,
        "--line",
        LINE_B,
        "--status",
        "opted_out",
        "--actor",
        "test",
        "--reason",
        "asked on the phone",
    )
    text_in(console, "+14155550292", "who are you people", line=LINE_C)


@pytest.mark.parametrize(("who", "where"), [row[1:] for row in PAGES], ids=[r[0] for r in PAGES])
def test_every_console_page_passes_axe_wcag_2_a_and_aa(
    console: LiveServer,
    accessibility_data: None,
    new_page: Callable[..., Page],
    sessions: dict[str, Any],
    who: str | None,
    where: str | Callable[[Page, LiveServer], None],
) -> None:
    options: dict[str, Any] = {"bypass_csp": True}
    if who is not None:
        options["storage_state"] = sessions[who]
    page = new_page(**options)

    if callable(where):
        where(page, console)
    else:
        page.goto(console.url + where)

    expect(page.locator("main h1")).to_be_visible()
    assert_accessible(page)
