"""Quiet hours: when a marketing text may reach a recipient, in the recipient's time.

Federal rules (TCPA 64.1200(c)(1)) allow 8 a.m.-9 p.m.; Florida, Oklahoma and
Maryland allow 8 a.m.-8 p.m. and presume a number with their area code is
theirs (COMPLIANCE.md 8.1). Where a number lives is a guess from its
numbering plan (phonenumbers' time zone and geocoding data): a number can be
ported or travel. So the guess is made conservatively: when a number may be
in several zones, the message waits until it is inside the window in every
one of them (COMPLIANCE.md 8.2); when the data gives no zone, or so many
that there is no common window (toll-free numbers: 42), the sending line's
zones stand in, then the country's main zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder, timezone

#: States whose own window ends at 8 p.m. (FL §501.616(6), OK OTSA, MD CL 14-4502),
#: as phonenumbers' English geocoder names them (a state, or "City, ST").
_EIGHT_PM_STATES = frozenset({"Florida", "FL", "Oklahoma", "OK", "Maryland", "MD"})
_EIGHT_PM = time(20, 0)
#: More zones than this and the numbering data is not saying where the number is.
_MAX_ZONES = 4
#: Fallback zones per country calling code when neither number says where it is.
_COUNTRY_ZONES: dict[int | None, tuple[str, ...]] = {
    1: ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
}


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

    zones: tuple[ZoneInfo, ...]
    window: Window


def whereabouts(recipient: str, line: str, window: Window) -> Whereabouts:
    """The recipient's zones (or stand-ins) and the window for them.

    Args:
        recipient: the E.164 number the message goes to.
        line: our sending number, whose zones stand in for an unknown recipient's.
        window: the configured window; a stricter state's end replaces its end.
    """
    zones, state = _zones_and_state(recipient)
    if not zones:
        zones, _ = _zones_and_state(line)
    if not zones:
        zones = _country_zones(recipient)
    if state in _EIGHT_PM_STATES and window.start < _EIGHT_PM < window.end:
        window = Window(window.start, _EIGHT_PM)
    return Whereabouts(zones, window)


@lru_cache(maxsize=100_000)
def _zones_and_state(number: str) -> tuple[tuple[ZoneInfo, ...], str | None]:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return (), None
    names = [name for name in timezone.time_zones_for_number(parsed) if name != "Etc/Unknown"]
    zones = _load(names) if len(names) <= _MAX_ZONES else ()
    place = geocoder.description_for_number(parsed, "en") if parsed.country_code == 1 else ""
    return zones, (place.rpartition(", ")[2] or None)


def _country_zones(number: str) -> tuple[ZoneInfo, ...]:
    try:
        code = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        return ()
    return _load(_COUNTRY_ZONES.get(code, ()))


def _load(names: Sequence[str]) -> tuple[ZoneInfo, ...]:
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except ZoneInfoNotFoundError:
            continue  # the system's tz database lacks it: the others still decide
    return tuple(zones)


def next_allowed(place: Whereabouts, now: datetime) -> datetime | None:
    """When a message may go: None if now; else the first moment inside the window
    in every zone (or, for zones too far apart to share one, in the first zone).
    With no zone known at all the window cannot be applied: None."""
    if not place.zones or _inside(place, now):
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
    first = Whereabouts(place.zones[:1], place.window)
    return next_allowed(first, now) if len(place.zones) > 1 else None


def _inside(place: Whereabouts, moment: datetime) -> bool:
    for zone in place.zones:
        local = moment.astimezone(zone).time()
        if not place.window.start <= local < place.window.end:
            return False
    return True
