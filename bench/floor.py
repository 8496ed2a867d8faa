"""The floor of bench/webhooks.py: the least "commit before answer" can cost.

The ceiling's bare endpoint, plus what no inbound webhook can skip: the Twilio
signature check (the twilio library's RequestValidator, as optgate's adapter
uses), and one INSERT of the message row committed before the answer — on the
same database, with optgate's engine settings (app/data/db.py: WAL and
synchronous=NORMAL on SQLite, durable commits on PostgreSQL). The insert
ignores a row that is there already (a retry), as optgate must. No line
look-up, no matching, no consent, no history.

Run by bench/webhooks.py as ``gunicorn --chdir bench floor:app`` with
FLOOR_DATABASE_URL (a migrated optgate database whose line 1 exists) and
FLOOR_PUBLIC_URL (the base URL the requests were signed for).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, Response, abort, request
from sqlalchemy.dialects import postgresql, sqlite
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ is no package

from app.data.db import make_engine
from app.data.models import Message, utcnow
from tests.conftest import TWILIO_TOKEN

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'

engine = make_engine(os.environ["FLOOR_DATABASE_URL"])
insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
validator = RequestValidator(TWILIO_TOKEN)
public_url = os.environ["FLOOR_PUBLIC_URL"]
app = Flask(__name__)


@app.post("/webhooks/twilio/messages")
def webhook() -> Response:
    form = request.form
    url = public_url + request.environ.get("RAW_URI", request.path)
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(Message)
            .values(organization_id=1, line_id=1, direction="inbound", address=form["From"],
                    body=form.get("Body", ""), status="received", provider="twilio",
                    provider_message_id=form["MessageSid"], needs_review=False,
                    require_opt_in=False, attempts=0, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["provider", "provider_message_id"])
        )  # fmt: skip
    return Response(EMPTY_TWIML, content_type="application/xml")
