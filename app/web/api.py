"""The HTTP API under ``/api/v1``: bearer tokens with roles, JSON in and out.

Thin: parse the request, call the outbox or a query, answer. Every error is
JSON with a message a person can act on (errors.py): 401 without a known
token, 403 for a role that may not do it, 400 for bad input, 404 for what
does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import BadRequest, Forbidden, Unauthorized

from app.consent.policy import MEANINGS, BlockReason
from app.errors import InvalidMessage, NotFound
from app.models import Campaign, Direction, Line, Message
from app.settings import ApiToken, Role
from app.web import session, settings
from workers.queue import Outbox

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: Roles and what they include.
_INCLUDES = {Role.AGENT: {Role.AGENT}, Role.MANAGER: {Role.AGENT, Role.MANAGER}}


def requires(role: Role) -> Callable[[F], F]:
    """The view needs a token whose role includes ``role``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            token = _token()
            if role not in _INCLUDES[token.role]:
                raise Forbidden(
                    f"the token {token.name!r} has the role {token.role.value}; "
                    f"this needs {role.value}"
                )
            g.api_token = token
            return view(*args, **kwargs)

        return cast(F, checked)

    return decorate


def _token() -> ApiToken:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("send a token: Authorization: Bearer <token> (OPTGATE_API_TOKENS)")
    for token in settings().api_tokens:
        if hmac.compare_digest(token.secret.encode(), secret.strip().encode()):
            return token
    raise _unauthorized("the token is not one of OPTGATE_API_TOKENS")


def _unauthorized(message: str) -> Unauthorized:
    # RFC 6750: a 401 says which scheme it wants.
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "optgate"}))


def outbox() -> Outbox:
    value: Outbox = current_app.extensions["optgate.outbox"]
    return value


# -- messages ---------------------------------------------------------------------------


@blueprint.post("/messages")
@requires(Role.AGENT)
def create_message() -> ResponseReturnValue:
    """Queue one message; 202 with its id (the worker decides at send time)."""
    data = _json()
    message_id = outbox().message(
        line=_text(data, "line"),
        to=_text(data, "to"),
        body=_text(data, "body"),
        kind=_text(data, "kind"),
        topic=_optional_text(data, "topic"),
        require_opt_in=_flag(data, "require_opt_in"),
        campaign=_optional_int(data, "campaign"),
        send_at=_time(data, "send_at"),
        created_by=g.api_token.name,
    )
    answer = {"id": message_id, "status": "queued", "url": url_for(".message", id=message_id)}
    return jsonify(answer), 202


@blueprint.get("/messages/<int:id>")
@requires(Role.AGENT)
def message(id: int) -> ResponseReturnValue:
    row = session().get(Message, id)
    if row is None or row.direction is not Direction.OUTBOUND:
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
        "send_at": _iso(row.send_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "sent_at": _iso(row.sent_at),
    }


# -- campaigns --------------------------------------------------------------------------


@blueprint.post("/campaigns")
@requires(Role.MANAGER)
def create_campaign() -> ResponseReturnValue:
    """Queue a campaign; 202 with what was queued and every invalid row."""
    data = _json()
    recipients = data.get("recipients")
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise InvalidMessage("recipients: expected a list of phone numbers as strings")
    if not recipients:
        raise InvalidMessage("recipients: the list is empty")
    queued = outbox().campaign(
        line=_text(data, "line"),
        recipients=recipients,
        body=_text(data, "body"),
        topic=_optional_text(data, "topic"),
        require_opt_in=_flag(data, "require_opt_in"),
        kind=_optional_text(data, "kind") or "marketing",
        name=_optional_text(data, "name"),
        send_at=_time(data, "send_at"),
        created_by=g.api_token.name,
    )
    answer = {**queued.as_dict(), "url": url_for(".campaign", id=queued.id)}
    return jsonify(answer), 202


@blueprint.get("/campaigns/<int:id>")
@requires(Role.AGENT)
def campaign(id: int) -> ResponseReturnValue:
    db = session()
    row = db.get(Campaign, id)
    if row is None:
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
            "created_at": _iso(row.created_at),
            "loading": row.enqueued_at is None,
            "recipients": row.recipients,
            "invalid": row.invalid,
            "invalid_rows": row.invalid_rows or [],
            "messages": sum(by_status.values()),
            "by_status": by_status,
            "blocked_by_reason": by_reason,
        }
    )


# -- request parsing --------------------------------------------------------------------


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object (Content-Type: application/json)")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessage(f"{name}: required, a string")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"{name}: expected a string")
    return value


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidMessage(f"{name}: expected a positive whole number")
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidMessage(f"{name}: expected true or false")
    return value


def _time(data: dict[str, Any], name: str) -> datetime | None:
    value = _optional_text(data, name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(
            f"{name}: {value!r} is not an ISO 8601 time such as 2026-12-01T09:00:00-05:00"
        ) from None
    if moment.tzinfo is None:
        raise InvalidMessage(f"{name}: {value!r} has no time zone offset (add Z or -05:00)")
    return moment


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def init_app(app: Flask) -> None:
    app.extensions["optgate.outbox"] = Outbox(
        app.extensions["optgate.settings"],
        app.extensions["optgate.database"],
        app.extensions["optgate.keywords"],
    )
    app.register_blueprint(blueprint)
