"""What a loaded keywords.yaml is: plain frozen data, no reading and no checking.

``config.py`` builds these (reading in ``sections.py`` and ``overrides.py``,
checking in ``checks.py``); the matcher only reads them. Every keyword keeps
its ``Origin``: the scope that wrote it and where, so that an override that
inherits a keyword of the defaults still says where it was written.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from app.keywords.languages import NO_LANGUAGES, Languages
from app.keywords.problems import Problem
from app.sending.limits import Limits

#: Keywords that must stay in their lists (carriers, CTIA, FCC).
REQUIRED = {
    "opt_out": ("STOP", "QUIT", "END", "REVOKE", "OPT OUT", "CANCEL", "UNSUBSCRIBE"),
    "opt_in": ("START",),
    "help": ("HELP",),
}
#: The scope of what the top level of keywords.yaml writes (an override's is ``override_scope``).
DEFAULTS = "defaults"


def override_scope(index: int) -> str:
    """The scope of the override at ``index``: its path, as messages name it."""
    return f"overrides[{index}]"


@dataclass(frozen=True)
class Origin:
    """Where a keyword was written. An override inherits the defaults' keywords with
    their origin, so the checks tell its own keywords from inherited ones by ``scope``.
    """

    #: ``DEFAULTS``, or the override that wrote it (``override_scope``: "overrides[2]").
    scope: str
    #: The list it is in, as messages name it: "overrides[2].responders.hours.keywords".
    where: str
    #: Its line in the file.
    line: int


@dataclass(frozen=True)
class Keyword:
    text: str
    key: str
    origin: Origin

    @property
    def line(self) -> int:
        return self.origin.line


@dataclass(frozen=True)
class KeywordSet:
    keywords: tuple[Keyword, ...]
    reply: str


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    phrases: tuple[Keyword, ...]
    line: int


@dataclass(frozen=True)
class Responder:
    id: str
    keywords: tuple[Keyword, ...]
    reply: str
    action: Literal["opt_in", "opt_out"] | None
    topic: str | None
    line: int


@dataclass(frozen=True)
class TopicReplies:
    opt_out: str
    opt_in: str
    opt_in_while_opted_out: str


#: The topic replies of a file without topics (none is ever sent).
NO_TOPIC_REPLIES = TopicReplies("", "", "")


@dataclass(frozen=True)
class Rules:
    """The rules in force on one line: the defaults, or the defaults with an override."""

    brand: str
    opt_out: KeywordSet
    opt_in: KeywordSet
    help: KeywordSet
    topic_replies: TopicReplies
    responders: Mapping[str, Responder]
    provider_confirms_defaults: bool


@dataclass(frozen=True)
class Override:
    lines: frozenset[str]
    groups: frozenset[str]
    rules: Rules
    line: int


@dataclass(frozen=True)
class Organization:
    opt_out_scope: Literal["line", "organization"] = "line"
    provider_confirms_defaults: bool = True
    topic_opt_out_revokes_all: bool = False


@dataclass(frozen=True)
class Config:
    path: str
    defaults: Rules
    topics: Mapping[str, Topic]
    overrides: tuple[Override, ...]
    organization: Organization
    warnings: tuple[Problem, ...] = field(default=())
    #: The languages read besides the keywords (English phrases included), and their replies.
    languages: Languages = field(default_factory=lambda: NO_LANGUAGES)
    #: How many marketing messages one number may get (in all, and per topic).
    limits: Limits = field(default_factory=Limits)

    @cached_property
    def _by_line(self) -> dict[str, Override]:
        return {line: override for override in self.overrides for line in override.lines}

    @cached_property
    def _by_group(self) -> dict[str, Override]:
        return {group: override for override in self.overrides for group in override.groups}

    def override_for(self, line: str | None = None, group: str | None = None) -> Override | None:
        """The override for a line (a line's own wins over its group's), if any."""
        if line is not None and line in self._by_line:
            return self._by_line[line]
        if group is not None:
            return self._by_group.get(group)
        return None

    def rules_for(self, line: str | None = None, group: str | None = None) -> Rules:
        override = self.override_for(line, group)
        return override.rules if override else self.defaults

    def unknown_topic(self, topic: str | None) -> str | None:
        """Why ``topic`` cannot be named (a misspelt one would bypass its opt-outs), or
        None when it is one of the topics defined here, or no topic at all."""
        if topic is None or topic in self.topics:
            return None
        known = ", ".join(self.topics) or "none in keywords.yaml"
        return f"{topic!r} is not a topic of keywords.yaml (known: {known})"


# -- reply templates ------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def template_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    """What is wrong with a reply (its placeholders, invisible control characters), or None."""
    control = _CONTROL.search(template)
    if control:
        return (
            f"contains the control character U+{ord(control.group()):04X}, which a text "
            "message cannot carry; remove it"
        )
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"{error}; write a brace that should show as {{{{ or }}}}"
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            return (
                f"unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; allowed here: "
                + ", ".join(f"{{{a}}}" for a in allowed)
            )
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    return template.format_map(values)
