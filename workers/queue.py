"""The job queue: Redis and RQ carry message ids from the outbox to the workers.

    from workers.queue import enqueue_message, enqueue_campaign

    message_id = enqueue_message(
        "+14155550100", "+14155550123", "Your order shipped", "transactional"
    )
    report = enqueue_campaign(
        "+14155550100", recipients, "Prices drop today! Reply STOP to opt out", topic="price_drop"
    )

Both work from any Python process whose environment holds optgate's settings
(no Flask application context); they are ``Outbox.message`` and
``Outbox.campaign`` (app/sending/outbox.py, which checks and stores the rows)
on an outbox whose jobs go to RQ.

Jobs carry up to ``JOB_SIZE`` message ids; a job's id derives from them. If
Redis loses jobs (a restart without persistence), the rows are still
``queued`` and ``optgate requeue`` enqueues them again.

``OPTGATE_REDIS_URL=inline`` (the local run's fallback where no Redis can be
started) gives an in-process fakeredis and queues that run each job
synchronously in the process that enqueues it. That is a development
convenience: nothing survives the process, and the app warns at every start.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, cached_property
from itertools import islice
from typing import Concatenate, ParamSpec, TypeVar

import redis
from rq import Queue

from app.data.db import Database
from app.data.models import utcnow
from app.keywords.store import KeywordStore
from app.logs import mask_text
from app.sending.outbox import Outbox
from app.settings import Settings

log = logging.getLogger("optgate.queue")

#: The queues a worker listens to, most urgent first.
QUEUE_NAMES = ("outbound",)
#: The job that sends messages (a string, so enqueueing never imports the worker).
SEND_JOB = "workers.outbound.send_messages"
#: Message ids per job: enough that RQ's per-job cost is small next to the sends.
JOB_SIZE = 100
#: Seconds a job may run; a batch of slow sends is well inside it.
JOB_TIMEOUT = 600


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


class RedisJobs:
    """The outbox's ``Jobs``: RQ jobs of up to ``JOB_SIZE`` message ids each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def queue(self) -> Queue:
        # One Redis connection pool for the outbox's life, not one per dispatch.
        return get_queue(self.settings)

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
        batches = _batches(message_ids)
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


def _batches(message_ids: Sequence[int]) -> list[list[int]]:
    iterator = iter(message_ids)
    return [batch for batch in iter(lambda: list(islice(iterator, JOB_SIZE)), [])]


def redis_outbox(
    settings: Settings, database: Database | None = None, keywords: KeywordStore | None = None
) -> Outbox:
    """An outbox whose messages go to optgate's RQ queue."""
    return Outbox(settings, RedisJobs(settings), database, keywords)


# -- module-level API: settings from the environment ---------------------------------


@cache
def default_outbox() -> Outbox:
    """The outbox of this process's environment (built on first use)."""
    return redis_outbox(Settings.from_env())


P = ParamSpec("P")
R = TypeVar("R")


def _on_default_outbox(method: Callable[Concatenate[Outbox, P], R]) -> Callable[P, R]:
    """``method`` called on ``default_outbox()``: the same parameters, so never drifting."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(default_outbox(), *args, **kwargs)

    return call


#: Queue one message (``Outbox.message``); its id.
enqueue_message = _on_default_outbox(Outbox.message)
#: Queue a campaign (``Outbox.campaign``); what it did.
enqueue_campaign = _on_default_outbox(Outbox.campaign)

__all__ = [
    "RedisJobs",
    "enqueue_campaign",
    "enqueue_message",
    "get_queue",
    "redis_outbox",
]
