"""The send policy (app/sending/policy.py): one row per rule, decided from hand-built state.

Pure: no database. Each row builds the recipient's records and flags by hand,
asks ``decide_send`` and compares the whole verdict. The checks run in a fixed
order and the first that applies wins, so several rows set two causes at once
and expect the earlier one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.consent.history import AddressState, FlagValue
from app.consent.rules import Point, RecordState
from app.consent.values import OVERALL, Channel, Flag, Scope, Source, Status
from app.data.models import MessageKind
from app.sending.policy import BlockReason, Outbound, Verdict, decide_send, deliverable
from app.sending.quiet import Window

IN, OUT = Status.OPTED_IN, Status.OPTED_OUT
MARKETING, TRANSACTIONAL, CONVERSATIONAL = (
    MessageKind.MARKETING,
    MessageKind.TRANSACTIONAL,
    MessageKind.CONVERSATIONAL,
)
DNC, SILENCED, BOUNCED = Flag.DO_NOT_CONTACT, Flag.SILENCED, Flag.BOUNCED

LINE, OTHER_LINE, GROUP, OTHER_GROUP = 7, 8, 3, 4
#: Where every message of the table goes out: line 7 of group 3.
POINT = Point(LINE, GROUP)
#: Our sending number (San Francisco: America/Los_Angeles).
SENDER = "+14155550100"
NEW_YORK = "+12125550100"  # America/New_York, 21:00 state
FLORIDA = "+13055551234"  # America/New_York, 20:00 state
TOLL_FREE = "+18005550100"  # 42 zones: the sending line's stand in

#: 2026-11-22 15:00 UTC is 10:00 in New York and 07:00 in San Francisco; quiet
#: hours are off in the policy table, so the hour does not matter there.
NOON = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
FEDERAL = Window.parse("08:00-21:00")

ALLOWED = Verdict()


def record(
    status: Status,
    scope: Scope | None = None,
    *,
    seq: int = 1,
    channel: Channel = Channel.SMS,
    topic: str = OVERALL,
) -> RecordState:
    """A stored record; by default an overall SMS record on line 7, from a keyword."""
    return RecordState(
        scope=Scope.line(LINE) if scope is None else scope,
        channel=channel,
        topic=topic,
        status=status,
        source=Source.KEYWORD,
        actor="+12125550100",
        seq=seq,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def state(
    *records: RecordState, flags: tuple[Flag, ...] = (), cleared: tuple[Flag, ...] = ()
) -> AddressState:
    """The address's state: ``records``, the ``flags`` set, the ``cleared`` flags set once
    and cleared since (their stored value is ``is_set=False``)."""
    values = {
        flag: FlagValue(
            is_set=flag in flags,
            source=Source.MANUAL,
            actor="staff@example.com",
            seq=100 + index,
            at=datetime(2026, 1, 2, tzinfo=UTC),
        )
        for index, flag in enumerate((*flags, *cleared))
    }
    return AddressState(records={r.key: r for r in records}, flags=values)


def message(
    kind: MessageKind = MARKETING,
    *,
    recipient: str = NEW_YORK,
    topic: str | None = None,
    require_opt_in: bool = False,
    point: Point = POINT,
    line: str = SENDER,
) -> Outbound:
    return Outbound(
        recipient=recipient,
        line=line,
        point=point,
        kind=kind,
        topic=topic,
        require_opt_in=require_opt_in,
    )


def blocked(reason: BlockReason) -> Verdict:
    return Verdict(blocked=reason)


EVERYTHING = state(
    record(OUT, Scope.organization(), channel=Channel.ALL),
    record(OUT, topic="price_drop", seq=2),
    flags=(DNC, SILENCED, BOUNCED),
)

CASES = [
    # --- 1. invalid_address ----------------------------------------------------------------
    pytest.param(
        message(recipient="ann@example.com"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: an email",
    ),
    pytest.param(
        message(recipient="12345"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: a short code",
    ),
    pytest.param(
        message(recipient="+12005550100"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: area code 200 is not in the plan",
    ),
    pytest.param(
        message(recipient="+1 0005550100"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: area code 000",
    ),
    pytest.param(
        message(recipient="+447700900123"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: UK drama range, not valid in the metadata",
    ),
    pytest.param(
        message(recipient="+12125550100 ext. 5"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: an extension",
    ),
    pytest.param(
        message(recipient="call me"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: not a number",
    ),
    pytest.param(
        message(TRANSACTIONAL, recipient="12345"),
        state(),
        blocked(BlockReason.INVALID_ADDRESS),
        id="invalid: transactional too",
    ),
    pytest.param(
        message(recipient="ann@example.com"),
        EVERYTHING,
        blocked(BlockReason.INVALID_ADDRESS),
        id="order: invalid beats every flag and opt-out",
    ),
    # --- 2-4. flags ------------------------------------------------------------------------
    pytest.param(
        message(), state(flags=(DNC,)), blocked(BlockReason.DO_NOT_CONTACT), id="do_not_contact"
    ),
    pytest.param(message(), state(flags=(SILENCED,)), blocked(BlockReason.SILENCED), id="silenced"),
    pytest.param(message(), state(flags=(BOUNCED,)), blocked(BlockReason.BOUNCED), id="bounced"),
    pytest.param(
        message(TRANSACTIONAL),
        state(flags=(DNC,)),
        blocked(BlockReason.DO_NOT_CONTACT),
        id="do_not_contact blocks transactional",
    ),
    pytest.param(
        message(CONVERSATIONAL),
        state(flags=(SILENCED,)),
        blocked(BlockReason.SILENCED),
        id="silenced blocks conversational",
    ),
    pytest.param(
        message(TRANSACTIONAL),
        state(flags=(BOUNCED,)),
        blocked(BlockReason.BOUNCED),
        id="bounced blocks transactional",
    ),
    pytest.param(
        message(),
        EVERYTHING,
        blocked(BlockReason.DO_NOT_CONTACT),
        id="order: do_not_contact first of all",
    ),
    pytest.param(
        message(),
        state(record(OUT), flags=(DNC,)),
        blocked(BlockReason.DO_NOT_CONTACT),
        id="order: do_not_contact before opted_out",
    ),
    pytest.param(
        message(),
        state(flags=(SILENCED, BOUNCED)),
        blocked(BlockReason.SILENCED),
        id="order: silenced before bounced",
    ),
    pytest.param(
        message(),
        state(flags=(BOUNCED, SILENCED)),
        blocked(BlockReason.SILENCED),
        id="order: silenced before bounced, whatever the dict order",
    ),
    pytest.param(
        message(),
        state(record(OUT), flags=(BOUNCED,)),
        blocked(BlockReason.BOUNCED),
        id="order: bounced before opted_out",
    ),
    pytest.param(
        message(), state(cleared=(DNC,)), ALLOWED, id="cleared do_not_contact does not block"
    ),
    pytest.param(
        message(), state(cleared=(SILENCED,)), ALLOWED, id="cleared silence does not block"
    ),
    pytest.param(message(), state(cleared=(BOUNCED,)), ALLOWED, id="cleared bounce does not block"),
    pytest.param(
        message(),
        state(flags=(BOUNCED,), cleared=(DNC, SILENCED)),
        blocked(BlockReason.BOUNCED),
        id="cleared flags skipped, a set one still blocks",
    ),
    # --- 5. opted_out ----------------------------------------------------------------------
    pytest.param(
        message(), state(record(OUT)), blocked(BlockReason.OPTED_OUT), id="opted_out on this line"
    ),
    pytest.param(
        message(TRANSACTIONAL),
        state(record(OUT)),
        blocked(BlockReason.OPTED_OUT),
        id="opted_out blocks transactional",
    ),
    pytest.param(
        message(CONVERSATIONAL),
        state(record(OUT)),
        blocked(BlockReason.OPTED_OUT),
        id="opted_out blocks conversational",
    ),
    pytest.param(
        message(),
        state(record(OUT, Scope.line(OTHER_LINE))),
        ALLOWED,
        id="opt-out on another line does not block this one",
    ),
    pytest.param(
        message(),
        state(record(OUT, Scope.group(GROUP))),
        blocked(BlockReason.OPTED_OUT),
        id="group opt-out blocks a line of the group",
    ),
    pytest.param(
        message(),
        state(record(OUT, Scope.group(OTHER_GROUP))),
        ALLOWED,
        id="another group's opt-out does not block",
    ),
    pytest.param(
        message(point=Point(LINE, None)),
        state(record(OUT, Scope.group(GROUP))),
        ALLOWED,
        id="group opt-out does not reach a line outside any group",
    ),
    pytest.param(
        message(),
        state(record(OUT, Scope.organization())),
        blocked(BlockReason.OPTED_OUT),
        id="organization opt-out blocks",
    ),
    pytest.param(
        message(point=Point(LINE, None)),
        state(record(OUT, Scope.organization())),
        blocked(BlockReason.OPTED_OUT),
        id="organization opt-out blocks a line outside any group",
    ),
    pytest.param(
        message(),
        state(record(OUT, channel=Channel.ALL)),
        blocked(BlockReason.OPTED_OUT),
        id="channel all opt-out blocks sms",
    ),
    pytest.param(
        message(),
        state(record(OUT, channel=Channel.VOICE)),
        ALLOWED,
        id="voice opt-out does not block sms",
    ),
    pytest.param(
        message(),
        state(record(OUT, channel=Channel.EMAIL)),
        ALLOWED,
        id="email opt-out does not block sms",
    ),
    pytest.param(
        message(),
        state(record(OUT, Scope.organization(), seq=1), record(IN, seq=2)),
        ALLOWED,
        id="newer line opt-in lifts an org opt-out",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(OUT, Scope.organization(), seq=1), record(IN, seq=2)),
        ALLOWED,
        id="newer line opt-in after org opt-out counts as consent",
    ),
    pytest.param(
        message(),
        state(record(IN, seq=1), record(OUT, Scope.organization(), seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="newer org opt-out beats an older line opt-in",
    ),
    pytest.param(
        message(),
        state(record(OUT, seq=1), record(IN, Scope.organization(), seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="a broad opt-in never lifts a narrow opt-out",
    ),
    pytest.param(
        message(),
        state(
            record(OUT, Scope.line(OTHER_LINE), seq=1),
            record(OUT, Scope.organization(), seq=2),
            record(IN, Scope.line(OTHER_LINE), seq=3),
        ),
        blocked(BlockReason.OPTED_OUT),
        id="an opt-in on another line does not lift the org opt-out here",
    ),
    pytest.param(
        message(),
        state(record(OUT, channel=Channel.ALL, seq=1), record(IN, seq=2)),
        ALLOWED,
        id="newer sms opt-in lifts an all-channels opt-out",
    ),
    pytest.param(
        message(),
        state(record(OUT, seq=1), record(IN, channel=Channel.ALL, seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="an all-channels opt-in never lifts an sms opt-out",
    ),
    pytest.param(
        message(),
        state(record(OUT, seq=1), record(IN, channel=Channel.VOICE, seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="a voice opt-in does not lift an sms opt-out",
    ),
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, seq=1), record(OUT, topic="price_drop", seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="order: opted_out before topic_opted_out",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(OUT), record(IN, topic="price_drop", seq=2)),
        blocked(BlockReason.OPTED_OUT),
        id="overall opt-out turns off an opted-in topic",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(OUT)),
        blocked(BlockReason.OPTED_OUT),
        id="order: opted_out before no_consent",
    ),
    # --- transactional and conversational stop after check 5 -------------------------------
    pytest.param(
        message(TRANSACTIONAL, topic="price_drop"),
        state(record(OUT, topic="price_drop")),
        ALLOWED,
        id="transactional to a topic opt-out is allowed",
    ),
    pytest.param(
        message(CONVERSATIONAL, topic="price_drop"),
        state(record(OUT, topic="price_drop")),
        ALLOWED,
        id="conversational to a topic opt-out is allowed",
    ),
    pytest.param(
        message(CONVERSATIONAL, require_opt_in=True),
        state(),
        ALLOWED,
        id="conversational needs no opt-in even if required",
    ),
    pytest.param(
        message(TRANSACTIONAL, require_opt_in=True),
        state(),
        ALLOWED,
        id="transactional needs no opt-in even if required",
    ),
    # --- 6. topic_opted_out ----------------------------------------------------------------
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, topic="price_drop")),
        blocked(BlockReason.TOPIC_OPTED_OUT),
        id="topic_opted_out",
    ),
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, Scope.organization(), topic="price_drop")),
        blocked(BlockReason.TOPIC_OPTED_OUT),
        id="topic_opted_out at organization scope",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(IN), record(OUT, topic="price_drop", seq=2)),
        blocked(BlockReason.TOPIC_OPTED_OUT),
        id="topic opt-out beats an overall opt-in",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(OUT, topic="price_drop")),
        blocked(BlockReason.TOPIC_OPTED_OUT),
        id="order: topic_opted_out before no_consent",
    ),
    pytest.param(
        message(topic="new_arrival"),
        state(record(OUT, topic="price_drop")),
        ALLOWED,
        id="another topic's opt-out does not block",
    ),
    pytest.param(
        message(),
        state(record(OUT, topic="price_drop")),
        ALLOWED,
        id="a topic opt-out does not block marketing without a topic",
    ),
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, Scope.line(OTHER_LINE), topic="price_drop")),
        ALLOWED,
        id="a topic opt-out on another line does not block",
    ),
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, topic="price_drop", seq=1), record(IN, topic="price_drop", seq=2)),
        ALLOWED,
        id="a newer topic opt-in lifts the topic opt-out",
    ),
    # --- 7. no_consent ---------------------------------------------------------------------
    pytest.param(
        message(require_opt_in=True),
        state(),
        blocked(BlockReason.NO_CONSENT),
        id="no_consent: not defined",
    ),
    pytest.param(message(), state(), ALLOWED, id="not defined is enough without require_opt_in"),
    pytest.param(
        message(require_opt_in=True), state(record(IN)), ALLOWED, id="opted in overall is consent"
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(IN, Scope.organization())),
        ALLOWED,
        id="organization opt-in is consent",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(IN, Scope.line(OTHER_LINE))),
        blocked(BlockReason.NO_CONSENT),
        id="no_consent: opted in on another line only",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(IN, channel=Channel.VOICE)),
        blocked(BlockReason.NO_CONSENT),
        id="no_consent: opted in to voice only",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(IN, topic="price_drop")),
        ALLOWED,
        id="topic opted in while overall not defined",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(IN)),
        ALLOWED,
        id="topic not defined follows overall opted in",
    ),
    pytest.param(
        message(topic="price_drop", require_opt_in=True),
        state(record(IN, topic="new_arrival")),
        blocked(BlockReason.NO_CONSENT),
        id="no_consent: opted in to another topic only",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(IN, topic="price_drop")),
        blocked(BlockReason.NO_CONSENT),
        id="no_consent: no topic asked, only a topic opted in",
    ),
]


@pytest.mark.parametrize(("outbound", "address_state", "expected"), CASES)
def test_decide_send(outbound: Outbound, address_state: AddressState, expected: Verdict) -> None:
    verdict = decide_send(outbound, address_state, NOON, None)
    assert verdict == expected
    assert verdict.allowed is (expected == ALLOWED)


def test_every_reason_has_a_row() -> None:
    verdicts = [case.values[2] for case in CASES]
    reasons = {verdict.blocked for verdict in verdicts if isinstance(verdict, Verdict)}
    # Frequency limits take what was sent as well: their table is tests/sending/test_limits.py.
    assert reasons == {*BlockReason, None} - {BlockReason.FREQUENCY_LIMIT}


# --- quiet hours (check 8) -----------------------------------------------------------------

#: 2026-11-22 03:00 UTC: 22:00 on the 21st in New York (EST), 19:00 in San Francisco.
NIGHT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
#: 2026-11-23 01:30 UTC: 20:30 on the 22nd in New York and Florida (EST).
EVENING = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)

QUIET_CASES = [
    pytest.param(
        message(),
        state(),
        NIGHT,
        FEDERAL,
        Verdict(defer_until=datetime(2026, 11, 22, 13, 0, tzinfo=UTC)),
        id="22:00 New York: deferred to 08:00 EST",
    ),
    pytest.param(message(), state(), NOON, FEDERAL, ALLOWED, id="10:00 New York: allowed"),
    pytest.param(
        message(TRANSACTIONAL),
        state(),
        NIGHT,
        FEDERAL,
        ALLOWED,
        id="transactional has no quiet hours",
    ),
    pytest.param(
        message(CONVERSATIONAL),
        state(),
        NIGHT,
        FEDERAL,
        ALLOWED,
        id="conversational has no quiet hours",
    ),
    pytest.param(message(), state(), NIGHT, None, ALLOWED, id="quiet hours off"),
    pytest.param(
        message(recipient=FLORIDA),
        state(),
        EVENING,
        FEDERAL,
        Verdict(defer_until=datetime(2026, 11, 23, 13, 0, tzinfo=UTC)),
        id="20:30 Florida: deferred (Florida ends at 20:00)",
    ),
    pytest.param(
        message(), state(), EVENING, FEDERAL, ALLOWED, id="20:30 New York: allowed (federal 21:00)"
    ),
    pytest.param(
        message(recipient=TOLL_FREE, line=NEW_YORK),
        state(),
        NIGHT,
        FEDERAL,
        Verdict(defer_until=datetime(2026, 11, 22, 13, 0, tzinfo=UTC)),
        id="toll-free: a New York line's zone stands in",
    ),
    pytest.param(
        message(recipient=TOLL_FREE, line=SENDER),
        state(),
        NIGHT,
        FEDERAL,
        ALLOWED,
        id="toll-free: a San Francisco line's zone stands in",
    ),
    pytest.param(
        message(),
        state(record(OUT)),
        NIGHT,
        FEDERAL,
        blocked(BlockReason.OPTED_OUT),
        id="blocked, not deferred: opted_out at night",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(),
        NIGHT,
        FEDERAL,
        blocked(BlockReason.NO_CONSENT),
        id="blocked, not deferred: no_consent at night",
    ),
    pytest.param(
        message(topic="price_drop"),
        state(record(OUT, topic="price_drop")),
        NIGHT,
        FEDERAL,
        blocked(BlockReason.TOPIC_OPTED_OUT),
        id="blocked, not deferred: topic_opted_out at night",
    ),
    pytest.param(
        message(require_opt_in=True),
        state(record(IN)),
        NIGHT,
        FEDERAL,
        Verdict(defer_until=datetime(2026, 11, 22, 13, 0, tzinfo=UTC)),
        id="opted in, at night: deferred",
    ),
]


@pytest.mark.parametrize(("outbound", "address_state", "now", "window", "expected"), QUIET_CASES)
def test_quiet_hours(
    outbound: Outbound,
    address_state: AddressState,
    now: datetime,
    window: Window | None,
    expected: Verdict,
) -> None:
    verdict = decide_send(outbound, address_state, now, window)
    assert verdict == expected
    assert verdict.allowed is (expected == ALLOWED)
    if verdict.defer_until is not None:
        assert verdict.blocked is None
        assert verdict.defer_until.tzinfo is UTC
        assert verdict.defer_until > now


# --- deliverable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        pytest.param("+12125550100", True, id="New York"),
        pytest.param("+14155550123", True, id="San Francisco"),
        pytest.param("+18005550100", True, id="toll-free"),
        pytest.param("+447911123456", True, id="UK mobile"),
        pytest.param("(212) 555-0100", True, id="national form, read as US"),
        pytest.param("ann@example.com", False, id="email"),
        pytest.param("12345", False, id="short code"),
        pytest.param("+12005550100", False, id="area code 200"),
        pytest.param("+1 0005550100", False, id="area code 000"),
        pytest.param("+447700900123", False, id="UK drama range"),
        pytest.param("", False, id="empty"),
    ],
)
def test_deliverable(recipient: str, expected: bool) -> None:
    assert deliverable(recipient) is expected
