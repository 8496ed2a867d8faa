"""The HTTP API under ``/api/v1``: bearer tokens with roles, JSON in and out.

Thin: parse the request, call the domain, answer. Every error is JSON with a
message a person can act on (errors.py): 401 without a known token, 403 for
a role that may not do it, 400 for bad input, 404 for what does not exist,
409 for what the consent rules refuse. This module holds what the views
share (the blueprint, ``requires``, request parsing); the views live in
``outbound``, ``contacts``, ``reports`` and ``review``, and ``openapi.yaml``
describes them all (served at ``/api/v1/openapi.json``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, g, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import BadRequest, Forbidden, Unauthorized

from app.addresses import Address, normalize
from app.consent import queries
from app.consent.reports import parse_bound
from app.errors import InvalidRequest, NotFound, OptgateError
from app.lines import find_organization
from app.models import Organization
from app.settings import ApiToken, Role
from app.web import session, settings

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: Longest actor a request may name (the token's name is added to it).
MOST_ACTOR = 120

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


# -- request parsing --------------------------------------------------------------------


def json_object() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object (Content-Type: application/json)")
    return data


class Fields:
    """Typed fields of a JSON object; a wrong one raises ``error`` naming it."""

    def __init__(self, data: dict[str, Any], error: type[OptgateError]) -> None:
        self.data = data
        self.error = error

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{name}: required, a string")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(f"{name}: expected a string")
        return value

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str:
        value = self.optional_text(name) if default is not None else self.text(name)
        allowed = list(choices)
        if value is None:
            assert default is not None
            return default
        if value not in allowed:
            raise self.error(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        return value

    def optional_int(self, name: str, most: int = 2**31 - 1) -> int | None:
        """A positive whole number up to ``most`` (default: what an id column holds)."""
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
            raise self.error(f"{name}: expected a positive whole number up to {most}")
        return value

    def flag(self, name: str) -> bool:
        value = self.data.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.error(f"{name}: expected true or false")
        return value

    def time(self, name: str) -> datetime | None:
        value = self.optional_text(name)
        return None if value is None else parse_time(name, value, self.error)


def parse_time(name: str, value: str, error: type[OptgateError]) -> datetime:
    """A time field: ISO 8601 with its offset, else ``error`` saying what is expected."""
    try:
        return parse_bound(value, days=False)
    except ValueError as problem:
        raise error(f"{name}: {problem}") from None


def query_int(name: str, default: int, least: int, most: int) -> int:
    """A whole number from the query string, from ``least`` to ``most``."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(most))) or not (
        least <= int(raw) <= most
    ):
        raise InvalidRequest(f"{name}: expected a whole number from {least} to {most}, not {raw!r}")
    return int(raw)


def query_time(name: str) -> datetime | None:
    """A report's bound from the query string: a day (midnight UTC) or a time with offset."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return parse_bound(raw)
    except ValueError as error:
        raise InvalidRequest(f"{name}: {error}") from None


def query_choice(name: str, choices: Iterable[str], default: str | None) -> str | None:
    raw = request.args.get(name)
    allowed = list(choices)
    if raw is None:
        return default
    if raw not in allowed:
        raise InvalidRequest(f"{name}: {raw!r} is not one of {', '.join(allowed)}")
    return raw


def organization() -> Organization:
    """``?organization=NAME``, or the only organisation there is."""
    name = request.args.get("organization")
    try:
        return find_organization(session(), name)
    except NotFound as error:
        raise NotFound(error.message.replace("--organization", "?organization=")) from None


def end_reads() -> None:
    """End the request session's transaction before long work in other transactions:
    on SQLite it holds the write lock. What it loaded stays readable."""
    session().commit()


def contact(raw: str) -> Address:
    """The contact address of a URL: any written form of a number, or an email address."""
    return normalize(raw, settings().default_region)


def actor_of(name: str) -> str:
    """Who makes a change, as recorded: the person the request names, and its token
    (so a token's holder cannot pass as someone else)."""
    actor = name.strip()
    if not actor:
        raise InvalidRequest("actor: say who makes the change")
    if len(actor) > MOST_ACTOR:
        raise InvalidRequest(f"actor: at most {MOST_ACTOR} characters")
    return f"{actor} (token {g.api_token.name})"


def iso(moment: datetime | None) -> str | None:
    """Every time the API answers: UTC, to the second, as 2026-11-22T07:52:52Z."""
    return queries.iso(moment) if moment else None


def init_app(app: Flask) -> None:
    # The views register themselves on the blueprint when imported.
    from app.web.api import contacts, openapi, outbound, reports, review  # noqa: F401

    app.register_blueprint(blueprint)
