"""A line's group never changes which opt-outs are in force on it.

A contact who texts STOP to a Twilio Messaging Service is opted out by a record
of that group. A text that reports the line in another Messaging Service must
not move it (the old group's opt-outs would stop covering it, silently: wave 1
let the next message out); `optgate lines move` moves it and keeps every
opt-out in force; `optgate consent verify-history` finds a line moved any
other way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.addresses import normalize, normalize_line
from app.consent import history, ledger, moves
from app.consent.rules import Point
from app.consent.values import Channel, Scope, Source, Status
from app.data.db import Database
from app.data.models import (
    ConsentEvent,
    Line,
    LineGroup,
    LineMembership,
    MessageKind,
    Organization,
    utcnow,
)
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.sending.policy import BlockReason, Outbound, decide_send
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, consent_events, truncate
from tests.test_cli import Run, cli_on
from tests.web.test_webhooks import Twilio

LINE_A = "+14155550100"
LINE_B = "+14155550101"
OLD, NEW = "MG" + "a" * 32, "MG" + "b" * 32
CONTACT = "+14155550199"
OTHER = "+14155550188"


@dataclass
class Org:
    app: Flask
    twilio: Twilio
    database: Database

    def text(self, body: str, *, to: str = LINE_A, sender: str = CONTACT, group: str = OLD) -> None:
        """A signed text that Twilio delivers through Messaging Service ``group``."""
        response = self.twilio.text(body, sender=sender, to=to, MessagingServiceSid=group)
        assert response.status_code == 200, response.get_data(as_text=True)

    def line(self, address: str = LINE_A) -> Line:
        with self.database.transaction() as session:
            return session.scalars(sa.select(Line).where(Line.address == address)).one()

    def group_of(self, address: str = LINE_A) -> str | None:
        with self.database.transaction() as session:
            line = session.scalars(sa.select(Line).where(Line.address == address)).one()
            group = session.get(LineGroup, line.group_id) if line.group_id else None
            return group.name if group else None

    def verdict(
        self, number: str = CONTACT, line: str = LINE_A, topic: str | None = None
    ) -> BlockReason | None:
        """What the worker would decide now for a marketing message to ``number``."""
        with self.database.reads() as session:
            row = session.scalars(sa.select(Line).where(Line.address == line)).one()
            states = history.states_of(session, [(row.organization_id, number)])
        return decide_send(
            Outbound(number, line, Point(row.id, row.group_id), MessageKind.MARKETING, topic),
            states[(row.organization_id, number)],
            utcnow(),
            None,
        ).blocked

    def verify(self) -> history.Problem | None:
        with self.database.transaction() as session:
            return history.verify(session)[1]


@pytest.fixture
def org(make_settings: Callable[..., Settings], clean_database_url: str) -> Iterator[Org]:
    """Organisation `default` with lines A and B in Messaging Service OLD."""
    yield from open_org(make_settings, clean_database_url)


def open_org(make_settings: Callable[..., Settings], clean_database_url: str) -> Iterator[Org]:
    database = Database(clean_database_url)
    with database.transaction() as session:
        organization = get_or_create_organization(session, "default")
        group = get_or_create_group(session, organization, OLD)
        add_line(session, normalize_line(LINE_A), organization, group)
        add_line(session, normalize_line(LINE_B), organization, group)
    app = create_app(make_settings(database_url=clean_database_url))
    yield Org(app, Twilio(app.test_client(), database), database)
    app.extensions["optgate.database"].dispose()
    database.dispose()


@pytest.fixture
def optgate(org: Org, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    monkeypatch.setenv("OPTGATE_KEYWORDS", str(SHIPPED_KEYWORDS))
    return cli_on(org.database.url, monkeypatch, capsys)


# -- what a webhook may do --------------------------------------------------------------


def test_a_text_through_another_messaging_service_moves_nothing_and_lifts_no_stop(
    org: Org,
) -> None:
    org.text("STOP", to=LINE_B)  # opts the contact out of the whole Messaging Service
    assert org.verdict(line=LINE_A) is BlockReason.OPTED_OUT

    org.text("hello", to=LINE_A, sender=OTHER, group=NEW)  # Twilio moved line A

    assert org.group_of(LINE_A) == OLD
    assert org.line(LINE_A).seen_group == NEW
    assert org.verdict(line=LINE_A) is BlockReason.OPTED_OUT
    assert org.verify() is None


def test_the_move_seen_is_forgotten_when_the_provider_reports_our_group_again(org: Org) -> None:
    org.text("hello", group=NEW)
    assert org.line().seen_group == NEW

    org.text("hello again", group=OLD)

    assert org.line().seen_group is None


def test_lines_list_shows_a_move_seen_at_the_provider_with_the_command_that_makes_it(
    org: Org, optgate: Run
) -> None:
    org.text("hello", group=NEW)

    assert optgate("lines", "list").code == 0

    assert f"the provider has it in group {NEW}: move it with `optgate lines move" in optgate.out
    assert optgate("lines", "list", "--json").json()[0]["provider_group"] == NEW


# -- optgate lines move -----------------------------------------------------------------


def test_a_move_keeps_a_messaging_service_stop_in_force_on_the_line(org: Org, optgate: Run) -> None:
    org.text("STOP", to=LINE_B)
    org.text("hi", to=LINE_A, sender=OTHER)  # someone who never stopped

    assert optgate("lines", "move", LINE_A, "--group", NEW, "--actor", "alice").code == 0

    assert optgate.out == (
        f"moved line {LINE_A} from group '{OLD}' to group '{NEW}'; kept 1 opt-outs of 1 "
        "numbers in force on it (history events written)\n"
    )
    assert org.group_of(LINE_A) == NEW
    assert org.verdict(line=LINE_A) is BlockReason.OPTED_OUT
    assert org.verdict(OTHER, line=LINE_A) is None
    carried = _events(org)[-1]
    assert (carried.scope, carried.source, carried.actor) == (
        f"line:{org.line().id}", Source.KEYWORD, CONTACT
    )  # fmt: skip
    assert "kept in force" in (carried.reason or "") and "alice" in (carried.reason or "")
    assert org.verify() is None
    assert optgate("consent", "verify-history").code == 0


def test_the_contact_can_still_opt_back_in_on_the_moved_line(org: Org, optgate: Run) -> None:
    org.text("STOP", to=LINE_B)
    optgate("lines", "move", LINE_A, "--group", NEW, "--actor", "alice")

    org.text("START", to=LINE_A, group=NEW)

    assert org.verdict(line=LINE_A) is None
    assert org.verify() is None


def test_a_topic_stop_and_a_staff_stop_are_kept_too(org: Org, optgate: Run) -> None:
    org.text("STOP PRICE DROP", to=LINE_B)
    _staff_stop(org, OTHER, Scope.group(org.line(LINE_B).group_id or 0))

    optgate("lines", "move", LINE_A, "--no-group", "--actor", "alice")

    assert org.group_of(LINE_A) is None
    assert org.verdict(line=LINE_A, topic="price_drop") is BlockReason.TOPIC_OPTED_OUT
    assert org.verdict(line=LINE_A, topic="new_arrival") is None
    assert org.verdict(OTHER, line=LINE_A) is BlockReason.OPTED_OUT
    assert org.verify() is None


def test_joining_a_group_whose_opt_in_is_newer_lifts_no_older_organization_stop(
    org: Org, optgate: Run
) -> None:
    """Joining can lift too: a group's opt-in newer (and narrower) than an
    organisation-wide opt-out beats it on every line of the group."""
    optgate("lines", "add", "+14155550102")  # line C, in no group
    _staff_stop(org, CONTACT, Scope.organization())
    org.text("START", to=LINE_B)  # back in on the OLD group only
    assert org.verdict(line="+14155550102") is BlockReason.OPTED_OUT

    optgate("lines", "move", "+14155550102", "--group", OLD, "--actor", "alice")

    assert org.verdict(line="+14155550102") is BlockReason.OPTED_OUT
    assert org.verdict(line=LINE_B) is None
    assert org.verify() is None


def test_a_move_to_the_group_it_is_in_changes_nothing(org: Org, optgate: Run) -> None:
    assert optgate("lines", "move", LINE_A, "--group", OLD, "--actor", "alice").code == 0

    assert optgate.out == f"unchanged: line {LINE_A} is in group '{OLD}' already\n"
    assert len(_memberships(org)) == 2


def test_a_move_needs_a_group_or_no_group_and_a_known_line(org: Org, optgate: Run) -> None:
    assert optgate("lines", "move", LINE_A, "--actor", "alice").code != 0
    assert optgate("lines", "move", "+14155550177", "--group", NEW, "--actor", "a").code == 1
    assert "there is no line +14155550177" in optgate.error_line


def test_a_stop_made_while_the_move_carries_is_carried_too(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phase 1 carries in batches, without a lock; a number it has passed already that
    stops meanwhile is carried in the short last phase."""
    org.text("START", to=LINE_B)  # the contact has a record of the group, no opt-out
    org.text("STOP", to=LINE_B, sender=OTHER)
    carry = moves._carry
    calls = 0

    def carry_then_stop(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:  # the contact was carried (nothing to carry) in the first batch
            org.text("STOP", to=LINE_B)
        return carry(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(moves, "_carry", carry_then_stop)

    moved = moves.move_line(org.database, LINE_A, NEW, actor="alice", batch=1)

    assert calls == 3, "the contact was carried again in the last phase"
    assert moved.addresses == 2
    assert org.verdict(CONTACT, line=LINE_A) is BlockReason.OPTED_OUT
    assert org.verdict(OTHER, line=LINE_A) is BlockReason.OPTED_OUT
    assert org.verify() is None


@pytest.mark.postgres
def test_the_move_waits_for_a_consent_change_decided_on_the_old_membership(
    make_settings: Callable[..., Settings], postgres_url: str
) -> None:
    """PostgreSQL only: SQLite runs one writer at a time anyway."""
    opened = open_org(make_settings, postgres_url)
    org = next(opened)
    try:
        _move_waits(org)
    finally:
        opened.close()
        truncate(postgres_url)


def _move_waits(org: Org) -> None:
    with org.database.transaction() as session:
        organization_id = org.line().organization_id
        ledger.load_structure(session, organization_id)  # a STOP being decided...
        done = threading.Event()
        mover = threading.Thread(
            target=lambda: (moves.move_line(org.database, LINE_A, NEW, actor="a"), done.set())
        )
        mover.start()
        time.sleep(0.5)
        assert not done.is_set(), "the move must wait until the STOP commits"
    mover.join(10)
    assert done.is_set()


# -- verify-history ---------------------------------------------------------------------


def test_verify_history_finds_a_line_moved_without_lines_move(org: Org, optgate: Run) -> None:
    org.text("STOP", to=LINE_B)
    with org.database.transaction() as session:
        organization = session.scalars(sa.select(Organization)).one()
        new = get_or_create_group(session, organization, NEW)
        session.execute(sa.update(Line).where(Line.address == LINE_A).values(group_id=new.id))

    assert optgate("consent", "verify-history").code == 1

    assert optgate.error_line == (
        f"error: line {LINE_A}: it is in group '{NEW}' but its membership history says "
        f"'{OLD}': it was moved without `optgate lines move`, which keeps the opt-outs of its "
        "old group in force; move it back, then move it with `optgate lines move`"
    )


# -- helpers ----------------------------------------------------------------------------


def _staff_stop(org: Org, number: str, scope: Scope) -> None:
    with org.database.transaction() as session:
        ledger.apply(
            session,
            ledger.Change(
                organization_id=org.line().organization_id,
                address=normalize(number),
                scope=scope,
                status=Status.OPTED_OUT,
                source=Source.MANUAL,
                actor="bob",
                channel=Channel.SMS,
            ),
        )


def _events(org: Org) -> list[ConsentEvent]:
    return consent_events(org.database, CONTACT)


def _memberships(org: Org) -> list[LineMembership]:
    with org.database.transaction() as session:
        return list(session.scalars(sa.select(LineMembership).order_by(LineMembership.id)))
