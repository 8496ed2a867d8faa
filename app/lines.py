"""Organisations, line groups and lines: where consent is scoped.

Lines are added on purpose (``optgate lines add``) or registered by the
inbound webhook when a provider delivers a text to one of our numbers. A
consent change that names an unknown line is refused with a hint to add it:
a typo must not create a line silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.addresses import Address, normalize_line
from app.errors import Conflict, NotFound
from app.models import Line, LineGroup, Organization


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
        NotFound: no such group (naming the ones there are).
    """
    groups = list(
        session.scalars(
            sa.select(LineGroup)
            .where(LineGroup.organization_id == organization.id)
            .order_by(LineGroup.name)
        )
    )
    for group in groups:
        if group.name == name:
            return group
    known = ", ".join(group.name for group in groups) or "none yet"
    raise NotFound(
        f"organization {organization.name!r} has no line group {name!r} (known: {known}); "
        "groups are created by `optgate lines add NUMBER --group NAME`"
    )


def add_line(
    session: Session,
    address: Address,
    organization: Organization,
    group: LineGroup | None = None,
    name: str | None = None,
) -> tuple[Line, bool]:
    """Add a line; adding the same line again with the same details changes nothing.

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
        )
    if name is not None and line.name != name:
        line.name = name
    return line, False


def find_line(session: Session, raw: str, default_region: str) -> Line:
    """The line written as ``raw`` (any written form of its number).

    Raises:
        InvalidAddress: ``raw`` is not a number or short code.
        NotFound: no such line, with the command that adds it.
    """
    address = normalize_line(raw, default_region)
    line = session.scalars(sa.select(Line).where(Line.address == address.value)).one_or_none()
    if line is None:
        raise NotFound(
            f"there is no line {address}: add it first with `optgate lines add {address}` "
            "(a typo must not create a line)"
        )
    return line


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
    session: Session, address: Address, organization_name: str, service_id: str | None
) -> Line:
    """The line a provider delivered a text to, registered if new (lines seen are lines).

    A text carrying a provider's group id (a Twilio Messaging Service SID) puts
    its line in that group: opt-outs then apply to the whole group, as the
    provider applies them. Safe when two texts to a new line arrive at once.
    """
    line = session.scalars(sa.select(Line).where(Line.address == address.value)).one_or_none()
    if line is None:
        try:
            with session.begin_nested():
                organization = get_or_create_organization(session, organization_name)
                group = (
                    get_or_create_group(session, organization, service_id) if service_id else None
                )
                line, _created = add_line(session, address, organization, group)
                return line
        except IntegrityError:
            line = session.scalars(sa.select(Line).where(Line.address == address.value)).one()
    if service_id:
        owner = session.get(Organization, line.organization_id)
        assert owner is not None
        group = get_or_create_group(session, owner, service_id)
        if line.group_id != group.id:
            line.group_id = group.id
            session.flush()
    return line
