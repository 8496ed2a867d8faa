"""The review queue (texts a person must read) and the keyword tester.

Resolving a text goes through ``app.messages.review.resolve``, as the API's
does: an opt-out is applied by the ledger in the scope a stop keyword on that
line would have had, recorded with the signed-in person as actor; a dismissal
changes no consent. Either way the text leaves the queue with who and when.
The keyword tester is a GET form: it changes nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from app.addresses import normalize_line
from app.data.models import Line, LineGroup, Message, Organization
from app.errors import InvalidAddress, InvalidChange, OptgateError
from app.errors import NotFound as NoSuchThing
from app.keywords.intent import Action
from app.messages import review
from app.sending import handoff
from app.web import database, keywords, settings
from app.web import session as db_session
from app.web.api import text_problem
from app.web.console import actor, blueprint, organization, page, reason_field, refusal
from app.web.errors import status_of

#: Texts per page of the queue.
PAGE_SIZE = 50
#: The longest reason the form takes, and the longest text the tester reads.
MOST_TEXT = 2000
#: The largest id a URL may name (what a BIGINT holds).
MOST_ID = 2**63 - 1

ACTION_WORDS = {
    Action.OPT_OUT: "Opt out (stop everything on this line)",
    Action.OPT_IN: "Opt in (start again)",
    Action.TOPIC_OPT_OUT: "Opt out of a topic",
    Action.TOPIC_OPT_IN: "Opt in to a topic",
    Action.HELP: "Help",
    Action.RESPONDER: "A custom responder answers",
    Action.NONE: "Nothing: an ordinary text",
}


def _after() -> int:
    raw = request.values.get("after", "")
    ok = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MOST_ID))
    return int(raw) if ok and int(raw) <= MOST_ID else 0


def _queue(
    org: Organization, *, resolved: bool, after: int, status: int = 200, **extra: Any
) -> ResponseReturnValue:
    found = review.pending(
        db_session(), org.id, after_id=after, limit=PAGE_SIZE + 1, resolved=resolved
    )
    following = found[PAGE_SIZE - 1][0].id if len(found) > PAGE_SIZE else None
    return page(
        "review.html",
        status,
        nav="review",
        texts=found[:PAGE_SIZE],
        resolved=resolved,
        after=after,
        following=following,
        topics=keywords().matcher.config.topics,
        **extra,
    )


@blueprint.get("/review")
def review_queue() -> ResponseReturnValue:
    """Texts waiting for a person, oldest first; ``?state=resolved``: those done."""
    resolved = request.args.get("state") == "resolved"
    return _queue(organization(), resolved=resolved, after=_after())


def _no_such_text(id: int) -> NotFound:
    # The same words for a text that does not exist, is not waiting for review, or is
    # another organisation's: a page tells nobody what they may not reach.
    return NotFound(f"There is no text {id} waiting for review. Start again from the queue.")


@blueprint.post(f"/review/<int(max={MOST_ID}):id>")
def resolve_review(id: int) -> ResponseReturnValue:
    """Opt the sender out (overall or a topic), or dismiss the text."""
    org = organization()
    db = db_session()
    text = db.get(Message, id)
    if text is None or text.organization_id != org.id:
        raise _no_such_text(id)
    topics = keywords().matcher.config.topics
    try:
        raw = request.form.get("resolution", "")
        if raw not in list(review.Resolution):
            raise InvalidChange("Choose Opt out or Dismiss.")
        resolution = review.Resolution(raw)
        # The topic is an opt-out's; a dismissal with one chosen dismisses all the same.
        topic = request.form.get("topic") or None
        if resolution is review.Resolution.DISMISSED:
            topic = None
        message, outcome = review.resolve(
            db,
            keywords().matcher,
            settings().default_region,
            id,
            resolution,
            actor=actor(),
            reason=reason_field(),
            topic=topic,
        )
    except NoSuchThing:
        db.rollback()
        raise _no_such_text(id) from None
    except OptgateError as error:
        db.rollback()
        return _queue(
            org,
            resolved=False,
            after=_after(),
            status=status_of(error),
            refused=refusal(error),
            refused_id=id,
        )
    organization_id, address = message.organization_id, message.address
    db.commit()
    if resolution is review.Resolution.OPT_OUT:
        # Also when nothing changed (the contact had stopped already): the page says
        # "opted out" only once nothing is on its way to them (app/sending/handoff.py).
        handoff.wait_for_hand_offs(database(), organization_id, address)
        what = (
            f"the topic {topics[topic].name}"
            if topic is not None and topic in topics
            else "SMS, as if they had texted STOP to that line"
        )
        flash(
            f"Text {id}: the sender is opted out of {what}."
            if outcome.changed
            else f"Text {id} resolved: the sender was opted out of {what} already."
        )
    else:
        flash(f"Text {id} dismissed: no consent changed.")
    return redirect(url_for(".review_queue"), 303)


# -- the keyword tester -----------------------------------------------------------------------


def _org_lines(org: Organization) -> list[Line]:
    return list(
        db_session().scalars(
            sa.select(Line).where(Line.organization_id == org.id).order_by(Line.address)
        )
    )


@blueprint.route("/keywords", methods=["GET", "POST"])
def keyword_tester() -> ResponseReturnValue:
    """What the keyword config in force would do with a text sent to one of the lines.

    Posted, though it changes nothing: a text in the URL would be in the access log,
    the browser's history and any proxy's, and texts are what we never log."""
    org = organization()
    lines = _org_lines(org)
    store = keywords()
    context: dict[str, Any] = {
        "nav": "keywords",
        "lines": lines,
        "config": store.status(),
        "topics": store.matcher.config.topics,
        "action_words": ACTION_WORDS,
    }
    text = request.form.get("text") if request.method == "POST" else None
    raw_line = request.form.get("line", "").strip()
    context.update(text=text, chosen_line=raw_line)
    if text is None:
        return page("keywords.html", **context)
    try:
        line = _line(org, raw_line) if raw_line else None
        if len(text) > MOST_TEXT:
            raise InvalidChange(f"Text: at most {MOST_TEXT} characters.")
        if problem := text_problem(text, free_text=True):
            raise InvalidChange(f"Text: it {problem}.")
    except (InvalidAddress, InvalidChange) as error:
        context["text"] = text[:MOST_TEXT]
        return page("keywords.html", 400, error=refusal(error)["reason"], **context)
    group = None
    if line is not None and line.group_id is not None:
        group = db_session().scalar(sa.select(LineGroup.name).where(LineGroup.id == line.group_id))
    intent = store.matcher.match(text, line=line.address if line else None, group=group)
    context.update(intent=intent, line=line, group=group, chosen_line=line.address if line else "")
    return page("keywords.html", **context)


def _line(org: Organization, raw: str) -> Line:
    """The line written as ``raw``, of ``org``: another organisation's does not exist."""
    number = normalize_line(raw[:64], settings().default_region).value
    found = db_session().scalar(
        sa.select(Line).where(Line.address == number, Line.organization_id == org.id)
    )
    if found is None:
        raise NotFound(f"There is no line {number} in {org.name}. Choose one from the list.")
    return found
