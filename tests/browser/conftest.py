"""Fixtures of the browser tests: Chromium (one per run), a page per test, the live server.

``browser``: Debian's Chromium through Playwright, launched once per run.
``new_page(javascript=True, bypass_csp=False, **context_options)``: a page in a fresh
context (1280x800) closed after the test; ``page`` is ``new_page()``. What pages print
to the console and throw goes to ``browser_log`` (``browser_log.assert_quiet()``).
``live_server``: ``optgate web`` (gunicorn) on a free port of 127.0.0.1 with a migrated
SQLite database of its own; ``@BOTH_DATABASES`` (support.py) runs a test on PostgreSQL too.
``start_live_server(backend="sqlite", workers=1, **settings)``: the same with other settings.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    BrowserLog,
    LiveServer,
    require_chromium,
    server_environment,
)
from tests.conftest import free_port, truncate
from tests.processes.test_processes import cleaned_up, start, wait_ready

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is a browser test (``-m "not browser"`` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


# -- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the whole run."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_log() -> BrowserLog:
    """The console messages and uncaught errors of the test's pages."""
    return BrowserLog()


@pytest.fixture
def new_page(browser: Browser, browser_log: BrowserLog) -> Iterator[Callable[..., Page]]:
    """``new_page(javascript=True, bypass_csp=False, **context_options)``: a page in a
    context of its own (1280x800), closed after the test.

    ``javascript=False``: the browser of someone with JavaScript off. ``bypass_csp=True``:
    the page's Content-Security-Policy is not enforced, which the injection of axe-core
    (an inline script) needs (``assert_accessible``); leave it off otherwise, so that a
    page the policy would break fails here as it would for users.
    """
    contexts: list[Any] = []

    def make(javascript: bool = True, bypass_csp: bool = False, **context_options: Any) -> Page:
        context = browser.new_context(
            viewport=context_options.pop("viewport", VIEWPORT),
            java_script_enabled=javascript,
            bypass_csp=bypass_csp,
            **context_options,
        )
        contexts.append(context)
        page = context.new_page()
        browser_log.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A page with JavaScript on and the Content-Security-Policy enforced."""
    return new_page()


# -- the live server --------------------------------------------------------------------


@pytest.fixture
def start_live_server(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    """``start_live_server(backend="sqlite", workers=1, **settings)``: ``optgate web`` on a
    migrated, empty database, stopped after the test.

    ``backend``: "sqlite" (a file of its own) or "postgres" (the run's database, emptied
    after the test). ``settings``: environment variables added or replaced; Redis is
    ``inline`` (jobs run in the web process) unless OPTGATE_REDIS_URL says otherwise.
    """
    with contextlib.ExitStack() as stack:
        numbers = itertools.count(1)

        def launch(backend: str = "sqlite", workers: int = 1, **settings: str) -> LiveServer:
            folder = tmp_path / f"live-server-{next(numbers)}"
            folder.mkdir()
            if backend == "sqlite":
                shutil.copy(sqlite_template, folder / "optgate.sqlite3")
                database_url = f"sqlite:///{folder / 'optgate.sqlite3'}"
            elif backend == "postgres":
                database_url = request.getfixturevalue("postgres_url")
                stack.callback(truncate, database_url)
            else:
                raise ValueError(f"backend {backend!r}: expected 'sqlite' or 'postgres'")
            env = server_environment(folder, database_url, **settings)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            stack.enter_context(cleaned_up(folder))
            process = start(
                ["web", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)], env, folder
            )
            stack.callback(_stop, process)
            wait_ready(url, process, folder, timeout=30)
            return LiveServer(url, env, database_url, folder, process)

        yield launch


def _stop(process: Any) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            process.wait(timeout=15)  # cleaned_up() kills what is left


@pytest.fixture
def live_server(
    request: pytest.FixtureRequest, start_live_server: Callable[..., LiveServer]
) -> LiveServer:
    """``optgate web`` on SQLite (on PostgreSQL too under ``@BOTH_DATABASES``)."""
    return start_live_server(getattr(request, "param", "sqlite"))
