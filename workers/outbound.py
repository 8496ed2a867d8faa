"""The send job: RQ calls ``send_messages`` with up to ``workers.queue.JOB_SIZE``
message ids; the sender of app/sending/sender.py claims, decides and hands each
one over. This module only wires that sender to the worker's environment: its
settings, live keyword rules (their frequency limits), the provider, the Redis
that keeps the lines' send rates, and the queue that takes a message deferred
to a later time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from app.keywords.store import KeywordStore
from app.providers import get_provider
from app.sending.limits import Limits
from app.sending.rates import Limiter, SendPacer
from app.sending.sender import Sender, limits_in_force
from app.settings import Settings, configure_logging
from workers.queue import redis_connection, redis_outbox

#: The provider that sends (the only one there is so far).
PROVIDER = "twilio"


def send_messages(message_ids: list[int]) -> dict[str, int]:
    """RQ job: send these messages. Settings come from the worker's environment."""
    return {str(outcome): n for outcome, n in _sender().send_all(message_ids).items()}


def close_sender() -> None:
    """Join the send threads and close the database connections, if a job built them."""
    if _sender.cache_info().currsize:
        sender = _sender()
        sender.close()
        sender.database.dispose()
        _sender.cache_clear()


@cache
def _sender() -> Sender:
    settings = Settings.from_env()
    configure_logging(settings)
    # keywords.yaml's limits: the same live, last-good rules as the web processes read.
    keywords = KeywordStore(settings.keywords_path, settings.default_region)
    keywords.watch()
    outbox = redis_outbox(settings, keywords=keywords)

    def schedule(message_ids: Sequence[int], when: datetime) -> None:
        outbox.jobs.dispatch(message_ids, when)

    def limits() -> Limits:
        return limits_in_force(settings, keywords.matcher.config.limits)

    return Sender(
        settings,
        outbox.database,
        get_provider(PROVIDER, settings),
        schedule,
        limits=limits,
        # Send rates are kept across every worker through the queue's own Redis.
        pacer=SendPacer(Limiter(redis_connection(settings), settings), outbox.database),
    )
