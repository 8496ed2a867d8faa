"""The keyword config of a running service, reloaded when keywords.yaml changes.

Marketers edit the file while the service runs. The store reads the file once
a second and compares its content with what it loaded (a hash: modification
times can be too coarse to tell two quick saves apart); a changed file is
validated in full, and only a good one replaces the config in force. A bad
edit is logged with every error and kept as ``problem`` (``/readyz`` shows
it), while the last good config goes on answering: a typo must never take
the service down or silently drop opt-out keywords. The problem ends with
the next good file, including a revert to the very bytes in force.

In a service a background thread does the looking (``watch``), so no request
ever waits for a reload; elsewhere (the CLI, tests) a look happens on access.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.keywords.config import parse, unreadable
from app.keywords.matcher import Matcher
from app.keywords.model import Config
from app.keywords.problems import ConfigError

log = logging.getLogger("optgate.keywords")

#: Seconds between two looks at the file.
CHECK_EVERY = 1.0


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
            ConfigError: the file is missing or wrong; a service must not start
                without good rules.
        """
        self.path = path
        self.default_region = default_region
        self.check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._watching = False
        self._stamp: str | None = None
        #: The hash of the newest file when it was bad (not parsed again until it changes).
        self._bad_stamp: str | None = None
        #: The errors of the newest version of the file, when it could not be used.
        self.problem: ConfigError | None = None
        stamp, data = self._read()
        config = self._parse(data)
        if isinstance(config, ConfigError):
            raise config
        self._use(stamp, config)
        self._checked = clock()

    @property
    def matcher(self) -> Matcher:
        """The matcher of the last good config."""
        if not self._watching:
            self.refresh()
        return self._matcher

    def status(self) -> str:
        """ "ok", or what is wrong with the file and which config is in force."""
        if not self._watching:
            self.refresh()
        if self.problem is None:
            return "ok"
        count = len(self.problem.problems)
        first = self.problem.problems[0] if count else self.problem
        return (
            f"{self.path} has {count} error{'s' if count != 1 else ''}; the config loaded at "
            f"{self.loaded_at.isoformat(timespec='seconds')} stays in force. First: {first}"
        )

    def watch(self) -> None:
        """Look for changes in a background thread from now on (for a service).

        The thread holds the store weakly and ends when the store is gone.
        """
        if self._watching:
            return
        self._watching = True
        threading.Thread(
            target=_watch, args=(weakref.ref(self),), name="optgate-keywords", daemon=True
        ).start()

    def refresh(self, *, force: bool = False) -> bool:
        """Reload if the file changed; returns whether a new config is now in force.

        Args:
            force: look now, even if the last look was less than a second ago.
        """
        now = self._clock()
        if not force and now - self._checked < self.check_every:
            return False
        self._checked = now
        with self._lock:
            stamp, data = self._read()
            if stamp is not None and stamp == self._bad_stamp:
                return False  # the same bad file again: already logged and kept as the problem
            if stamp is not None and stamp == self._stamp:
                # The file is back to the bytes in force (a bad edit reverted): nothing to
                # reload, but the problem is over. Without this, /readyz would say "degraded"
                # about a file that is fine until the next edit or a restart.
                self._recover()
                return False
            config = self._parse(data)
            if isinstance(config, ConfigError):
                self._reject(stamp, config)
                return False
            self._use(stamp, config)
            log.info("%s reloaded", self.path)
            return True

    def _use(self, stamp: str | None, config: Config) -> None:
        """Put ``config`` in force (at start and on every good edit), saying its warnings."""
        self._stamp, self._bad_stamp = stamp, None
        self._matcher = Matcher(config)
        self.loaded_at = datetime.now(UTC)
        self.problem = None
        for warning in config.warnings:
            log.warning("%s", warning)

    def _recover(self) -> None:
        """The file holds the config in force again: forget the problem (said once)."""
        self._bad_stamp = None
        if self.problem is not None:
            log.info("%s is back to the config in force; its errors are gone", self.path)
            self.problem = None

    def _reject(self, stamp: str | None, error: ConfigError) -> None:
        self._bad_stamp = stamp
        if self.problem is None or str(self.problem) != str(error):
            log.error(
                "%s has %d error(s); the config loaded at %s stays in force:\n%s",
                self.path,
                len(error.problems),
                self.loaded_at.isoformat(timespec="seconds"),
                error,
            )
        self.problem = error

    def _read(self) -> tuple[str | None, bytes | ConfigError]:
        """The file's content hash and content (one read: the two always belong together)."""
        try:
            data = self.path.read_bytes()
        except OSError as error:
            return None, ConfigError([unreadable(self.path, error)])
        return hashlib.sha256(data).hexdigest(), data

    def _parse(self, data: bytes | ConfigError) -> Config | ConfigError:
        if isinstance(data, ConfigError):
            return data
        try:
            return parse(data.decode("utf-8"), str(self.path), self.default_region)
        except UnicodeDecodeError as error:
            return ConfigError([unreadable(self.path, error)])
        except ConfigError as error:
            return error


def _watch(store_ref: weakref.ref[KeywordStore]) -> None:
    while True:
        store = store_ref()
        if store is None:
            return
        pause = store.check_every
        try:
            store.refresh(force=True)
        except Exception:  # a watcher that died would freeze the rules silently
            log.exception("looking at %s failed; trying again", store.path)
        del store
        time.sleep(pause)
