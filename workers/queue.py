"""Enqueue outbound messages: one at a time, or a campaign of any size.

    from workers.queue import enqueue_message, enqueue_campaign

    message_id = enqueue_message(
        "+14155550100", "+14155550123", "Your order shipped", "transactional"
    )
    report = enqueue_campaign(
        "+14155550100", recipients, "Prices drop today! Reply STOP to opt out", topic="price_drop"
    )

Both work from any Python process whose environment holds optgate's settings
(no Flask application context). A message's row is committed as ``queued``
before its job is enqueued, and nothing is decided here that the worker does
not decide again at send time (DESIGN.md rule 2): enqueueing only refuses
what can never be sent (an unknown line, a number that cannot receive texts,
an empty body, an unknown topic).

Jobs carry up to ``JOB_SIZE`` message ids; a job's id derives from them. If
Redis loses jobs (a restart without persistence), the rows are still
``queued`` and ``optgate requeue`` enqueues them again; a message that ends up
in two jobs is still sent once, because a worker must claim it first.

``OPTGATE_REDIS_URL=inline`` (the local run's fallback where no Redis can be
started) gives an in-process fakeredis and queues that run each job
synchronously in the process that enqueues it. That is a development
convenience: nothing survives the process, and the app warns at every start.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from itertools import islice
from typing import Any

import redis
import sqlalchemy as sa
from rq import Queue
from sqlalchemy.orm import Session

from app import heartbeat
from app.addresses import sms_recipient
from app.db import Database
from app.errors import InvalidAddress, InvalidMessage, NotFound
from app.handoff import INTERRUPTED, STALE_AFTER
from app.keywords.store import KeywordStore
from app.lines import find_line
from app.logs import mask_text
from app.models import Campaign, Direction, Line, Message, MessageKind, MessageStatus, utcnow
from app.settings import Settings

log = logging.getLogger("optgate.queue")

#: The queues a worker listens to, most urgent first.
QUEUE_NAMES = ("outbound",)
#: The job that sends messages (a string, so enqueueing never imports the worker).
SEND_JOB = "workers.outbound.send_messages"
#: Message ids per job: enough that RQ's per-job cost is small next to the sends.
JOB_SIZE = 100
#: Recipients read, checked and inserted per transaction by a campaign.
CHUNK = 5_000
#: Seconds a job may run; a batch of slow sends is well inside it.
JOB_TIMEOUT = 600
#: Twilio's limit for one message body (it splits longer ones into segments).
MAX_BODY = 1_600
#: Invalid rows kept on the campaign for its report (all are returned to the caller).
KEPT_INVALID_ROWS = 1_000


def redis_connection(settings: Settings, *, timeout: float | None = 5.0) -> redis.Redis:
    """A Redis client for ``settings``.

    Args:
        timeout: socket timeout in seconds. Request handlers want a short one
            so a dead Redis answers 503 quickly; a worker blocks on BLPOP for
            minutes and needs None.
    """
    if settings.redis_inline:
        return _inline_redis()
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=timeout,
        health_check_interval=30,
    )


@cache
def _inline_redis() -> redis.Redis:
    import fakeredis  # only the inline development mode needs it

    client: redis.Redis = fakeredis.FakeRedis()
    return client


def get_queue(settings: Settings, name: str = QUEUE_NAMES[0]) -> Queue:
    return Queue(name, connection=redis_connection(settings), is_async=not settings.redis_inline)


def job_id(message_ids: Sequence[int], prefix: str = "send") -> str:
    """The id of the job that sends ``message_ids``: readable, and the same for the same ids."""
    digest = hashlib.blake2b(",".join(map(str, message_ids)).encode(), digest_size=4).hexdigest()
    return f"{prefix}-{message_ids[0]}-{len(message_ids)}-{digest}"


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
        database: Database | None = None,
        keywords: KeywordStore | None = None,
    ) -> None:
        self.settings = settings
        self.database = database or Database(settings.database_url)
        self._keywords = keywords

    @cached_property
    def queue(self) -> Queue:
        # One Redis connection pool for the outbox's life, not one per dispatch.
        return get_queue(self.settings)

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
        self.dispatch([message_id], send_at)
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
    ) -> CampaignQueued:
        """Queue ``body`` for every recipient; rows that are not numbers are reported, not fatal.

        Recipients are read lazily, ``CHUNK`` at a time: each chunk's rows are
        inserted in bulk and committed, then their jobs are enqueued, so a
        campaign of millions neither waits for its end to start sending nor
        holds it in memory. A number listed twice gets one message.

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
            self.dispatch(ids, send_at)
            # A campaign posted to the web app can take minutes: say it is alive.
            heartbeat.beat()
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

    # -- jobs ---------------------------------------------------------------------------

    def dispatch(
        self, message_ids: Sequence[int], send_at: datetime | None = None, prefix: str = "send"
    ) -> None:
        """Enqueue jobs for messages whose rows are committed.

        A Redis failure is logged, not raised: the rows are safe as ``queued``,
        and ``optgate requeue`` enqueues them when Redis is back. Raising would
        invite the caller to queue the same messages again.
        """
        if not message_ids:
            return
        batches = [list(batch) for batch in _chunks(iter(message_ids), JOB_SIZE)]
        queue = self.queue
        try:
            if send_at is not None and send_at > utcnow() and queue.is_async:
                # The time is in the id: a retry's job never takes the id of the
                # job that is running it now.
                at = f"at{int(send_at.timestamp())}"
                for batch in batches:
                    queue.enqueue_at(
                        send_at, SEND_JOB, batch, job_id=job_id(batch, at), job_timeout=JOB_TIMEOUT
                    )
                return
            with queue.connection.pipeline() as pipe:
                queue.enqueue_many(
                    [
                        Queue.prepare_data(
                            SEND_JOB,
                            args=(batch,),
                            job_id=job_id(batch, prefix),
                            timeout=JOB_TIMEOUT,
                        )
                        for batch in batches
                    ],
                    pipeline=pipe,
                )
                pipe.execute()
        except redis.RedisError as error:
            log.warning(
                "messages %s..%s are stored as queued, but Redis refused their jobs (%s); "
                "run `optgate requeue` once Redis is back",
                message_ids[0],
                message_ids[-1],
                # Redis's text may hold its URL, with a password.
                mask_text(str(error)),
            )

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
                self.dispatch([id_ for id_, _ in chunk], prefix=f"requeue{int(now.timestamp())}")
                queued += len(chunk)
            later = waiting.where(Message.send_at > now).order_by(Message.id)
            for id_, send_at in _stream(session, later):
                self.dispatch([id_], send_at)
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


# -- module-level API: settings from the environment ---------------------------------


@cache
def default_outbox() -> Outbox:
    """The outbox of this process's environment (built on first use)."""
    return Outbox(Settings.from_env())


def enqueue_message(
    line: str,
    to: str,
    body: str,
    kind: MessageKind | str,
    topic: str | None = None,
    require_opt_in: bool = False,
    campaign: int | None = None,
    send_at: datetime | None = None,
) -> int:
    """Queue one message (see ``Outbox.message``); its id."""
    return default_outbox().message(line, to, body, kind, topic, require_opt_in, campaign, send_at)


def enqueue_campaign(
    line: str,
    recipients: Iterable[str],
    body: str,
    topic: str | None = None,
    require_opt_in: bool = False,
    **options: Any,
) -> CampaignQueued:
    """Queue a campaign (see ``Outbox.campaign``): kind, name, send_at, created_by."""
    return default_outbox().campaign(line, recipients, body, topic, require_opt_in, **options)


__all__ = [
    "CampaignQueued",
    "InvalidRow",
    "Outbox",
    "Requeued",
    "enqueue_campaign",
    "enqueue_message",
    "get_queue",
]
