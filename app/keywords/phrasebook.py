"""The phrases of every enabled language, in one tree of words: found by lookups.

A text is read once, left to right: from each word, the tree is walked as far
as the following words go. So the cost of a text grows with its length and
with how far real phrases match, not with the number of phrases or of
languages enabled: one tree holds them all.

Words are the folded words of text.py; Chinese, Japanese and Korean are
written without spaces between words (or with spaces that vary: "수신 거부",
"수신거부"), so each of their characters is a word of its own here.

What a phrase does depends on its kind (the sections of a language file,
see languages.py), decided by ``Phrasebook.read``:

- ``opt_out``: anywhere in a text, opts out; right after one of the language's
  negations ("no paren de ...") or after one of its question words ("¿cómo
  me doy de baja?"), a person reviews it instead.
- ``opt_out_first``: opening a text (after courtesy), with at most
  ``FIRST_TAIL`` words after it: "Arrête de m'écrire".
- ``opt_out_alone``: the whole text, but for courtesy: "Alto, gracias".
- ``opt_out_alone_as_written``: the same, but matched with the text's accents
  (text.words_as_written): Vietnamese "DỪNG" is stop; "Dung" may be five words.
- ``review`` anywhere, ``review_alone`` as the whole text: a person reads it.
- ``courtesy``, ``negations``, ``questions``: what the rules above look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.keywords.text import words


class Kind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_OUT_FIRST = "opt_out_first"
    OPT_OUT_ALONE = "opt_out_alone"
    OPT_OUT_ALONE_AS_WRITTEN = "opt_out_alone_as_written"
    REVIEW = "review"
    REVIEW_ALONE = "review_alone"
    COURTESY = "courtesy"
    NEGATION = "negations"
    QUESTION = "questions"


#: At most this many words may follow an ``opt_out_first`` phrase: a short text.
FIRST_TAIL = 8

#: Scripts written without spaces between words: each character is a word.
_UNSPACED = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
    "|[^\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)


def tokens(said: Sequence[str]) -> tuple[str, ...]:
    """The words of a folded text as the tree reads them (unspaced scripts by character)."""
    found: list[str] = []
    for word in said:
        if word.isascii():
            found.append(word)
        else:
            found.extend(_UNSPACED.findall(word))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Mark:
    """What a phrase is, in which language."""

    language: str
    kind: Kind


class Node:
    """One word of the tree: the words that may follow, and the phrases ending here."""

    __slots__ = ("children", "marks")

    def __init__(self) -> None:
        self.children: dict[str, Node] = {}
        self.marks: tuple[Mark, ...] = ()

    def walk(self, words: Sequence[str]) -> Node:
        """The node after ``words``, made if missing."""
        node = self
        for word in words:
            child = node.children.get(word)
            if child is None:
                child = node.children[word] = Node()
            node = child
        return node

    def merge(self, other: Node) -> None:
        """Add every phrase of ``other`` to this tree."""
        for mark in other.marks:
            if mark not in self.marks:
                self.marks += (mark,)
        for word, child in other.children.items():
            mine = self.children.get(word)
            if mine is None:
                mine = self.children[word] = Node()
            mine.merge(child)


@dataclass(frozen=True)
class Reading:
    """What the phrases of a text say: ``opt_out`` or ``review``, and in which language."""

    action: str
    language: str
    start: int
    end: int


class Phrasebook:
    """Every phrase of the enabled languages, compiled once per config."""

    def __init__(self, trees: Iterable[Node]) -> None:
        self._root = Node()
        for tree in trees:
            self._root.merge(tree)
        #: The words as-written phrases start with, once folded ("dung" for "dừng"): only a
        #: text with one of them is read again with its accents.
        self.as_written_starts = frozenset(
            tokens(words(word))[0]
            for word, node in self._root.children.items()
            if _has_kind(node, Kind.OPT_OUT_ALONE_AS_WRITTEN) and tokens(words(word))
        )
        #: One-word courtesy in Latin letters ("gracias", "po", "svp"): courtesy around an
        #: English keyword too ("STOP por favor" is STOP please). Not one letter alone
        #: (Vietnamese "ạ" is "a", an English word).
        self.courtesy_words = frozenset(
            word
            for word, node in self._root.children.items()
            if word.isascii()
            and len(word) > 1
            and any(mark.kind is Kind.COURTESY for mark in node.marks)
        )

    def find(self, said: Sequence[str]) -> list[tuple[int, int, Mark]]:
        """Every phrase in ``said`` (already ``tokens``): (start, end, mark)."""
        found: list[tuple[int, int, Mark]] = []
        root = self._root.children
        count = len(said)
        for start in range(count):
            node = root.get(said[start])
            end = start + 1
            while node is not None:
                for mark in node.marks:
                    found.append((start, end, mark))
                if end == count:
                    break
                node = node.children.get(said[end])
                end += 1
        return found

    def all_courtesy(self, said: Sequence[str]) -> bool:
        """Whether ``said`` (already ``tokens``) is courtesy from end to end."""
        spans = [(s, e) for s, e, mark in self.find(said) if mark.kind is Kind.COURTESY]
        return _covered_prefixes(spans, len(said))[len(said)]

    def read(self, said: Sequence[str], as_written: Sequence[str] | None = None) -> Reading | None:
        """Whether the phrases of ``said`` (already ``tokens``) opt out, ask for review, or
        neither. An opt-out wins over a review anywhere in the text.

        ``as_written``: the same words with their accents, for the phrases matched so
        (ignored unless it has as many words as ``said``)."""
        found = self.find(said)
        count = len(said)
        if as_written is not None and len(as_written) == count and as_written != said:
            found += [
                (s, e, mark)
                for s, e, mark in self.find(as_written)
                if mark.kind is Kind.OPT_OUT_ALONE_AS_WRITTEN
            ]
        if not found:
            return None
        courtesy = [(s, e) for s, e, mark in found if mark.kind is Kind.COURTESY]
        polite_before = _covered_prefixes(courtesy, count)
        polite_after = _covered_suffixes(courtesy, count)
        negation_ends = {(m.language, e) for s, e, m in found if m.kind is Kind.NEGATION}
        # "no quiero más mensajes" opens with a negation of its own: only one before counts.
        negation_starts = {(m.language, s) for s, e, m in found if m.kind is Kind.NEGATION}
        first_question: dict[str, int] = {}
        for s, _e, m in found:
            if m.kind is Kind.QUESTION:
                first_question.setdefault(m.language, s)
        review: Reading | None = None
        for start, end, mark in sorted(found, key=lambda f: (f[0], -f[1])):
            kind, language = mark.kind, mark.language
            alone = polite_before[start] and polite_after[end]
            if kind is Kind.OPT_OUT:
                negated = (language, start) in negation_ends - negation_starts
                if negated or first_question.get(language, count) < start:
                    review = review or Reading("review", language, start, end)
                    continue
                return Reading("opt_out", language, start, end)
            if (kind in _ALONE and alone) or (
                kind is Kind.OPT_OUT_FIRST and polite_before[start] and count - end <= FIRST_TAIL
            ):
                return Reading("opt_out", language, start, end)
            if kind is Kind.REVIEW or (kind is Kind.REVIEW_ALONE and alone):
                review = review or Reading("review", language, start, end)
        return review


_ALONE = (Kind.OPT_OUT_ALONE, Kind.OPT_OUT_ALONE_AS_WRITTEN)


def _has_kind(node: Node, kind: Kind) -> bool:
    """Whether a phrase of ``kind`` ends at ``node`` or below it."""
    return any(mark.kind is kind for mark in node.marks) or any(
        _has_kind(child, kind) for child in node.children.values()
    )


def _covered_prefixes(spans: list[tuple[int, int]], count: int) -> list[bool]:
    """covered[k]: the first k words are all courtesy."""
    covered = [False] * (count + 1)
    covered[0] = True
    for k in range(count):
        if covered[k]:
            for start, end in spans:
                if start == k:
                    covered[end] = True
    return covered


def _covered_suffixes(spans: list[tuple[int, int]], count: int) -> list[bool]:
    """covered[k]: the words from k on are all courtesy."""
    covered = [False] * (count + 1)
    covered[count] = True
    for k in range(count, 0, -1):
        if covered[k]:
            for start, end in spans:
                if end == k:
                    covered[start] = True
    return covered
