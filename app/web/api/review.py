"""The review queue (texts that may be a revocation in words) and the keyword tester.

A token reaches the texts and lines of its organisation only (app/web/api).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import g, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from app.addresses import normalize_line
from app.data.models import Line, LineGroup, Message
from app.errors import InvalidChange, InvalidRequest, NotFound
from app.messages import review
from app.sending import handoff
from app.settings import Role
from app.web import database, keywords, session, settings
from app.web.api import (
    Fields,
    actor_of,
    blueprint,
    json_object,
    organization,
    query_choice,
    query_int,
    reachable,
    reachable_line,
    requires,
)
from app.web.api.contacts import event_dicts

#: The most texts one page of the queue holds.
MOST_TEXTS = 500


@blueprint.get("/review")
@requires(Role.AGENT)
def review_queue() -> ResponseReturnValue:
    """Texts waiting for a person, oldest first (``state=resolved``: those done)."""
    org = organization()
    state = query_choice("state", ["pending", "resolved"], "pending")
    after = query_int("after", 0, 0, 2**63 - 1)
    limit = query_int("limit", 100, 1, MOST_TEXTS)
    found = review.pending(
        session(), org.id, after_id=after, limit=limit, resolved=state == "resolved"
    )
    texts = [review.review_dict(message, line) for message, line in found]
    following = None
    if len(texts) == limit:
        arguments = {"state": state, "after": texts[-1]["id"], "limit": limit}
        if "organization" in request.args:
            arguments["organization"] = org.name
        following = url_for(".review_queue", **arguments)
    return jsonify({"texts": texts, "next": following})


# A larger id is no message (and no database takes it): 404, not an error.
@blueprint.post(f"/review/<int(max={2**63 - 1}):id>")
@requires(Role.AGENT)
def resolve(id: int) -> ResponseReturnValue:
    """Resolve one text: ``opt_out`` (through the ledger) or ``dismissed``."""
    fields = Fields(json_object(), InvalidChange)
    resolution = review.Resolution(fields.choice("resolution", list(review.Resolution)))
    db = session()
    text = db.get(Message, id)
    if text is not None and not reachable(text.organization_id):
        # Word for word what review.resolve says of a text that does not exist.
        raise NotFound(f"there is no inbound text {id} waiting for review")
    message, outcome = review.resolve(
        db,
        keywords().matcher,
        settings().default_region,
        id,
        resolution,
        actor=actor_of(fields.text("actor")),
        reason=fields.optional_text("reason", free_text=True),
        topic=fields.optional_text("topic"),
    )
    events = event_dicts(outcome.events)
    line = db.get(Line, message.line_id)
    answer = {**review.review_dict(message, line.address if line else ""), "events": events}
    db.commit()
    if resolution is review.Resolution.OPT_OUT:
        # Also when the opt-out changed nothing (the contact had stopped already): the
        # answer promises that nothing leaves any more (app/sending/handoff.py).
        handoff.wait_for_hand_offs(database(), message.organization_id, message.address)
    return jsonify(answer)


@blueprint.post("/keywords/test")
@requires(Role.AGENT)
def test_keywords() -> ResponseReturnValue:
    """What the keyword config in force does with ``text`` sent to ``line``."""
    fields = Fields(json_object(), InvalidRequest)
    text = fields.optional_text("text", free_text=True)
    if text is None:
        raise InvalidRequest("text: required, a string (it may be empty)")
    raw_line = fields.optional_text("line")
    if raw_line and g.api_organization is not None:
        # A token of one organisation tests its own lines only: another's overrides
        # would tell it that the line exists, and how it answers.
        reachable_line(raw_line)
    line = normalize_line(raw_line, settings().default_region).value if raw_line else None
    group = None
    if line is not None:
        group = session().scalar(
            sa.select(LineGroup.name)
            .join(Line, Line.group_id == LineGroup.id)
            .where(Line.address == line)
        )
    store = keywords()
    intent = store.matcher.match(text, line=line, group=group)
    return jsonify(
        {
            **intent.as_dict(text),
            "topics": list(intent.topics),
            "keyword": intent.keyword,
            "exact": intent.exact,
            "line": line,
            "group": group,
            "config": store.status(),
        }
    )
