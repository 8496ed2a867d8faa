"""keywords.yaml: the rules marketers edit, loaded and validated completely.

``load(path)`` returns a ``Config`` or raises ``ConfigError`` holding every
problem found, each as ``PATH:LINE: message`` saying what is wrong and what is
allowed. Warnings (a reply longer than one SMS, an opt-in confirmation without
"Msg & data rates may apply") do not stop loading; they ride on the Config.

The compliance keywords are protected: STOP, START and HELP must stay, and so
must the FCC's per-se opt-out words (47 CFR 64.1200(a)(10): stop, quit, end,
revoke, opt out, cancel, unsubscribe); a custom responder can never take over
any default keyword.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.addresses import normalize_line
from app.consent.limits import Limit, Limits
from app.errors import InvalidAddress
from app.keywords import languages as shipped_languages
from app.keywords.languages import NO_LANGUAGES, Language, Languages

# Re-exported: callers have always imported them from here.
from app.keywords.problems import ConfigError as ConfigError
from app.keywords.problems import Problem as Problem
from app.keywords.problems import key_line as _key_line
from app.keywords.problems import kind_of as _kind
from app.keywords.problems import read_yaml
from app.keywords.problems import value_line as _value_line
from app.keywords.sms import segments
from app.keywords.text import key, words

#: Keywords that must stay in their lists (carriers, CTIA, FCC).
REQUIRED = {
    "opt_out": ("STOP", "QUIT", "END", "REVOKE", "OPT OUT", "CANCEL", "UNSUBSCRIBE"),
    "opt_in": ("START",),
    "help": ("HELP",),
}
#: What each kind of reply may say in braces.
PLACEHOLDERS = {
    "reply": ("brand",),
    "topic_reply": ("brand", "topic", "keyword"),
}
_ID = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
_TOP_KEYS = (
    "version",
    "brand",
    "organization",
    "opt_out",
    "opt_in",
    "help",
    "topic_replies",
    "topics",
    "responders",
    "languages",
    "limits",
    "overrides",
)
_OVERRIDE_KEYS = (
    "lines",
    "groups",
    "brand",
    "opt_out",
    "opt_in",
    "help",
    "topic_replies",
    "responders",
    "provider_confirms_defaults",
)
KIND_NAMES = {
    "opt_out": "an opt-out keyword",
    "opt_in": "an opt-in keyword",
    "help": "a help keyword",
}


# -- what a loaded config is ----------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    text: str
    key: str
    line: int


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


# -- loading --------------------------------------------------------------------------


def load(path: Path, default_region: str = "US") -> Config:
    """Read and validate ``path``.

    Raises:
        ConfigError: every problem, each with its line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([unreadable(path, error)]) from None
    return parse(text, str(path), default_region)


def unreadable(path: Path, error: Exception) -> Problem:
    """The problem of a keywords file that cannot be read at all."""
    if isinstance(error, FileNotFoundError):
        return Problem(str(path), 0, "no such file (set OPTGATE_KEYWORDS to its path)")
    if isinstance(error, UnicodeDecodeError):
        return Problem(str(path), 0, f"not UTF-8 text: {error}")
    return Problem(str(path), 0, f"cannot read it: {error}")


def parse(text: str, path: str = "keywords.yaml", default_region: str = "US") -> Config:
    """Validate keywords.yaml content; ``path`` is only used in messages."""
    document = read_yaml(text, path)
    reader = _Reader(path, default_region)
    config = reader.read(document)
    if reader.errors or config is None:
        raise ConfigError(reader.errors)
    return config


# -- validation -----------------------------------------------------------------------


class _Reader:
    """Walks the YAML tree, collecting every problem with its line."""

    def __init__(self, path: str, default_region: str) -> None:
        self.path = path
        self.region = default_region
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        #: The line of every reply read, by its path ("opt_out.reply"), for messages.
        self.reply_lines: dict[str, int] = {}
        #: Where each keyword of the defaults stands, for messages about overrides.
        self.default_places: dict[int, str] = {}

    def error(self, line: int, message: str) -> None:
        self.errors.append(Problem(self.path, line, message))

    def warn(self, line: int, message: str) -> None:
        problem = Problem(self.path, line, message, warning=True)
        if problem not in self.warnings:
            self.warnings.append(problem)

    # -- the document ----------------------------------------------------------------

    def read(self, document: Any) -> Config | None:
        if not isinstance(document, CommentedMap):
            self.error(1, "expected a mapping with brand, opt_out, opt_in, help, ... at the top")
            return None
        self.keys(document, "", _TOP_KEYS, required=("brand", "opt_out", "opt_in", "help"))
        if "version" in document and document["version"] != 1:
            self.error(_key_line(document, "version"), "version: expected 1")
        organization = self.organization(document.get("organization"), document)
        topics = self.topics(document.get("topics"), document)
        brand = self.text(document, "brand", "brand") or ""
        sets = {kind: self.keyword_set(document, kind, kind) for kind in REQUIRED}
        topic_replies = self.topic_replies(document, "topic_replies", topics, required=bool(topics))
        responders = self.responders(document, "responders", topics)
        languages = self.languages(document)
        limits = self.limits(document.get("limits"), document, topics)
        if any(value is None for value in sets.values()):
            return None
        defaults = Rules(
            brand=brand,
            opt_out=sets["opt_out"],  # type: ignore[arg-type]
            opt_in=sets["opt_in"],  # type: ignore[arg-type]
            help=sets["help"],  # type: ignore[arg-type]
            topic_replies=topic_replies or _NO_TOPIC_REPLIES,
            responders=responders,
            provider_confirms_defaults=organization.provider_confirms_defaults,
        )
        self.check_scope(defaults, topics, "", defaults)
        overrides = self.overrides(document.get("overrides"), document, defaults, topics)
        for rules, where in [
            (defaults, ""),
            *((o.rules, f"overrides[{i}].") for i, o in enumerate(overrides)),
        ]:
            self.check_replies(rules, topics, where)
        self.check_language_replies(languages, defaults)
        return Config(
            path=self.path,
            defaults=defaults,
            topics=topics,
            overrides=tuple(overrides),
            organization=organization,
            warnings=tuple(sorted(self.warnings, key=lambda p: p.line)),
            languages=languages,
            limits=limits,
        )

    # -- generic shapes --------------------------------------------------------------

    def keys(
        self,
        node: CommentedMap,
        where: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
        line: int | None = None,
    ) -> None:
        allowed = tuple(allowed)
        for name in node:
            if name not in allowed:
                hint = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
                suggestion = f'did you mean "{hint[0]}"? ' if hint else ""
                self.error(
                    _key_line(node, name),
                    f"{where}{name}: unknown key; {suggestion}allowed here: {', '.join(allowed)}",
                )
        for name in required:
            if name not in node:
                self.error(
                    line if line is not None else _first_line(node),
                    f"{where}{name}: missing; it is required here",
                )

    def mapping(self, node: Any, where: str, line: int) -> CommentedMap | None:
        if node is None:
            return None
        if not isinstance(node, CommentedMap):
            self.error(line, f"{where}: expected a mapping (name: value lines), got {_kind(node)}")
            return None
        return node

    def text(self, node: CommentedMap, name: str, where: str, required: bool = True) -> str | None:
        if name not in node:
            return None
        value = node[name]
        line = _value_line(node, name)
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(line, f"{where}: expected text, got {_kind(value)}")
            return None
        return value.strip()

    def reply(self, node: CommentedMap, name: str, where: str) -> str | None:
        """A reply template; remembers its line for the checks made later."""
        if name in node:
            self.reply_lines[where] = _value_line(node, name)
        return self.text(node, name, where, required=False)

    def boolean(self, node: CommentedMap, name: str, where: str, default: bool) -> bool:
        if name not in node:
            return default
        value = node[name]
        if not isinstance(value, bool):
            self.error(
                _value_line(node, name), f"{where}: expected true or false, got {_kind(value)}"
            )
            return default
        return value

    def keyword_list(self, node: CommentedMap, name: str, where: str) -> tuple[Keyword, ...] | None:
        if name not in node:
            return None
        value = node[name]
        line = _value_line(node, name)
        if not isinstance(value, CommentedSeq) or not value:
            self.error(line, f"{where}: expected a list of keywords, such as [STOP, END]")
            return None
        keywords = []
        for index, item in enumerate(value):
            item_line = value.lc.item(index)[0] + 1
            if not isinstance(item, str) or not key(item):
                self.error(
                    item_line,
                    f"{where}[{index}]: expected a keyword with letters or digits, "
                    f"got {_kind(item)}",
                )
                continue
            if len(item) > 40:
                self.error(item_line, f"{where}[{index}]: a keyword is at most 40 characters")
                continue
            keywords.append(Keyword(item.strip(), key(item), item_line))
        return tuple(keywords)

    def entries(
        self,
        section: CommentedMap,
        where: str,
        what: str,
        example: str,
        expected: tuple[str, ...],
    ) -> Iterator[tuple[str, CommentedMap, int, str]]:
        """The (id, body, line, path) of each well-formed entry of an id-keyed section."""
        for entry_id, body in section.items():
            line = _key_line(section, entry_id)
            path = f"{where}.{entry_id}"
            if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id):
                self.error(
                    line,
                    f"{path}: a {what} id is lower-case letters, digits and underscores, "
                    f"such as {example}",
                )
                continue
            if body is None:
                self.error(line, f"{path}: expected {' and '.join(expected)}")
                continue
            entry = self.mapping(body, path, line)
            if entry is not None:
                yield entry_id, entry, line, path

    # -- sections --------------------------------------------------------------------

    def organization(self, node: Any, document: CommentedMap) -> Organization:
        section = self.mapping(node, "organization", _key_line(document, "organization"))
        if section is None:
            return Organization()
        self.keys(
            section,
            "organization.",
            ("opt_out_scope", "provider_confirms_defaults", "topic_opt_out_revokes_all"),
        )
        scope = section.get("opt_out_scope", "line")
        if scope not in ("line", "organization"):
            self.error(
                _value_line(section, "opt_out_scope"),
                f"organization.opt_out_scope: expected line or organization, got {_kind(scope)}",
            )
            scope = "line"
        return Organization(
            opt_out_scope=scope,
            provider_confirms_defaults=self.boolean(
                section,
                "provider_confirms_defaults",
                "organization.provider_confirms_defaults",
                True,
            ),
            topic_opt_out_revokes_all=self.boolean(
                section,
                "topic_opt_out_revokes_all",
                "organization.topic_opt_out_revokes_all",
                False,
            ),
        )

    def keyword_set(
        self, node: CommentedMap, kind: str, where: str, base: KeywordSet | None = None
    ) -> KeywordSet | None:
        section = self.mapping(node.get(kind), where, _key_line(node, kind))
        if section is None:
            return base
        required_keys = () if base else ("keywords", "reply")
        self.keys(section, f"{where}.", ("keywords", "reply"), required_keys, _key_line(node, kind))
        keywords = self.keyword_list(section, "keywords", f"{where}.keywords")
        reply = self.reply(section, "reply", f"{where}.reply")
        if "reply" in section and reply == "" and kind == "opt_out":
            self.error(
                _value_line(section, "reply"),
                f"{where}.reply: the opt-out confirmation cannot be empty: the one "
                "confirmation after STOP is expected by carriers and the FCC",
            )
        elif "reply" in section and reply == "":
            self.error(_value_line(section, "reply"), f"{where}.reply: cannot be empty")
        if keywords is not None:
            present = {keyword.key for keyword in keywords}
            for needed in REQUIRED[kind]:
                if key(needed) not in present:
                    self.error(
                        _value_line(section, "keywords"),
                        f"{where}.keywords: {needed} is missing and must stay "
                        + (
                            "(carriers require STOP, START and HELP)"
                            if needed in ("STOP", "START", "HELP")
                            else "(the FCC treats it as an opt-out whatever the config says)"
                        ),
                    )
        if keywords is None and base is None:
            return None
        return KeywordSet(
            keywords=keywords if keywords is not None else (base.keywords if base else ()),
            reply=reply if reply is not None else (base.reply if base else ""),
        )

    def limits(self, node: Any, document: CommentedMap, topics: Mapping[str, Topic]) -> Limits:
        """``limits: {marketing: 4 per 30 days, topics: {price_drop: 2 per 7 days}}``."""
        section = self.mapping(node, "limits", _key_line(document, "limits"))
        if section is None:
            return Limits()
        self.keys(section, "limits.", ("marketing", "topics"))
        overall = self.limit(section, "marketing", "limits.marketing")
        per_topic: dict[str, Limit] = {}
        listed = (
            self.mapping(section.get("topics"), "limits.topics", _key_line(section, "topics"))
            or CommentedMap()
        )
        for topic_id in listed:
            where = f"limits.topics.{topic_id}"
            if topic_id not in topics:
                known = ", ".join(topics) or "none are defined"
                self.error(_key_line(listed, topic_id), f"{where}: no such topic (topics: {known})")
                continue
            limit = self.limit(listed, topic_id, where)
            if limit is not None:
                per_topic[str(topic_id)] = limit
        return Limits(overall=(overall,) if overall else (), topics=per_topic)

    def limit(self, node: CommentedMap, name: str, where: str) -> Limit | None:
        if name not in node:
            return None
        value = node[name]
        try:
            return Limit.parse(value) if isinstance(value, str) else Limit.parse(repr(value))
        except ValueError as error:
            self.error(_value_line(node, name), f"{where}: {error}")
            return None

    def topics(self, node: Any, document: CommentedMap) -> dict[str, Topic]:
        section = self.mapping(node, "topics", _key_line(document, "topics"))
        topics: dict[str, Topic] = {}
        if section is None:
            return topics
        seen: dict[str, tuple[str, int]] = {}
        for topic_id, entry, line, where in self.entries(
            section, "topics", "topic", "price_drop", ("name", "phrases")
        ):
            self.keys(entry, f"{where}.", ("name", "phrases"), ("name", "phrases"), line)
            name = self.text(entry, "name", f"{where}.name")
            phrases = self.keyword_list(entry, "phrases", f"{where}.phrases") or ()
            for phrase in phrases:
                if phrase.key in seen:
                    other, other_line = seen[phrase.key]
                    self.error(
                        phrase.line,
                        f'{where}.phrases: "{phrase.text}" already names '
                        f"topic {other} (line {other_line})",
                    )
                seen[phrase.key] = (topic_id, phrase.line)
            if name and phrases:
                topics[topic_id] = Topic(topic_id, name, phrases, line)
        return topics

    def topic_replies(
        self,
        node: CommentedMap,
        where: str,
        topics: Mapping[str, Topic],
        required: bool,
        base: TopicReplies | None = None,
    ) -> TopicReplies | None:
        section = self.mapping(node.get("topic_replies"), where, _key_line(node, "topic_replies"))
        names = ("opt_out", "opt_in", "opt_in_while_opted_out")
        if section is None:
            if required and base is None:
                self.error(
                    _key_line(node, "topics"),
                    "topic_replies: missing; with topics, say what STOP <topic> and "
                    "START <topic> answer (opt_out, opt_in, opt_in_while_opted_out)",
                )
            return base
        self.keys(
            section, f"{where}.", names, () if base else names, _key_line(node, "topic_replies")
        )
        values = {name: self.reply(section, name, f"{where}.{name}") for name in names}
        return TopicReplies(
            **{name: values[name] or (getattr(base, name) if base else "") for name in names}
        )

    def responders(
        self,
        node: CommentedMap,
        where: str,
        topics: Mapping[str, Topic],
        base: Mapping[str, Responder] | None = None,
    ) -> dict[str, Responder]:
        responders = dict(base or {})
        section = self.mapping(node.get("responders"), where, _key_line(node, "responders"))
        if section is None:
            return responders
        for responder_id, entry, line, path in self.entries(
            section, where, "responder", "hours", ("keywords", "reply")
        ):
            self.keys(
                entry,
                f"{path}.",
                ("keywords", "reply", "action", "topic"),
                ("keywords", "reply"),
                line,
            )
            keywords = self.keyword_list(entry, "keywords", f"{path}.keywords")
            reply = self.reply(entry, "reply", f"{path}.reply")
            action = entry.get("action")
            if action is not None and action not in ("opt_in", "opt_out"):
                self.error(
                    _value_line(entry, "action"),
                    f"{path}.action: expected opt_in or opt_out, got {_kind(action)}",
                )
                action = None
            topic = entry.get("topic")
            if topic is not None:
                topic_line = _value_line(entry, "topic")
                if topic not in topics:
                    hint = difflib.get_close_matches(str(topic), list(topics), n=1)
                    known = f'did you mean "{hint[0]}"? ' if hint else ""
                    self.error(
                        topic_line,
                        f"{path}.topic: no topic {topic!r}; {known}topics: "
                        f"{', '.join(topics) or 'none defined'}",
                    )
                    topic = None
                elif action is None:
                    self.error(
                        topic_line,
                        f"{path}.topic: a topic needs an action (opt_in or opt_out) to change",
                    )
            if keywords and reply:
                responders[responder_id] = Responder(
                    responder_id, keywords, reply, action, topic, line
                )
        return responders

    def overrides(
        self,
        node: Any,
        document: CommentedMap,
        defaults: Rules,
        topics: Mapping[str, Topic],
    ) -> list[Override]:
        if node is None:
            return []
        top_line = _key_line(document, "overrides")
        if not isinstance(node, CommentedSeq):
            self.error(
                top_line,
                "overrides: expected a list of overrides, each starting with "
                "- lines: [...] or - groups: [...]",
            )
            return []
        result = []
        owners: dict[tuple[str, str], int] = {}
        for index, entry in enumerate(node):
            line = node.lc.item(index)[0] + 1
            where = f"overrides[{index}]"
            body = self.mapping(entry, where, line)
            if body is None:
                continue
            self.keys(body, f"{where}.", _OVERRIDE_KEYS, line=line)
            if "lines" not in body and "groups" not in body:
                self.error(
                    line, f"{where}: say which lines it is for: lines: [...] or groups: [...]"
                )
            lines = self.override_lines(body, where)
            groups = self.override_groups(body, where)
            for kind, values in (("line", lines), ("group", groups)):
                for value in values:
                    if (kind, value) in owners:
                        self.error(
                            line,
                            f"{where}: {kind} {value} already has an override "
                            f"(line {owners[(kind, value)]}); merge the two",
                        )
                    owners[(kind, value)] = line
            rules = self.override_rules(body, where, defaults, topics)
            self.check_scope(rules, topics, f"{where}.", defaults)
            result.append(Override(frozenset(lines), frozenset(groups), rules, line))
        return result

    def override_lines(self, body: CommentedMap, where: str) -> list[str]:
        values = self.keyword_list(body, "lines", f"{where}.lines") or ()
        lines = []
        for value in values:
            try:
                lines.append(normalize_line(value.text, self.region).value)
            except InvalidAddress as error:
                self.error(value.line, f"{where}.lines: {error}")
        return lines

    def override_groups(self, body: CommentedMap, where: str) -> list[str]:
        return [value.text for value in self.keyword_list(body, "groups", f"{where}.groups") or ()]

    def override_rules(
        self, body: CommentedMap, where: str, defaults: Rules, topics: Mapping[str, Topic]
    ) -> Rules:
        sets = {
            kind: self.keyword_set(body, kind, f"{where}.{kind}", getattr(defaults, kind))
            for kind in REQUIRED
        }
        return replace(
            defaults,
            brand=self.text(body, "brand", f"{where}.brand") or defaults.brand,
            opt_out=sets["opt_out"] or defaults.opt_out,
            opt_in=sets["opt_in"] or defaults.opt_in,
            help=sets["help"] or defaults.help,
            topic_replies=self.topic_replies(
                body, f"{where}.topic_replies", topics, False, defaults.topic_replies
            )
            or defaults.topic_replies,
            responders=self.responders(body, f"{where}.responders", topics, defaults.responders),
            provider_confirms_defaults=self.boolean(
                body,
                "provider_confirms_defaults",
                f"{where}.provider_confirms_defaults",
                defaults.provider_confirms_defaults,
            ),
        )

    # -- languages -------------------------------------------------------------------

    def languages(self, document: CommentedMap) -> Languages:
        """``languages``: which languages are read (all shipped ones when absent), what
        each adds to its file, and its opt-out confirmation. English is always read."""
        section = CommentedMap()
        if "languages" not in document:
            codes: list[str] = list(shipped_languages.shipped())
        else:
            given = self.mapping(
                document["languages"], "languages", _value_line(document, "languages")
            )
            section = given if given is not None else section
            codes = ["en", *(code for code in section if code != "en")]
        enabled: list[Language] = []
        replies: dict[str, str] = {}
        reply_lines: dict[str, int] = {}
        for code in codes:
            line = _key_line(section, code) if code in section else 1
            where = f"languages.{code}"
            if not isinstance(code, str) or not _LANGUAGE_CODE.fullmatch(code):
                self.error(
                    line,
                    f"{where}: a language is its ISO 639 code in lower case, such as es or zh; "
                    f"optgate has files for {', '.join(shipped_languages.shipped())}",
                )
                continue
            body = self.mapping(section.get(code), where, line)
            if body is not None and "opt_out_reply" in body:
                reply = self.reply(body, "opt_out_reply", f"{where}.opt_out_reply")
                if code == "en":
                    self.error(
                        _key_line(body, "opt_out_reply"),
                        f"{where}.opt_out_reply: the English confirmation is opt_out.reply",
                    )
                elif reply is not None:
                    replies[code] = reply
                    reply_lines[code] = _value_line(body, "opt_out_reply")
            # Only phrases and slots change the language; its reply does not (and the
            # shipped file alone is compiled once per process).
            additions = body if body is not None and set(body) - {"opt_out_reply"} else None
            try:
                enabled.append(
                    shipped_languages.load(code, additions, self.path, f"{where}.", line)
                )
            except ConfigError as error:
                self.errors.extend(error.problems)
        return Languages(tuple(enabled), replies, reply_lines)

    def check_language_replies(self, languages: Languages, defaults: Rules) -> None:
        for code, template in languages.opt_out_replies.items():
            name = f"languages.{code}.opt_out_reply"
            line = languages.reply_lines.get(code, 1)
            problem = template_problem(template, PLACEHOLDERS["reply"])
            if not template.strip():
                problem = "an opt-out confirmation cannot be empty; leave it out for English"
            if problem:
                self.error(line, f"{name}: {problem}")
                continue
            rendered = render(template, {"brand": defaults.brand})
            count, limit, encoding = segments(rendered)
            if count > 1:
                self.warn(
                    line,
                    f"{name}: {len(rendered)} characters is {count} SMS segments "
                    f"({limit} {encoding} characters fit in one); it costs {count} "
                    "messages per send",
                )

    # -- rules across a scope --------------------------------------------------------

    def check_scope(
        self, rules: Rules, topics: Mapping[str, Topic], where: str, defaults: Rules
    ) -> None:
        """No keyword twice in one scope; no responder over a compliance keyword.

        In an override, only what the override itself writes is reported: the
        defaults it inherits were checked as the defaults.
        """
        # In an override, keyword objects it shares with the defaults are inherited.
        inherited = set() if rules is defaults else {id(k) for k in _all_keywords(defaults)}
        places: dict[str, tuple[str, int, str, int]] = {}
        compliance: dict[str, str] = {}
        for kind in REQUIRED:
            for keyword in getattr(defaults, kind).keywords + getattr(rules, kind).keywords:
                compliance.setdefault(keyword.key, kind)
            for needed in REQUIRED[kind]:
                compliance.setdefault(key(needed), kind)
            for keyword in getattr(rules, kind).keywords:
                self.place(places, keyword, f"{where}{kind}.keywords", inherited)
        for responder in rules.responders.values():
            for keyword in responder.keywords:
                if id(keyword) in inherited:
                    # Placed when the defaults were checked, unless it was refused there.
                    if id(keyword) in self.default_places:
                        self.place(places, keyword, self.default_places[id(keyword)], inherited)
                    continue
                if keyword.key in compliance:
                    self.error(
                        keyword.line,
                        f'{where}responders.{responder.id}.keywords: "{keyword.text}" is '
                        f"{KIND_NAMES[compliance[keyword.key]]}; a responder cannot take over "
                        "STOP, START, HELP or the other default keywords: choose another word",
                    )
                    continue
                first = words(keyword.text)[0]
                if compliance.get(key(first)) in ("opt_out", "opt_in"):
                    self.error(
                        keyword.line,
                        f'{where}responders.{responder.id}.keywords: "{keyword.text}" starts '
                        f"with the {compliance[key(first)].replace('_', '-')} keyword "
                        f"{first.upper()}, which always wins: choose another first word",
                    )
                    continue
                self.place(places, keyword, f"{where}responders.{responder.id}.keywords", inherited)
        if rules is not defaults:
            return
        for topic in topics.values():
            for phrase in topic.phrases:
                if phrase.key in compliance or phrase.key in places:
                    self.error(
                        phrase.line,
                        f'topics.{topic.id}.phrases: "{phrase.text}" is '
                        "also a keyword; a topic phrase must differ",
                    )

    def place(
        self,
        places: dict[str, tuple[str, int, str, int]],
        keyword: Keyword,
        where: str,
        inherited: set[int],
    ) -> None:
        """Record where a keyword is; report it when the scope already has it elsewhere.

        Two spellings of one keyword in the same list (STOPALL, STOP ALL) are
        fine: the file may spell out the variants people text.
        """
        if id(keyword) not in inherited:
            self.default_places.setdefault(id(keyword), where)
        where = self.default_places.get(id(keyword), where) if id(keyword) in inherited else where
        if keyword.key not in places:
            places[keyword.key] = (where, keyword.line, keyword.text.casefold(), id(keyword))
            return
        other, other_line, other_text, other_id = places[keyword.key]
        if other_id in inherited and id(keyword) in inherited:
            return
        if other == where and other_text != keyword.text.casefold():
            return
        self.error(
            keyword.line,
            f'{where}: "{keyword.text}" appears twice in one scope: '
            f"here and in {other} (line {other_line}); keep one",
        )

    def check_replies(self, rules: Rules, topics: Mapping[str, Topic], where: str) -> None:
        """Placeholders, length in SMS segments, and what confirmations must say."""
        names = [topic.name for topic in topics.values()] or [""]
        phrases = [topic.phrases[0].text for topic in topics.values()] or [""]
        samples = {
            "brand": rules.brand,
            "topic": max(names, key=len),
            "keyword": max(phrases, key=len),
        }
        replies: list[tuple[str, str, tuple[str, ...]]] = [
            (f"{where}{kind}.reply", getattr(rules, kind).reply, PLACEHOLDERS["reply"])
            for kind in REQUIRED
        ]
        if topics:
            replies += [
                (
                    f"{where}topic_replies.{name}",
                    getattr(rules.topic_replies, name),
                    PLACEHOLDERS["topic_reply"],
                )
                for name in ("opt_out", "opt_in", "opt_in_while_opted_out")
            ]
        for responder in rules.responders.values():
            allowed = PLACEHOLDERS["topic_reply" if responder.topic else "reply"]
            replies.append((f"{where}responders.{responder.id}.reply", responder.reply, allowed))
        for name, template, allowed in replies:
            if where and name not in self.reply_lines:
                continue  # inherited from the defaults, which were checked as such
            problem = template_problem(template, allowed)
            line = self.find_line(name)
            if problem:
                self.error(line, f"{name}: {problem}")
                continue
            rendered = render(template, samples)
            count, limit, encoding = segments(rendered)
            if count > 1:
                self.warn(
                    line,
                    f"{name}: {len(rendered)} characters is {count} SMS segments "
                    f"({limit} {encoding} characters fit in one); it costs {count} "
                    "messages per send",
                )
        self.confirmations(rules, where)

    def confirmations(self, rules: Rules, where: str) -> None:
        folded = {kind: " ".join(words(getattr(rules, kind).reply)) for kind in REQUIRED}
        if "stop" not in folded["help"].split():
            self.warn(
                self.find_line(f"{where}help.reply"),
                f"{where}help.reply: should say how to opt out (Reply STOP to unsubscribe)",
            )
        if "rates may apply" not in folded["opt_in"]:
            self.warn(
                self.find_line(f"{where}opt_in.reply"),
                f'{where}opt_in.reply: should say "Msg & data rates may apply" (CTIA)',
            )
        for responder in rules.responders.values():
            if responder.action == "opt_in" and "rates may apply" not in " ".join(
                words(responder.reply)
            ):
                self.warn(
                    responder.line,
                    f"{where}responders.{responder.id}.reply: an opt-in "
                    'confirmation should say "Msg & data rates may apply"',
                )

    def find_line(self, name: str) -> int:
        """The line of a reply; for one an override inherits, the default's line."""
        if name in self.reply_lines:
            return self.reply_lines[name]
        inherited = re.sub(r"^overrides\[\d+\]\.", "", name)
        return self.reply_lines.get(inherited, 1)


_NO_TOPIC_REPLIES = TopicReplies("", "", "")


def _all_keywords(rules: Rules) -> list[Keyword]:
    found = [k for kind in REQUIRED for k in getattr(rules, kind).keywords]
    return found + [k for responder in rules.responders.values() for k in responder.keywords]


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


def _first_line(node: Any) -> int:
    try:
        return int(node.lc.line) + 1
    except AttributeError:
        return 1
