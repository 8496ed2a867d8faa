"""The sections of keywords.yaml, one reader each: what each holds and what it may say.

A section reader checks the shape of its own section (unknown keys, missing
ones, wrong values) and returns what it read, or a default to go on with, so
that one load reports every problem. What needs several sections at once (a
keyword twice in one scope, a reply's placeholders) is ``checks.py``'s.
An override reads ``keyword_set``, ``topic_replies`` and ``responders`` again
with the defaults as ``base`` (``overrides.py``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from app.keywords import languages as shipped_languages
from app.keywords.languages import Language, Languages
from app.keywords.model import (
    DEFAULTS,
    REQUIRED,
    KeywordSet,
    Organization,
    Responder,
    Topic,
    TopicReplies,
)
from app.keywords.problems import ConfigError, key_line, kind_of, value_line
from app.keywords.text import key
from app.keywords.yamlfile import YamlReader
from app.sending.limits import Limit, Limits

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")


class SectionReader(YamlReader):
    """Reads each section of keywords.yaml; numbers are read as in ``region``."""

    def __init__(self, path: str, default_region: str) -> None:
        super().__init__(path)
        self.region = default_region

    def organization(self, node: Any, document: CommentedMap) -> Organization:
        section = self.mapping(node, "organization", key_line(document, "organization"))
        if section is None:
            return Organization()
        self.keys(
            section,
            "organization.",
            ("opt_out_scope", "provider_confirms_defaults", "topic_opt_out_revokes_all"),
        )
        opt_out_scope = section.get("opt_out_scope", "line")
        if opt_out_scope not in ("line", "organization"):
            self.error(
                value_line(section, "opt_out_scope"),
                "organization.opt_out_scope: expected line or organization, "
                f"got {kind_of(opt_out_scope)}",
            )
            opt_out_scope = "line"
        return Organization(
            opt_out_scope=opt_out_scope,
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
        self,
        node: CommentedMap,
        kind: str,
        where: str,
        scope: str,
        base: KeywordSet | None = None,
    ) -> KeywordSet | None:
        """``opt_out``, ``opt_in`` or ``help`` (``kind``): its keywords and reply.

        With a ``base`` (an override), what the section leaves out is the base's,
        the very keywords included: they keep their origin in the defaults.
        """
        section = self.mapping(node.get(kind), where, key_line(node, kind))
        if section is None:
            return base
        required_keys = () if base else ("keywords", "reply")
        self.keys(section, f"{where}.", ("keywords", "reply"), required_keys, key_line(node, kind))
        keywords = self.keyword_list(section, "keywords", f"{where}.keywords", scope)
        reply = self.reply(section, "reply", f"{where}.reply")
        if "reply" in section and reply == "" and kind == "opt_out":
            self.error(
                value_line(section, "reply"),
                f"{where}.reply: the opt-out confirmation cannot be empty: the one "
                "confirmation after STOP is expected by carriers and the FCC",
            )
        elif "reply" in section and reply == "":
            self.error(value_line(section, "reply"), f"{where}.reply: cannot be empty")
        if keywords is not None:
            present = {keyword.key for keyword in keywords}
            for needed in REQUIRED[kind]:
                if key(needed) not in present:
                    self.error(
                        value_line(section, "keywords"),
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
        section = self.mapping(node, "limits", key_line(document, "limits"))
        if section is None:
            return Limits()
        self.keys(section, "limits.", ("marketing", "topics"))
        overall = self.limit(section, "marketing", "limits.marketing")
        per_topic: dict[str, Limit] = {}
        listed = (
            self.mapping(section.get("topics"), "limits.topics", key_line(section, "topics"))
            or CommentedMap()
        )
        for topic_id in listed:
            where = f"limits.topics.{topic_id}"
            if topic_id not in topics:
                known = ", ".join(topics) or "none are defined"
                self.error(key_line(listed, topic_id), f"{where}: no such topic (topics: {known})")
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
            self.error(value_line(node, name), f"{where}: {error}")
            return None

    def topics(self, node: Any, document: CommentedMap) -> dict[str, Topic]:
        section = self.mapping(node, "topics", key_line(document, "topics"))
        topics: dict[str, Topic] = {}
        if section is None:
            return topics
        seen: dict[str, tuple[str, int]] = {}
        for topic_id, entry, line, where in self.entries(
            section, "topics", "topic", "price_drop", ("name", "phrases")
        ):
            self.keys(entry, f"{where}.", ("name", "phrases"), ("name", "phrases"), line)
            name = self.text(entry, "name", f"{where}.name")
            phrases = self.keyword_list(entry, "phrases", f"{where}.phrases", DEFAULTS) or ()
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
        section = self.mapping(node.get("topic_replies"), where, key_line(node, "topic_replies"))
        names = ("opt_out", "opt_in", "opt_in_while_opted_out")
        if section is None:
            if required and base is None:
                self.error(
                    key_line(node, "topics"),
                    "topic_replies: missing; with topics, say what STOP <topic> and "
                    "START <topic> answer (opt_out, opt_in, opt_in_while_opted_out)",
                )
            return base
        self.keys(
            section, f"{where}.", names, () if base else names, key_line(node, "topic_replies")
        )
        values = {name: self.reply(section, name, f"{where}.{name}") for name in names}
        return TopicReplies(
            **{name: values[name] or (getattr(base, name) if base else "") for name in names}
        )

    def responders(
        self,
        node: CommentedMap,
        where: str,
        scope: str,
        topics: Mapping[str, Topic],
        base: Mapping[str, Responder] | None = None,
    ) -> dict[str, Responder]:
        """The responders of ``scope``; with a ``base`` (an override), the base's too,
        unless the override writes one with the same id."""
        responders = dict(base or {})
        section = self.mapping(node.get("responders"), where, key_line(node, "responders"))
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
            keywords = self.keyword_list(entry, "keywords", f"{path}.keywords", scope)
            reply = self.reply(entry, "reply", f"{path}.reply")
            action = entry.get("action")
            if action is not None and action not in ("opt_in", "opt_out"):
                self.error(
                    value_line(entry, "action"),
                    f"{path}.action: expected opt_in or opt_out, got {kind_of(action)}",
                )
                action = None
            topic = entry.get("topic")
            if topic is not None:
                topic_line = value_line(entry, "topic")
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

    def languages(self, document: CommentedMap) -> Languages:
        """``languages``: which languages are read (all shipped ones when absent), what
        each adds to its file, and its opt-out confirmation. English is always read."""
        section = CommentedMap()
        if "languages" not in document:
            codes: list[str] = list(shipped_languages.shipped())
        else:
            given = self.mapping(
                document["languages"], "languages", value_line(document, "languages")
            )
            section = given if given is not None else section
            codes = ["en", *(code for code in section if code != "en")]
        enabled: list[Language] = []
        replies: dict[str, str] = {}
        reply_lines: dict[str, int] = {}
        for code in codes:
            line = key_line(section, code) if code in section else 1
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
                        key_line(body, "opt_out_reply"),
                        f"{where}.opt_out_reply: the English confirmation is opt_out.reply",
                    )
                elif reply is not None:
                    replies[code] = reply
                    reply_lines[code] = value_line(body, "opt_out_reply")
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
