"""The job queue: the Redis connection and the RQ queues, built from settings.

``OPTGATE_REDIS_URL=inline`` (the local run's fallback where no Redis can be
started) gives an in-process fakeredis and queues that run each job
synchronously in the process that enqueues it. That is a development
convenience: nothing survives the process, and the app warns at every start.
"""

from __future__ import annotations

from functools import cache

import redis
from rq import Queue

from app.settings import Settings

#: The queues a worker listens to, most urgent first.
QUEUE_NAMES = ("outbound",)


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
