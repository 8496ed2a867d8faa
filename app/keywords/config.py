"""keywords.yaml: the rules marketers edit, loaded and validated completely.

``load(path)`` returns a ``Config`` or raises ``ConfigError`` holding every
problem found, each as ``PATH:LINE: message`` saying what is wrong and what is
allowed. Warnings (a reply longer than one SMS, an opt-in confirmation without
"Msg & data rates may apply") do not stop loading; they ride on the Config.

The compliance keywords are protected: STOP, START and HELP must stay, and so
must the FCC's per-se opt-out words (47 CFR 64.1200(a)(10): stop, quit, end,
revoke, opt out, cancel, unsubscribe); a custom responder can never take over
any default keyword.

This module is the entry point; the work is done by

- ``model.py``: what a loaded config is (``Config``, ``Rules``, ``Keyword`` ...);
- ``yamlfile.py``: typed values out of the YAML tree, every problem with its line;
- ``sections.py`` and ``overrides.py``: one reader per section of the file;
- ``checks.py``: what needs a whole scope (a keyword twice, a responder over STOP,
  the replies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from app.keywords.checks import check_language_replies, check_replies, check_scope

# Re-exported: callers have always imported them from here.
from app.keywords.model import (
    DEFAULTS,
    NO_TOPIC_REPLIES,
    REQUIRED,
    Config,
    Keyword,
    KeywordSet,
    Organization,
    Origin,
    Override,
    Responder,
    Rules,
    Topic,
    TopicReplies,
    override_scope,
    render,
    template_problem,
)
from app.keywords.overrides import read_overrides
from app.keywords.problems import ConfigError, Problem, key_line, read_yaml
from app.keywords.sections import SectionReader

__all__ = [
    "REQUIRED",
    "Config",
    "ConfigError",
    "Keyword",
    "KeywordSet",
    "Organization",
    "Origin",
    "Override",
    "Problem",
    "Responder",
    "Rules",
    "Topic",
    "TopicReplies",
    "load",
    "parse",
    "render",
    "template_problem",
    "unreadable",
]

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
    reader = SectionReader(path, default_region)
    config = _read(reader, document)
    if reader.errors or config is None:
        raise ConfigError(reader.errors)
    return config


def _read(reader: SectionReader, document: Any) -> Config | None:
    """The whole file: every section read, then every scope checked. None when a
    required section is unusable (its problems are on ``reader``)."""
    if not isinstance(document, CommentedMap):
        reader.error(1, "expected a mapping with brand, opt_out, opt_in, help, ... at the top")
        return None
    reader.keys(document, "", _TOP_KEYS, required=("brand", "opt_out", "opt_in", "help"))
    if "version" in document and document["version"] != 1:
        reader.error(key_line(document, "version"), "version: expected 1")
    organization = reader.organization(document.get("organization"), document)
    topics = reader.topics(document.get("topics"), document)
    brand = reader.text(document, "brand", "brand") or ""
    sets = {kind: reader.keyword_set(document, kind, kind, DEFAULTS) for kind in REQUIRED}
    topic_replies = reader.topic_replies(document, "topic_replies", topics, required=bool(topics))
    responders = reader.responders(document, "responders", DEFAULTS, topics)
    languages = reader.languages(document)
    limits = reader.limits(document.get("limits"), document, topics)
    if any(value is None for value in sets.values()):
        return None
    defaults = Rules(
        brand=brand,
        opt_out=sets["opt_out"],  # type: ignore[arg-type]
        opt_in=sets["opt_in"],  # type: ignore[arg-type]
        help=sets["help"],  # type: ignore[arg-type]
        topic_replies=topic_replies or NO_TOPIC_REPLIES,
        responders=responders,
        provider_confirms_defaults=organization.provider_confirms_defaults,
    )
    check_scope(reader, defaults, topics, DEFAULTS, defaults)
    overrides = []
    # Each override is checked as soon as it is read, before the next one.
    for scope, override in read_overrides(
        reader, document.get("overrides"), document, defaults, topics
    ):
        check_scope(reader, override.rules, topics, scope, defaults)
        overrides.append(override)
    check_replies(reader, defaults, topics, DEFAULTS)
    # Numbered among the overrides read, as they always were: one that is not a mapping
    # (refused already) shifts the names of those after it.
    for index, override in enumerate(overrides):
        check_replies(reader, override.rules, topics, override_scope(index))
    check_language_replies(reader, languages, defaults)
    return Config(
        path=reader.path,
        defaults=defaults,
        topics=topics,
        overrides=tuple(overrides),
        organization=organization,
        warnings=tuple(sorted(reader.warnings, key=lambda p: p.line)),
        languages=languages,
        limits=limits,
    )
