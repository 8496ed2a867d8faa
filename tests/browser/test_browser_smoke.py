"""The browser tests' machinery works: Chromium reaches the live server, axe finds what
it should and nothing else, and what pages print is collected."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    BOTH_DATABASES,
    BrowserLog,
    LiveServer,
    assert_accessible,
    axe_violations,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CLEAN = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Clean</title></head>
<body><main><h1>Consent</h1><p>Nothing wrong here.</p>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A dot"></main></body>
</html>"""
IMAGE_WITHOUT_ALT = CLEAN.replace(' alt="A dot"', "")
#: The policy the console will send: no inline script.
STRICT_CSP = "default-src 'self'; script-src 'self'; object-src 'none'"


@BOTH_DATABASES
def test_chromium_gets_the_live_servers_health_pages(
    live_server: LiveServer, page: Page, browser_log: BrowserLog
) -> None:
    response = page.goto(f"{live_server.url}/healthz")

    assert response is not None
    assert response.status == 200
    assert json.loads(page.inner_text("body")) == {"status": "ok"}
    ready = page.goto(f"{live_server.url}/readyz")
    assert ready is not None
    assert ready.status == 200, live_server.output()
    assert json.loads(page.inner_text("body"))["checks"]["database"] == "ok"
    browser_log.assert_quiet()


def test_axe_finds_an_image_without_alt_text(page: Page) -> None:
    page.set_content(IMAGE_WITHOUT_ALT)

    violations = axe_violations(page)

    assert [v["id"] for v in violations] == ["image-alt"]
    assert [node["target"] for node in violations[0]["nodes"]] == [["img"]]
    with pytest.raises(AssertionError, match=r"image-alt.*\n +img: "):
        assert_accessible(page)


def test_axe_finds_nothing_on_a_clean_page(page: Page, browser_log: BrowserLog) -> None:
    page.set_content(CLEAN)

    assert axe_violations(page) == []
    assert_accessible(page)
    browser_log.assert_quiet()


def test_axe_runs_under_a_strict_csp_only_where_the_context_bypasses_it(
    new_page: Callable[..., Page],
) -> None:
    def with_csp(page: Page) -> Page:
        page.route(
            "http://optgate.test/",
            lambda route: route.fulfill(
                body=IMAGE_WITHOUT_ALT,
                content_type="text/html",
                headers={"Content-Security-Policy": STRICT_CSP},
            ),
        )
        page.goto("http://optgate.test/")
        return page

    enforced = with_csp(new_page())
    with pytest.raises(AssertionError, match="bypass_csp=True"):
        axe_violations(enforced)

    bypassed = with_csp(new_page(bypass_csp=True))
    assert [v["id"] for v in axe_violations(bypassed)] == ["image-alt"]


def test_a_page_without_javascript_cannot_be_checked_and_says_so(
    new_page: Callable[..., Page],
) -> None:
    page = new_page(javascript=False)
    page.set_content(CLEAN + "<script>document.title = 'scripted'</script>")

    assert page.title() == "Clean"
    with pytest.raises(AssertionError, match="JavaScript is off"):
        axe_violations(page)


def test_the_log_collects_console_errors_and_uncaught_exceptions(
    page: Page, browser_log: BrowserLog
) -> None:
    page.set_content(
        "<script>console.error('broken'); setTimeout(() => { throw new Error('boom') })</script>"
    )
    page.wait_for_timeout(100)

    problems = browser_log.problems()
    assert any("console.error: broken" in problem for problem in problems), problems
    assert any("uncaught Error: boom" in problem for problem in problems), problems
    with pytest.raises(AssertionError, match="the pages reported problems"):
        browser_log.assert_quiet()
