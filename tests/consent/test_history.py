"""Tampering with the history is detected, and the first broken event is named."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.consent import history
from app.consent.values import Flag, Scope, Source, Status
from app.data.models import ConsentEvent, ConsentRecord, ContactAddress
from tests.consent.conftest import World


@pytest.fixture
def written(world: World) -> World:
    """Four events for the contact: STOP, START, silence, STOP PRICE DROP."""
    world.change(Status.OPTED_OUT, Source.KEYWORD, scope=Scope.organization())
    world.change(Status.OPTED_IN, Source.KEYWORD)
    world.flag(Flag.SILENCED, True)
    world.change(Status.OPTED_OUT, Source.KEYWORD, topic="price_drop")
    world.session.flush()
    return world


def _event_id(session: Session, seq: int) -> int:
    return session.scalars(sa.select(ConsentEvent.id).where(ConsentEvent.seq == seq)).one()


def _edit_event(session: Session) -> int:
    event_id = _event_id(session, 2)
    session.execute(
        sa.update(ConsentEvent).where(ConsentEvent.id == event_id).values(actor="someone else")
    )
    return event_id


def _remove_middle_event(session: Session) -> int:
    session.execute(sa.delete(ConsentEvent).where(ConsentEvent.seq == 2))
    return _event_id(session, 3)


def _remove_last_event(session: Session) -> int:
    session.execute(sa.delete(ConsentEvent).where(ConsentEvent.seq == 4))
    return _event_id(session, 3)


def _swap_two_events(session: Session) -> int:
    first, second = _event_id(session, 2), _event_id(session, 3)
    session.execute(sa.update(ConsentEvent).where(ConsentEvent.id == first).values(seq=-1))
    session.execute(sa.update(ConsentEvent).where(ConsentEvent.id == second).values(seq=2))
    session.execute(sa.update(ConsentEvent).where(ConsentEvent.id == first).values(seq=3))
    return second


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (_edit_event, "changed after it was written"),
        (_remove_middle_event, "was removed"),
        (_remove_last_event, "newer events were removed"),
        (_swap_two_events, "does not follow the event before it"),
    ],
    ids=["edited", "middle removed", "last removed", "reordered"],
)
def test_verify_names_the_first_broken_event(
    written: World, tamper: Callable[[Session], int], says: str
) -> None:
    assert history.verify(written.session) == (4, None)
    broken = tamper(written.session)

    _checked, problem = history.verify(written.session)

    assert problem is not None
    assert problem.event_id == broken
    assert says in problem.message
    assert "+14155550199" in str(problem)


def test_verify_notices_a_record_that_disagrees_with_its_history(written: World) -> None:
    written.session.execute(
        sa.update(ConsentRecord)
        .where(ConsentRecord.topic == "price_drop")
        .values(status=Status.OPTED_IN)
    )
    _checked, problem = history.verify(written.session)
    assert problem is not None
    assert "stored consent does not match what its history says" in problem.message
    assert "price_drop" in problem.message


def test_verify_notices_an_edited_chain_head(written: World) -> None:
    written.session.execute(sa.update(ContactAddress).values(head_hash="f" * 64))
    _checked, problem = history.verify(written.session)
    assert problem is not None
    assert "head" in problem.message


def test_verify_notices_a_history_deleted_entirely(written: World) -> None:
    written.session.execute(sa.delete(ConsentEvent))
    _checked, problem = history.verify(written.session)
    assert problem is not None
    assert "all 4 events are missing" in problem.message
