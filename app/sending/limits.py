"""Frequency limits: at most N marketing messages to one number in D days.

A program that promises "up to 4 msgs/month" (keywords.yaml's JOIN reply, the CTIA's
program disclosures) must keep the promise; some states cap marketing contacts too
(Florida and Oklahoma: three a day on one subject). A limit applies to one number in
one organisation, counted over the last ``days`` days up to the moment of the send:
the marketing messages handed to the provider then, or being handed over now. A
limit for a topic counts that topic's messages; the overall limit counts them all.
A message over a limit is blocked (``frequency_limit``), not deferred: a campaign
about today's prices is no use next month.

Pure: the worker reads what was sent and passes it in (app/sending/sender.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

_WRITTEN = re.compile(r"\s*(\d{1,6})\s*(?:/|per)\s*(\d{1,4})\s*(?:d|days?)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Limit:
    count: int
    days: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``4 per 30 days`` (or ``4/30d``).

        Raises:
            ValueError: saying what is expected.
        """
        found = _WRITTEN.fullmatch(text)
        if found is None or int(found.group(1)) < 1 or int(found.group(2)) < 1:
            raise ValueError(
                f"expected a limit such as '4 per 30 days' (N messages per D days, both "
                f"at least 1), got {text!r}"
            )
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.count} per {self.days} day{'s' if self.days != 1 else ''}"


@dataclass(frozen=True)
class Limits:
    """The limits in force: those for all marketing (the deployment's setting and
    keywords.yaml's: each applies), and one per topic."""

    overall: tuple[Limit, ...] = ()
    topics: Mapping[str, Limit] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.overall) or bool(self.topics)

    @property
    def longest(self) -> timedelta:
        """How far back the sends to count reach."""
        days = [limit.days for limit in (*self.overall, *self.topics.values())]
        return timedelta(days=max(days, default=0))

    def exceeded(
        self, topic: str | None, sent: Iterable[tuple[str | None, datetime]], now: datetime
    ) -> Limit | None:
        """The limit another marketing message on ``topic`` would break, if any.

        Args:
            sent: (topic, when) of the marketing messages already sent to the number.
        """
        sent = list(sent)
        checks: list[tuple[Limit, str | None]] = [(limit, None) for limit in self.overall]
        if topic is not None and topic in self.topics:
            checks.append((self.topics[topic], topic))
        for limit, only in checks:
            since = now - timedelta(days=limit.days)
            counted = sum(1 for other, at in sent if at > since and only in (None, other))
            if counted >= limit.count:
                return limit
        return None
