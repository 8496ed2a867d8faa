"""Quiet hours (app/sending/quiet.py): parsing a window, where a number is, when it may be texted.

Pure: phonenumbers' metadata and the system's tz database only. Moments are
written in UTC with the local time beside them; November 2026 is standard time
in the US (EST = UTC-5, CST = UTC-6, MST = UTC-7, PST = UTC-8).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sending.quiet import DECIDE_AGAIN_AFTER, Whereabouts, Window, next_allowed, whereabouts

NEW_YORK = "+12125550100"  # America/New_York
LOS_ANGELES = "+14155550123"  # America/Los_Angeles
FLORIDA = "+13055551234"  # America/New_York, ends at 20:00
MARYLAND = "+14105550100"  # America/New_York, ends at 20:00
OKLAHOMA = "+14055550100"  # America/Chicago, ends at 20:00
IDAHO = "+12085550100"  # America/Boise and America/Los_Angeles
TOLL_FREE = "+18005550100"  # 42 zones: says nothing
NO_ZONE_UK = "+447700900123"  # Etc/Unknown
NO_ZONE_US = "+15555550100"  # Etc/Unknown, but +1
PARIS = "+33612345678"  # Europe/Paris
LONDON = "+442079460123"  # Europe/London
AMERICAN_SAMOA_MOBILE = "+16847331234"  # phonenumbers: all 42 +1 zones; area code 684: UTC-11
ANTIGUA_MOBILE = "+12684641234"  # phonenumbers: all 42 +1 zones; area code 268: UTC-4
AUSTRALIA_MOBILE = "+61412345678"  # 8 zones: the country's
SHORT_CODE = "12345"  # a line without zones

FEDERAL = "08:00-21:00"
#: +1's strictest window: inside the window at every offset Hawaii to Atlantic.
NANP_STRICT = tuple(f"UTC-{hours:02}:00" for hours in range(10, 3, -1))
GB = ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")
AUSTRALIA = (
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Eucla",
    "Australia/Lord_Howe",
    "Australia/Perth",
    "Australia/Sydney",
    "Indian/Christmas",
    "Indian/Cocos",
)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- Window.parse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        pytest.param("08:00-21:00", time(8), time(21), id="the federal window"),
        pytest.param(" 08:00 - 21:00 ", time(8), time(21), id="spaces around"),
        pytest.param("09:30-17:45", time(9, 30), time(17, 45), id="minutes"),
        pytest.param("0800-2100", time(8), time(21), id="ISO basic form"),
        pytest.param("00:00-23:59", time(0), time(23, 59), id="almost the whole day"),
        pytest.param("08:00:30-21:00", time(8, 0, 30), time(21), id="seconds"),
    ],
)
def test_parse_a_window(text: str, start: time, end: time) -> None:
    assert Window.parse(text) == Window(start, end)


def test_a_window_prints_as_it_is_written() -> None:
    assert str(Window.parse(" 09:30 - 17:45 ")) == "09:30-17:45"
    assert Window.parse(str(Window(time(8), time(20)))) == Window(time(8), time(20))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("08:00", "'08:00' has no '-' between the start and the end", id="no dash"),
        pytest.param("", "'' has no '-' between the start and the end", id="empty"),
        pytest.param(
            "08:00 to 21:00",
            "'08:00 to 21:00' has no '-' between the start and the end",
            id="words instead of a dash",
        ),
        pytest.param(
            "8:00-21:00", "'8:00' is not a time of day such as 08:00", id="one-digit hour"
        ),
        pytest.param("08:00-nine", "'nine' is not a time of day such as 08:00", id="a word"),
        pytest.param("08:00-24:00", "'24:00' is not a time of day such as 08:00", id="24:00"),
        pytest.param("-21:00", "'' is not a time of day such as 08:00", id="no start"),
        pytest.param("8am-9pm", "'8am' is not a time of day such as 08:00", id="twelve-hour clock"),
        pytest.param(
            "21:00-08:00",
            "'21:00-08:00' ends before it starts (a window within one day)",
            id="overnight",
        ),
        pytest.param(
            "08:00-08:00",
            "'08:00-08:00' ends before it starts (a window within one day)",
            id="empty window",
        ),
        # A clock time with a UTC offset is accepted by time.fromisoformat: the
        # window then holds aware times that cannot be compared with the naive
        # local times of _inside (TypeError when a message is decided), and a
        # mixed window raises TypeError instead of ValueError (so settings shows
        # a traceback, not a SettingsError).
        pytest.param(
            "08:00Z-21:00Z",
            "'08:00Z' is not a time of day such as 08:00",
            id="UTC offsets",
        ),
        pytest.param(
            "08:00-21:00+01:00",
            "'21:00+01:00' is not a time of day such as 08:00",
            id="an offset on the end only",
        ),
    ],
)
def test_parse_rejects(text: str, error: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        Window.parse(text)
    assert str(excinfo.value) == error


# --- whereabouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "line", "window", "zones", "applied"),
    [
        pytest.param(NEW_YORK, NEW_YORK, FEDERAL, ("America/New_York",), FEDERAL, id="New York"),
        pytest.param(
            FLORIDA, LOS_ANGELES, FEDERAL, ("America/New_York",), "08:00-20:00", id="Florida"
        ),
        pytest.param(
            MARYLAND, NEW_YORK, FEDERAL, ("America/New_York",), "08:00-20:00", id="Maryland"
        ),
        pytest.param(
            OKLAHOMA, NEW_YORK, FEDERAL, ("America/Chicago",), "08:00-20:00", id="Oklahoma"
        ),
        pytest.param(
            FLORIDA,
            NEW_YORK,
            "09:00-19:00",
            ("America/New_York",),
            "09:00-19:00",
            id="Florida: a window ending before 20:00 is left alone",
        ),
        pytest.param(
            FLORIDA,
            NEW_YORK,
            "08:00-20:00",
            ("America/New_York",),
            "08:00-20:00",
            id="Florida: a window ending at 20:00 is left alone",
        ),
        pytest.param(
            IDAHO,
            NEW_YORK,
            FEDERAL,
            ("America/Boise", "America/Los_Angeles"),
            FEDERAL,
            id="Idaho: two zones",
        ),
        pytest.param(
            TOLL_FREE,
            NEW_YORK,
            FEDERAL,
            ("America/New_York",),
            FEDERAL,
            id="toll-free: the New York line's zone",
        ),
        pytest.param(
            TOLL_FREE,
            LOS_ANGELES,
            FEDERAL,
            ("America/Los_Angeles",),
            FEDERAL,
            id="toll-free: the Los Angeles line's zone",
        ),
        pytest.param(
            TOLL_FREE,
            SHORT_CODE,
            FEDERAL,
            NANP_STRICT,
            "08:00-20:00",
            id="toll-free from a short code: +1's strictest window, ending at 20:00",
        ),
        pytest.param(
            TOLL_FREE,
            LONDON,
            FEDERAL,
            NANP_STRICT,
            "08:00-20:00",
            id="toll-free from a London line: not the line's zone, +1's strictest",
        ),
        pytest.param(
            TOLL_FREE,
            "+15555550199",
            FEDERAL,
            NANP_STRICT,
            "08:00-20:00",
            id="toll-free from a line without zones: +1's strictest",
        ),
        pytest.param(
            NO_ZONE_US,
            NEW_YORK,
            FEDERAL,
            ("America/New_York",),
            FEDERAL,
            id="no zone, +1, New York line: the line's zone",
        ),
        pytest.param(
            NO_ZONE_UK,
            NEW_YORK,
            FEDERAL,
            GB,
            FEDERAL,
            id="no zone, +44, New York line: not the line's zone, the UK's",
        ),
        pytest.param(
            NO_ZONE_UK, LONDON, FEDERAL, ("Europe/London",), FEDERAL, id="no zone, London line"
        ),
        pytest.param(NO_ZONE_UK, NO_ZONE_UK, FEDERAL, GB, FEDERAL, id="no zone anywhere, +44"),
        pytest.param(
            NO_ZONE_US,
            NO_ZONE_UK,
            FEDERAL,
            NANP_STRICT,
            "08:00-20:00",
            id="no zone anywhere, +1: +1's strictest window",
        ),
        pytest.param(
            NO_ZONE_US,
            SHORT_CODE,
            "09:00-19:00",
            NANP_STRICT,
            "09:00-19:00",
            id="+1's strictest window: an end before 20:00 is left alone",
        ),
        pytest.param(
            AUSTRALIA_MOBILE,
            SHORT_CODE,
            FEDERAL,
            AUSTRALIA,
            FEDERAL,
            id="an Australian mobile (8 zones): every zone of Australia",
        ),
        pytest.param(
            AMERICAN_SAMOA_MOBILE,
            NEW_YORK,
            FEDERAL,
            ("Pacific/Pago_Pago",),
            FEDERAL,
            id="an American Samoa mobile: its area code's zone, not New York's",
        ),
        pytest.param(
            ANTIGUA_MOBILE,
            LOS_ANGELES,
            FEDERAL,
            ("America/Antigua",),
            FEDERAL,
            id="an Antigua mobile: its area code's zone",
        ),
        pytest.param(
            PARIS, NEW_YORK, FEDERAL, ("Europe/Paris",), FEDERAL, id="Paris: no US state rule"
        ),
    ],
)
def test_whereabouts(
    recipient: str, line: str, window: str, zones: tuple[str, ...], applied: str
) -> None:
    place = whereabouts(recipient, line, Window.parse(window))
    # A ZoneInfo prints as its key, a fixed offset as "UTC-10:00".
    assert tuple(str(zone) for zone in place.zones) == zones
    assert place.window == Window.parse(applied)
    assert place.strict == (zones in (NANP_STRICT, GB, AUSTRALIA))


# --- next_allowed --------------------------------------------------------------------------

#: 2026-11-22 03:00 UTC: 22:00 EST, 21:00 CST, 19:00 PST on the 21st.
NIGHT = utc(2026, 11, 22, 3, 0)

NEXT_CASES = [
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 13, 0),
        id="22:00 New York: 08:00 EST next day",
    ),
    pytest.param(
        NEW_YORK, NEW_YORK, FEDERAL, utc(2026, 11, 22, 15, 0), None, id="10:00 New York: now"
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 13, 0),
        None,
        id="08:00 sharp: the start is inside",
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 12, 59, 59),
        utc(2026, 11, 22, 13, 0),
        id="07:59:59: one second to wait",
    ),
    pytest.param(
        NEW_YORK, NEW_YORK, FEDERAL, utc(2026, 11, 23, 1, 59, 59), None, id="20:59:59: still inside"
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 23, 2, 0),
        utc(2026, 11, 23, 13, 0),
        id="21:00 sharp: the end is outside",
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        datetime(2026, 11, 21, 22, 0, tzinfo=ZoneInfo("America/New_York")),
        utc(2026, 11, 22, 13, 0),
        id="now given in New York time",
    ),
    pytest.param(LOS_ANGELES, NEW_YORK, FEDERAL, NIGHT, None, id="19:00 Los Angeles: now"),
    # Idaho: Boise (MST) and Los Angeles (PST); the window must hold in both.
    pytest.param(
        IDAHO,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 12, 0),
        utc(2026, 11, 22, 16, 0),
        id="Idaho at 05:00 MST: 08:00 PST, not 08:00 MST",
    ),
    pytest.param(
        IDAHO,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 15, 30),
        utc(2026, 11, 22, 16, 0),
        id="Idaho at 08:30 MST / 07:30 PST: 08:00 PST",
    ),
    pytest.param(
        IDAHO,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 16, 0),
        None,
        id="Idaho at 09:00 MST / 08:00 PST: now",
    ),
    pytest.param(
        IDAHO,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 23, 4, 30),
        utc(2026, 11, 23, 16, 0),
        id="Idaho at 21:30 MST / 20:30 PST: next morning",
    ),
    pytest.param(
        IDAHO,
        NEW_YORK,
        "08:00-08:30",
        utc(2026, 11, 22, 12, 0),
        utc(2026, 11, 22, 15, 0),
        id="Idaho, no common window: the first zone (Boise) decides",
    ),
    # Fallbacks.
    pytest.param(
        TOLL_FREE,
        NEW_YORK,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 13, 0),
        id="toll-free from New York: New York's morning",
    ),
    pytest.param(
        TOLL_FREE,
        LOS_ANGELES,
        FEDERAL,
        NIGHT,
        None,
        id="toll-free from Los Angeles: 19:00 there, now",
    ),
    pytest.param(
        TOLL_FREE,
        SHORT_CODE,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 18, 0),
        id="toll-free from a short code: 08:00 in Hawaii",
    ),
    pytest.param(
        NO_ZONE_US,
        NEW_YORK,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 13, 0),
        id="no zone, +1, New York line: New York's morning",
    ),
    pytest.param(
        NO_ZONE_UK,
        NEW_YORK,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 8, 0),
        id="no zone, +44, New York line: 08:00 in the UK",
    ),
    pytest.param(
        NO_ZONE_UK, NO_ZONE_UK, FEDERAL, NIGHT, utc(2026, 11, 22, 8, 0), id="no zone anywhere, +44"
    ),
    pytest.param(
        NO_ZONE_UK,
        SHORT_CODE,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 8, 0),
        id="no zone, short code line, +44: 08:00 in the UK",
    ),
    pytest.param(
        NO_ZONE_US,
        NO_ZONE_UK,
        FEDERAL,
        NIGHT,
        utc(2026, 11, 22, 18, 0),
        id="no zone, +1: 08:00 in Hawaii (13:00 EST)",
    ),
    pytest.param(
        NO_ZONE_US,
        SHORT_CODE,
        FEDERAL,
        utc(2026, 11, 22, 23, 59),
        None,
        id="no zone, +1, 23:59 UTC: 18:59 EST, 13:59 HST, now",
    ),
    pytest.param(
        NO_ZONE_US,
        SHORT_CODE,
        FEDERAL,
        utc(2026, 11, 23, 0, 0),
        utc(2026, 11, 23, 18, 0),
        id="no zone, +1, 00:00 UTC: 20:00 EDT in summer, so not now in any season",
    ),
    pytest.param(
        NO_ZONE_US,
        SHORT_CODE,
        FEDERAL,
        utc(2026, 7, 1, 17, 59),
        utc(2026, 7, 1, 18, 0),
        id="no zone, +1, in summer: 08:00 in Hawaii, still",
    ),
    pytest.param(
        AMERICAN_SAMOA_MOBILE,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 13, 0),
        utc(2026, 11, 22, 19, 0),
        id="American Samoa mobile at 08:00 EST (02:00 SST): 08:00 SST",
    ),
    pytest.param(
        AUSTRALIA_MOBILE,
        SHORT_CODE,
        FEDERAL,
        utc(2026, 11, 22, 20, 0),
        utc(2026, 11, 23, 1, 30),
        id="Australian mobile: every zone of Australia, so 08:00 on Cocos (UTC+6:30)",
    ),
    pytest.param(
        PARIS,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 22, 6, 0),
        utc(2026, 11, 22, 7, 0),
        id="Paris 07:00 CET: 08:00 CET",
    ),
    # 20:00 states.
    pytest.param(
        FLORIDA,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 23, 1, 30),
        utc(2026, 11, 23, 13, 0),
        id="Florida 20:30 EST: next morning",
    ),
    pytest.param(
        NEW_YORK, NEW_YORK, FEDERAL, utc(2026, 11, 23, 1, 30), None, id="New York 20:30 EST: now"
    ),
    pytest.param(
        MARYLAND,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 23, 1, 0),
        utc(2026, 11, 23, 13, 0),
        id="Maryland 20:00 EST: next morning",
    ),
    pytest.param(
        MARYLAND, NEW_YORK, FEDERAL, utc(2026, 11, 23, 0, 59), None, id="Maryland 19:59 EST: now"
    ),
    pytest.param(
        OKLAHOMA,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 23, 2, 30),
        utc(2026, 11, 23, 14, 0),
        id="Oklahoma 20:30 CST: 08:00 CST",
    ),
    pytest.param(
        OKLAHOMA, NEW_YORK, FEDERAL, utc(2026, 11, 23, 1, 59), None, id="Oklahoma 19:59 CST: now"
    ),
    pytest.param(
        FLORIDA,
        NEW_YORK,
        "09:00-19:00",
        utc(2026, 11, 23, 0, 30),
        utc(2026, 11, 23, 14, 0),
        id="Florida 19:30 with a 19:00 end: 09:00",
    ),
    # Daylight saving time (US 2026: spring forward March 8, fall back November 1).
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 3, 7, 6, 0),
        utc(2026, 3, 7, 13, 0),
        id="the day before spring forward: 08:00 EST",
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 3, 8, 6, 0),
        utc(2026, 3, 8, 12, 0),
        id="spring forward: 01:00 EST to 08:00 EDT",
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 13, 0),
        id="fall back: 01:30 EDT to 08:00 EST",
    ),
    pytest.param(
        NEW_YORK,
        NEW_YORK,
        FEDERAL,
        utc(2026, 3, 8, 2, 30),
        utc(2026, 3, 8, 12, 0),
        id="the short night: 21:30 EST to 08:00 EDT",
    ),
]


@pytest.mark.parametrize(("recipient", "line", "window", "now", "expected"), NEXT_CASES)
def test_next_allowed(
    recipient: str, line: str, window: str, now: datetime, expected: datetime | None
) -> None:
    later = next_allowed(whereabouts(recipient, line, Window.parse(window)), now)
    assert later == expected
    if later is not None:
        assert later.tzinfo is UTC


@pytest.mark.parametrize("strict", [False, True])
def test_without_a_zone_the_message_waits_and_is_decided_again(strict: bool) -> None:
    """No zone known at all: the window cannot be placed, so not "now" but later."""
    place = Whereabouts((), Window.parse(FEDERAL), strict=strict)
    for now in (NIGHT, utc(2026, 11, 22, 15, 0)):
        assert next_allowed(place, now) == now + DECIDE_AGAIN_AFTER


def test_a_country_without_zones_waits() -> None:
    """+979 (international premium rate) has no zone in phonenumbers at all."""
    place = whereabouts("+979123456789", SHORT_CODE, Window.parse(FEDERAL))
    assert (place.zones, place.strict) == ((), True)
    assert next_allowed(place, NIGHT) == NIGHT + DECIDE_AGAIN_AFTER


def test_a_strict_window_too_narrow_for_the_country_waits_instead_of_going() -> None:
    """09:00-12:00 at UTC-10 and at UTC-4 never overlap: no first zone decides."""
    place = whereabouts(TOLL_FREE, SHORT_CODE, Window.parse("09:00-12:00"))
    for hour in range(24):
        now = utc(2026, 11, 22, hour)
        assert next_allowed(place, now) == now + DECIDE_AGAIN_AFTER, now


#: Every zone of the 50 states, DC, Puerto Rico and the US Virgin Islands, with its
#: window's end: 20:00 where Florida, Oklahoma or Maryland are (Eastern, Central).
US_ZONES = {
    "Pacific/Honolulu": time(21),
    "America/Adak": time(21),
    "America/Anchorage": time(21),
    "America/Los_Angeles": time(21),
    "America/Phoenix": time(21),
    "America/Boise": time(21),
    "America/Denver": time(21),
    "America/Chicago": time(20),
    "America/North_Dakota/Center": time(21),
    "America/New_York": time(20),
    "America/Puerto_Rico": time(21),
    "America/St_Thomas": time(21),
}


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from([TOLL_FREE, NO_ZONE_US, "+18335550100", "+15005550100"]),
)
def test_a_plus_one_number_without_a_zone_gets_no_text_outside_any_us_zones_window(
    now: datetime, recipient: str
) -> None:
    """Whenever +1's strictest window lets a message go, it is 08:00 to 21:00 (20:00 in
    the Eastern and Central zones) in every US zone, daylight saving time or not."""
    place = whereabouts(recipient, SHORT_CODE, Window.parse(FEDERAL))
    later = next_allowed(place, now)
    goes = now if later is None else later
    assert goes - now < timedelta(days=1)
    for name, end in US_ZONES.items():
        local = goes.astimezone(ZoneInfo(name)).time()
        assert time(8) <= local < end, (name, goes)


# --- the property: next_allowed is the first moment inside the window everywhere -----------

#: (recipient, line) pairs covering one zone, two zones, the line's zone and the US zones.
PLACES = [
    (NEW_YORK, NEW_YORK),
    (LOS_ANGELES, NEW_YORK),
    (FLORIDA, LOS_ANGELES),
    (OKLAHOMA, NEW_YORK),
    (IDAHO, NEW_YORK),
    ("+19075550100", NEW_YORK),  # Alaska: America/Adak and America/Anchorage
    ("+18085550100", NEW_YORK),  # Hawaii: no daylight saving time
    (TOLL_FREE, LOS_ANGELES),
    (NO_ZONE_US, SHORT_CODE),
    (PARIS, NEW_YORK),
]
#: Windows long enough that every place above has a common window every day.
WINDOWS = ["08:00-21:00", "09:30-17:00", "06:15-23:45", "08:00-20:00"]
#: Where ``now`` is written (the answer must not depend on it).
WRITTEN_IN = [
    UTC,
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Pacific/Kiritimati"),
]
STEP = timedelta(minutes=10)


def inside(place: Whereabouts, moment: datetime) -> bool:
    return all(
        place.window.start <= moment.astimezone(zone).time() < place.window.end
        for zone in place.zones
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(PLACES),
    st.sampled_from(WINDOWS),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2037, 12, 31),
        timezones=st.sampled_from(WRITTEN_IN),
    ),
)
def test_next_allowed_is_the_first_moment_inside_everywhere(
    numbers: tuple[str, str], window: str, now: datetime
) -> None:
    place = whereabouts(*numbers, Window.parse(window))
    later = next_allowed(place, now)
    if inside(place, now):
        assert later is None
        return
    assert later is not None
    assert later > now
    assert later - now < timedelta(days=1)
    assert inside(place, later)
    # The first such moment: every inside stretch here lasts hours, so a
    # 10-minute walk from ``now`` would land in one that began earlier. (The walk
    # is in UTC: arithmetic on a datetime in a zone is wall-clock arithmetic.)
    moment = now.astimezone(UTC) + STEP
    while moment < later:
        assert not inside(place, moment), moment
        moment += STEP
