"""The HTTP API under ``/api/v1``: bearer tokens with roles, JSON in and out.

Thin: parse the request, call the domain, answer. Every error is JSON with a
message a person can act on (errors.py): 401 without a known token, 403 for
a role that may not do it, 400 for bad input, 404 for what does not exist,
409 for what the consent rules refuse. This module holds what the views
share (the blueprint, ``requires``, request parsing); the views live in
``outbound``, ``contacts``, ``reports`` and ``review``, and ``openapi.yaml``
describes them all (served at ``/api/v1/openapi.json``).

A token reaches one organisation, or every one (an operator's). Whatever
belongs to another organisation is answered, through every route, exactly as
what does not exist is: a 404 with the same words, so a token learns nothing
of what it may not reach. ``organization``, ``reachable_line`` and
``reachable`` are how the views ask.

Input: a JSON body is an object nested at most ``MOST_DEPTH`` deep, and no
field holds a control character (PostgreSQL refuses NUL in text; the rest is
no part of anything a person writes). Free text (a reason, a message body, a
text to test) may hold tabs and line breaks; every other field is one line.
"""

from __future__ import annotations

import hmac
import json
import re
import shlex
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Blueprint, Flask, g, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import BadRequest, Forbidden, Unauthorized

from app.addresses import Address, normalize
from app.consent import queries
from app.consent.reports import parse_bound
from app.data.models import Line, Organization
from app.errors import InvalidAddress, InvalidRequest, NotFound, OptgateError
from app.lines import find_line, find_organization
from app.settings import ApiToken, Role
from app.web import session, settings

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: Longest actor a request may name (the token's name is added to it).
MOST_ACTOR = 120

#: The deepest a JSON body may nest (objects and lists); ours are two deep. Without a
#: bound, a body of 100,000 brackets exhausts the parser's stack.
MOST_DEPTH = 16

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
            g.api_organization = None if token.operator else _own_organization(token)
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


def _own_organization(token: ApiToken) -> Organization:
    """The organisation of a token that reaches one; 404 while it does not exist."""
    own = (
        session()
        .scalars(sa.select(Organization).where(Organization.name == token.organization))
        .one_or_none()
    )
    if own is None:
        raise NotFound(
            f"there is no organization {token.organization!r} yet, and the token "
            f"{token.name!r} reaches only that one: it begins with its first line "
            f"(`optgate lines add NUMBER --organization {shlex.quote(token.organization or '')}`)"
        )
    return own


def _unauthorized(message: str) -> Unauthorized:
    # RFC 6750: a 401 says which scheme it wants.
    return Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "optgate"}))


# -- request parsing --------------------------------------------------------------------


_NOT_AN_OBJECT = "expected a JSON object (Content-Type: application/json)"
_TOO_DEEP = f"the JSON is nested more than {MOST_DEPTH} levels deep; ours are two"


def json_object() -> dict[str, Any]:
    """The request's JSON object, nested at most ``MOST_DEPTH`` deep."""
    if not request.is_json:
        raise BadRequest(_NOT_AN_OBJECT)
    try:
        # Parsed here, not by request.get_json: its RecursionError would be a 500.
        data = json.loads(request.get_data(cache=True))
    except RecursionError:
        raise BadRequest(_TOO_DEEP) from None
    except ValueError:  # not JSON, or not UTF-8
        raise BadRequest(_NOT_AN_OBJECT) from None
    if not isinstance(data, dict):
        raise BadRequest(_NOT_AN_OBJECT)
    if _deeper_than(data, MOST_DEPTH):
        raise BadRequest(_TOO_DEEP)
    return data


def _deeper_than(data: Any, most: int) -> bool:
    # A loop, not recursion: the document may be as deep as the parser allowed.
    waiting: list[tuple[Any, int]] = [(data, 1)]
    while waiting:
        value, depth = waiting.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > most:
            return True
        children = value.values() if isinstance(value, dict) else value
        waiting.extend((child, depth + 1) for child in children)
    return False


#: Never in a field: C0 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Never in free text: the same, but for tab, line feed and carriage return.
_CONTROL_IN_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Half a UTF-16 pair ("\ud800" in JSON): no text, and no database can store it.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str, *, free_text: bool = False) -> str | None:
    """What makes ``value`` unfit to store, if anything: a control character (free text
    may hold tabs and line breaks) or a lone surrogate."""
    found = (_CONTROL_IN_FREE_TEXT if free_text else _CONTROL).search(value)
    if found is not None:
        allowed = "tabs and line breaks are fine" if free_text else "it is one line of text"
        return (
            f"holds the control character U+{ord(found.group()):04X} at position "
            f"{found.start() + 1}; remove it ({allowed})"
        )
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        return (
            f"holds half a UTF-16 surrogate pair, U+{ord(found.group()):04X} at position "
            f"{found.start() + 1}, which is not text; send the whole character"
        )
    return None


class Fields:
    """Typed fields of a JSON object; a wrong one raises ``error`` naming it.

    Text fields are one line unless ``free_text`` (a reason, a body): either way no
    control character (``text_problem``).
    """

    def __init__(self, data: dict[str, Any], error: type[OptgateError]) -> None:
        self.data = data
        self.error = error

    def text(self, name: str, *, free_text: bool = False) -> str:
        value = self.data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{name}: required, a string")
        return self.checked(name, value, free_text=free_text)

    def optional_text(self, name: str, *, free_text: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(f"{name}: expected a string")
        return self.checked(name, value, free_text=free_text)

    def checked(self, name: str, value: str, *, free_text: bool = False) -> str:
        """``value`` if it is fit to store, else ``error`` naming the field."""
        if problem := text_problem(value, free_text=free_text):
            raise self.error(f"{name}: {problem}")
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
    """The organisation the request is about.

    A token of one organisation: that one; ``?organization=`` may name it, and naming
    any other is answered as naming one that does not exist. An operator token:
    ``?organization=NAME``, or the only organisation there is.
    """
    name = request.args.get("organization")
    own: Organization | None = g.api_organization
    if own is None:
        try:
            return find_organization(session(), name)
        except NotFound as error:
            raise NotFound(error.message.replace("--organization", "?organization=")) from None
    if name is not None and name != own.name:
        raise NotFound(
            f"there is no organization {name!r} for the token {g.api_token.name!r}, which "
            f"reaches organization {own.name!r} only"
        )
    return own


def reachable(organization_id: int) -> bool:
    """Whether the request's token may reach what belongs to that organisation."""
    own: Organization | None = g.api_organization
    return own is None or own.id == organization_id


def reachable_line(raw: str) -> Line:
    """The line written as ``raw``; another organisation's is, to a token of one
    organisation, a line that does not exist.

    Raises:
        InvalidAddress: ``raw`` is not a number or short code.
        NotFound: no such line (that the token reaches).
    """
    own: Organization | None = g.api_organization
    return find_line(session(), raw, settings().default_region, own.id if own else None)


def end_reads() -> None:
    """End the request session's transaction before long work in other transactions:
    on SQLite it holds the write lock. What it loaded stays readable."""
    session().commit()


def contact(raw: str) -> Address:
    """The contact address of a URL: any written form of a number, or an email address."""
    # An email address may hold any character but '@' and spaces: NUL would reach
    # the database (a 500 on PostgreSQL) if it were not refused here.
    if problem := text_problem(raw):
        raise InvalidAddress(raw, f"it {problem}")
    return normalize(raw, settings().default_region)


def actor_of(name: str) -> str:
    """Who makes a change, as recorded: the person the request names, and its token
    (so a token's holder cannot pass as someone else)."""
    if problem := text_problem(name):
        raise InvalidRequest(f"actor: {problem}")
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
