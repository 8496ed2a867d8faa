"""Tables (SQLAlchemy 2, typed). Alembic migrations in app/data/migrations mirror them;
tests/test_migrations.py fails when the two drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.addresses import AddressKind
from app.consent.values import Channel, Flag, Source, Status
from app.settings import Role

#: The genesis "previous hash" of every address's event chain.
GENESIS_HASH = "0" * 64


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC and come back tagged UTC. Naive datetimes are refused
    on the way in: a local time stored as UTC is a silent bug.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum]) -> sa.Enum:
    # Stored as the enum's value in a VARCHAR, without a CHECK constraint:
    # adding a value (a new message status) must not need a table rebuild on
    # SQLite. SQLAlchemy still refuses unknown values on the way in.
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


# BIGINT primary keys are not rowid aliases on SQLite and would not autoincrement.
BigIntegerKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}

    def __repr__(self) -> str:
        columns = ", ".join(
            f"{column.key}={getattr(self, column.key)!r}"
            for column in sa.inspect(type(self)).columns
            if column.primary_key or column.key in ("name", "value", "address")
        )
        return f"<{type(self).__name__} {columns}>"


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineGroup(Base):
    """Lines that share opt-outs, e.g. all numbers of one Twilio Messaging Service."""

    __tablename__ = "line_groups"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"))
    #: For a Twilio Messaging Service, its SID (MG...).
    name: Mapped[str] = mapped_column(sa.String(100))
    #: Messages per second that all its lines share (a Messaging Service pools its
    #: numbers' throughput); None: each line has its own (app/sending/rates.py).
    send_rate: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Line(Base):
    """One of our sending numbers or short codes."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("line_groups.id"), index=True)
    #: E.164 number or short-code digits; a number belongs to one organisation.
    address: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    #: The group the provider last reported for the line (a Twilio Messaging Service
    #: SID) when it is not the line's group here: a move seen at the provider that
    #: waits for a person (``optgate lines move``), because a move changes which
    #: opt-outs cover the line (app/consent/moves.py).
    seen_group: Mapped[str | None] = mapped_column(sa.String(100))
    #: Messages per second this line may send, beating its group's and its kind's
    #: default (OPTGATE_SEND_RATE_*); None: not set here (app/sending/rates.py).
    send_rate: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LineMembership(Base):
    """A line's group from a moment on: one row when it is added, one per move.

    Appended, never changed. ``optgate consent verify-history`` checks every
    line's group against its newest row, so a line moved without the move that
    carries its opt-outs along is found.
    """

    __tablename__ = "line_memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("lines.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("line_groups.id"))
    actor: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    #: Opt-outs written on the line itself so that the move lifted none.
    carried: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HeldText(Base):
    """A text to a number no organisation has, kept until a person adds the line.

    Which organisation's consent a STOP to an unknown number changes cannot be
    guessed; the text is kept (a provider does not send it again) and applied
    when the line is added (``optgate lines add``).
    """

    __tablename__ = "held_texts"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_message_id"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(20))
    provider_message_id: Mapped[str] = mapped_column(sa.String(64))
    #: The line written to, normalised (E.164 or short-code digits).
    line: Mapped[str] = mapped_column(sa.String(32), index=True)
    sender: Mapped[str] = mapped_column(sa.String(320))
    body: Mapped[str] = mapped_column(sa.Text)
    service_id: Mapped[str | None] = mapped_column(sa.String(100))
    provider_action: Mapped[str | None] = mapped_column(sa.String(16))
    media_count: Mapped[int] = mapped_column(default=0)
    meta: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactAddress(Base):
    """A contact's address as known to one organisation.

    Consent is keyed by address, never by a contact record (R13). The row is
    also the lock the ledger takes before changing the address's consent, and
    the head of its history chain.
    """

    __tablename__ = "addresses"
    __table_args__ = (sa.UniqueConstraint("organization_id", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"))
    value: Mapped[str] = mapped_column(sa.String(320))
    kind: Mapped[AddressKind] = mapped_column(_enum(AddressKind))
    #: Sequence number and hash of the address's latest history event: deleting
    #: the last event of a chain is detected because it no longer matches.
    head_seq: Mapped[int] = mapped_column(default=0)
    head_hash: Mapped[str] = mapped_column(sa.String(64), default=GENESIS_HASH)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class _SetBy:
    """Who set a consent record or flag, how and why, and in which event: the last
    columns of both tables."""

    source: Mapped[Source] = mapped_column(_enum(Source))
    actor: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("messages.id"))
    #: The address's history sequence number of the event that set this state;
    #: the precedence rules compare it ("newer").
    seq: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentRecord(_SetBy, Base):
    """The current consent of one address in one scope, channel and topic.

    No row means "not defined" (R1). The history of every change is in
    ConsentEvent; this table is its projection.
    """

    __tablename__ = "consent_records"
    __table_args__ = (sa.UniqueConstraint("address_id", "scope", "channel", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address_id: Mapped[int] = mapped_column(sa.ForeignKey("addresses.id"))
    #: ``organization``, ``group:<id>`` or ``line:<id>`` (see consent.values.Scope).
    scope: Mapped[str] = mapped_column(sa.String(40))
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id"))
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("line_groups.id"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    #: Topic id, or "" for the overall status.
    topic: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[Status] = mapped_column(_enum(Status))


class FlagState(_SetBy, Base):
    """A flag on an address: bounced, silenced, do-not-contact (R15, R17)."""

    __tablename__ = "flags"

    address_id: Mapped[int] = mapped_column(sa.ForeignKey("addresses.id"), primary_key=True)
    name: Mapped[Flag] = mapped_column(_enum(Flag), primary_key=True)
    is_set: Mapped[bool]


class ConsentEvent(Base):
    """One change, appended and never updated (R11).

    Events of one address form a chain: each carries the hash of the previous
    one and a hash over its own content, so an edited, removed or reordered
    event is detected by ``optgate consent verify-history``.
    """

    __tablename__ = "consent_events"
    __table_args__ = (sa.UniqueConstraint("address_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"))
    address_id: Mapped[int] = mapped_column(sa.ForeignKey("addresses.id"))
    #: Position in the address's chain, from 1.
    seq: Mapped[int]
    #: The address itself, kept on the event so the history reads (and
    #: exports) without joins and the hash covers it.
    address: Mapped[str] = mapped_column(sa.String(320))
    #: ``consent`` or the name of a flag.
    subject: Mapped[str] = mapped_column(sa.String(20))
    scope: Mapped[str] = mapped_column(sa.String(40))
    line_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lines.id"))
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("line_groups.id"))
    channel: Mapped[str] = mapped_column(sa.String(8))
    topic: Mapped[str] = mapped_column(sa.String(64))
    #: opted_in / opted_out / not_defined for consent; set / clear for flags.
    old_value: Mapped[str] = mapped_column(sa.String(16))
    new_value: Mapped[str] = mapped_column(sa.String(16))
    old_source: Mapped[Source | None] = mapped_column(_enum(Source))
    source: Mapped[Source] = mapped_column(_enum(Source))
    actor: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageKind(StrEnum):
    TRANSACTIONAL = "transactional"
    CONVERSATIONAL = "conversational"
    MARKETING = "marketing"


class MessageStatus(StrEnum):
    #: Inbound: stored when the webhook arrived.
    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    #: The send policy refused it; block_reason says why.
    BLOCKED = "blocked"


class Campaign(Base):
    """One body sent to a list of recipients; its messages carry its id."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"))
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("lines.id"))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind))
    topic: Mapped[str | None] = mapped_column(sa.String(64))
    require_opt_in: Mapped[bool] = mapped_column(default=False)
    #: Who asked for it (an API token's name, "cli", a job's name).
    created_by: Mapped[str] = mapped_column(sa.String(200))
    #: Recipients read so far, and how many of them were not valid addresses.
    recipients: Mapped[int] = mapped_column(default=0)
    invalid: Mapped[int] = mapped_column(default=0)
    #: The first invalid rows (row number, value, why), for the report.
    invalid_rows: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when every recipient is queued; until then the campaign is still loading.
    enqueued_at: Mapped[datetime | None]


class Message(Base):
    """An inbound or outbound text."""

    __tablename__ = "messages"
    __table_args__ = (
        # A retried webhook carries the same provider id: one row, one effect.
        sa.UniqueConstraint("provider", "provider_message_id"),
        sa.Index(None, "line_id", "address"),
        # The STOP webhook's wait for hand-offs in flight (app/sending/handoff.py) and
        # the bounce count look messages up by recipient.
        sa.Index(None, "organization_id", "address"),
        # The review queue: the few texts still waiting for a person.
        sa.Index(
            "ix_messages_review_queue",
            "organization_id",
            "id",
            postgresql_where=sa.text("needs_review AND review_outcome IS NULL"),
            # SQLite uses a partial index only for a query that repeats its filter as
            # written, and SQLAlchemy writes a boolean column there as "= 1".
            sqlite_where=sa.text("needs_review = 1 AND review_outcome IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"))
    line_id: Mapped[int] = mapped_column(sa.ForeignKey("lines.id"))
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    #: The contact's address (sender of an inbound, recipient of an outbound).
    address: Mapped[str] = mapped_column(sa.String(320))
    body: Mapped[str] = mapped_column(sa.Text)
    #: Outbound only: decides which checks of the send policy apply (R16).
    kind: Mapped[MessageKind | None] = mapped_column(_enum(MessageKind))
    topic: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), index=True)
    block_reason: Mapped[str | None] = mapped_column(sa.String(32))
    error_code: Mapped[str | None] = mapped_column(sa.String(16))
    provider: Mapped[str | None] = mapped_column(sa.String(20))
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(64))
    #: Inbound text that may be a revocation in words: a person decides (R10).
    needs_review: Mapped[bool] = mapped_column(default=False)
    #: How a person resolved it (``opt_out`` or ``dismissed``), who, and when.
    review_outcome: Mapped[str | None] = mapped_column(sa.String(16))
    reviewed_by: Mapped[str | None] = mapped_column(sa.String(200))
    reviewed_at: Mapped[datetime | None]
    #: Inbound: what the matcher read (opt_out, help, none, ...).
    intent: Mapped[str | None] = mapped_column(sa.String(20))
    #: Inbound: the answer we gave, so a retried webhook gets the very same one.
    reply: Mapped[str | None] = mapped_column(sa.Text)
    #: Provider details worth keeping (NumMedia, OptOutType, MessagingServiceSid, ...).
    meta: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: Outbound: the campaign it belongs to.
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    #: Outbound marketing: send only to recipients who opted in (R7).
    require_opt_in: Mapped[bool] = mapped_column(default=False)
    #: Outbound: not to be sent before (a schedule, quiet hours, a retry's backoff).
    send_at: Mapped[datetime | None]
    #: Outbound: when a worker claimed it (status ``sending``).
    claimed_at: Mapped[datetime | None]
    #: Outbound: hand-offs tried that the provider refused for a passing reason.
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]


class Receipt(Base):
    """A delivery receipt (status callback) as it arrived.

    One row per (provider, message id, status): a provider retrying the same
    callback changes nothing. Receipts for a message id we do not know are
    kept (message_id NULL) for reconciliation.
    """

    __tablename__ = "receipts"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_message_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(20))
    provider_message_id: Mapped[str] = mapped_column(sa.String(64))
    #: The provider's status word as received (lower case).
    status: Mapped[str] = mapped_column(sa.String(20))
    error_code: Mapped[str | None] = mapped_column(sa.String(16))
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("messages.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who signs in to the admin console (app/accounts).

    The role is the API's (agent or manager). A user of one organisation sees
    that one only; without an organisation, every one (an operator). Users are
    disabled, never deleted: their name stays on the history they wrote.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"))
    #: argon2id, as argon2-cffi writes it; None: signs in through the SSO proxy only.
    password_hash: Mapped[str | None] = mapped_column(sa.String(200))
    #: Raised by every password change and by disabling: sessions signed with an
    #: older value end at their next request.
    session_version: Mapped[int] = mapped_column(default=1)
    disabled_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class LoginFailure(Base):
    """Failed sign-ins in a row, per account (``user:NAME``) and per client address
    (``ip:ADDRESS``): the next try waits longer after each (app/accounts/logins.py)."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)
