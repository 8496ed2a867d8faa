"""Make the screenshots of docs/admin.md from the real console pages.

Starts ``optgate web`` (gunicorn) on a free port of 127.0.0.1 with a scratch
SQLite database in a temporary folder, a random OPTGATE_SECRET_KEY and Redis
inline; fills it with a small car dealer (three lines, a group, a few contacts
who opted out by keyword and by hand, a topic opt-out, a silenced number, a
blocked message, two texts to review, a manager and an agent) through the CLI
and the signed Twilio webhook, as production data arrives; then drives Debian's
Chromium with Playwright (the browser tests' launch flags) and writes one PNG a
page, 1280 pixels wide, full page, into docs/admin/.

Usage: .venv/bin/python scripts/screenshots.py [--out docs/admin]
Needs what the browser tests need: ``pip install -e '.[dev]'`` and
``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OPTGATE = str(Path(sys.executable).parent / "optgate")
#: The Twilio credentials of the scratch server (the format of real ones; no account).
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fedcba9876543210" * 2
PASSWORD = "screenshots only, nothing else"
ORGANIZATION = "Acme Motors"
SALES, SERVICE, PARTS = "+14155550100", "+14155550101", "+14155550102"
#: The contact the contact, history and messages pictures show.
DANA = "+14155550123"
WIDTH = 1280
_sids = itertools.count(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "admin")
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="optgate-screenshots-")
    with scratch, serving(Path(scratch.name)) as server:
        server.seed()
        written = photograph(server, args.out)
    for path in written:
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
            f"  {path.stat().st_size // 1024} KB"
        )
    return 0


# -- the server -----------------------------------------------------------------------------


class Server:
    def __init__(self, folder: Path, url: str, env: dict[str, str]) -> None:
        self.folder, self.url, self.env = folder, url, env

    def optgate(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [OPTGATE, *args],
            env=self.env,
            cwd=self.folder,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise SystemExit(f"optgate {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def text(self, sender: str, body: str, line: str) -> None:
        """A text from ``sender`` to ``line``, through the webhook, signed as Twilio signs."""
        from twilio.request_validator import RequestValidator

        url = f"{self.url}/webhooks/twilio/messages"
        form = {
            "MessageSid": f"SM{next(_sids):032x}",
            "AccountSid": TWILIO_SID,
            "From": sender,
            "To": line,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"X-Twilio-Signature": signature},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def seed(self) -> None:
        """A small dealer: what the pictures show."""
        run = self.optgate
        run("lines", "add", SALES, "--organization", ORGANIZATION, "--name", "Sales")
        run("lines", "add", SERVICE, "--name", "Service", "--group", "Service desk")
        run("lines", "add", PARTS, "--name", "Parts", "--group", "Service desk")
        run("users", "add", "maria", "--role", "manager", "--password-stdin", stdin=PASSWORD)
        run("users", "add", "alice", "--role", "agent", "--password-stdin", stdin=PASSWORD)
        # Dana: in on Sales, then texted STOP to the service desk, and stopped price drops.
        run(
            "consent",
            "set",
            DANA,
            "--line",
            SALES,
            "--status",
            "opted_in",
            "--actor",
            "maria",
            "--reason",
            "signed up at the showroom",
        )
        self.text(DANA, "When is my car ready?", SERVICE)
        self.text(DANA, "STOP", SERVICE)
        self.text(DANA, "STOP PRICE DROP", SALES)
        run(
            "send",
            "--line",
            SERVICE,
            "--to",
            DANA,
            "--body",
            "Your car is ready for pick-up.",
            "--kind",
            "conversational",
        )
        # Others: an opt-out asked on the phone, a silenced number, a do-not-contact.
        run(
            "consent",
            "set",
            "+14155550142",
            "--organization",
            ORGANIZATION,
            "--channel",
            "all",
            "--status",
            "opted_out",
            "--actor",
            "alice",
            "--reason",
            "asked on the phone",
        )
        run(
            "consent",
            "set",
            "+14155550177",
            "--line",
            SALES,
            "--status",
            "opted_in",
            "--actor",
            "maria",
            "--reason",
            "web form",
        )
        run(
            "consent",
            "flag",
            "+14155550177",
            "silenced",
            "--set",
            "--actor",
            "alice",
            "--reason",
            "complaint being handled",
        )
        run(
            "consent",
            "set",
            "+14155550188",
            "--line",
            PARTS,
            "--status",
            "opted_in",
            "--actor",
            "maria",
        )
        self.text("+14155550160", "STOP", SALES)
        # Two texts a person must read.
        self.text("+14155550131", "who is this?", SALES)
        self.text("+14155550152", "no more", PARTS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(folder: Path) -> Iterator[Server]:
    """``optgate web`` on a new SQLite database in ``folder``, stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTGATE_")}
    env.update(
        OPTGATE_DATABASE_URL=f"sqlite:///{folder / 'optgate.sqlite3'}",
        OPTGATE_REDIS_URL="inline",
        OPTGATE_SECRET_KEY=secrets.token_hex(32),
        OPTGATE_KEYWORDS=str(ROOT / "keywords.yaml"),
        OPTGATE_DEFAULT_ORGANIZATION=ORGANIZATION,
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        XDG_RUNTIME_DIR=str(folder),  # gunicorn's control socket: none, or here
    )
    port = free_port()
    server = Server(folder, f"http://127.0.0.1:{port}", env)
    server.optgate("db", "upgrade")
    log = (folder / "web.log").open("wb")
    process = subprocess.Popen(
        [OPTGATE, "web", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit("optgate web ended:\n" + (folder / "web.log").read_text())
            try:
                with urllib.request.urlopen(f"{server.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    "optgate web not ready in 30 s:\n" + (folder / "web.log").read_text()
                )
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# -- the pictures ---------------------------------------------------------------------------


def photograph(server: Server, out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    written: list[Path] = []
    console = f"{server.url}/console"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": WIDTH, "height": 720}, device_scale_factor=1
        )
        page = context.new_page()

        def shoot(name: str) -> None:
            path = out / name
            page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
            written.append(path)

        page.goto(f"{console}/login")
        page.get_by_label("User name").fill("maria")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Find a contact")).to_be_visible()

        page.get_by_label("Phone number or email").fill("(415) 555-0123")
        shoot("find.png")

        page.get_by_role("button", name="Find").click()
        expect(page.locator("#preferences")).to_be_visible()
        page.get_by_role("button", name="Opt in to SMS on +1 415-555-0101").click()
        expect(page.locator("#preferences").get_by_role("alert")).to_be_visible()
        shoot("contact.png")

        page.get_by_role("link", name="History").click()
        expect(page.locator("table")).to_be_visible()
        shoot("history.png")

        page.get_by_role("link", name="Messages").click()
        expect(page.locator("table")).to_be_visible()
        shoot("messages.png")

        page.goto(f"{console}/snapshot")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("table.counts")).to_be_visible()
        shoot("snapshot.png")

        page.goto(f"{console}/review")
        expect(page.locator("section.text")).to_have_count(2)
        shoot("review.png")

        page.goto(f"{console}/keywords")
        page.get_by_label("Text").fill("Stop price drop please")
        page.get_by_label("Line").select_option(SALES)
        page.get_by_role("button", name="Test").click()
        expect(page.locator("table")).to_be_visible()
        shoot("keywords.png")

        page.goto(f"{console}/imports")
        rows = (
            "address,status,line,reason\n"
            "(415) 555-0199,opted_out,+14155550100,asked on the phone\n"
            "415 555 0188,opted_out,+14155550102,\n"
            f"{DANA},opted_in,{SERVICE},signed up again at the desk\n"
            "not a number,opted_out,,\n"
        )
        page.get_by_label("CSV file").set_input_files(
            {"name": "showroom-signups.csv", "mimeType": "text/csv", "buffer": rows.encode()}
        )
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_role("status")).to_be_visible()
        shoot("imports.png")

        page.goto(f"{console}/users")
        expect(page.locator("table")).to_be_visible()
        shoot("users.png")

        context.close()
        browser.close()
    return written


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
