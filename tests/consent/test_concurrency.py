"""Concurrent changes to one number are serialised: no lost update, no broken chain."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import history, ledger
from app.consent.values import Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import ConsentEvent, ContactAddress
from app.lines import add_line, get_or_create_organization

THREADS = 6
CHANGES_PER_THREAD = 20


@pytest.fixture
def db(clean_database_url: str) -> Iterator[Database]:
    database = Database(clean_database_url, pool_size=THREADS + 2)
    yield database
    database.dispose()


def test_concurrent_changes_to_one_number_keep_its_history_whole(db: Database) -> None:
    with db.transaction() as session:
        org = get_or_create_organization(session, "acme")
        lines = [add_line(session, normalize(f"+1415555010{i}"), org)[0].id for i in range(3)]
        org_id = org.id
    contact = normalize("+14155550199")  # new: every thread races to create it too
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    applied = [0] * THREADS

    def work(index: int) -> None:
        chance = random.Random(index)
        try:
            start.wait()
            for _ in range(CHANGES_PER_THREAD):
                with db.transaction() as session:
                    if chance.random() < 0.2:
                        outcome = ledger.set_flag(
                            session,
                            ledger.FlagChange(
                                org_id, contact, Flag.SILENCED, chance.random() < 0.5,
                                Source.MANUAL, f"worker {index}",
                            ),
                        )  # fmt: skip
                    else:
                        outcome = ledger.apply(
                            session,
                            ledger.Change(
                                org_id, contact, Scope.line(chance.choice(lines)),
                                chance.choice([Status.OPTED_IN, Status.OPTED_OUT]),
                                Source.MANUAL, f"worker {index}",
                            ),
                        )  # fmt: skip
                applied[index] += len(outcome.events)
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with db.transaction() as session:
        [row] = session.scalars(sa.select(ContactAddress)).all()
        events = session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent))
        assert events == row.head_seq == sum(applied) > 0
        assert history.verify(session) == (events, None)
