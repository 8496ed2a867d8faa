"""Random sequences of consent changes never break the rules (hypothesis).

The machine drives keyword, carrier, manual, API, import and system changes
in every scope, channel and topic, plus do-not-contact, silence and bounce
flags, on two numbers of an organisation with a group of two lines and a
standalone line. After every step it checks:

- an opt-out holds everywhere in its scope, and a contact's START holds on
  the line it was sent to;
- a change never lifts an opt-out its source may not lift — in particular
  staff (and imports) never lift a keyword or carrier opt-out;
- only non-contact opt-ins are ever refused, and a refusal writes nothing;
- do-not-contact, once set, is never lifted;
- every topic is off wherever the overall status is opted out;
- each change writes exactly one history event per record or flag it
  changes, and none when it changes nothing;
- replaying each number's history reproduces its stored state, and every
  hash chain verifies.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy.orm import Session

from app.addresses import Address, normalize
from app.consent import history, ledger
from app.consent.history import AddressState
from app.consent.rules import Point, covering, decide, decide_level, opt_outs_in_force
from app.consent.values import (
    CONTACT_SOURCES,
    Channel,
    Flag,
    Scope,
    Source,
    Status,
    may_lift,
)
from app.data.db import Database
from app.data.models import ContactAddress
from app.errors import ConsentRefused
from app.lines import add_line, get_or_create_group, get_or_create_organization

NUMBERS = [normalize("+14155550199"), normalize("+14155550198")]
LEVELS = ["", "price_drop", "new_arrival"]
CONCRETE = {Channel.SMS: (Channel.SMS,), Channel.VOICE: (Channel.VOICE,)}
CONCRETE[Channel.ALL] = (Channel.SMS, Channel.VOICE)
#: The effective status and the opt-outs in force, at each (point, channel, level).
Snapshot = dict[tuple[Point, Channel, str], tuple[Status, Source | None, dict[Any, Any]]]


class ConsentRules(RuleBasedStateMachine):
    database: Database

    def __init__(self) -> None:
        super().__init__()
        self.connection = self.database.engine.connect()
        self.outer = self.connection.begin()
        self.session = Session(
            bind=self.connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        org = get_or_create_organization(self.session, "acme")
        group = get_or_create_group(self.session, org, "MG1")
        self.lines = {
            name: add_line(self.session, normalize(number), org, group if name != "c" else None)[0]
            for name, number in (
                ("a", "+14155550101"),
                ("b", "+14155550102"),
                ("c", "+14155550103"),
            )
        }
        self.org, self.group = org, group
        self.structure = ledger.load_structure(self.session, org.id)
        self.dnc: set[str] = set()

    def teardown(self) -> None:
        self.session.close()
        self.outer.rollback()
        self.connection.close()

    # -- helpers --------------------------------------------------------------------

    def scope(self, name: str) -> Scope:
        if name == "organization":
            return Scope.organization()
        if name == "group":
            return Scope.group(self.group.id)
        return Scope.line(self.lines[name].id)

    def state(self, address: Address) -> AddressState:
        row = self.row(address)
        return history.load_state(self.session, row.id) if row else AddressState()

    def row(self, address: Address) -> ContactAddress | None:
        return self.session.scalars(
            sa.select(ContactAddress).where(ContactAddress.value == address.value)
        ).one_or_none()

    def event_count(self, address: Address) -> int:
        row = self.row(address)
        return len(list(history.iter_history(self.session, row.id))) if row else 0

    def snapshot(self, state: AddressState) -> Snapshot:
        records = list(state.records.values())
        snapshot: Snapshot = {}
        for point in self.structure.points(Scope.organization()):
            for channel in (Channel.SMS, Channel.VOICE):
                for level in LEVELS:
                    decision = decide(records, point, channel, level)
                    in_force = opt_outs_in_force(covering(records, point, channel, level))
                    snapshot[(point, channel, level)] = (
                        decision.status,
                        decision.record.source if decision.record else None,
                        {record.key: record for record in in_force},
                    )
        return snapshot

    # -- rules ----------------------------------------------------------------------

    @rule(
        number=st.sampled_from(NUMBERS),
        where=st.sampled_from(["a", "b", "c", "group", "organization"]),
        status=st.sampled_from([Status.OPTED_IN, Status.OPTED_OUT]),
        source=st.sampled_from(list(Source)),
        channel=st.sampled_from([Channel.SMS, Channel.VOICE, Channel.ALL]),
        topic=st.sampled_from([None, "price_drop", "new_arrival"]),
        via=st.sampled_from(["a", "b", "c"]),
    )
    def change(
        self,
        number: Address,
        where: str,
        status: Status,
        source: Source,
        channel: Channel,
        topic: str | None,
        via: str,
    ) -> None:
        scope = self.scope(where)
        via_line = self.lines[via]
        via_point = self.structure.point(via_line.id)
        if not via_point.covered_by(scope):
            via_point = next(p for p in self.structure.points(scope) if p.line_id is not None)
        via_line_id = via_point.line_id if source in CONTACT_SOURCES else None
        before, events_before = self.state(number), self.event_count(number)
        snap_before = self.snapshot(before)

        try:
            outcome = ledger.apply(
                self.session,
                ledger.Change(
                    self.org.id,
                    number,
                    scope,
                    status,
                    source,
                    f"{source} actor",
                    channel=channel,
                    topic=topic,
                    via_line_id=via_line_id,
                ),
            )
        except ConsentRefused:
            assert status is Status.OPTED_IN and source not in CONTACT_SOURCES
            assert self.state(number) == before
            assert self.event_count(number) == events_before
            return

        after = self.state(number)
        level = topic or ""
        changed = {
            key
            for key in set(before.records) | set(after.records)
            if before.records.get(key) != after.records.get(key)
        }
        assert len(outcome.events) == len(changed)
        assert self.event_count(number) == events_before + len(changed)
        records = list(after.records.values())

        if status is Status.OPTED_OUT:
            for point in self.structure.points(scope):
                for concrete in CONCRETE[channel]:
                    assert decide_level(records, point, concrete, level).status is Status.OPTED_OUT
        elif source in CONTACT_SOURCES:
            for concrete in CONCRETE[channel]:
                assert decide_level(records, via_point, concrete, level).status is Status.OPTED_IN
        else:
            snap_after = self.snapshot(after)
            for key, (was, was_source, held) in snap_before.items():
                now, _now_source, still = snap_after[key]
                if was is Status.OPTED_OUT and was_source in CONTACT_SOURCES:
                    assert now is Status.OPTED_OUT, f"{source} lifted a {was_source} opt-out"
                for record_key, record in held.items():
                    if not may_lift(source, record.source):
                        assert record_key in still, f"{source} lifted a {record.source} opt-out"

    @rule(
        number=st.sampled_from(NUMBERS),
        flag=st.sampled_from(list(Flag)),
        value=st.booleans(),
        source=st.sampled_from([Source.MANUAL, Source.API, Source.SYSTEM, Source.CARRIER]),
    )
    def set_flag(self, number: Address, flag: Flag, value: bool, source: Source) -> None:
        before, events_before = self.state(number), self.event_count(number)
        change = ledger.FlagChange(self.org.id, number, flag, value, source, "staff")
        if flag is Flag.DO_NOT_CONTACT and not value:
            with pytest.raises(ConsentRefused):
                ledger.set_flag(self.session, change)
            assert self.state(number) == before
            return
        outcome = ledger.set_flag(self.session, change)
        assert outcome.changed == (before.flag_is_set(flag) != value)
        assert self.event_count(number) == events_before + len(outcome.events)
        if flag is Flag.DO_NOT_CONTACT:
            self.dnc.add(number.value)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def history_reproduces_the_state_and_the_rules_hold(self) -> None:
        for number in NUMBERS:
            row = self.row(number)
            if row is None:
                continue
            state = history.load_state(self.session, row.id)
            assert history.replay(history.iter_history(self.session, row.id)) == state
            if number.value in self.dnc:
                assert state.flag_is_set(Flag.DO_NOT_CONTACT)
            for (point, channel, level), (status, _source, _held) in self.snapshot(state).items():
                overall = decide(state.records.values(), point, channel)
                if overall.status is Status.OPTED_OUT:
                    assert status is Status.OPTED_OUT, f"topic {level} on after opt-out"
        assert history.verify(self.session)[1] is None


def test_consent_rules_hold_under_any_sequence_of_changes(database: Database) -> None:
    ConsentRules.database = database
    examples = int(os.environ.get("OPTGATE_STATE_MACHINE_EXAMPLES", "40"))
    run_state_machine_as_test(
        ConsentRules,
        settings=settings(max_examples=examples, stateful_step_count=25, deadline=None),
    )
