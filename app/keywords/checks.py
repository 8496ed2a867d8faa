"""The checks made once a scope is read: what no single section can tell alone.

A scope is the defaults, or one override with everything it inherits from
them. In one scope, a keyword may be written only once, and no responder may
take over a compliance keyword (STOP, START, HELP, the FCC's words, or any
other opt-out, opt-in or help keyword of the scope or of the defaults). Each
reply must have only its placeholders and should fit one SMS; confirmations
should say what CTIA expects.

An override's problems are only what it writes: what it inherits was checked
as the defaults. Inherited keywords are known by their ``Origin`` (the
defaults' scope), and are named where the defaults wrote them; inherited
replies are known by having no line of their own in the override.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.keywords.languages import Languages
from app.keywords.model import (
    DEFAULTS,
    REQUIRED,
    Keyword,
    Rules,
    Topic,
    render,
    template_problem,
)
from app.keywords.sms import segments
from app.keywords.text import key, words
from app.keywords.yamlfile import YamlReader

#: What each kind of reply may say in braces.
PLACEHOLDERS = {
    "reply": ("brand",),
    "topic_reply": ("brand", "topic", "keyword"),
}
KIND_NAMES = {
    "opt_out": "an opt-out keyword",
    "opt_in": "an opt-in keyword",
    "help": "a help keyword",
}


def _prefix(scope: str) -> str:
    """What the paths of a scope start with: nothing for the defaults, "overrides[2]."."""
    return "" if scope == DEFAULTS else f"{scope}."


# -- keywords across a scope ----------------------------------------------------------


def check_scope(
    reader: YamlReader, rules: Rules, topics: Mapping[str, Topic], scope: str, defaults: Rules
) -> None:
    """No keyword twice in one scope; no responder over a compliance keyword.

    In an override, only what the override itself writes is reported: the
    defaults it inherits were checked as the defaults.
    """
    compliance = _compliance(defaults, rules)
    # What the defaults refused, they reported; an override that inherits it skips it.
    refused_by_defaults = compliance if scope == DEFAULTS else _compliance(defaults)
    places: dict[str, Keyword] = {}
    for kind in REQUIRED:
        for keyword in getattr(rules, kind).keywords:
            _place(reader, places, keyword, scope)
    for responder in rules.responders.values():
        for keyword in responder.keywords:
            if keyword.origin.scope != scope:
                # Inherited: placed again, so that the override's own keywords that
                # clash with it are reported; named where the defaults wrote it.
                if _takeover(keyword, refused_by_defaults) is None:
                    _place(reader, places, keyword, scope)
                continue
            problem = _takeover(keyword, compliance)
            if problem:
                reader.error(keyword.line, f"{keyword.origin.where}: {problem}")
                continue
            _place(reader, places, keyword, scope)
    if scope != DEFAULTS:
        return
    for topic in topics.values():
        for phrase in topic.phrases:
            if phrase.key in compliance or phrase.key in places:
                reader.error(
                    phrase.line,
                    f'topics.{topic.id}.phrases: "{phrase.text}" is '
                    "also a keyword; a topic phrase must differ",
                )


def _compliance(*scopes: Rules) -> dict[str, str]:
    """The kind (opt_out, opt_in, help) of each keyword of these rules' keyword lists,
    and of the REQUIRED ones even where a list lacks them (that list was refused)."""
    kinds: dict[str, str] = {}
    for kind in REQUIRED:
        for rules in scopes:
            for keyword in getattr(rules, kind).keywords:
                kinds.setdefault(keyword.key, kind)
        for needed in REQUIRED[kind]:
            kinds.setdefault(key(needed), kind)
    return kinds


def _takeover(keyword: Keyword, compliance: Mapping[str, str]) -> str | None:
    """Why a responder cannot have ``keyword``, or None.

    A text that starts with an opt-out or opt-in keyword is that keyword
    ("STOP NOW" opts out), so a responder's keyword cannot start with one either.
    """
    if keyword.key in compliance:
        return (
            f'"{keyword.text}" is {KIND_NAMES[compliance[keyword.key]]}; a responder cannot '
            "take over STOP, START, HELP or the other default keywords: choose another word"
        )
    first = words(keyword.text)[0]
    if compliance.get(key(first)) in ("opt_out", "opt_in"):
        return (
            f'"{keyword.text}" starts with the {compliance[key(first)].replace("_", "-")} '
            f"keyword {first.upper()}, which always wins: choose another first word"
        )
    return None


def _place(reader: YamlReader, places: dict[str, Keyword], keyword: Keyword, scope: str) -> None:
    """Record where a keyword is; report it when the scope already has it elsewhere.

    Two spellings of one keyword in the same list (STOPALL, STOP ALL) are
    fine: the file may spell out the variants people text.
    """
    if keyword.key not in places:
        places[keyword.key] = keyword
        return
    other = places[keyword.key]
    if other.origin.scope != scope and keyword.origin.scope != scope:
        return  # both inherited: the defaults were checked as such
    same_list = other.origin.where == keyword.origin.where
    if same_list and other.text.casefold() != keyword.text.casefold():
        return
    reader.error(
        keyword.line,
        f'{keyword.origin.where}: "{keyword.text}" appears twice in one scope: '
        f"here and in {other.origin.where} (line {other.line}); keep one",
    )


# -- replies --------------------------------------------------------------------------


def check_replies(
    reader: YamlReader, rules: Rules, topics: Mapping[str, Topic], scope: str
) -> None:
    """Placeholders, length in SMS segments, and what confirmations must say."""
    where = _prefix(scope)
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
        if scope != DEFAULTS and name not in reader.reply_lines:
            continue  # inherited from the defaults, which were checked as such
        problem = template_problem(template, allowed)
        line = _find_line(reader, name)
        if problem:
            reader.error(line, f"{name}: {problem}")
            continue
        _warn_when_long(reader, line, name, render(template, samples))
    _confirmations(reader, rules, where)


def _confirmations(reader: YamlReader, rules: Rules, where: str) -> None:
    folded = {kind: " ".join(words(getattr(rules, kind).reply)) for kind in REQUIRED}
    if "stop" not in folded["help"].split():
        reader.warn(
            _find_line(reader, f"{where}help.reply"),
            f"{where}help.reply: should say how to opt out (Reply STOP to unsubscribe)",
        )
    if "rates may apply" not in folded["opt_in"]:
        reader.warn(
            _find_line(reader, f"{where}opt_in.reply"),
            f'{where}opt_in.reply: should say "Msg & data rates may apply" (CTIA)',
        )
    for responder in rules.responders.values():
        if responder.action == "opt_in" and "rates may apply" not in " ".join(
            words(responder.reply)
        ):
            reader.warn(
                responder.line,
                f"{where}responders.{responder.id}.reply: an opt-in "
                'confirmation should say "Msg & data rates may apply"',
            )


def _find_line(reader: YamlReader, name: str) -> int:
    """The line of a reply; for one an override inherits, the default's line."""
    if name in reader.reply_lines:
        return reader.reply_lines[name]
    inherited = re.sub(r"^overrides\[\d+\]\.", "", name)
    return reader.reply_lines.get(inherited, 1)


def check_language_replies(reader: YamlReader, languages: Languages, defaults: Rules) -> None:
    for code, template in languages.opt_out_replies.items():
        name = f"languages.{code}.opt_out_reply"
        line = languages.reply_lines.get(code, 1)
        problem = template_problem(template, PLACEHOLDERS["reply"])
        if not template.strip():
            problem = "an opt-out confirmation cannot be empty; leave it out for English"
        if problem:
            reader.error(line, f"{name}: {problem}")
            continue
        _warn_when_long(reader, line, name, render(template, {"brand": defaults.brand}))


def _warn_when_long(reader: YamlReader, line: int, name: str, rendered: str) -> None:
    """A reply longer than one SMS segment costs a message per segment on every send."""
    count, limit, encoding = segments(rendered)
    if count > 1:
        reader.warn(
            line,
            f"{name}: {len(rendered)} characters is {count} SMS segments "
            f"({limit} {encoding} characters fit in one); it costs {count} "
            "messages per send",
        )
