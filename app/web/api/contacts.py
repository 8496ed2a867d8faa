"""One contact address: its consent on every line, manual changes, flags, history.

Changes go through the ledger with source ``manual`` and the actor the
request names (with the token it came through), so a refused change answers
409 saying why and what would work. An agent may opt out, silence and set
do-not-contact; opting in, lifting a silence and clearing a bounce need a
manager. A change that stops sending answers only once no hand-off to the
address is in flight (DESIGN.md rule 2), as a texted STOP does.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from app.addresses import Address
from app.consent import ledger, queries
from app.consent.values import Channel, Flag, Scope, Source, Status, default_channel
from app.data.models import ConsentEvent, Organization
from app.errors import InvalidChange
from app.lines import find_group
from app.sending import handoff
from app.settings import Role
from app.web import database, keywords, session
from app.web.api import (
    Fields,
    actor_of,
    blueprint,
    contact,
    json_object,
    organization,
    query_int,
    reachable_line,
    requires,
)

#: The most history events one page holds.
MOST_EVENTS = 1000


@blueprint.get("/contacts/<address>/consent")
@requires(Role.AGENT)
def consent(address: str) -> ResponseReturnValue:
    """Status on every line, every channel and topic, with the flags and the records."""
    contact_address = contact(address)
    status = queries.address_status(
        session(), organization(), contact_address, topics=keywords().matcher.config.topics
    )
    return jsonify(status.as_dict())


@blueprint.post("/contacts/<address>/consent")
@requires(Role.AGENT)
def change_consent(address: str) -> ResponseReturnValue:
    """A manual change under the rules; 409 with the reason and a hint when refused."""
    contact_address = contact(address)
    fields = Fields(json_object(), InvalidChange)
    status = Status(fields.choice("status", [Status.OPTED_IN, Status.OPTED_OUT]))
    if status is Status.OPTED_IN and g.api_token.role is not Role.MANAGER:
        raise Forbidden(
            f"the token {g.api_token.name!r} has the role agent, which may opt out but not "
            "opt in; opting in needs a manager token"
        )
    db = session()
    org, scope = _scope(fields)
    default = default_channel(contact_address)
    channel = Channel(fields.choice("channel", list(Channel), default=default))
    topic = fields.optional_text("topic")
    if why := keywords().matcher.config.unknown_topic(topic):
        raise InvalidChange(f"topic: {why}")
    outcome = ledger.apply(
        db,
        ledger.Change(
            organization_id=org.id,
            address=contact_address,
            scope=scope,
            status=status,
            source=Source.MANUAL,
            actor=actor_of(fields.text("actor")),
            channel=channel,
            topic=topic,
            reason=fields.optional_text("reason", free_text=True),
        ),
    )
    return _answer(org, contact_address, outcome, stops=status is Status.OPTED_OUT)


def _scope(fields: Fields) -> tuple[Organization, Scope]:
    kind = fields.choice("scope", ["line", "group", "organization"])
    db = session()
    if kind == "line":
        line = reachable_line(fields.text("line"))
        org = db.get(Organization, line.organization_id)
        assert org is not None
        named = organization() if _names_organization() else org
        if named.id != org.id:
            raise InvalidChange(f"line {line.address} is not a line of organization {named.name!r}")
        return org, Scope.line(line.id)
    org = organization()
    if kind == "group":
        return org, Scope.group(find_group(db, org, fields.text("group")).id)
    return org, Scope.organization()


def _names_organization() -> bool:
    return "organization" in request.args


def _answer(
    org: Organization, address: Address, outcome: ledger.Outcome, *, stops: bool
) -> ResponseReturnValue:
    db = session()
    events = event_dicts(outcome.events)
    db.commit()
    if stops:
        # Whatever changed: a repeated opt-out (or a silence already set) is answered
        # as the first one was, only once no hand-off to the address is in flight.
        handoff.wait_for_hand_offs(database(), org.id, address.value)
    return jsonify(
        {
            "address": address.value,
            "changed": outcome.changed,
            "events": events,
            "consent": url_for(".consent", address=address.value),
        }
    )


def event_dicts(events: list[ConsentEvent]) -> list[dict[str, Any]]:
    session().flush()
    names = queries.scope_names(session(), [event.scope for event in events])
    return [queries.event_dict(event, names) for event in events]


# -- flags ------------------------------------------------------------------------------


def _flag(address: str, flag: Flag, set_it: bool) -> ResponseReturnValue:
    contact_address = contact(address)
    fields = Fields(json_object(), InvalidChange)
    org = organization()
    outcome = ledger.set_flag(
        session(),
        ledger.FlagChange(
            organization_id=org.id,
            address=contact_address,
            flag=flag,
            set=set_it,
            source=Source.MANUAL,
            actor=actor_of(fields.text("actor")),
            reason=fields.optional_text("reason", free_text=True),
        ),
    )
    return _answer(org, contact_address, outcome, stops=set_it)


@blueprint.post("/contacts/<address>/silence")
@requires(Role.AGENT)
def silence(address: str) -> ResponseReturnValue:
    """Block every message to the address until the silence is lifted."""
    return _flag(address, Flag.SILENCED, True)


@blueprint.post("/contacts/<address>/unsilence")
@requires(Role.MANAGER)
def unsilence(address: str) -> ResponseReturnValue:
    return _flag(address, Flag.SILENCED, False)


@blueprint.post("/contacts/<address>/do-not-contact")
@requires(Role.AGENT)
def do_not_contact(address: str) -> ResponseReturnValue:
    """Permanent: no one can lift it."""
    return _flag(address, Flag.DO_NOT_CONTACT, True)


@blueprint.post("/contacts/<address>/clear-bounce")
@requires(Role.MANAGER)
def clear_bounce(address: str) -> ResponseReturnValue:
    return _flag(address, Flag.BOUNCED, False)


# -- history ----------------------------------------------------------------------------


@blueprint.get("/contacts/<address>/history")
@requires(Role.AGENT)
def history(address: str) -> ResponseReturnValue:
    """Events oldest first, a page at a time: ``next`` reads the following page."""
    contact_address = contact(address)
    after = query_int("after", 0, 0, 2**31 - 1)
    limit = query_int("limit", 100, 1, MOST_EVENTS)
    org = organization()
    events = queries.address_history(session(), org, contact_address, after_seq=after, limit=limit)
    following = None
    if len(events) == limit:
        arguments: dict[str, Any] = {"after": events[-1]["seq"], "limit": limit}
        if _names_organization():
            arguments["organization"] = org.name
        following = url_for(".history", address=contact_address.value, **arguments)
    return jsonify({"address": contact_address.value, "events": events, "next": following})
