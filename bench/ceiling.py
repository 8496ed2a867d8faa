"""The ceiling of bench/webhooks.py: a bare Flask app on the same gunicorn, same route.

It reads the same form and answers the same empty TwiML as optgate's inbound
webhook, and checks nothing and stores nothing: what Flask, gunicorn and the
load tool cost on this machine, before any of optgate's work.

Run by bench/webhooks.py as ``gunicorn --chdir bench ceiling:app``.
"""

from __future__ import annotations

from flask import Flask, Response, request

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'

app = Flask(__name__)


@app.post("/webhooks/twilio/<kind>")
def webhook(kind: str) -> Response:
    request.form.get("MessageSid")
    return Response(EMPTY_TWIML, content_type="application/xml")
