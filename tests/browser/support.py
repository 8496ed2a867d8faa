"""What the browser tests share besides fixtures: where Chromium and axe-core are, the
live server, the log of what pages printed, and axe's checks.

Chromium is Debian's (``apt-get install chromium``), driven by Playwright from PyPI;
Playwright's own browser download is never used. axe-core comes from npm
(``npm ci --prefix tests/browser``, pinned in tests/browser/package.json). Without
either, the tests that need them skip; under CI=true they fail (``unavailable``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import TWILIO_SID, TWILIO_TOKEN, unavailable
from tests.processes.test_processes import OPTGATE, environment, output, run

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Error, Page

CHROMIUM = Path("/usr/bin/chromium")
#: Flags that work on our machines, as root, with no internet. Without the
#: background-networking ones Chromium calls Google's services at start, and the
#: closed network refuses those connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root, Chromium's sandbox does not start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
#: The WCAG 2.0 and 2.1 rules, levels A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORT = {"width": 1280, "height": 800}

#: Run the test once on each database: ``@BOTH_DATABASES`` over a test that takes
#: ``live_server`` (SQLite alone without it).
BOTH_DATABASES = pytest.mark.parametrize(
    "live_server", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def require_chromium() -> None:
    """Skip (fail under CI=true) without Playwright or Debian's chromium."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        unavailable("Playwright", f"{error} (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")


def require_axe() -> None:
    """Skip (fail under CI=true) without axe-core in tests/browser/node_modules."""
    if not AXE.is_file():
        unavailable("axe-core", f"{AXE} is missing (npm ci --prefix tests/browser)")


# -- the live server --------------------------------------------------------------------


def server_environment(folder: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a live ``optgate web``: the console on (a random secret key),
    Redis inline (jobs in the web process), the test's Twilio credentials, ``settings``."""
    return environment(
        folder,
        OPTGATE_DATABASE_URL=database_url,
        OPTGATE_REDIS_URL="inline",
        OPTGATE_SECRET_KEY=secrets.token_hex(32),
        OPTGATE_DEFAULT_ORGANIZATION="default",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        **settings,
    )


@dataclass
class LiveServer:
    """``optgate web`` (gunicorn) on 127.0.0.1, started by the ``live_server`` fixtures."""

    url: str  # http://127.0.0.1:PORT, no trailing slash
    env: dict[str, str]  # its whole environment: OPTGATE_* settings, TWILIO_* and the rest
    database_url: str
    tmp_path: Path  # its working directory: stdout.txt, stderr.txt, the SQLite file
    process: subprocess.Popen[bytes]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``optgate ARGS`` with the server's environment and database (to seed data)."""
        return run(list(args), self.env, self.tmp_path)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """``optgate ARGS`` (``stdin`` its input); fails the test if it fails."""
        done = subprocess.run(
            [OPTGATE, *args],
            env=self.env,
            cwd=self.tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"optgate {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def output(self) -> str:
        """What the server printed (the end of stdout and stderr), for failure messages."""
        return output(self.tmp_path)


# -- what pages printed -----------------------------------------------------------------


@dataclass
class BrowserLog:
    """Console messages and uncaught errors of every page a test opened (``browser_log``)."""

    messages: list[ConsoleMessage] = field(default_factory=list)
    errors: list[tuple[str, Error]] = field(default_factory=list)  # (page URL, error)

    def watch(self, page: Page) -> None:
        page.on("console", lambda message: self.messages.append(message))
        page.on("pageerror", lambda error: self.errors.append((page.url, error)))

    def problems(self, levels: tuple[str, ...] = ("error", "warning")) -> list[str]:
        """Uncaught errors and console messages of those levels, one line each."""
        found = [f"{url}: uncaught {error.name}: {error.message}" for url, error in self.errors]
        for message in self.messages:
            where = message.location
            # Chromium asks every origin for /favicon.ico by itself; a 404 there is no
            # page's doing (JSON endpoints such as /healthz have no <link rel=icon>).
            if urlsplit(where.get("url", "")).path == "/favicon.ico":
                continue
            if message.type in levels:
                at = f"{where.get('url', '')}:{where.get('lineNumber', '')}"
                found.append(f"{at}: console.{message.type}: {message.text}")
        return found

    def assert_quiet(self, levels: tuple[str, ...] = ("error", "warning")) -> None:
        """Fail if any page threw, or printed an error or warning (CSP violations and
        failed loads are console errors)."""
        problems = self.problems(levels)
        assert not problems, "the pages reported problems:\n" + "\n".join(problems)


# -- accessibility ----------------------------------------------------------------------


def axe_violations(page: Page, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now.

    The page must run JavaScript, and its Content-Security-Policy must let axe in:
    ``add_script_tag(path=...)`` adds the file as an inline script, which a policy
    without 'unsafe-inline' (the console's) blocks. So open pages to check with
    ``new_page(bypass_csp=True)``: Playwright's bypass is acceptable for this
    injection. Pages opened without it are held to the policy, as users' browsers are.
    """
    require_axe()
    try:
        page.add_script_tag(path=AXE)
    except Exception as error:
        if "Content Security Policy" in str(error):
            raise AssertionError(
                "the page's Content-Security-Policy blocked axe-core's script: open the page "
                "with new_page(bypass_csp=True) to check its accessibility"
            ) from error
        raise
    if page.evaluate("typeof window.axe") != "object":
        # With JavaScript off the script tag is added but never runs, without an error.
        raise AssertionError(
            "axe-core did not load: JavaScript is off in this page's context "
            "(new_page(javascript=False)); axe needs it on"
        )
    options = {"runOnly": {"type": "tag", "values": tags or WCAG_TAGS}}
    result: dict[str, Any] = page.evaluate("options => axe.run(document, options)", options)
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: its id, impact and help, then each failing node."""
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation.get('impact')}): {violation['help']}"
            f" <{violation.get('helpUrl', '')}>"
        )
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    {target}: {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page, tags: list[str] | None = None) -> None:
    """Fail listing each axe violation (id, help, the failing nodes' targets)."""
    violations = axe_violations(page, tags)
    assert not violations, f"axe found {len(violations)} violation(s) on {page.url}:\n" + describe(
        violations
    )
