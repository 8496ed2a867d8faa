"""app/messages/review.py without Flask, on SQLite and PostgreSQL: which texts wait for a person,
and what resolving one writes (or, refused, does not write).

acme
├── group MG1: line A +14155550101
├── line C +14155550103, standalone
beta
└── line Z +14155550900
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import normalize, normalize_line
from app.consent import queries
from app.consent.values import Scope, Source
from app.data.db import Database
from app.data.models import (
    ConsentEvent,
    Direction,
    Line,
    Message,
    MessageStatus,
    Organization,
)
from app.errors import Conflict, InvalidChange, NotFound
from app.keywords import Matcher, load, parse
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.messages import review
from tests.conftest import SHIPPED_KEYWORDS, cases

CONTACT = "+14155550199"
ACTOR = "alice (token agent1)"
SHIPPED = Matcher(load(SHIPPED_KEYWORDS))
ORGANIZATION_WIDE = Matcher(
    parse(
        SHIPPED_KEYWORDS.read_text().replace(
            "  opt_out_scope: line\n", "  opt_out_scope: organization\n"
        )
    )
)


@dataclass
class World:
    session: Session
    org: Organization
    other: Organization
    a: Line
    c: Line
    z: Line

    def text(
        self,
        body: str = "stopp",
        *,
        line: Line | None = None,
        sender: str = CONTACT,
        needs_review: bool = True,
        direction: Direction = Direction.INBOUND,
        outcome: str | None = None,
    ) -> Message:
        line = line or self.c
        message = Message(
            organization_id=line.organization_id,
            line_id=line.id,
            direction=direction,
            address=sender,
            body=body,
            status=MessageStatus.RECEIVED if direction is Direction.INBOUND else MessageStatus.SENT,
            intent="none",
            needs_review=needs_review,
            review_outcome=outcome,
            reviewed_by="bob (token agent2)" if outcome else None,
        )
        self.session.add(message)
        self.session.flush()
        return message

    def resolve(
        self,
        message: Message | int,
        resolution: review.Resolution = review.Resolution.OPT_OUT,
        matcher: Matcher = SHIPPED,
        **fields: Any,
    ) -> tuple[Message, Any]:
        message_id = message if isinstance(message, int) else message.id
        return review.resolve(
            self.session,
            matcher,
            "US",
            message_id,
            resolution,
            actor=fields.pop("actor", ACTOR),
            **fields,
        )

    def events(self) -> list[ConsentEvent]:
        return list(self.session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id)))


def build_world(session: Session) -> World:
    org = get_or_create_organization(session, "acme")
    other = get_or_create_organization(session, "beta")
    group = get_or_create_group(session, org, "MG1")
    a, _ = add_line(session, normalize_line("+14155550101"), org, group)
    c, _ = add_line(session, normalize_line("+14155550103"), org)
    z, _ = add_line(session, normalize_line("+14155550900"), other)
    return World(session, org, other, a, c, z)


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


# -- the queue ----------------------------------------------------------------------------


def test_pending_lists_the_organizations_unresolved_texts_needing_review_oldest_first(
    world: World,
) -> None:
    first = world.text("stopp", line=world.a)
    world.text("thanks", needs_review=False)
    done = world.text("stp", outcome="dismissed")
    world.text("stopp", line=world.z)  # another organisation
    second = world.text("wrong number", sender="VERIFY")

    found = review.pending(world.session, world.org.id)

    assert [(message.id, line) for message, line in found] == [
        (first.id, world.a.address),
        (second.id, world.c.address),
    ]
    resolved = review.pending(world.session, world.org.id, resolved=True)
    assert [message.id for message, _ in resolved] == [done.id]


def test_pending_pages_after_an_id_and_up_to_a_limit(world: World) -> None:
    ids = [world.text(f"stopp {number}").id for number in range(5)]

    def page(after: int, limit: int) -> list[int]:
        found = review.pending(world.session, world.org.id, after_id=after, limit=limit)
        return [message.id for message, _ in found]

    assert page(0, 2) == ids[:2]
    assert page(ids[1], 2) == ids[2:4]
    assert page(ids[3], 2) == ids[4:]
    assert page(ids[4], 2) == []


def test_a_review_dict_shows_the_text_and_its_resolution(world: World) -> None:
    message = world.text("wrong number")
    world.resolve(message, review.Resolution.DISMISSED)

    shown = review.review_dict(message, world.c.address)

    assert message.reviewed_at is not None
    assert shown == {
        "id": message.id,
        "line": world.c.address,
        "from": CONTACT,
        "body": "wrong number",
        "received_at": queries.iso(message.created_at),
        "intent": "none",
        "resolution": "dismissed",
        "resolved_by": ACTOR,
        "resolved_at": queries.iso(message.reviewed_at),
    }


# -- resolving ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "matcher", "scope"),
    [("c", SHIPPED, "line"), ("a", SHIPPED, "group"), ("c", ORGANIZATION_WIDE, "organization")],
    ids=["standalone-line", "grouped-line", "organization-wide-stop"],
)
def test_an_opt_out_resolution_applies_where_a_stop_keyword_on_that_line_would(
    world: World, line: str, matcher: Matcher, scope: str
) -> None:
    texted_to: Line = getattr(world, line)
    message = world.text("stopp", line=texted_to)

    resolved, outcome = world.resolve(message, matcher=matcher)

    expected = {
        "line": Scope.line(texted_to.id),
        "group": Scope.group(texted_to.group_id or 0),
        "organization": Scope.organization(),
    }[scope]
    [event] = outcome.events
    assert (event.scope, event.subject, event.channel, event.topic) == (
        expected.key, "consent", "sms", ""
    )  # fmt: skip
    assert (event.old_value, event.new_value, event.source, event.actor) == (
        "not_defined", "opted_out", Source.MANUAL, ACTOR
    )  # fmt: skip
    assert (event.message_id, event.reason) == (message.id, f"reviewed text {message.id}: 'stopp'")
    assert resolved is message
    assert (message.review_outcome, message.reviewed_by) == ("opt_out", ACTOR)
    assert message.reviewed_at is not None
    assert review.pending(world.session, world.org.id) == []
    assert world.events() == [event]


def test_an_opt_out_resolution_with_a_topic_stops_that_topic_only(world: World) -> None:
    message = world.text("stopp")

    _, outcome = world.resolve(message, topic="new_arrival", reason="asked for no arrivals")

    [event] = outcome.events
    assert (event.topic, event.new_value, event.reason) == (
        "new_arrival", "opted_out", "asked for no arrivals"
    )  # fmt: skip
    status = queries.address_status(
        world.session, world.org, normalize(CONTACT), topics=["new_arrival", "price_drop"]
    ).as_dict()
    entry = next(
        e for e in status["lines"] if e["line"] == world.c.address and e["channel"] == "sms"
    )
    assert entry["status"] == "not_defined"
    assert entry["topics"]["new_arrival"]["status"] == "opted_out"
    assert entry["topics"]["price_drop"]["status"] == "not_defined"


def test_an_opt_out_already_in_force_changes_nothing_but_resolves_the_text(
    world: World,
) -> None:
    world.resolve(world.text("stopp"))
    later = world.text("stopp again")

    _, outcome = world.resolve(later)

    assert outcome.changed is False
    assert later.review_outcome == "opt_out"
    assert len(world.events()) == 1


def test_a_dismissal_changes_no_consent(world: World) -> None:
    message = world.text("wrong number")

    _, outcome = world.resolve(message, review.Resolution.DISMISSED)

    assert (outcome.changed, outcome.events) == (False, [])
    assert (message.review_outcome, message.reviewed_by) == ("dismissed", ACTOR)
    assert world.events() == []


@pytest.mark.parametrize("first", list(review.Resolution))
def test_a_text_resolved_once_cannot_be_resolved_again(
    world: World, first: review.Resolution
) -> None:
    message = world.text("stopp")
    world.resolve(message, first)
    events = world.events()
    when = message.reviewed_at

    with pytest.raises(Conflict) as refused:
        world.resolve(message, review.Resolution.OPT_OUT, actor="carol (token boss)")

    assert refused.value.message.startswith(
        f"text {message.id} was already resolved as {first.value} by {ACTOR} at "
    )
    assert (message.review_outcome, message.reviewed_by, message.reviewed_at) == (
        first.value, ACTOR, when
    )  # fmt: skip
    assert world.events() == events


@pytest.mark.parametrize("which", ["unknown", "outbound", "not-needing-review"])
def test_only_an_inbound_text_needing_review_can_be_resolved(world: World, which: str) -> None:
    message_id = {
        "unknown": lambda: 987_654,
        "outbound": lambda: world.text("Sale", direction=Direction.OUTBOUND).id,
        "not-needing-review": lambda: world.text("thanks", needs_review=False).id,
    }[which]()

    with pytest.raises(NotFound) as refused:
        world.resolve(message_id)

    assert refused.value.message == f"there is no inbound text {message_id} waiting for review"
    assert world.events() == []


REFUSALS: list[Any] = [
    # (id, sender, resolution, fields, part of the message)
    ("blank-actor", CONTACT, "opt_out", {"actor": "  "}, "actor: say who resolves it"),
    ("dismissed-with-topic", CONTACT, "dismissed", {"topic": "price_drop"},
     "topic: only an opt_out takes a topic"),
    ("unknown-topic", CONTACT, "opt_out", {"topic": "sale"},
     "topic 'sale' is not a topic of keywords.yaml (known: price_drop, new_arrival)"),
    ("alphanumeric-sender", "VERIFY", "opt_out", {},
     "the text came from 'VERIFY', which is not a phone number"),
    ("short-code-sender", "12345", "opt_out", {}, "the text came from '12345'"),
    ("email-sender", "ann@example.com", "opt_out", {}, "dismiss it"),
]  # fmt: skip


@cases(("sender", "resolution", "fields", "says"), REFUSALS)
def test_a_resolution_that_does_not_fit_is_refused_and_leaves_the_text_pending(
    world: World, sender: str, resolution: str, fields: dict[str, Any], says: str
) -> None:
    message = world.text("stopp", sender=sender)

    with pytest.raises(InvalidChange) as refused:
        world.resolve(message, review.Resolution(resolution), **fields)

    assert says in refused.value.message
    assert (message.review_outcome, message.reviewed_by, message.reviewed_at) == (None, None, None)
    assert world.events() == []
    assert [m.id for m, _ in review.pending(world.session, world.org.id)] == [message.id]


def test_a_sender_stored_in_another_written_form_is_opted_out_as_its_number(
    world: World,
) -> None:
    message = world.text("stopp", sender="(415) 555-0199")

    _, outcome = world.resolve(message)

    [event] = outcome.events
    assert event.address == CONTACT


# -- two people at once -------------------------------------------------------------------


def test_two_people_resolving_one_text_at_once_one_wins_and_the_other_gets_a_conflict(
    clean_database_url: str,
) -> None:
    database = Database(clean_database_url)
    rounds = 4
    with database.transaction() as session:
        world = build_world(session)
        ids = [
            world.text(f"stopp {number}", sender=f"+1415555018{number}").id
            for number in range(rounds)
        ]
    try:
        for message_id in ids:
            results = race(database, message_id)
            assert sorted(results) == ["Conflict", "ok"], results
    finally:
        with database.transaction() as session:
            events = list(session.scalars(sa.select(ConsentEvent)))
            texts = list(session.scalars(sa.select(Message).where(Message.id.in_(ids))))
        database.dispose()
    # One opt-out per text: the loser wrote nothing.
    assert sorted(event.message_id for event in events if event.message_id) == sorted(
        [t.id for t in texts if t.review_outcome == "opt_out"]
    )
    assert all(text.review_outcome is not None for text in texts)


def race(database: Database, message_id: int) -> list[str]:
    barrier = threading.Barrier(2)
    results: list[str] = []
    lock = threading.Lock()

    def attempt(resolution: review.Resolution, actor: str) -> Callable[[], None]:
        def run() -> None:
            barrier.wait(timeout=10)
            try:
                with database.transaction() as session:
                    review.resolve(session, SHIPPED, "US", message_id, resolution, actor=actor)
                result = "ok"
            except Conflict:
                result = "Conflict"
            except Exception as error:  # reported by the assertion, not lost in the thread
                result = repr(error)
            with lock:
                results.append(result)

        return run

    threads = [
        threading.Thread(target=attempt(review.Resolution.OPT_OUT, "alice")),
        threading.Thread(target=attempt(review.Resolution.DISMISSED, "bob")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_the_pending_queue_is_read_through_its_partial_index(world: World) -> None:
    """The review queue stays a short read however many messages there are."""
    if world.session.get_bind().dialect.name != "sqlite":
        pytest.skip("the planner's choice is checked on SQLite, where it depends on the text")
    query = review.pending_query(world.org.id, after_id=0, limit=100, resolved=False)
    compiled = query.compile(world.session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = world.session.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    assert any("ix_messages_review_queue" in str(step) for step in plan), plan
