"""``optgate worker``: an RQ worker on optgate's queues."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from rq import Queue, SimpleWorker

from app.errors import SettingsError
from app.sending.quiet import require_zone_data
from app.settings import Settings, configure_logging
from workers.outbound import close_sender
from workers.queue import QUEUE_NAMES, redis_connection


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Work the queues until stopped (or, with ``burst``, until they are empty).

    Returns:
        Whether any job was processed.
    """
    if settings.redis_inline:
        raise SettingsError(
            "OPTGATE_REDIS_URL",
            "is 'inline': jobs run inside the web process, so there is no worker to start; "
            "set a redis:// URL to run workers",
        )
    require_zone_data(settings.quiet_hours)
    # Before RQ sets up its own handlers (which would not mask): finding ours on the
    # root logger, it logs through them, its job failures' tracebacks included.
    configure_logging(settings)
    connection = redis_connection(settings, timeout=None)
    queues = [Queue(name, connection=connection) for name in QUEUE_NAMES]
    # SimpleWorker runs jobs in this process instead of a fork per job: the send
    # thread pool, database pool and provider connections live across jobs
    # (a fork per job costs ~18 ms here and rebuilds all three). The scheduler
    # moves jobs that wait for a time (quiet hours, retries) onto the queue.
    worker = SimpleWorker(queues, connection=connection)
    return bool(
        worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=not burst)
    )


def leave(code: int) -> NoReturn:
    """End the worker process with ``code`` once RQ has shut down, skipping the
    interpreter's finalization.

    A worker idle at SIGTERM after its Redis had restarted once logged its warm
    shutdown, returned from RQ, and then never exited: the main thread spun with the
    GIL and no Python frame left (py-spy), inside finalization, with the send pool's
    threads and connections still alive. Nothing needs finalizing: the sender's
    threads are joined and its connections closed here, the logs flushed, and
    ``os._exit`` ends the process, as RQ's own work horses end.
    """
    close_sender()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
