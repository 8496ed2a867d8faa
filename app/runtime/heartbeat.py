"""Tell the web server that a long request is still working.

gunicorn's sync worker is killed when it has not checked in for ``timeout``
seconds, and it checks in only between requests: a hung worker is replaced,
but so would be a long export or import. Code that streams a long answer
calls ``beat()`` as it goes; under gunicorn that checks in (at most once a
second), elsewhere it does nothing. A request that stops making progress is
still killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_notify: Callable[[], None] | None = None
_last = 0.0


def install(notify: Callable[[], None]) -> None:
    """Called once per gunicorn worker, after it starts, with its check-in."""
    global _notify
    _notify = notify


def beat() -> None:
    global _last
    if _notify is None:
        return
    now = time.monotonic()
    if now - _last >= 1.0:
        _last = now
        _notify()
