"""The peer of bench/webhooks.py: Twilio's own sample of SMS subscriptions on Flask.

Vendored from https://github.com/TwilioDevEd/marketing-notifications-flask at commit
34c3f9ee385a16d8fd68dbe01a3f102bd46a09ca (MIT licence, Copyright (c) 2021 Twilio Inc,
in LICENSE beside this file): its ``Subscriber`` model (notifications/models/
subscriber.py) and its inbound webhook, ``POST /message`` (notifications/views.py),
as they are there — Flask-SQLAlchemy, one look-up by number, subscribe/unsubscribe,
a TwiML answer. Left out, because the webhook does not use them: the page that
sends to every subscriber, its form, templates and migrations. Changed: the
configuration comes from PEER_DATABASE_URL, and the table is created at start.

It checks no signature, keeps no message, does not tell a retry from a new text
and keeps no history: the benchmark shows what optgate's guarantees cost beside it.
Run by bench/webhooks.py as ``gunicorn --chdir bench/peer marketing_notifications:app``.
"""

from __future__ import annotations

import os
from typing import Any

import flask
from flask import Flask, Response, request
from flask_sqlalchemy import SQLAlchemy
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["PEER_DATABASE_URL"]
app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
db = SQLAlchemy(app)


class Subscriber(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "subscribers"

    id = db.Column(db.Integer, primary_key=True)
    phone_number = db.Column(db.String, nullable=False)
    subscribed = db.Column(db.Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"<Subscriber {self.phone_number} {self.subscribed}>"


with app.app_context():
    db.create_all()


def twiml(resp: Any) -> Response:
    resp = flask.Response(str(resp))
    resp.headers["Content-Type"] = "text/xml"
    return resp


def respond_message(message: str) -> MessagingResponse:
    response = MessagingResponse()
    response.message(message)
    return response


@app.route("/message", methods=["POST"])
def message() -> Response:
    subscriber = Subscriber.query.filter(Subscriber.phone_number == request.form["From"]).first()
    sms_body = request.form["Body"]
    if subscriber is None:
        subscriber = Subscriber(phone_number=request.form["From"])
        db.session.add(subscriber)
        output = "Thanks for contacting TWBC! "
    elif sms_body.lower() not in ("subscribe", "unsubscribe"):
        output = "Unrecognized command! "
    else:
        output = ""
    if sms_body.lower() == "subscribe":
        if not subscriber.subscribed:
            subscriber.subscribed = True
            output += "You are now subscribed for updates."
        else:
            output += "You are already subscribed for updates."
    elif sms_body.lower() == "unsubscribe":
        if subscriber.subscribed:
            subscriber.subscribed = False
            output += (
                "You have unsubscribed from notifications. "
                "Text 'subscribe' to start receiving updates again."
            )
        else:
            output += "You are not subscribed for updates."
    else:
        output += (
            "Text 'subscribe' if you would like to receive updates via text message"
            " or 'unsubscribe' to stop receiving them."
        )

    db.session.commit()

    return twiml(respond_message(output))
