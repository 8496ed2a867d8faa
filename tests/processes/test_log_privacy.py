"""No phone number, email, message body or secret in what `optgate web` (gunicorn) and
`optgate worker` write, at the default level INFO: real processes, real requests.

The requests name contacts the ways clients do: in API paths (E.164, URL-encoded,
national, email), in query strings, in a referer; a signed STOP and a private text
arrive by webhook; the worker sends, is refused by the provider with a text naming the
number, records a carrier opt-out; the database refuses a row in the web app and in a
worker's job (a real refusal: PostgreSQL's error quotes the whole row). Everything the
processes print is read back, and none of what was used may appear in it.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import make_url

from app.addresses import normalize_line
from app.data.db import Database
from app.lines import add_line, get_or_create_organization
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, free_port
from tests.processes.test_processes import (
    OPTGATE,
    cleaned_up,
    environment,
    output,
    start,
    twilio_request,
    wait_ready,
)
from tests.test_logs import refused_body
from tests.twilio_stub import running_stub, twilio_error

LINE = "+14155550100"
#: No digits: in a query string it is hidden as a secret, not as a possible number.
API_SECRET = "TokenSecretXyz" * 3
#: PostgreSQL's trust authentication ignores it; a URL carrying it must not leak it.
DB_PASSWORD = "db-password-3141"

LOOKED_UP = "+14155550199"  # GET .../contacts/<it>, raw and URL-encoded
NATIONAL = "415-555-0188"  # GET .../contacts/<it>: a form the safety net cannot see
IN_QUERY = "+14155550187"  # ?to=...
SENT_TO = "+14155550166"
REFUSED = "+14155550177"  # the provider answers 21211 naming it nationally
CARRIER_OPT_OUT = "+14155550122"  # the provider answers 21610
JOB_FAILS = "+14155550133"  # the database refuses the worker's claim
WEB_FAILS = "+14155550144"  # the database refuses the web app's insert
STOPPER = "+14155550155"
TEXTER = "+14155550111"
EMAIL = "alice.private@example.com"

BODY_SENT = "Your prescription for zolpidem is ready"
BODY_JOB = "Balance overdue: quokkafund account 7781"
BODY_WEB = "Your test results from the vermilion clinic"
BODY_INBOUND = "I moved to 12 Saffron Lane, stop sending to my old phone"
BODIES = (BODY_SENT, BODY_JOB, BODY_WEB, BODY_INBOUND)
#: A word of each body no log line has otherwise.
BODY_WORDS = ("zolpidem", "quokkafund", "vermilion", "Saffron")
NUMBERS = (
    LOOKED_UP, IN_QUERY, SENT_TO, REFUSED, CARRIER_OPT_OUT, JOB_FAILS, WEB_FAILS, STOPPER,
    TEXTER, "+14155550188",
)  # fmt: skip


def leaks(text: str, secrets: list[str]) -> list[str]:
    """What of the test's numbers, emails, bodies and secrets ``text`` shows."""
    forms = [EMAIL, "alice.private", "example.com", NATIONAL, *secrets]
    for number in NUMBERS:
        # E.164, without the "+", national, and the subscriber part in two spellings.
        forms += [number, number[1:], number[2:], number[5:], f"{number[5:8]}-{number[8:]}"]
    forms += [*BODIES, *BODY_WORDS]
    return sorted({form for form in forms if form in text})


def request(base: str, method: str, path: str, payload: object = None, **headers: str) -> int:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Authorization": f"Bearer {API_SECRET}", "Content-Type": "application/json",
                 **headers},
        method=method,
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def signed(base: str, path: str, params: dict[str, str]) -> int:
    with urllib.request.urlopen(twilio_request(base + path, params), timeout=10) as response:
        response.read()
        return int(response.status)


@pytest.mark.slow
@pytest.mark.redis
def test_no_number_email_body_or_secret_in_what_web_and_worker_write(
    clean_database_url: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    url = make_url(clean_database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password=DB_PASSWORD)
    database_url = url.render_as_string(hide_password=False)
    database = Database(database_url)
    with database.transaction() as session:
        add_line(session, normalize_line(LINE), get_or_create_organization(session, "default"))
    database.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    with (
        running_stub(free_port()) as stub,
        cleaned_up(tmp_path),
        refused_body(clean_database_url, BODY_WEB, on="insert"),
        refused_body(clean_database_url, BODY_JOB, on="claim"),
    ):
        stub.answers[REFUSED] = twilio_error(21211, "The 'To' number 4155550177 is not valid")
        stub.answers[CARRIER_OPT_OUT] = twilio_error(21610, "Attempt to send to unsubscribed")
        env = environment(
            tmp_path,
            OPTGATE_DATABASE_URL=database_url,
            OPTGATE_REDIS_URL=redis_url,
            OPTGATE_API_TOKENS=f"ops:manager:*:{API_SECRET}",
            OPTGATE_TWILIO_API_URL=stub.url,
            OPTGATE_PUBLIC_URL=base,
            OPTGATE_QUIET_HOURS="off",
            TWILIO_ACCOUNT_SID=TWILIO_SID,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        )
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "1"], env, tmp_path)
        wait_ready(base, web, tmp_path, timeout=20)

        contacts = "/api/v1/contacts"
        encoded = urllib.parse.quote(LOOKED_UP, safe="")
        looked_up = [
            request(base, "GET", f"{contacts}/{LOOKED_UP}/consent"),
            request(base, "GET", f"{contacts}/{encoded}/history?organization=default"),
            request(base, "GET", f"{contacts}/{NATIONAL}/consent"),
            request(base, "GET", f"{contacts}/{EMAIL}/consent"),
            request(base, "GET", f"{contacts}/{urllib.parse.quote(EMAIL)}/consent"),
            # A client's mistakes: numbers, an email and the token in a query string, a
            # referer that names a contact, the token as a Basic user.
            request(
                base,
                "GET",
                f"{contacts}/{encoded}/consent?to={IN_QUERY}&phone=%2B{IN_QUERY[1:]}"
                f"&national={IN_QUERY[2:]}&email={EMAIL}&token={API_SECRET}",
                Referer=f"{base}{contacts}/{NATIONAL}/history",
            ),
            request(
                base,
                "GET",
                "/api/v1/review",
                Authorization="Basic " + base64.b64encode(f"{API_SECRET}:x".encode()).decode(),
            ),
        ]
        sends = {
            to: request(
                base,
                "POST",
                "/api/v1/messages",
                {"line": LINE, "to": to, "body": body, "kind": "transactional"},
            )
            for to, body in [
                (SENT_TO, BODY_SENT),
                (REFUSED, BODY_SENT),
                (CARRIER_OPT_OUT, BODY_SENT),
                (JOB_FAILS, BODY_JOB),
                (WEB_FAILS, BODY_WEB),
            ]
        }
        webhooks = [
            signed(base, "/webhooks/twilio/messages", inbound(STOPPER, "STOP", 1)),
            signed(base, "/webhooks/twilio/messages", inbound(TEXTER, BODY_INBOUND, 2)),
        ]
        worker = _run_worker(env, tmp_path)
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=15) == 0, output(tmp_path)
        received = {seen.to for seen in stub.received}

    written = output_of(tmp_path) + worker
    found = leaks(written, secrets=[API_SECRET, TWILIO_TOKEN, DB_PASSWORD])
    assert not found, f"leaked {found} in:\n{written}"
    # The requests were made and the failures happened (else the test proves nothing)...
    assert 500 not in looked_up and looked_up[-1] == 401, looked_up
    assert sends == {SENT_TO: 202, REFUSED: 202, CARRIER_OPT_OUT: 202, JOB_FAILS: 202,
                     WEB_FAILS: 500}, sends  # fmt: skip
    assert webhooks == [200, 200]
    assert received == {SENT_TO, REFUSED, CARRIER_OPT_OUT}, received
    # ... and were logged, masked.
    for said in (
        f"GET {contacts}/+1********99/consent",
        f"GET {contacts}/+1********88/consent",
        f"GET {contacts}/a***@e***.com/consent",
        "&token=[secret]",
        "unexpected database error",
        "failed: Twilio refused the message",
        "opted_out recorded for +1********22",
        "exception raised while executing",
    ):
        assert said in written, f"{said!r} not in\n{written}"


def inbound(sender: str, body: str, number: int) -> dict[str, str]:
    return {"MessageSid": f"SM{number:032x}", "AccountSid": TWILIO_SID, "From": sender,
            "To": LINE, "Body": body}  # fmt: skip


def _run_worker(env: dict[str, str], folder: Path) -> str:
    """``optgate worker --burst`` until the queue is empty: what it wrote."""
    done = subprocess.run(
        [OPTGATE, "worker", "--burst"], env=env, cwd=folder, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def output_of(folder: Path) -> str:
    return "".join(
        (folder / name).read_text(errors="replace") for name in ("stdout.txt", "stderr.txt")
    )
