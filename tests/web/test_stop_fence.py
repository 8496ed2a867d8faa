"""Every door that stops sending answers only once no hand-off to the number is in flight.

A message whose consent a worker read before the opt-out committed may still be
on its way to the provider; the answer to the opt-out waits for it
(app/sending/handoff.py). That promise holds whatever the opt-out changed: a repeated
STOP, Twilio redelivering the same STOP, a second system opting the number out
again, a silence or do-not-contact already set, a review resolved as an opt-out
of a number that had stopped already, an import row that changes nothing. Each
door is tried on a number that never stopped (``first``) and on one that has
stopped every way already (``repeat``), where the ledger changes nothing.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app.cli import main
from app.consent.values import Flag
from app.data.models import Message, MessageStatus
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_TOKEN, inbound_form
from tests.console.console import Browser, open_console, signed_in
from tests.web.admin import API, CONTACT, LINE_A, MANAGER_SECRET, Admin, bearer

#: Seconds the worker's hand-off is held in the provider call.
HELD = 0.4
#: The one STOP delivery Twilio may send again (same MessageSid).
STOP_SID = "SM" + "5" * 32
_sids = count(1)


@dataclass
class Doors:
    admin: Admin
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    #: The console, signed in as the agent alice and the manager maria before any
    #: door is timed.
    console: Browser
    console_manager: Browser

    def console_change(self, what: str, **fields: str) -> None:
        response = self.console.change(CONTACT, what, **fields)
        assert response.status_code == 303, response.get_data(as_text=True)

    def console_review(self) -> None:
        text = self.admin.inbound("please don't text me anymore")
        response = self.console.post(f"/console/review/{text}", {"resolution": "opt_out"})
        assert response.status_code == 303, response.get_data(as_text=True)

    def console_import(self, status: str) -> None:
        manager = self.console_manager
        manager.get("/console/imports")
        upload = (io.BytesIO(f"address,status\n{CONTACT},{status}\n".encode()), "stops.csv")
        response = manager.post(
            "/console/imports", {"file": upload}, content_type="multipart/form-data"
        )
        assert response.status_code == 200, response.get_data(as_text=True)

    def webhook(self, body: str, message_id: str | None = None, **fields: str) -> None:
        """A signed inbound text (a new MessageSid unless one is given)."""
        message_id = message_id or f"SM{next(_sids):032x}"
        form = MultiDict(inbound_form(message_id, CONTACT, LINE_A, body, **fields))
        path = "/webhooks/twilio/messages"
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(
            "http://localhost" + path, form
        )
        response = self.admin.client.post(
            path, data=form, headers={"X-Twilio-Signature": signature}
        )
        assert response.status_code == 200, response.get_data(as_text=True)

    def api(self, path: str, payload: dict[str, str]) -> None:
        response = self.admin.post(path, payload)
        assert response.status_code == 200, response.get_data(as_text=True)

    def api_import(self, status: str) -> None:
        response = self.admin.client.post(
            f"{API}/imports/consent?actor=alice",
            data=f"address,status\n{CONTACT},{status}\n",
            headers={**bearer(MANAGER_SECRET), "Content-Type": "text/csv"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        [row] = response.get_json()["results"]
        assert row["result"] in ("applied", "unchanged"), row

    def review(self) -> None:
        text = self.admin.inbound("please don't text me anymore")
        self.api(f"/review/{text}", {"resolution": "opt_out", "actor": "alice"})

    def cli(self, *args: str) -> None:
        self.monkeypatch.setenv("OPTGATE_DATABASE_URL", self.admin.database.url)
        self.monkeypatch.setenv("OPTGATE_KEYWORDS", str(SHIPPED_KEYWORDS))
        code = main(list(args))
        captured = self.capsys.readouterr()
        assert code == 0, captured.err

    def cli_import(self, status: str) -> None:
        path = self.tmp_path / "stops.csv"
        path.write_text(f"address,status\n{CONTACT},{status}\n", encoding="utf-8")
        self.cli("consent", "import", str(path), "--actor", "alice")


DOORS: dict[str, Callable[[Doors], None]] = {
    "texted STOP": lambda d: d.webhook("STOP"),
    "Twilio redelivers the STOP": lambda d: d.webhook("STOP", STOP_SID),
    "texted STOP for a topic": lambda d: d.webhook("STOP PRICE DROP"),
    # Twilio answered its default keyword itself, and says so.
    "Twilio's own opt-out (OptOutType)": lambda d: d.webhook("Stop", OptOutType="STOP"),
    "API opt-out": lambda d: d.api(
        f"/contacts/{CONTACT}/consent",
        {"status": "opted_out", "scope": "organization", "actor": "alice"},
    ),
    "API silence": lambda d: d.api(f"/contacts/{CONTACT}/silence", {"actor": "alice"}),
    "API do-not-contact": lambda d: d.api(f"/contacts/{CONTACT}/do-not-contact", {"actor": "al"}),
    "review resolved as opt-out": lambda d: d.review(),
    "API import opted_out": lambda d: d.api_import("opted_out"),
    "API import do_not_contact": lambda d: d.api_import("do_not_contact"),
    "console opt-out": lambda d: d.console_change(
        "consent", status="opted_out", channel="sms", where="organization"
    ),
    "console silence": lambda d: d.console_change("flags", action="silence"),
    "console do-not-contact": lambda d: d.console_change(
        "flags", action="do-not-contact", confirm="yes"
    ),
    "console review resolved as opt-out": lambda d: d.console_review(),
    "console import opted_out": lambda d: d.console_import("opted_out"),
    "CLI consent set": lambda d: d.cli(
        *f"consent set {CONTACT} --organization default --status opted_out --actor al".split()
    ),
    "CLI consent flag silenced": lambda d: d.cli(
        "consent", "flag", CONTACT, "silenced", "--set", "--actor", "alice"
    ),
    "CLI consent flag do_not_contact": lambda d: d.cli(
        "consent", "flag", CONTACT, "do_not_contact", "--set", "--actor", "alice"
    ),
    "CLI import opted_out": lambda d: d.cli_import("opted_out"),
    "CLI import do_not_contact": lambda d: d.cli_import("do_not_contact"),
}


@pytest.fixture
def admin(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    """The admin API's app with the console on, and its users (one organisation)."""
    yield from open_console(make_settings, clean_database_url, redis_url, other=False)


@pytest.fixture
def doors(
    admin: Admin,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Doors]:
    yield Doors(
        admin, tmp_path, monkeypatch, capsys, signed_in(admin, "alice"), signed_in(admin, "maria")
    )


def stop_every_way(doors: Doors) -> None:
    """The number has stopped by every door already: each door now changes nothing."""
    doors.webhook("STOP", STOP_SID)
    doors.webhook("STOP PRICE DROP", "SM" + "6" * 32)
    doors.api(
        f"/contacts/{CONTACT}/consent",
        {"status": "opted_out", "scope": "organization", "actor": "alice"},
    )
    doors.api_import("opted_out")  # an import's opt-out is stronger than staff's
    doors.admin.set_flag(Flag.SILENCED)
    doors.admin.set_flag(Flag.DO_NOT_CONTACT)


def hand_off_in_flight(admin: Admin) -> tuple[int, threading.Thread]:
    """A message to the number that a worker has claimed and hands over for ``HELD`` s."""
    message_id = admin.outbound(status=MessageStatus.SENDING)

    def hand_over() -> None:
        time.sleep(HELD)
        with admin.database.transaction() as session:
            session.execute(
                sa.update(Message).where(Message.id == message_id).values(status=MessageStatus.SENT)
            )

    return message_id, threading.Thread(target=hand_over)


@pytest.mark.parametrize("already", ["first", "repeat"])
@pytest.mark.parametrize("door", list(DOORS))
def test_every_opt_out_answers_only_once_no_hand_off_to_the_number_is_in_flight(
    doors: Doors, door: str, already: str
) -> None:
    if already == "repeat":
        stop_every_way(doors)
    events = len(doors.admin.events())
    message_id, worker = hand_off_in_flight(doors.admin)

    started = time.monotonic()
    worker.start()
    DOORS[door](doors)
    took = time.monotonic() - started
    worker.join()

    assert took >= HELD, f"answered {took:.2f} s in, while the hand-off was still in flight"
    assert doors.admin.message(message_id).status is MessageStatus.SENT
    if already == "repeat" and "review" not in door:
        # The ledger changed nothing: the wait did not depend on a change.
        assert len(doors.admin.events()) == events
