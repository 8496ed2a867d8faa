"""The outbox: a message or a campaign becomes ``queued`` rows, then jobs.

Nothing is decided here that the sender does not decide again at send time
(DESIGN.md rule 2): the outbox only refuses what can never be sent (an unknown
line, a number that cannot receive texts, an empty body, an unknown topic).
A message's row is committed as ``queued`` before its job is handed to
``Jobs`` (in production, the RQ queue of workers/queue.py), so a lost job
loses no message: ``requeue`` finds the row again. A message that ends up in
two jobs is still sent once, because the sender must claim it first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.addresses import sms_recipient
from app.data.db import Database
from app.data.models import Campaign, Direction, Line, Message, MessageKind, MessageStatus, utcnow
from app.errors import InvalidAddress, InvalidMessage, NotFound
from app.keywords.store import KeywordStore
from app.lines import find_line
from app.sending.handoff import INTERRUPTED, STALE_AFTER
from app.settings import Settings

log = logging.getLogger("optgate.outbox")

#: Recipients read, checked and inserted per transaction by a campaign.
CHUNK = 5_000
#: Twilio's limit for one message body (it splits longer ones into segments).
MAX_BODY = 1_600
#: Invalid rows kept on the campaign for its report (all are returned to the caller).
KEPT_INVALID_ROWS = 1_000


class Jobs(Protocol):
    """Where the outbox hands committed messages to be sent (workers/queue.py's RQ)."""

    def dispatch(
        self, message_ids: Sequence[int], send_at: datetime | None = None, prefix: str = "send"
    ) -> None:
        """Have these messages sent (at ``send_at``, or now). Must not raise for a
        lost queue: the rows are ``queued``, and ``requeue`` finds them again."""


@dataclass(frozen=True)
class InvalidRow:
    #: The row's position in the recipient list, from 1.
    row: int
    value: str
    reason: str


@dataclass(frozen=True)
class CampaignQueued:
    """What ``enqueue_campaign`` did."""

    id: int
    recipients: int
    queued: int
    invalid: list[InvalidRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "recipients": self.recipients,
            "queued": self.queued,
            "invalid": [asdict(row) for row in self.invalid],
        }


@dataclass(frozen=True)
class Requeued:
    """What ``requeue`` did."""

    #: Due messages enqueued again.
    queued: int
    #: Messages waiting for a later time, scheduled again.
    scheduled: int
    #: Messages a worker claimed and never finished: settled as failed ("interrupted").
    interrupted: int


class Outbox:
    """Queues messages and campaigns for one set of settings."""

    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        database: Database | None = None,
        keywords: KeywordStore | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.database = database or Database(settings.database_url)
        self._keywords = keywords

    # -- one message --------------------------------------------------------------------

    def message(
        self,
        line: str,
        to: str,
        body: str,
        kind: MessageKind | str,
        topic: str | None = None,
        require_opt_in: bool = False,
        campaign: int | None = None,
        send_at: datetime | None = None,
        created_by: str | None = None,
    ) -> int:
        """Queue one message; its id.

        Raises:
            NotFound: the line is not known (or the campaign does not exist).
            InvalidAddress: ``to`` cannot receive texts.
            InvalidMessage: the body, kind, topic or time is not usable.
        """
        what = self._what(body, kind, topic, require_opt_in, send_at)
        recipient = sms_recipient(to, self.settings.default_region)
        with self.database.transaction() as session:
            sender = find_line(session, line, self.settings.default_region)
            if campaign is not None and session.get(Campaign, campaign) is None:
                raise NotFound(f"there is no campaign {campaign}")
            row = _outbound_row(
                sender, what, campaign, {"created_by": created_by} if created_by else None
            )
            [message_id] = _insert(session, row, [recipient])
        self.jobs.dispatch([message_id], send_at)
        return message_id

    # -- a campaign ---------------------------------------------------------------------

    def campaign(
        self,
        line: str,
        recipients: Iterable[str],
        body: str,
        topic: str | None = None,
        require_opt_in: bool = False,
        *,
        kind: MessageKind | str = MessageKind.MARKETING,
        name: str | None = None,
        send_at: datetime | None = None,
        created_by: str = "python",
        progress: Callable[[], None] | None = None,
    ) -> CampaignQueued:
        """Queue ``body`` for every recipient; rows that are not numbers are reported, not fatal.

        Recipients are read lazily, ``CHUNK`` at a time: each chunk's rows are
        inserted in bulk and committed, then their jobs are enqueued, so a
        campaign of millions neither waits for its end to start sending nor
        holds it in memory. A number listed twice gets one message.

        Args:
            progress: called after each chunk (the web layer checks in with gunicorn:
                a campaign posted to the API can take minutes).

        Raises:
            NotFound, InvalidMessage: as for ``message``; nothing is queued then.
        """
        what = self._what(body, kind, topic, require_opt_in, send_at)
        if name is not None and len(name) > 200:
            raise InvalidMessage("a campaign name has at most 200 characters")
        with self.database.transaction() as session:
            sender = find_line(session, line, self.settings.default_region)
            row = Campaign(
                organization_id=sender.organization_id,
                line_id=sender.id,
                name=name,
                body=what.body,
                kind=what.kind,
                topic=what.topic,
                require_opt_in=require_opt_in,
                created_by=created_by,
            )
            session.add(row)
            session.flush()
            campaign = row.id
        template = _outbound_row(sender, what, campaign)
        seen: set[str] = set()
        invalid: list[InvalidRow] = []
        total = queued = 0
        for chunk in _chunks(enumerate(recipients, start=1), CHUNK):
            addresses, rejected = self._check(chunk, seen)
            invalid.extend(rejected)
            total += len(chunk)
            with self.database.transaction() as session:
                ids = _insert_chunk(session, template, addresses)
                _count(session, campaign, len(chunk), rejected)
            queued += len(ids)
            self.jobs.dispatch(ids, send_at)
            if progress is not None:
                progress()
        with self.database.transaction() as session:
            session.execute(
                sa.update(Campaign).where(Campaign.id == campaign).values(enqueued_at=utcnow())
            )
        log.info("campaign %s: %s recipients, %s queued", campaign, total, queued)
        return CampaignQueued(campaign, total, queued, invalid)

    def _check(
        self, chunk: list[tuple[int, str]], seen: set[str]
    ) -> tuple[list[str], list[InvalidRow]]:
        addresses: list[str] = []
        rejected: list[InvalidRow] = []
        region = self.settings.default_region
        for number, raw in chunk:
            try:
                address = sms_recipient(str(raw), region)
            except InvalidAddress as error:
                rejected.append(InvalidRow(number, str(raw)[:100], error.why))
                continue
            if address in seen:
                rejected.append(InvalidRow(number, str(raw)[:100], f"{address} is listed before"))
                continue
            seen.add(address)
            addresses.append(address)
        return addresses, rejected

    # -- what Redis may have lost ----------------------------------------------------

    def requeue(
        self,
        older_than: timedelta = timedelta(minutes=1),
        interrupted_after: timedelta = STALE_AFTER,
    ) -> Requeued:
        """Enqueue again what Redis may have lost, and settle what dead workers left.

        Args:
            older_than: leave messages queued more recently alone (their jobs
                are most likely still in Redis; a duplicate job is harmless, but
                useless work).
            interrupted_after: settle messages claimed longer ago than this and
                still ``sending``. Shorter than a hand-off can take (a slow
                provider answers within 18 s) only when no worker is running.
        """
        now = utcnow()
        with self.database.transaction() as session:
            interrupted = _settle_interrupted(session, now - interrupted_after)
        waiting = sa.select(Message.id, Message.send_at).where(
            Message.direction == Direction.OUTBOUND,
            Message.status == MessageStatus.QUEUED,
            Message.updated_at <= now - older_than,
        )
        queued = scheduled = 0
        with self.database.sessions() as session:
            due = waiting.where(sa.or_(Message.send_at.is_(None), Message.send_at <= now))
            for chunk in _chunks(_stream(session, due.order_by(Message.id)), CHUNK):
                self.jobs.dispatch(
                    [id_ for id_, _ in chunk], prefix=f"requeue{int(now.timestamp())}"
                )
                queued += len(chunk)
            later = waiting.where(Message.send_at > now).order_by(Message.id)
            for id_, send_at in _stream(session, later):
                self.jobs.dispatch([id_], send_at)
                scheduled += 1
        return Requeued(queued, scheduled, interrupted)

    # -- checks -------------------------------------------------------------------------

    def _what(
        self,
        body: str,
        kind: MessageKind | str,
        topic: str | None,
        require_opt_in: bool,
        send_at: datetime | None,
    ) -> _What:
        """What every message of a request carries, checked."""
        _aware(send_at)
        return _What(_body(body), _kind(kind), self._topic(topic), require_opt_in, send_at)

    def _topic(self, topic: str | None) -> str | None:
        """A topic the keyword config defines: a misspelt one would bypass its opt-outs."""
        if topic is None or topic == "":
            return None
        if self._keywords is None:
            self._keywords = KeywordStore(self.settings.keywords_path, self.settings.default_region)
        topics = self._keywords.matcher.config.topics
        if topic not in topics:
            known = ", ".join(sorted(topics)) or "none are defined"
            raise InvalidMessage(
                f"there is no topic {topic!r} in {self._keywords.path} (known: {known})"
            )
        return topic


@dataclass(frozen=True)
class _What:
    body: str
    kind: MessageKind
    topic: str | None
    require_opt_in: bool
    send_at: datetime | None


def _outbound_row(
    sender: Line, what: _What, campaign: int | None, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The columns every queued message of a request shares (all but the address)."""
    return {
        "organization_id": sender.organization_id,
        "line_id": sender.id,
        "direction": Direction.OUTBOUND,
        "body": what.body,
        "kind": what.kind,
        "topic": what.topic,
        "require_opt_in": what.require_opt_in,
        "campaign_id": campaign,
        "status": MessageStatus.QUEUED,
        "send_at": what.send_at,
        "attempts": 0,
        "needs_review": False,
        "meta": meta,
    }


def _kind(kind: MessageKind | str) -> MessageKind:
    try:
        return MessageKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in MessageKind)
        raise InvalidMessage(f"{kind!r} is not a kind of message; expected {kinds}") from None


def _body(body: str) -> str:
    if not isinstance(body, str) or not body.strip():
        raise InvalidMessage("the body is empty: there is nothing to send")
    if len(body) > MAX_BODY:
        raise InvalidMessage(f"the body has {len(body)} characters; a text has at most {MAX_BODY}")
    return body


def _aware(moment: datetime | None) -> None:
    if moment is None:
        return
    if moment.tzinfo is None:
        raise InvalidMessage(
            f"send_at {moment.isoformat()} has no time zone: give one "
            "(e.g. 2026-12-01T09:00:00+00:00), a local time read as UTC would be a silent bug"
        )
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise InvalidMessage(f"send_at {moment.isoformat()} is out of range") from None


def _rows(template: dict[str, Any], addresses: list[str]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {**template, "address": address, "created_at": now, "updated_at": now}
        for address in addresses
    ]


def _insert(session: Session, template: dict[str, Any], addresses: list[str]) -> list[int]:
    """Insert one row per address; their ids, ascending."""
    return sorted(
        session.scalars(sa.insert(Message).returning(Message.id), _rows(template, addresses))
    )


def _insert_chunk(session: Session, template: dict[str, Any], addresses: list[str]) -> list[int]:
    """Insert a campaign's chunk; the ids of the campaign's rows added since its last.

    RETURNING over a bulk insert costs PostgreSQL 2.5 times a plain executemany,
    so the rows are found again by the campaign's id (indexed) past its last id.
    A message queued into the campaign meanwhile by another caller may come
    back too: it then sits in two jobs, and is still sent once (a worker must
    claim it).
    """
    if not addresses:
        return []
    campaign = template["campaign_id"]
    last = session.scalar(sa.select(sa.func.max(Message.id)).where(Message.campaign_id == campaign))
    session.execute(sa.insert(Message), _rows(template, addresses))
    return list(
        session.scalars(
            sa.select(Message.id)
            .where(Message.campaign_id == campaign, Message.id > (last or 0))
            .order_by(Message.id)
        )
    )


def _count(session: Session, campaign: int, read: int, rejected: list[InvalidRow]) -> None:
    row = session.get(Campaign, campaign, with_for_update=True)
    assert row is not None
    row.recipients += read
    row.invalid += len(rejected)
    kept = list(row.invalid_rows or [])
    if len(kept) < KEPT_INVALID_ROWS and rejected:
        kept.extend(asdict(r) for r in rejected[: KEPT_INVALID_ROWS - len(kept)])
        row.invalid_rows = kept


def _settle_interrupted(session: Session, claimed_before: datetime) -> int:
    """Messages claimed long ago and never finished: their worker died mid-send.

    The provider may have them, so they are not sent again (at most once).
    A later receipt from the provider revives them (receipts.py).
    """
    result = session.execute(
        sa.update(Message)
        .where(
            Message.direction == Direction.OUTBOUND,
            Message.status == MessageStatus.SENDING,
            Message.claimed_at < claimed_before,
        )
        .values(status=MessageStatus.FAILED, error_code=INTERRUPTED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _stream(session: Session, query: sa.Executable) -> Iterator[Any]:
    """The rows of ``query``, fetched ``CHUNK`` at a time (millions never sit in memory)."""
    return iter(session.execute(query.execution_options(yield_per=CHUNK)))


def _chunks(items: Iterator[Any] | Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
