"""Quiet hours: when a marketing text may reach a recipient, in the recipient's time.

Federal rules (TCPA 64.1200(c)(1)) allow 8 a.m.-9 p.m.; Florida, Oklahoma and
Maryland allow 8 a.m.-8 p.m. and presume a number with their area code is
theirs (docs/compliance.md, Quiet hours: State windows). Where a number lives is a
guess from its numbering plan (phonenumbers' time zone and geocoding data): a number can be
ported or travel. So the guess is made conservatively: when a number may be
in several zones, the message waits until it is inside the window in every
one of them (docs/compliance.md, Quiet hours: Where a number is); when the data
gives no zone, or so many that there is no common window (toll-free numbers: 42), the sending line's
zones stand in if the line is in the same country, else the country's
strictest window: the moments inside the window in every zone of the country.

It fails closed: a number whose zones cannot be loaded (the system's tz
database lacks one) gets its country's strictest window, and a message no
window can be placed for waits and is decided again; it never goes "now" for
want of data. Services that decide sends refuse to start without the zones
(``require_zone_data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from datetime import timezone as fixed_offset
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as numbering_zones
from phonenumbers.tzdata import TIMEZONE_DATA

from app.errors import OptgateError

#: States whose own window ends at 8 p.m. (FL §501.616(6), OK OTSA, MD CL 14-4502),
#: as phonenumbers' English geocoder names them (a state, or "City, ST").
_EIGHT_PM_STATES = frozenset({"Florida", "FL", "Oklahoma", "OK", "Maryland", "MD"})
_EIGHT_PM = time(20, 0)
#: More zones than this and the numbering data is not saying where the number is.
_MAX_ZONES = 4
#: +1's strictest window, as fixed offsets so that it needs no tz database: the 50
#: states, DC, Puerto Rico and the US Virgin Islands keep between UTC-10 (Hawaii, the
#: Aleutians in winter) and UTC-4 (Atlantic; Eastern in summer) all year, so a moment
#: inside the window at each of these offsets is inside it in all of them on any
#: date. With the 20:00 end (Florida may be the place) that is 18:00-00:00 UTC for
#: 08:00-21:00. Guam, the Northern Marianas (UTC+10) and American Samoa (UTC-11) are
#: left out: with them only two hours a day would be left; their area codes place them.
_NANP_OFFSETS = tuple(fixed_offset(timedelta(hours=hours)) for hours in range(-10, -3))
#: How long a message waits when no window can be placed for it, before it is decided again.
DECIDE_AGAIN_AFTER = timedelta(hours=1)


class ZoneDataMissing(OptgateError):
    """The tz database lacks zones phonenumbers names: quiet hours cannot be placed."""


@dataclass(frozen=True)
class Window:
    """The hours of a day when marketing may arrive: ``start`` inclusive, ``end`` exclusive."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        """``08:00-21:00`` → Window; ValueError saying what is wrong."""
        first, sep, second = text.strip().partition("-")
        if not sep:
            raise ValueError(f"{text!r} has no '-' between the start and the end")
        start, end = _clock(first), _clock(second)
        if start >= end:
            raise ValueError(f"{text!r} ends before it starts (a window within one day)")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _clock(text: str) -> time:
    try:
        moment = time.fromisoformat(text.strip())
    except ValueError:
        moment = None
    # An offset ("08:00Z") makes no sense here: the window is in the recipient's zone.
    if moment is None or moment.tzinfo is not None:
        raise ValueError(f"{text.strip()!r} is not a time of day such as 08:00")
    return moment


@dataclass(frozen=True)
class Whereabouts:
    """Where a number probably is: its time zones and the window that applies there."""

    zones: tuple[tzinfo, ...]
    window: Window
    #: The country's strictest window stands in: with no moment inside it everywhere,
    #: the message waits instead of letting the first zone decide.
    strict: bool = False


def whereabouts(recipient: str, line: str, window: Window) -> Whereabouts:
    """The recipient's zones (or stand-ins) and the window for them.

    Args:
        recipient: the E.164 number the message goes to.
        line: our sending number, whose zones stand in for an unknown recipient's
            in the same country.
        window: the configured window; a stricter state's end replaces its end.
    """
    number = _numbering(recipient)
    if number.zones:
        in_state = _ending_by_eight(window) if number.state in _EIGHT_PM_STATES else window
        return Whereabouts(number.zones, in_state)
    # A zone named but not loadable is not "the data says nothing": the line's
    # zones would be a guess where the data had an answer.
    if not number.unloadable:
        sender = _numbering(line)
        if sender.zones and sender.country == number.country:
            return Whereabouts(sender.zones, window)
    return _strictest(number.country, window)


def _ending_by_eight(window: Window) -> Window:
    if window.start < _EIGHT_PM < window.end:
        return Window(window.start, _EIGHT_PM)
    return window


def _strictest(country: int | None, window: Window) -> Whereabouts:
    """The moments inside ``window`` everywhere in ``country``; no zones if unknown
    or not loadable (then the message waits)."""
    if country == 1:
        # Florida, Oklahoma or Maryland may be the place.
        return Whereabouts(_NANP_OFFSETS, _ending_by_eight(window), strict=True)
    # Every zone of the country, however many: here the width is the point.
    names = TIMEZONE_DATA.get(str(country), ())
    named = tuple(name for name in names if name != numbering_zones.UNKNOWN_TIMEZONE)
    return Whereabouts(_load(named) or (), window, strict=True)


@dataclass(frozen=True)
class _Numbering:
    """What the numbering plan says of a number."""

    country: int | None
    #: Empty when it says nothing (no zone, or too many) or cannot be loaded.
    zones: tuple[ZoneInfo, ...]
    state: str | None
    #: It names a zone this system's tz database cannot load.
    unloadable: bool


def _place(parsed: phonenumbers.PhoneNumber) -> str:
    """The geocoder's English name for where a +1 number is ("Denver, CO", "Texas")."""
    # Imported on first use: its data takes half a second to load, which every
    # command and process would pay for at start though only a send needs it.
    from phonenumbers import geocoder

    return str(geocoder.description_for_number(parsed, "en"))


@lru_cache(maxsize=100_000)
def _numbering(number: str) -> _Numbering:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return _Numbering(None, (), None, unloadable=False)
    names = _known(numbering_zones.time_zones_for_number(parsed))
    if not names and parsed.country_code == 1:
        # NANP area codes are places, mobile ones too, but phonenumbers gives all 42 +1
        # zones for the mobiles of members it lists apart (American Samoa's 684 is
        # UTC-11: a New York morning is its night).
        names = _known(numbering_zones.time_zones_for_geographical_number(parsed))
    zones = _load(names)
    place = _place(parsed) if parsed.country_code == 1 else ""
    return _Numbering(
        parsed.country_code, zones or (), place.rpartition(", ")[2] or None, zones is None
    )


def _known(names: Sequence[str]) -> tuple[str, ...]:
    """The zone names that say where a number is: none for Etc/Unknown or too many."""
    named = tuple(name for name in names if name != numbering_zones.UNKNOWN_TIMEZONE)
    return named if len(named) <= _MAX_ZONES else ()


def _load(names: Sequence[str]) -> tuple[ZoneInfo, ...] | None:
    """The zones, or None if any cannot be loaded: the rest alone would be a looser
    window (Idaho's Boise without Los Angeles would open an hour early)."""
    try:
        return tuple(ZoneInfo(name) for name in names)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Not found, a corrupt file (ValueError), an unreadable one (OSError).
        return None


def require_zone_data(quiet_hours: Window | None) -> None:
    """Refuse to start a service that decides sends when quiet hours cannot be placed.

    Loads every zone phonenumbers can give a number (285 with phonenumbers 9.0;
    about 50 ms, once per process): a missing tz database, one too old for a newer
    name, or a broken file all show here, not as messages held to the strictest
    window one by one.

    Raises:
        ZoneDataMissing: the one-line reason and what to install.
    """
    if quiet_hours is None:
        return
    missing = _unloadable_zones()
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ZoneDataMissing(
            f"quiet hours cannot be applied: the time-zone database lacks {len(missing)} "
            f"of the {len(_named_zones())} zones phonenumbers uses ({shown}); install "
            "the tzdata package (pip install --upgrade tzdata) or the system's tzdata"
        )


@cache
def _named_zones() -> tuple[str, ...]:
    names = {name for names in TIMEZONE_DATA.values() for name in names}
    return tuple(sorted(names - {numbering_zones.UNKNOWN_TIMEZONE}))


@cache
def _unloadable_zones() -> tuple[str, ...]:
    return tuple(name for name in _named_zones() if _load((name,)) is None)


def next_allowed(place: Whereabouts, now: datetime) -> datetime | None:
    """When a message may go: None if now; else the first moment inside the window
    in every zone. Zones too far apart to share one: for a number's own zones the
    first zone decides; for a strict stand-in, and with no zone known at all, the
    message waits ``DECIDE_AGAIN_AFTER`` and is decided again."""
    if not place.zones:
        return now.astimezone(UTC) + DECIDE_AGAIN_AFTER
    if _inside(place, now):
        return None
    # The answer is a window start in one of the zones: try each in time order.
    candidates = sorted(
        datetime.combine(now.astimezone(zone).date() + timedelta(days=days), place.window.start)
        .replace(tzinfo=zone)
        .astimezone(UTC)
        for zone in place.zones
        for days in range(3)
    )
    for candidate in candidates:
        if candidate > now and _inside(place, candidate):
            return candidate
    if place.strict or len(place.zones) == 1:
        return now.astimezone(UTC) + DECIDE_AGAIN_AFTER
    return next_allowed(Whereabouts(place.zones[:1], place.window), now)


def _inside(place: Whereabouts, moment: datetime) -> bool:
    for zone in place.zones:
        local = moment.astimezone(zone).time()
        if not place.window.start <= local < place.window.end:
            return False
    return True
