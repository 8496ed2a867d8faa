"""An organisation with lines to change consent on.

acme
├── group MG1 (a Twilio Messaging Service): lines A (+14155550101), B (+14155550102)
└── line C (+14155550103), standalone

``world`` builds it in the test's rolled-back session; ``acme`` commits it (and
another organisation, other, with line D +14155550104) to a clean database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import Address, normalize
from app.consent import history, ledger, queries
from app.consent.rules import Decision, Point, decide
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import ContactAddress, Line, LineGroup, Organization
from app.lines import add_line, get_or_create_group, get_or_create_organization

CONTACT = normalize("+14155550199")


@dataclass
class World:
    session: Session
    org: Organization
    group: LineGroup
    a: Line
    b: Line
    c: Line

    def change(
        self,
        status: Status,
        source: Source,
        *,
        scope: Scope | None = None,
        line: Line | None = None,
        address: Address = CONTACT,
        actor: str | None = None,
        **fields: Any,
    ) -> ledger.Outcome:
        """Apply a change; by default on line A, by the contact via A for contact sources."""
        line = line or self.a
        if scope is None:
            scope = Scope.line(line.id)
        if source in (Source.KEYWORD, Source.CARRIER):
            fields.setdefault("via_line_id", line.id)
        return ledger.apply(
            self.session,
            ledger.Change(
                organization_id=self.org.id,
                address=address,
                scope=scope,
                status=status,
                source=source,
                actor=actor or ("contact" if source is Source.KEYWORD else str(source)),
                **fields,
            ),
        )

    def flag(self, flag: Flag, value: bool, source: Source = Source.MANUAL) -> ledger.Outcome:
        return ledger.set_flag(
            self.session,
            ledger.FlagChange(self.org.id, CONTACT, flag, value, source, "alice"),
        )

    def status(
        self,
        line: Line | None = None,
        topic: str = "",
        channel: Channel = Channel.SMS,
        address: Address = CONTACT,
    ) -> Status:
        return self.decision(line, topic, channel, address).status

    def decision(
        self,
        line: Line | None = None,
        topic: str = "",
        channel: Channel = Channel.SMS,
        address: Address = CONTACT,
    ) -> Decision:
        line = line or self.a
        state = self.state(address)
        return decide(state.records.values(), Point(line.id, line.group_id), channel, topic)

    def state(self, address: Address = CONTACT) -> history.AddressState:
        row = self.session.scalars(
            sa.select(ContactAddress).where(
                ContactAddress.organization_id == self.org.id,
                ContactAddress.value == address.value,
            )
        ).one_or_none()
        return history.load_state(self.session, row.id) if row else history.AddressState()

    def events(self, address: Address = CONTACT) -> list[dict[str, Any]]:
        return queries.address_history(self.session, self.org, address)


@pytest.fixture
def world(session: Session) -> World:
    org = get_or_create_organization(session, "acme")
    group = get_or_create_group(session, org, "MG1")
    a, _ = add_line(session, normalize("+14155550101"), org, group, "A")
    b, _ = add_line(session, normalize("+14155550102"), org, group, "B")
    c, _ = add_line(session, normalize("+14155550103"), org, None, "C")
    return World(session, org, group, a, b, c)


# -- acme committed to a database of its own (reports, imports) ---------------------------


@dataclass
class Acme:
    db: Database
    org: Organization
    other: Organization
    group: LineGroup
    a: Line
    b: Line
    c: Line
    d: Line

    def change(
        self,
        number: str,
        status: Status,
        source: Source = Source.MANUAL,
        scope: Scope | None = None,
        *,
        org: Organization | None = None,
        via: Line | None = None,
        actor: str | None = None,
        **fields: Any,
    ) -> ledger.Outcome:
        """One committed change; keyword changes come via line A (or ``via``)."""
        if source is Source.KEYWORD:
            fields["via_line_id"] = (via or self.a).id
        with self.db.transaction() as session:
            return ledger.apply(
                session,
                ledger.Change(
                    organization_id=(org or self.org).id,
                    address=normalize(number),
                    scope=scope or Scope.organization(),
                    status=status,
                    source=source,
                    actor=actor or ("contact" if source is Source.KEYWORD else "alice"),
                    **fields,
                ),
            )

    def flag(self, number: str, flag: Flag, actor: str = "alice") -> ledger.Outcome:
        with self.db.transaction() as session:
            return ledger.set_flag(
                session,
                ledger.FlagChange(self.org.id, normalize(number), flag, True, Source.MANUAL, actor),
            )

    def history(self, number: str, org: Organization | None = None) -> list[dict[str, Any]]:
        with self.db.sessions() as session:
            return queries.address_history(session, org or self.org, normalize(number))

    def addresses(self, org: Organization | None = None) -> list[Address]:
        """The organisation's addresses, by id (the snapshot's order)."""
        with self.db.sessions() as session:
            rows = session.execute(
                sa.select(ContactAddress.value, ContactAddress.kind)
                .where(ContactAddress.organization_id == (org or self.org).id)
                .order_by(ContactAddress.id)
            ).all()
        return [Address(value, kind) for value, kind in rows]


def build_acme(db: Database) -> Acme:
    with db.transaction() as session:
        org = get_or_create_organization(session, "acme")
        other = get_or_create_organization(session, "other")
        group = get_or_create_group(session, org, "MG1")
        a, _ = add_line(session, normalize("+14155550101"), org, group, "A")
        b, _ = add_line(session, normalize("+14155550102"), org, group, "B")
        c, _ = add_line(session, normalize("+14155550103"), org, None, "C")
        d, _ = add_line(session, normalize("+14155550104"), other, None, "D")
    return Acme(db, org, other, group, a, b, c, d)


@pytest.fixture
def acme(db: Database) -> Acme:
    return build_acme(db)
