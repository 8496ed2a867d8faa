"""Stop signs: emoji that may mean "stop" when a text says nothing else (emoji.yaml).

"🛑" alone, in reply to a marketing text, may well be a revocation; it is not
one of the FCC's words, so a person reviews it rather than optgate deciding.
A text's stop signs are found character by character in a set: skin tones,
variation selectors, joiners and gender signs are not looked at, so "✋🏽",
"✋️", "🙅‍♀️" and "🛑🛑🛑" are all stop signs.
"""

from __future__ import annotations

import functools
from importlib import resources

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.keywords.problems import ConfigError, Problem, kind_of, read_yaml

#: What may ride on an emoji without changing it: presentation selectors, skin tones,
#: the zero-width joiner and the gender signs of "🙅‍♀️".
MODIFIERS = frozenset(
    ["\ufe0e", "\ufe0f", "\u200d", "\u2640", "\u2642", *map(chr, range(0x1F3FB, 0x1F400))]
)


def parse(text: str, path: str) -> frozenset[str]:
    """The stop-sign emoji of an emoji file's content (``path`` is for messages).

    Raises:
        ConfigError: every problem, with its line.
    """
    document = read_yaml(text, path)
    problems: list[Problem] = []
    found: set[str] = set()
    if not isinstance(document, CommentedMap) or set(document) != {"stop_signs"}:
        raise ConfigError([Problem(path, 1, "expected one key, stop_signs: a list of emoji")])
    entries = document["stop_signs"]
    if not isinstance(entries, CommentedSeq):
        line = int(document.lc.value("stop_signs")[0]) + 1
        raise ConfigError([Problem(path, line, "stop_signs: expected a list of emoji")])
    for index, entry in enumerate(entries):
        line = entries.lc.item(index)[0] + 1
        base = "".join(c for c in entry if c not in MODIFIERS) if isinstance(entry, str) else ""
        if len(base) != 1 or base.isalnum() or base.isspace():
            problems.append(
                Problem(
                    path,
                    line,
                    f'stop_signs[{index}]: expected one emoji (such as "🛑"), got {kind_of(entry)}',
                )
            )
            continue
        found.add(base)
    if problems:
        raise ConfigError(problems)
    return frozenset(found)


@functools.cache
def stop_signs() -> frozenset[str]:
    """The shipped stop signs."""
    data = resources.files("app.keywords").joinpath("emoji.yaml")
    return parse(data.read_text(encoding="utf-8"), str(data))


def has_stop_sign(text: str) -> bool:
    signs = stop_signs()
    return not text.isascii() and any(char in signs for char in text)
