"""The consent rules, one example each, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import history, ledger
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.models import GENESIS_HASH, ConsentEvent, ContactAddress
from app.errors import ConsentRefused, InvalidChange
from app.lines import add_line
from tests.consent.conftest import CONTACT, World

IN, OUT, UNKNOWN = Status.OPTED_IN, Status.OPTED_OUT, Status.NOT_DEFINED
KEYWORD, CARRIER, MANUAL, API, IMPORT, SYSTEM = (
    Source.KEYWORD,
    Source.CARRIER,
    Source.MANUAL,
    Source.API,
    Source.IMPORT,
    Source.SYSTEM,
)


def test_a_number_with_no_record_is_not_defined_everywhere(world: World) -> None:
    for line in (world.a, world.b, world.c):
        for channel in (Channel.SMS, Channel.VOICE):
            assert world.status(line, channel=channel) is UNKNOWN


def test_a_keyword_stop_opts_out_its_line_with_one_event(world: World) -> None:
    outcome = world.change(OUT, KEYWORD, message_id=None)

    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, UNKNOWN, UNKNOWN]
    [event] = world.events()
    assert (event["old"], event["new"], event["source"], event["line"]) == (
        "not_defined",
        "opted_out",
        "keyword",
        "+14155550101",
    )
    assert len(outcome.events) == 1


def test_the_same_stop_twice_writes_nothing_the_second_time(world: World) -> None:
    world.change(OUT, KEYWORD)
    assert not world.change(OUT, KEYWORD).changed
    assert len(world.events()) == 1


def test_a_group_stop_covers_the_lines_of_the_group_only(world: World) -> None:
    world.change(OUT, KEYWORD, scope=Scope.group(world.group.id))
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, OUT, UNKNOWN]


def test_an_organization_stop_covers_every_line_even_one_added_later(world: World) -> None:
    world.change(OUT, KEYWORD, scope=Scope.organization())
    later, _ = add_line(world.session, normalize("+14155550104"), world.org)
    assert all(world.status(line) is OUT for line in (world.a, world.b, world.c, later))


def test_every_topic_is_off_after_an_overall_opt_out(world: World) -> None:
    world.change(IN, KEYWORD, topic="price_drop")
    world.change(OUT, KEYWORD)
    decision = world.decision(topic="price_drop")
    assert decision.status is OUT
    assert decision.because == "overall_opt_out"
    assert world.status(topic="new_arrival") is OUT


def test_start_brings_back_topics_that_only_the_overall_stop_turned_off(world: World) -> None:
    world.change(IN, KEYWORD, topic="price_drop")
    world.change(OUT, KEYWORD)
    world.change(IN, KEYWORD)
    assert world.status(topic="price_drop") is IN


def test_a_topic_stopped_on_its_own_stays_off_across_stop_and_start(world: World) -> None:
    world.change(OUT, KEYWORD, topic="price_drop")
    world.change(OUT, KEYWORD)
    world.change(IN, KEYWORD)
    assert world.status() is IN
    assert world.status(topic="price_drop") is OUT
    assert world.status(topic="new_arrival") is IN


def test_start_topic_while_opted_out_records_the_wish_and_stays_out(world: World) -> None:
    world.change(OUT, KEYWORD)
    assert world.change(IN, KEYWORD, topic="price_drop").changed
    assert world.status() is OUT
    assert world.status(topic="price_drop") is OUT
    world.change(IN, KEYWORD)
    assert world.status(topic="price_drop") is IN


def test_a_topic_without_records_follows_the_overall_status(world: World) -> None:
    assert world.decision(topic="price_drop").because == "follows_overall"
    world.change(IN, MANUAL)
    assert world.status(topic="price_drop") is IN


@pytest.mark.parametrize("opt_out_by", [KEYWORD, CARRIER, IMPORT])
@pytest.mark.parametrize("staff", [MANUAL, API])
def test_staff_cannot_lift_an_opt_out_only_the_contact_can(
    world: World, opt_out_by: Source, staff: Source
) -> None:
    world.change(OUT, opt_out_by)
    before = (world.state(), world.events())

    with pytest.raises(ConsentRefused) as refused:
        world.change(IN, staff, actor="bob")

    assert "only the contact can opt back in, by texting START to +14155550101" in str(
        refused.value
    )
    assert (world.state(), world.events()) == before
    assert world.status() is OUT


def test_staff_may_lift_what_staff_opted_out(world: World) -> None:
    world.change(OUT, MANUAL, actor="alice")
    assert world.change(IN, API, actor="crm").changed
    assert world.status() is IN


@pytest.mark.parametrize("opt_out_by", [MANUAL, KEYWORD, SYSTEM])
def test_an_import_never_lifts_an_opt_out(world: World, opt_out_by: Source) -> None:
    world.change(OUT, opt_out_by)
    with pytest.raises(ConsentRefused, match="An import never lifts an opt-out"):
        world.change(IN, IMPORT, actor="import 2026-11")
    assert world.status() is OUT


def test_the_system_lifts_only_its_own_opt_outs(world: World) -> None:
    world.change(OUT, SYSTEM, actor="rule")
    assert world.change(IN, SYSTEM, actor="rule").changed
    world.change(OUT, MANUAL)
    with pytest.raises(ConsentRefused):
        world.change(IN, SYSTEM, actor="rule")


@pytest.mark.parametrize("opt_out_by", [KEYWORD, CARRIER, MANUAL, IMPORT, SYSTEM])
@pytest.mark.parametrize("contact", [KEYWORD, CARRIER])
def test_the_contact_can_lift_any_opt_out(
    world: World, opt_out_by: Source, contact: Source
) -> None:
    world.change(OUT, opt_out_by)
    world.change(IN, contact)
    assert world.status() is IN


def test_staff_cannot_lift_a_broad_keyword_opt_out_from_a_narrower_scope(world: World) -> None:
    world.change(OUT, KEYWORD, scope=Scope.organization())
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL, line=world.c)
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL, scope=Scope.group(world.group.id))


def test_staff_cannot_lift_an_opt_out_that_only_holds_on_lines_not_yet_added(
    world: World,
) -> None:
    # STOP to the whole organisation, then START on every existing line: the
    # organisation-wide opt-out still holds for any line added later.
    world.change(OUT, KEYWORD, scope=Scope.organization())
    for line in (world.a, world.b, world.c):
        world.change(IN, KEYWORD, line=line)
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL, scope=Scope.organization())


def test_a_broad_opt_in_does_not_lift_a_narrow_opt_out(world: World) -> None:
    world.change(OUT, KEYWORD)
    assert world.change(IN, IMPORT, scope=Scope.organization(), actor="crm import").changed
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, IN, IN]


def test_start_to_one_line_does_not_lift_the_others(world: World) -> None:
    world.change(OUT, KEYWORD, scope=Scope.organization())
    world.change(IN, KEYWORD, line=world.b)
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, IN, OUT]


def test_start_lifts_an_older_narrower_opt_out_on_its_line(world: World) -> None:
    # The contact stopped line A alone, then (organisation scope in force)
    # texted START to A: A must be back, which takes a second record.
    world.change(OUT, KEYWORD)
    outcome = world.change(IN, KEYWORD, scope=Scope.organization())
    assert len(outcome.events) == 2
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [IN, IN, IN]


def test_a_newer_broad_opt_out_beats_an_older_narrow_opt_in(world: World) -> None:
    world.change(IN, KEYWORD)
    world.change(OUT, MANUAL, scope=Scope.organization())
    assert world.status() is OUT


def test_a_staff_opt_out_does_not_weaken_a_keyword_opt_out(world: World) -> None:
    world.change(OUT, KEYWORD)
    assert not world.change(OUT, MANUAL).changed
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL)


def test_a_keyword_opt_out_strengthens_a_staff_opt_out(world: World) -> None:
    world.change(OUT, MANUAL)
    outcome = world.change(OUT, KEYWORD)
    assert outcome.changed
    assert (outcome.events[0].old_source, outcome.events[0].source) == (MANUAL, KEYWORD)
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL)


def test_do_not_contact_can_never_be_lifted(world: World) -> None:
    world.flag(Flag.DO_NOT_CONTACT, True)
    with pytest.raises(ConsentRefused, match="permanent"):
        world.flag(Flag.DO_NOT_CONTACT, False)
    assert world.state().flag_is_set(Flag.DO_NOT_CONTACT)


def test_under_do_not_contact_only_the_contact_records_an_opt_in(world: World) -> None:
    world.flag(Flag.DO_NOT_CONTACT, True)
    with pytest.raises(ConsentRefused, match="do-not-contact"):
        world.change(IN, MANUAL)
    with pytest.raises(ConsentRefused):
        world.change(IN, IMPORT)
    assert world.change(IN, KEYWORD).changed
    assert world.state().flag_is_set(Flag.DO_NOT_CONTACT)


def test_silence_can_be_set_and_lifted(world: World) -> None:
    assert world.flag(Flag.SILENCED, True).changed
    assert not world.flag(Flag.SILENCED, True).changed
    assert world.flag(Flag.SILENCED, False).changed
    assert not world.state().flag_is_set(Flag.SILENCED)
    assert [(e["subject"], e["old"], e["new"]) for e in world.events()] == [
        ("silenced", "clear", "set"),
        ("silenced", "set", "clear"),
    ]


def test_an_opt_out_on_all_channels_covers_sms_and_voice(world: World) -> None:
    world.change(OUT, MANUAL, channel=Channel.ALL)
    assert world.status(channel=Channel.SMS) is OUT
    assert world.status(channel=Channel.VOICE) is OUT


def test_an_opt_out_on_one_channel_leaves_the_others_alone(world: World) -> None:
    world.change(OUT, MANUAL, channel=Channel.VOICE)
    assert world.status(channel=Channel.VOICE) is OUT
    assert world.status(channel=Channel.SMS) is UNKNOWN


def test_start_by_text_lifts_sms_but_not_calls_after_an_all_channels_opt_out(
    world: World,
) -> None:
    world.change(OUT, MANUAL, channel=Channel.ALL, scope=Scope.organization())
    world.change(IN, KEYWORD)
    assert world.status(channel=Channel.SMS) is IN
    assert world.status(channel=Channel.VOICE) is OUT
    assert world.status(world.b, channel=Channel.SMS) is OUT


def test_email_consent_is_kept_for_the_whole_organization(world: World) -> None:
    email = normalize("Jane@Example.com")
    with pytest.raises(InvalidChange, match="whole organization"):
        world.change(OUT, MANUAL, address=email, channel=Channel.EMAIL)
    world.change(OUT, MANUAL, address=email, channel=Channel.EMAIL, scope=Scope.organization())
    with pytest.raises(InvalidChange, match="does not apply to an email address"):
        world.change(OUT, MANUAL, address=email, channel=Channel.SMS, scope=Scope.organization())


def test_a_phone_number_has_no_email_channel(world: World) -> None:
    with pytest.raises(InvalidChange, match="use one of sms, voice, all"):
        world.change(OUT, MANUAL, channel=Channel.EMAIL)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"actor": "  "}, "needs an actor"),
        ({"topic": "Price Drop"}, "expected an id"),
        ({"status": UNKNOWN}, "not_defined is never set"),
    ],
)
def test_a_change_that_does_not_make_sense_is_refused(
    world: World, fields: dict[str, object], message: str
) -> None:
    fields = dict(fields)
    status = fields.pop("status", OUT)
    with pytest.raises(InvalidChange, match=message):
        world.change(status, MANUAL, **fields)  # type: ignore[arg-type]
    assert world.events() == []


def test_a_line_of_another_organization_is_refused(world: World) -> None:
    from app.lines import get_or_create_organization

    other = get_or_create_organization(world.session, "other")
    foreign, _ = add_line(world.session, normalize("+14155550999"), other)
    with pytest.raises(InvalidChange, match="not a line of this organization"):
        world.change(OUT, MANUAL, scope=Scope.line(foreign.id))


def _chain(world: World) -> list[ConsentEvent]:
    row = world.session.scalars(
        sa.select(ContactAddress).where(ContactAddress.value == CONTACT.value)
    ).one()
    return list(history.iter_history(world.session, row.id))


def test_each_event_chains_to_the_previous_one(world: World) -> None:
    world.change(OUT, KEYWORD)
    world.change(IN, KEYWORD)
    world.flag(Flag.SILENCED, True)
    first, second, third = _chain(world)
    assert [event.seq for event in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert history.verify(world.session) == (3, None)


def test_replaying_the_history_reproduces_the_state(world: World) -> None:
    world.change(OUT, KEYWORD, scope=Scope.organization())
    world.change(IN, KEYWORD, line=world.b)
    world.change(OUT, MANUAL, topic="price_drop", channel=Channel.ALL)
    world.flag(Flag.BOUNCED, True, Source.CARRIER)
    assert history.replay(_chain(world)) == world.state()


def test_status_lists_every_line_and_channel_of_the_organization(world: World) -> None:
    from app.consent import queries

    world.change(OUT, KEYWORD, topic="price_drop")
    status = queries.address_status(world.session, world.org, CONTACT, topics=["new_arrival"])
    shown = status.as_dict()
    assert shown["address"] == "+14155550199"
    assert [(e["line"], e["channel"]) for e in shown["lines"]] == [
        (line, channel)
        for line in ("+14155550101", "+14155550102", "+14155550103")
        for channel in ("sms", "voice")
    ]
    first = shown["lines"][0]
    assert first["status"] == "not_defined"
    assert first["topics"]["price_drop"]["status"] == "opted_out"
    assert first["topics"]["new_arrival"]["status"] == "not_defined"
    assert shown["flags"]["do_not_contact"]["set"] is False


def test_staff_cannot_lift_a_keyword_opt_out_hidden_behind_a_newer_staff_one(
    world: World,
) -> None:
    # Both hold on line A; the newer one is staff's. A staff opt-in on A would
    # override both, so it lifts the keyword opt-out too: refused.
    world.change(OUT, KEYWORD)
    world.change(OUT, MANUAL, scope=Scope.organization())
    with pytest.raises(ConsentRefused, match="texting a stop keyword"):
        world.change(IN, MANUAL)
    # Lifting only its own organisation-wide opt-out is fine; A stays out.
    world.change(IN, MANUAL, scope=Scope.organization())
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, IN, IN]


def test_staff_cannot_undo_a_topic_stop_while_the_contact_is_opted_out(world: World) -> None:
    # The topic's effective status is "out" either way while the contact is
    # opted out overall; the staff opt-in would still erase the contact's own
    # STOP PRICE DROP for when they text START.
    world.change(OUT, KEYWORD, topic="price_drop")
    world.change(OUT, KEYWORD)
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL, topic="price_drop")
    world.change(IN, KEYWORD)
    assert world.status(topic="price_drop") is OUT


def test_a_stop_holds_even_where_an_identical_older_stop_had_been_overridden(
    world: World,
) -> None:
    # STOP NEW ARRIVAL (all channels), START NEW ARRIVAL (sms), STOP NEW
    # ARRIVAL again: the second STOP finds its record already "opted out",
    # yet the newer sms opt-in beats it. It must still take effect.
    world.change(OUT, KEYWORD, topic="new_arrival", channel=Channel.ALL)
    world.change(IN, KEYWORD, topic="new_arrival")
    assert world.status(topic="new_arrival") is IN
    outcome = world.change(OUT, KEYWORD, topic="new_arrival", channel=Channel.ALL)
    assert len(outcome.events) == 1  # the same record, refreshed: one change, one event
    assert world.status(topic="new_arrival") is OUT
    assert world.status(topic="new_arrival", channel=Channel.VOICE) is OUT


def test_a_start_holds_even_where_an_identical_older_start_had_been_overridden(
    world: World,
) -> None:
    world.change(IN, KEYWORD)
    world.change(OUT, MANUAL, scope=Scope.organization())
    assert world.status() is OUT
    assert world.change(IN, KEYWORD).changed
    assert world.status() is IN


def test_a_staff_stop_does_not_weaken_a_keyword_stop_it_repeats(world: World) -> None:
    # Organisation-wide keyword STOP, START on A only, then staff opts the
    # number out everywhere: A is out again, and B and C keep the keyword
    # opt-out that staff may not lift.
    world.change(OUT, KEYWORD, scope=Scope.organization())
    world.change(IN, KEYWORD, line=world.a)
    world.change(OUT, MANUAL, scope=Scope.organization())
    assert [world.status(line) for line in (world.a, world.b, world.c)] == [OUT, OUT, OUT]
    assert world.decision(world.b).record.source is KEYWORD  # type: ignore[union-attr]
    with pytest.raises(ConsentRefused):
        world.change(IN, MANUAL, line=world.b)
    # The staff opt-out superseded the contact's START on A, so the
    # organisation-wide keyword STOP holds on A again: only a new START lifts it.
    with pytest.raises(ConsentRefused, match="texting START to \\+14155550101"):
        world.change(IN, MANUAL, line=world.a)
    world.change(IN, KEYWORD, line=world.a)
    assert world.status(world.a) is IN


def test_a_refused_topic_opt_in_says_which_topic_and_how_to_restart_it(world: World) -> None:
    world.change(OUT, KEYWORD, topic="price_drop", scope=Scope.organization())
    with pytest.raises(ConsentRefused) as refused:
        world.change(IN, MANUAL, topic="price_drop")
    assert str(refused.value).startswith(
        "+14155550199 opted out of price_drop messages on every line of the organization "
        "by texting a stop keyword ("
    )
    assert str(refused.value).endswith(
        "only the contact can opt back in, by texting START and the price_drop keyword "
        "to +14155550101."
    )


def test_clearing_a_flag_of_a_number_never_seen_creates_nothing(world: World) -> None:
    stranger = normalize("+14155550177")
    outcome = ledger.set_flag(
        world.session,
        ledger.FlagChange(world.org.id, stranger, Flag.BOUNCED, False, SYSTEM, "inbound message"),
    )
    assert not outcome.changed
    assert history.find_address(world.session, world.org.id, stranger.value) is None
