"""The vocabulary of consent: statuses, sources, channels, flags, scopes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.addresses import Address, AddressKind
from app.errors import InvalidChange


class Status(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    #: No record: nothing has happened yet (R1). Never stored.
    NOT_DEFINED = "not_defined"


class Source(StrEnum):
    #: The contact texted a keyword (STOP, START, STOP PRICE DROP, ...).
    KEYWORD = "keyword"
    #: The provider or carrier reported it (Twilio OptOutType, error 21610, ...).
    CARRIER = "carrier"
    #: A staff member, through the CLI or the admin UI.
    MANUAL = "manual"
    #: Another system, through the HTTP API.
    API = "api"
    #: A bulk import.
    IMPORT = "import"
    #: optgate itself (a rule, a migration).
    SYSTEM = "system"


#: Sources that speak for the contact: only they may lift a keyword or carrier
#: opt-out (R9, R18).
CONTACT_SOURCES = frozenset({Source.KEYWORD, Source.CARRIER})

#: Sources that act for staff (R9: staff may lift only what staff opted out).
STAFF_SOURCES = frozenset({Source.MANUAL, Source.API})


def may_lift(lifter: Source, opt_out_source: Source) -> bool:
    """Whether a change from ``lifter`` may lift an opt-out recorded from ``opt_out_source``.

    The contact (keyword, or the carrier reporting the contact's START) may
    lift any opt-out. Staff may lift only a staff opt-out (R9). The system may
    lift only its own. An import never lifts an opt-out.
    """
    if lifter in CONTACT_SOURCES:
        return True
    if lifter in STAFF_SOURCES:
        return opt_out_source in STAFF_SOURCES
    if lifter is Source.SYSTEM:
        return opt_out_source is Source.SYSTEM
    return False


def strength(source: Source) -> int:
    """How strong a record's source is: a record is only rewritten by a stronger one.

    A keyword opt-out over a staff opt-out upgrades it (staff can no longer
    lift it); a staff opt-out over a keyword one must not downgrade it, so it
    changes nothing.
    """
    if source in CONTACT_SOURCES:
        return 3
    if source in (Source.IMPORT, Source.SYSTEM):
        return 2
    return 1


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    #: "All communications": a record on ALL covers every channel (R12).
    ALL = "all"


#: Channels a status is shown and decided for (ALL is a switch, not a channel).
PHONE_CHANNELS = (Channel.SMS, Channel.VOICE)
EMAIL_CHANNELS = (Channel.EMAIL,)


def default_channel(address: Address) -> Channel:
    """The channel a change means when it names none: email for an email address, else sms."""
    return Channel.EMAIL if address.kind is AddressKind.EMAIL else Channel.SMS


class Flag(StrEnum):
    #: The provider reported the number unreachable; no SMS until cleared (R17).
    BOUNCED = "bounced"
    #: Block everything for now; can be lifted (R15).
    SILENCED = "silenced"
    #: Permanent, organisation-wide, every channel; never lifted (R15).
    DO_NOT_CONTACT = "do_not_contact"


class ScopeKind(StrEnum):
    LINE = "line"
    GROUP = "group"
    ORGANIZATION = "organization"


#: How broad each scope is: a record covers every point a broader one does
#: within its own reach; narrower wins ties in the precedence rules.
SCOPE_RANK = {ScopeKind.LINE: 0, ScopeKind.GROUP: 1, ScopeKind.ORGANIZATION: 2}


@dataclass(frozen=True, order=True)
class Scope:
    """Where a consent record applies: one line, a group of lines, or the organisation."""

    kind: ScopeKind
    id: int | None = None

    def __post_init__(self) -> None:
        if self.kind is ScopeKind.ORGANIZATION and self.id is not None:
            raise InvalidChange("an organization scope takes no id")
        if self.kind is not ScopeKind.ORGANIZATION and self.id is None:
            raise InvalidChange(f"a {self.kind} scope needs the {self.kind}'s id")

    @classmethod
    def organization(cls) -> Scope:
        return cls(ScopeKind.ORGANIZATION)

    @classmethod
    def line(cls, line_id: int) -> Scope:
        return cls(ScopeKind.LINE, line_id)

    @classmethod
    def group(cls, group_id: int) -> Scope:
        return cls(ScopeKind.GROUP, group_id)

    @classmethod
    def from_key(cls, key: str) -> Scope:
        if key == ScopeKind.ORGANIZATION:
            return cls.organization()
        kind, _, ident = key.partition(":")
        return cls(ScopeKind(kind), int(ident))

    @property
    def key(self) -> str:
        """The stored form: ``organization``, ``group:3`` or ``line:7``."""
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @property
    def rank(self) -> int:
        return SCOPE_RANK[self.kind]


#: The stored topic of an overall record ("" rather than NULL so that the
#: unique key over (address, scope, channel, topic) works on every database).
OVERALL = ""
