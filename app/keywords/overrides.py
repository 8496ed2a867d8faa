"""keywords.yaml's ``overrides``: other rules for some lines or Messaging Services.

An override is the defaults with what it writes in their place: a section it
leaves out, or a key of a section, is the defaults' own, keywords included
(they keep their ``Origin`` in the defaults, which is how the checks know what
an override inherits). Its scope is its path, ``overrides[N]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.addresses import normalize_line
from app.errors import InvalidAddress
from app.keywords.model import REQUIRED, Override, Rules, Topic, override_scope
from app.keywords.problems import key_line
from app.keywords.sections import SectionReader

KEYS = (
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


def read_overrides(
    reader: SectionReader,
    node: Any,
    document: CommentedMap,
    defaults: Rules,
    topics: Mapping[str, Topic],
) -> Iterator[tuple[str, Override]]:
    """Each override with its scope, one at a time: a caller that checks each one
    before the next is read reports the problems in the order of the file."""
    if node is None:
        return
    top_line = key_line(document, "overrides")
    if not isinstance(node, CommentedSeq):
        reader.error(
            top_line,
            "overrides: expected a list of overrides, each starting with "
            "- lines: [...] or - groups: [...]",
        )
        return
    owners: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(node):
        line = node.lc.item(index)[0] + 1
        scope = override_scope(index)
        body = reader.mapping(entry, scope, line)
        if body is None:
            continue
        reader.keys(body, f"{scope}.", KEYS, line=line)
        if "lines" not in body and "groups" not in body:
            reader.error(line, f"{scope}: say which lines it is for: lines: [...] or groups: [...]")
        lines = _lines(reader, body, scope)
        groups = _groups(reader, body, scope)
        for kind, values in (("line", lines), ("group", groups)):
            for value in values:
                if (kind, value) in owners:
                    reader.error(
                        line,
                        f"{scope}: {kind} {value} already has an override "
                        f"(line {owners[(kind, value)]}); merge the two",
                    )
                owners[(kind, value)] = line
        rules = _rules(reader, body, scope, defaults, topics)
        yield scope, Override(frozenset(lines), frozenset(groups), rules, line)


def _lines(reader: SectionReader, body: CommentedMap, scope: str) -> list[str]:
    values = reader.keyword_list(body, "lines", f"{scope}.lines", scope) or ()
    lines = []
    for value in values:
        try:
            lines.append(normalize_line(value.text, reader.region).value)
        except InvalidAddress as error:
            reader.error(value.line, f"{scope}.lines: {error}")
    return lines


def _groups(reader: SectionReader, body: CommentedMap, scope: str) -> list[str]:
    values = reader.keyword_list(body, "groups", f"{scope}.groups", scope) or ()
    return [value.text for value in values]


def _rules(
    reader: SectionReader,
    body: CommentedMap,
    scope: str,
    defaults: Rules,
    topics: Mapping[str, Topic],
) -> Rules:
    sets = {
        kind: reader.keyword_set(body, kind, f"{scope}.{kind}", scope, getattr(defaults, kind))
        for kind in REQUIRED
    }
    return replace(
        defaults,
        brand=reader.text(body, "brand", f"{scope}.brand") or defaults.brand,
        opt_out=sets["opt_out"] or defaults.opt_out,
        opt_in=sets["opt_in"] or defaults.opt_in,
        help=sets["help"] or defaults.help,
        topic_replies=reader.topic_replies(
            body, f"{scope}.topic_replies", topics, False, defaults.topic_replies
        )
        or defaults.topic_replies,
        responders=reader.responders(
            body, f"{scope}.responders", scope, topics, defaults.responders
        ),
        provider_confirms_defaults=reader.boolean(
            body,
            "provider_confirms_defaults",
            f"{scope}.provider_confirms_defaults",
            defaults.provider_confirms_defaults,
        ),
    )
