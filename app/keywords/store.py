"""The keyword config of a running service, reloaded when keywords.yaml changes.

Marketers edit the file while the service runs. Every process checks the
file's modification stamp at most once a second; a changed file is loaded and
validated in full, and only a good one replaces the config in force. A bad
edit is logged with every error and kept as ``problem`` (``/readyz`` shows
it), while the last good config goes on answering: a typo must never take
the service down or silently drop opt-out keywords.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.keywords.config import ConfigError, load
from app.keywords.matcher import Matcher

log = logging.getLogger("optgate.keywords")

#: Seconds between two looks at the file's stamp.
CHECK_EVERY = 1.0

_Stamp = tuple[int, int, int] | None


class KeywordStore:
    """Holds the matcher for the last good keywords.yaml."""

    def __init__(
        self,
        path: Path,
        default_region: str = "US",
        *,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Load ``path``.

        Raises:
            ConfigError: the file is missing or wrong; a service must not start without
                a good config.
        """
        self.path = path
        self.default_region = default_region
        self.check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._matcher = Matcher(load(path, default_region))
        self.loaded_at = datetime.now(UTC)
        self._checked = clock()
        #: The errors of the newest version of the file, when it could not be used.
        self.problem: ConfigError | None = None

    @property
    def matcher(self) -> Matcher:
        """The matcher of the last good config (after a cheap look for changes)."""
        self.refresh()
        return self._matcher

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when the file changed; returns whether a new config is in force."""
        now = self._clock()
        if not force and now - self._checked < self.check_every:
            return False
        self._checked = now
        stamp = _stamp(self.path)
        if stamp == self._stamp and not force:
            return False
        with self._lock:
            if stamp == self._stamp and not force:
                return False
            self._stamp = stamp
            try:
                config = load(self.path, self.default_region)
            except ConfigError as error:
                self.problem = error
                log.error(
                    "%s has %d error(s); the config loaded at %s stays in force:\n%s",
                    self.path,
                    len(error.problems),
                    self.loaded_at.isoformat(timespec="seconds"),
                    error,
                )
                return False
            self._matcher = Matcher(config)
            self.loaded_at = datetime.now(UTC)
            self.problem = None
            log.info("%s reloaded", self.path)
            for warning in config.warnings:
                log.warning("%s", warning)
            return True

    def status(self) -> str:
        """ "ok", or what is wrong with the file and which config is in force."""
        self.refresh()
        if self.problem is None:
            return "ok"
        first = self.problem.problems[0] if self.problem.problems else self.problem
        count = len(self.problem.problems)
        return (
            f"{self.path} has {count} error{'s' if count != 1 else ''}; the config loaded at "
            f"{self.loaded_at.isoformat(timespec='seconds')} stays in force. First: {first}"
        )


def _stamp(path: Path) -> _Stamp:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
