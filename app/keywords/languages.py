"""Languages: the word lists, per language, in data files a translator extends.

Each language optgate reads is a file ``app/keywords/languages/<code>.yaml``
(``en`` holds English phrases beyond the rules of phrases.py). The file says,
per kind of phrase (see phrasebook.py), what people text; keywords.yaml says
which languages are on and may add phrases and slot words to any of them,
and give the opt-out confirmation in that language. A file is validated
like keywords.yaml: every problem at once, as ``PATH:LINE: message``.

A phrase is words, written as people write them (case and accents do not
matter), with two signs:

- ``{slot}``: any one of the words of that slot (``slots:`` in the file):
  ``deja de {send_me}`` is "deja de mandarme", "deja de enviarme" ...
- ``[words]``: the words may be there or not: ``no [quiero] más {messages}``.

Chinese, Japanese and Korean are read character by character, so spaces in
their phrases do not matter.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.keywords import phrases
from app.keywords.phrasebook import Kind, Mark, Node, Phrasebook, tokens
from app.keywords.problems import (
    ConfigError,
    Problem,
    key_line,
    kind_of,
    read_yaml,
    unknown_keys,
    value_line,
)
from app.keywords.text import words, words_as_written

#: The lists of a language, in the order a file is best written in.
LIST_KINDS = (
    Kind.COURTESY,
    Kind.NEGATION,
    Kind.QUESTION,
    Kind.OPT_OUT,
    Kind.OPT_OUT_FIRST,
    Kind.OPT_OUT_ALONE,
    Kind.OPT_OUT_ALONE_AS_WRITTEN,
    Kind.REVIEW,
    Kind.REVIEW_ALONE,
)
FILE_KEYS = ("name", "slots", *LIST_KINDS)
#: The keys of one language in keywords.yaml's ``languages`` section.
SECTION_KEYS = ("name", "opt_out_reply", "slots", *LIST_KINDS)
#: One phrase may stand for at most this many texts (slots and options multiply).
MAX_EXPANSIONS = 10_000
_ACTIONS = {
    Kind.OPT_OUT: "opt-out",
    Kind.OPT_OUT_FIRST: "opt-out",
    Kind.OPT_OUT_ALONE: "opt-out",
    Kind.OPT_OUT_ALONE_AS_WRITTEN: "opt-out",
    Kind.REVIEW: "review",
    Kind.REVIEW_ALONE: "review",
}
_CODE = re.compile(r"[a-z]{2,3}")
_SLOT_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SIGN = re.compile(r"\{([^{}\[\]]*)\}|(\[)|(\])|([{}])")


@dataclass(frozen=True)
class _Phrase:
    kind: Kind
    template: str
    path: str
    line: int


@dataclass
class _Draft:
    """A language as read, before its phrases are expanded."""

    code: str
    name: str | None = None
    slots: dict[str, list[str]] = field(default_factory=dict)
    slot_places: dict[str, tuple[str, int]] = field(default_factory=dict)
    phrases: list[_Phrase] = field(default_factory=list)


@dataclass(frozen=True)
class Language:
    """One language, its phrases expanded and folded into words."""

    code: str
    name: str
    fingerprint: str
    tree: Node = field(compare=False, repr=False)


@dataclass(frozen=True)
class Languages:
    """The languages a config turns on, their phrases compiled, and their replies."""

    enabled: tuple[Language, ...]
    #: code → the opt-out confirmation in that language (a template, like opt_out.reply).
    opt_out_replies: Mapping[str, str]
    reply_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def phrasebook(self) -> Phrasebook:
        return _phrasebook(self.enabled)


#: No language at all (a Config built by hand).
NO_LANGUAGES = Languages((), {})


@functools.lru_cache(maxsize=16)
def _phrasebook(enabled: tuple[Language, ...]) -> Phrasebook:
    """One tree for every enabled language (cached: a reload rarely changes them)."""
    return Phrasebook([_english_courtesy(), *(language.tree for language in enabled)])


@functools.cache
def _english_courtesy() -> Node:
    """The courtesy words of the English rules (phrases.POLITE), for phrases said alone."""
    tree = Node()
    for word in phrases.POLITE:
        node = tree.walk((word,))
        node.marks += (Mark("en", Kind.COURTESY),)
    return tree


# -- the shipped files ----------------------------------------------------------------


def _folder() -> Any:
    return resources.files("app.keywords").joinpath("languages")


def shipped() -> tuple[str, ...]:
    """The codes of the language files shipped with optgate, English first."""
    codes = sorted(
        entry.name.removesuffix(".yaml")
        for entry in _folder().iterdir()
        if entry.name.endswith(".yaml")
    )
    return tuple(sorted(codes, key=lambda code: code != "en"))


def shipped_path(code: str) -> str:
    return str(_folder().joinpath(f"{code}.yaml"))


def load(
    code: str,
    additions: CommentedMap | None = None,
    additions_path: str = "keywords.yaml",
    where: str = "",
    line: int = 1,
) -> Language:
    """The language ``code``: its shipped file (if any) with what keywords.yaml adds.

    Args:
        additions: keywords.yaml's ``languages.<code>`` mapping, read at ``additions_path``
            under the key path ``where`` ("languages.es."), whose key is on ``line``.

    Raises:
        ConfigError: the file, or the additions, are wrong (every problem, with its line).
    """
    problems: list[Problem] = []
    if code in shipped():
        path = shipped_path(code)
        text = _folder().joinpath(f"{code}.yaml").read_text(encoding="utf-8")
        if additions is None:
            return parse_file(code, text, path)
        draft = _read_file(code, text, path, problems)
    else:
        draft = _Draft(code)
    if additions is not None:
        _Lists(additions_path, problems).read(additions, where, draft, SECTION_KEYS)
    if draft.name is None:
        problems.append(
            Problem(
                additions_path,
                line,
                f"{where.rstrip('.')}: optgate has no file for the language {code!r} "
                f"(it has: {', '.join(shipped())}); to add one here, give its name and phrases",
            )
        )
    return compile_draft(draft, problems)


@functools.lru_cache(maxsize=64)
def parse_file(code: str, text: str, path: str) -> Language:
    """Validate and compile a language file's content (``path`` is for messages).

    Raises:
        ConfigError: every problem, with its line.
    """
    problems: list[Problem] = []
    draft = _read_file(code, text, path, problems)
    return compile_draft(draft, problems)


def compile_draft(draft: _Draft, problems: list[Problem]) -> Language:
    """Expand every phrase of ``draft`` and check them.

    Raises:
        ConfigError: anything wrong (``problems`` holds what was found while reading).
    """
    fingerprint = hashlib.sha256(repr((draft.slots, draft.phrases)).encode()).hexdigest()
    tree = _tree(draft, problems)
    if problems:
        raise ConfigError(problems)
    return Language(draft.code, draft.name or draft.code, fingerprint, tree)


# -- reading ----------------------------------------------------------------------------


def _read_file(code: str, text: str, path: str, problems: list[Problem]) -> _Draft:
    document = read_yaml(text, path)
    draft = _Draft(code)
    if not isinstance(document, CommentedMap):
        problems.append(Problem(path, 1, "expected a mapping with name, slots, opt_out, ..."))
        return draft
    _Lists(path, problems).read(document, "", draft, FILE_KEYS)
    if draft.name is None:
        problems.append(Problem(path, 1, "name: missing; say which language this is"))
    return draft


class _Lists:
    """Reads the name, slots and phrase lists of a language (a file, or keywords.yaml's)."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def read(self, node: CommentedMap, where: str, draft: _Draft, allowed: Iterable[str]) -> None:
        for problem_line, message in unknown_keys(node, where, allowed):
            self.error(problem_line, message)
        if "name" in node:
            value = node["name"]
            if isinstance(value, str) and value.strip():
                draft.name = value.strip()
            else:
                self.error(value_line(node, "name"), f"{where}name: expected text, got "
                           f"{kind_of(value)}")  # fmt: skip
        if "slots" in node:
            self.slots(node, where, draft)
        for kind in LIST_KINDS:
            if kind.value in node:
                for text, line in self.texts(node, kind.value, f"{where}{kind.value}"):
                    draft.phrases.append(_Phrase(kind, text, self.path, line))

    def slots(self, node: CommentedMap, where: str, draft: _Draft) -> None:
        slots = node["slots"]
        if slots is None:
            return
        if not isinstance(slots, CommentedMap):
            self.error(
                value_line(node, "slots"),
                f"{where}slots: expected a mapping of slot names to lists of words, "
                f"such as messages: [mensajes, textos], got {kind_of(slots)}",
            )
            return
        for name in slots:
            line = key_line(slots, name)
            if not isinstance(name, str) or not _SLOT_NAME.fullmatch(name):
                self.error(
                    line,
                    f"{where}slots.{name}: a slot name is lower-case letters, digits and "
                    "underscores, starting with a letter, such as send_me",
                )
                continue
            entries = []
            for text, entry_line in self.texts(slots, name, f"{where}slots.{name}"):
                if _SIGN.search(text):
                    self.error(
                        entry_line,
                        f'{where}slots.{name}: "{text}": a slot word cannot hold braces or '
                        "brackets; write each variant as its own word",
                    )
                    continue
                entries.append(text)
            draft.slots.setdefault(name, []).extend(entries)
            draft.slot_places.setdefault(name, (self.path, line))

    def texts(self, node: CommentedMap, name: str, where: str) -> list[tuple[str, int]]:
        value = node[name]
        line = value_line(node, name)
        if value is None:
            return []
        if not isinstance(value, CommentedSeq):
            self.error(line, f"{where}: expected a list of phrases, such as [alto, basta]")
            return []
        found = []
        for index, item in enumerate(value):
            item_line = value.lc.item(index)[0] + 1
            if not isinstance(item, str) or not item.strip():
                self.error(item_line, f"{where}[{index}]: expected a phrase, got {kind_of(item)}")
                continue
            if len(item) > 200:
                self.error(item_line, f"{where}[{index}]: a phrase is at most 200 characters")
                continue
            found.append((item.strip(), item_line))
        return found


# -- expanding --------------------------------------------------------------------------

#: A parsed phrase: text, a slot name, or an optional part.
_Part = str | tuple[str, str] | tuple[str, list[Any]]


def _parse(template: str) -> tuple[list[_Part], str | None]:
    """The parts of a phrase, or the reason it cannot be read."""
    stack: list[list[_Part]] = [[]]
    position = 0
    for sign in _SIGN.finditer(template):
        if sign.start() > position:
            stack[-1].append(template[position : sign.start()])
        position = sign.end()
        slot, opening, closing, stray = sign.groups()
        if slot is not None:
            if not _SLOT_NAME.fullmatch(slot.strip()):
                return [], f'"{{{slot}}}" is not a slot name (such as {{messages}})'
            stack[-1].append(("slot", slot.strip()))
        elif opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                return [], 'a "]" without its "["'
            optional = stack.pop()
            stack[-1].append(("optional", optional))
        elif stray:
            return [], f'a stray "{stray}"; a slot is written {{name}}'
    if len(stack) > 1:
        return [], 'a "[" without its "]"'
    if position < len(template):
        stack[0].append(template[position:])
    return stack[0], None


def _count(parts: list[_Part], slots: Mapping[str, list[str]]) -> int:
    total = 1
    for part in parts:
        if isinstance(part, tuple) and part[0] == "slot":
            total *= len(slots.get(str(part[1]), ()))
        elif isinstance(part, tuple):
            total *= _count(part[1], slots) + 1  # type: ignore[arg-type]
    return total


def _slot_names(parts: list[_Part]) -> list[str]:
    names = []
    for part in parts:
        if isinstance(part, tuple) and part[0] == "slot":
            names.append(str(part[1]))
        elif isinstance(part, tuple):
            names.extend(_slot_names(part[1]))  # type: ignore[arg-type]
    return names


def _insert(
    parts: list[_Part],
    starts: list[Node],
    slots: Mapping[str, list[tuple[str, ...]]],
    fold: Callable[[str], tuple[str, ...]],
) -> list[Node]:
    """Walk every way ``parts`` can be said from each of ``starts``; the nodes reached.

    Slot words and options branch the walk, so a phrase is never written out
    in full: the tree holds its variants, sharing what they share."""
    nodes = starts
    for part in parts:
        if isinstance(part, str):
            said = tokens(fold(part))
            nodes = [node.walk(said) for node in nodes]
        elif part[0] == "slot":
            nodes = [node.walk(word) for node in nodes for word in slots[str(part[1])]]
        else:
            nodes = nodes + _insert(part[1], nodes, slots, fold)  # type: ignore[arg-type]
        nodes = list({id(node): node for node in nodes}.values())
    return nodes


def _tree(draft: _Draft, problems: list[Problem]) -> Node:
    """The language's phrases in one tree; a text that is an opt-out and a review (or
    courtesy) in the same language is an error."""
    root = Node()
    slots = {
        fold: {
            name: [said for word in entries if (said := tokens(fold(word)))]
            for name, entries in draft.slots.items()
        }
        for fold in (words, words_as_written)
    }
    places: dict[int, _Phrase] = {}
    for phrase in draft.phrases:
        where = f'{phrase.kind.value}: "{phrase.template}"'
        parts, problem = _parse(phrase.template)
        if problem is None:
            unknown = [name for name in _slot_names(parts) if name not in draft.slots]
            if unknown:
                known = ", ".join(sorted(draft.slots)) or "none defined"
                hint = difflib.get_close_matches(unknown[0], list(draft.slots), n=1)
                problem = (
                    f"no slot {{{unknown[0]}}}; "
                    + (f'did you mean "{{{hint[0]}}}"? ' if hint else "")
                    + f"slots: {known}"
                )
            elif (count := _count(parts, draft.slots)) > MAX_EXPANSIONS:
                problem = (
                    f"stands for {count:,} texts (at most {MAX_EXPANSIONS:,}): split it into "
                    "phrases with fewer slots or [options]"
                )
        if problem is not None:
            problems.append(Problem(phrase.path, phrase.line, f"{where}: {problem}"))
            continue
        mark = Mark(draft.code, phrase.kind)
        fold = words_as_written if phrase.kind is Kind.OPT_OUT_ALONE_AS_WRITTEN else words
        for node in _insert(parts, [root], slots[fold], fold):
            if node is root:
                problems.append(
                    Problem(phrase.path, phrase.line, f"{where}: has no letters or digits")
                )
                break
            clash = next((m for m in node.marks if _conflict(m.kind, phrase.kind)), None)
            if clash is not None:
                earlier = places[id(node)]
                problems.append(
                    Problem(
                        phrase.path,
                        phrase.line,
                        f"{where}: a text it stands for is also in {earlier.kind.value} "
                        f"({earlier.path}:{earlier.line}) as {_role(earlier.kind)}; keep one",
                    )
                )
                break
            if mark not in node.marks:
                node.marks += (mark,)
            places.setdefault(id(node), phrase)
    return root


def _role(kind: Kind) -> str:
    return _ACTIONS.get(kind, kind.value)


def _conflict(first: Kind, second: Kind) -> bool:
    """One text cannot be two of an opt-out, a review and courtesy in the same language
    (a negation or a question word may also be any of them: "no" in Spanish)."""
    groups = (_ACTIONS.get(first, first.value), _ACTIONS.get(second, second.value))
    words_only = (Kind.NEGATION.value, Kind.QUESTION.value)
    return groups[0] != groups[1] and not set(groups) & set(words_only)
