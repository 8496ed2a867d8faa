"""Messages and campaigns: queue them, read them back.

A token reaches the messages and campaigns of its organisation only (app/web/api);
adding a message to a campaign is a manager's, as starting one is.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import g, jsonify, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from app.data.models import Campaign, Direction, Line, Message
from app.errors import InvalidMessage, NotFound
from app.runtime import heartbeat
from app.sending.policy import MEANINGS, BlockReason
from app.settings import Role
from app.web import outbox, session
from app.web.api import (
    Fields,
    blueprint,
    end_reads,
    iso,
    json_object,
    reachable,
    reachable_line,
    requires,
)

# -- messages ---------------------------------------------------------------------------


@blueprint.post("/messages")
@requires(Role.AGENT)
def create_message() -> ResponseReturnValue:
    """Queue one message; 202 with its id (the worker decides at send time)."""
    fields = Fields(json_object(), InvalidMessage)
    campaign = fields.optional_int("campaign")
    if campaign is not None and g.api_token.role is not Role.MANAGER:
        # Before the campaign is looked up: an agent learns nothing of campaign ids.
        raise Forbidden(
            f"the token {g.api_token.name!r} has the role agent, which may queue a message "
            "but not add it to a campaign; that needs a manager token"
        )
    line = reachable_line(fields.text("line"))
    if campaign is not None:
        _check_campaign(campaign, line)
    end_reads()  # the outbox writes in transactions of its own
    message_id = outbox().message(
        line=line.address,
        to=fields.text("to"),
        body=fields.text("body", free_text=True),
        kind=fields.text("kind"),
        topic=fields.optional_text("topic"),
        require_opt_in=fields.flag("require_opt_in"),
        campaign=campaign,
        send_at=fields.time("send_at"),
        created_by=g.api_token.name,
    )
    answer = {"id": message_id, "status": "queued", "url": url_for(".message", id=message_id)}
    return jsonify(answer), 202


# A larger id is no message (and no database takes it): 404, not an error.
@blueprint.get(f"/messages/<int(max={2**63 - 1}):id>")
@requires(Role.AGENT)
def message(id: int) -> ResponseReturnValue:
    row = session().get(Message, id)
    if row is None or row.direction is not Direction.OUTBOUND or not reachable(row.organization_id):
        raise NotFound(f"there is no outbound message {id}")
    line = session().get(Line, row.line_id)
    return jsonify(message_dict(row, line.address if line else None))


def message_dict(row: Message, line: str | None) -> dict[str, Any]:
    reason = BlockReason(row.block_reason) if row.block_reason else None
    return {
        "id": row.id,
        "line": line,
        "to": row.address,
        "kind": row.kind.value if row.kind else None,
        "topic": row.topic,
        "campaign": row.campaign_id,
        "status": row.status.value,
        "block_reason": reason.value if reason else None,
        "block_meaning": MEANINGS[reason] if reason else None,
        "provider": row.provider,
        "provider_message_id": row.provider_message_id,
        "error_code": row.error_code,
        "error": (row.meta or {}).get("error"),
        "attempts": row.attempts,
        "send_at": iso(row.send_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "sent_at": iso(row.sent_at),
    }


def _check_campaign(campaign: int, line: Line) -> None:
    """A message may count under a campaign of its line's organisation only."""
    row = session().get(Campaign, campaign)
    if row is None or not reachable(row.organization_id):
        raise NotFound(f"there is no campaign {campaign}")
    if row.organization_id != line.organization_id:  # only an operator token gets here
        raise InvalidMessage(
            f"campaign {campaign} belongs to another organization than line {line.address}"
        )


# -- campaigns --------------------------------------------------------------------------


@blueprint.post("/campaigns")
@requires(Role.MANAGER)
def create_campaign() -> ResponseReturnValue:
    """Queue a campaign; 202 with what was queued and every invalid row."""
    data = json_object()
    fields = Fields(data, InvalidMessage)
    recipients = data.get("recipients")
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise InvalidMessage("recipients: expected a list of phone numbers as strings")
    if not recipients:
        raise InvalidMessage("recipients: the list is empty")
    for row, recipient in enumerate(recipients, start=1):
        # Refused, not reported as an invalid row: that row would be stored as it is.
        fields.checked(f"recipients row {row}", recipient)
    line = reachable_line(fields.text("line"))
    end_reads()  # the outbox writes in transactions of its own
    queued = outbox().campaign(
        line=line.address,
        recipients=recipients,
        body=fields.text("body", free_text=True),
        topic=fields.optional_text("topic"),
        require_opt_in=fields.flag("require_opt_in"),
        kind=fields.optional_text("kind") or "marketing",
        name=fields.optional_text("name"),
        send_at=fields.time("send_at"),
        created_by=g.api_token.name,
        # A campaign of many thousands takes a while: check in with gunicorn as it goes.
        progress=heartbeat.beat,
    )
    answer = {**queued.as_dict(), "url": url_for(".campaign", id=queued.id)}
    return jsonify(answer), 202


# A larger id is no campaign (campaign ids are 32-bit): 404, not an error.
@blueprint.get(f"/campaigns/<int(max={2**31 - 1}):id>")
@requires(Role.AGENT)
def campaign(id: int) -> ResponseReturnValue:
    db = session()
    row = db.get(Campaign, id)
    if row is None or not reachable(row.organization_id):
        raise NotFound(f"there is no campaign {id}")
    line = db.get(Line, row.line_id)
    counts = db.execute(
        sa.select(Message.status, Message.block_reason, sa.func.count())
        .where(Message.campaign_id == id)
        .group_by(Message.status, Message.block_reason)
    ).all()
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for status, reason, count in counts:
        by_status[status.value] = by_status.get(status.value, 0) + count
        if reason:
            by_reason[reason] = by_reason.get(reason, 0) + count
    return jsonify(
        {
            "id": row.id,
            "line": line.address if line else None,
            "name": row.name,
            "kind": row.kind.value,
            "topic": row.topic,
            "require_opt_in": row.require_opt_in,
            "created_by": row.created_by,
            "created_at": iso(row.created_at),
            "loading": row.enqueued_at is None,
            "recipients": row.recipients,
            "invalid": row.invalid,
            "invalid_rows": row.invalid_rows or [],
            "messages": sum(by_status.values()),
            "by_status": by_status,
            "blocked_by_reason": by_reason,
        }
    )
