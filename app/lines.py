"""Organisations, line groups and lines: where consent is scoped.

Lines are added on purpose (``optgate lines add``) or registered by the
inbound webhook when a provider delivers a text to one of our numbers. A
consent change that names an unknown line is refused with a hint to add it:
a typo must not create a line silently.

The webhook registers a new line only where its organisation is known (the
setting OPTGATE_DEFAULT_ORGANIZATION, else the only organisation there is);
otherwise the text is held for a person (app/messages/inbound.py). It never moves a
line to another group: which opt-outs cover a line depends on its group, so a
move seen at the provider is noted on the line (``seen_group``) and waits for
``optgate lines move``, which carries the opt-outs along (app/consent/moves.py).
Every line's group over time is kept in ``line_memberships``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.addresses import Address, normalize_line
from app.data.models import Line, LineGroup, LineMembership, Organization
from app.errors import Conflict, NotFound
from app.sending.rates import SendRate, rate_in_force

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("optgate.lines")


def get_or_create_organization(session: Session, name: str) -> Organization:
    organization = session.scalars(
        sa.select(Organization).where(Organization.name == name)
    ).one_or_none()
    if organization is None:
        organization = Organization(name=name)
        session.add(organization)
        session.flush()
    return organization


def find_organization(session: Session, name: str | None) -> Organization:
    """The organisation called ``name``; without a name, the only one there is.

    Raises:
        NotFound: no such organisation (naming the ones there are), or no name
            given while there are several.
    """
    organizations = list(session.scalars(sa.select(Organization).order_by(Organization.name)))
    names = ", ".join(organization.name for organization in organizations)
    if name is None:
        if len(organizations) == 1:
            return organizations[0]
        if not organizations:
            raise NotFound("there are no organizations yet: add a line with `optgate lines add`")
        raise NotFound(f"there are several organizations ({names}): name one with --organization")
    for organization in organizations:
        if organization.name == name:
            return organization
    known = f"known: {names}" if names else "there are none yet"
    raise NotFound(f"there is no organization {name!r} ({known})")


def get_or_create_group(session: Session, organization: Organization, name: str) -> LineGroup:
    group = session.scalars(
        sa.select(LineGroup).where(
            LineGroup.organization_id == organization.id, LineGroup.name == name
        )
    ).one_or_none()
    if group is None:
        group = LineGroup(organization_id=organization.id, name=name)
        session.add(group)
        session.flush()
    return group


def find_group(session: Session, organization: Organization, name: str) -> LineGroup:
    """The line group ``name`` of ``organization``.

    Raises:
        NotFound: no such group. The message does not list the groups there are: an
            organisation may have hundreds, and a caller need not learn them all.
    """
    group = session.scalars(
        sa.select(LineGroup).where(
            LineGroup.organization_id == organization.id, LineGroup.name == name
        )
    ).one_or_none()
    if group is None:
        raise NotFound(
            f"organization {organization.name!r} has no line group {name!r}: "
            "`optgate lines list` shows each line's group (a group is created by "
            "`optgate lines add NUMBER --group NAME`)"
        )
    return group


def add_line(
    session: Session,
    address: Address,
    organization: Organization,
    group: LineGroup | None = None,
    name: str | None = None,
    *,
    actor: str = "optgate lines add",
) -> tuple[Line, bool]:
    """Add a line; adding the same line again with the same details changes nothing.

    Args:
        actor: who adds it, for its membership history.

    Returns:
        (the line, whether it was created).

    Raises:
        Conflict: the line exists with another organisation or group.
    """
    line = session.scalars(sa.select(Line).where(Line.address == address.value)).one_or_none()
    group_id = group.id if group else None
    if line is None:
        line = Line(
            address=address.value,
            organization_id=organization.id,
            group_id=group_id,
            name=name,
        )
        session.add(line)
        session.flush()
        session.add(LineMembership(line_id=line.id, group_id=group_id, actor=actor, reason="added"))
        return line, True
    if line.organization_id != organization.id:
        owner = session.get(Organization, line.organization_id)
        raise Conflict(
            f"line {address} already belongs to organization "
            f"{owner.name if owner else line.organization_id!r}"
        )
    if line.group_id != group_id:
        current = session.get(LineGroup, line.group_id) if line.group_id else None
        raise Conflict(
            f"line {address} is already in "
            + (f"group {current.name!r}" if current else "no group")
            + ": move it with `optgate lines move`, which keeps every opt-out in force"
        )
    if name is not None and line.name != name:
        line.name = name
    return line, False


def find_line(
    session: Session, raw: str, default_region: str, organization_id: int | None = None
) -> Line:
    """The line written as ``raw`` (any written form of its number).

    Args:
        organization_id: only a line of this organisation; another's is answered as one
            that does not exist (a caller of one organisation learns nothing of others).

    Raises:
        InvalidAddress: ``raw`` is not a number or short code.
        NotFound: no such line, with the command that adds it.
    """
    address = normalize_line(raw, default_region)
    line = session.scalars(sa.select(Line).where(Line.address == address.value)).one_or_none()
    if line is None or organization_id not in (None, line.organization_id):
        raise no_line(address.value)
    return line


def no_line(address: str) -> NotFound:
    """What a line that does not exist (for the caller) is answered with."""
    return NotFound(
        f"there is no line {address}: add it first with `optgate lines add {address}` "
        "(a typo must not create a line)"
    )


@dataclass(frozen=True)
class LineView:
    line: Line
    organization: str
    group: str | None


def list_lines(session: Session, organization: Organization | None = None) -> list[LineView]:
    query = (
        sa.select(Line, Organization.name, LineGroup.name)
        .join(Organization, Organization.id == Line.organization_id)
        .outerjoin(LineGroup, LineGroup.id == Line.group_id)
        .order_by(Organization.name, Line.address)
    )
    if organization is not None:
        query = query.where(Line.organization_id == organization.id)
    return [LineView(line, org, group) for line, org, group in session.execute(query)]


def register_line(
    session: Session,
    address: Address,
    default_organization: str | None,
    service_id: str | None,
    *,
    via: str,
) -> Line | None:
    """The line a provider delivered a text to; a new one is registered where it belongs.

    A new line joins ``default_organization`` (OPTGATE_DEFAULT_ORGANIZATION,
    created when new) or, without it, the only organisation there is, and the
    provider's group (a Twilio Messaging Service SID) if the text names one.
    With no setting and none or several organisations, nothing is registered
    and None is returned: the caller holds the text for a person, rather than
    guess whose consent it changes or create an organisation nobody asked for.

    A known line whose provider reports another group is not moved (its
    opt-outs would stop covering it); the move is noted in ``seen_group``.
    Safe when two texts to a new line arrive at once.

    Args:
        via: who registers it (``the twilio webhook``), for its membership history.
    """
    line = session.scalars(sa.select(Line).where(Line.address == address.value)).one_or_none()
    if line is not None:
        _note_provider_group(session, line, service_id)
        return line
    organization = _home_for_new_lines(session, default_organization)
    if organization is None:
        return None
    try:
        with session.begin_nested():
            group = get_or_create_group(session, organization, service_id) if service_id else None
            line, _created = add_line(session, address, organization, group, actor=via)
    except IntegrityError:
        # Another text registered it first.
        return session.scalars(sa.select(Line).where(Line.address == address.value)).one()
    log.info(
        "registered the new line %s in organization %r (%s)",
        line.id,
        organization.name,
        "OPTGATE_DEFAULT_ORGANIZATION" if default_organization else "the only organization",
    )
    return line


def _home_for_new_lines(session: Session, named: str | None) -> Organization | None:
    if named is not None:
        try:
            with session.begin_nested():
                return get_or_create_organization(session, named)
        except IntegrityError:
            return find_organization(session, named)  # created meanwhile by another text
    only = list(session.scalars(sa.select(Organization).limit(2)))
    return only[0] if len(only) == 1 else None


def _note_provider_group(session: Session, line: Line, service_id: str | None) -> None:
    """Note (once) that the provider has the line in another group than we do."""
    if not service_id:
        return  # a number outside any Messaging Service says nothing about our groups
    group = session.get(LineGroup, line.group_id) if line.group_id else None
    seen = None if group is not None and group.name == service_id else service_id
    if seen == line.seen_group:
        return
    line.seen_group = seen
    if seen is not None:
        log.warning(
            "line %s is in group %s at the provider but in %s here; its opt-outs keep "
            "applying as here until `optgate lines move` moves it (carrying them along)",
            line.id,
            seen,
            f"group {group.name}" if group else "no group",
        )


# -- send rates: what `optgate lines rate` sets; app/sending/rates.py paces them ---------


def set_send_rate(target: Line | LineGroup, rate: float | None) -> float | None:
    """Set the messages per second of a line or a group (None: clear it); the old value.

    Workers read rates with every batch, so the next batch paces at the new one.
    """
    old = target.send_rate
    target.send_rate = rate
    return old


def send_rates(session: Session, lines: Iterable[Line], settings: Settings) -> dict[int, SendRate]:
    """The rate in force for each of ``lines``, by line id: its own, else its group's,
    else its kind's default."""
    lines = list(lines)
    group_ids = {line.group_id for line in lines if line.group_id is not None}
    group_rates: dict[int, float | None] = {}
    if group_ids:
        found = session.execute(
            sa.select(LineGroup.id, LineGroup.send_rate).where(LineGroup.id.in_(group_ids))
        )
        group_rates = {group_id: rate for group_id, rate in found}
    return {
        line.id: rate_in_force(
            line.id,
            line.address,
            line.send_rate,
            line.group_id,
            group_rates.get(line.group_id) if line.group_id is not None else None,
            settings,
        )
        for line in lines
    }


def lines_in_group(session: Session, group: LineGroup) -> list[Line]:
    return list(
        session.scalars(sa.select(Line).where(Line.group_id == group.id).order_by(Line.address))
    )
