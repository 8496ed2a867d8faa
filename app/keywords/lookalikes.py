"""Cyrillic and Greek letters that look like Latin ones, read as the Latin letter.

"ЅТОР" written with Cyrillic letters looks like STOP on a phone, and a person
who reads it as STOP is right to (47 CFR 64.1200(a)(10): any reasonable
means). The look-alikes come from Unicode's confusables data (UTS #39,
confusables.txt) as shipped by the ``confusable-homoglyphs`` package, not
from a table typed here: for each Cyrillic or Greek letter, the ASCII letter
of its confusable class, in the same case (Cyrillic "І" is in the class of
"l" and "I": capital "І" reads as "I"). A Latin small capital the data names
("т" → "ᴛ", LATIN LETTER SMALL CAPITAL T) reads as its letter.

Only a word whose every Cyrillic or Greek letter has a Latin look-alike is
rewritten: a real Russian or Greek word ("стоп", "σταμάτα") has letters with
none, keeps its own letters and so matches nothing. ASCII texts never get
here (``fold`` checks ``str.isascii`` first).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

#: The scripts whose look-alikes are read as Latin letters.
_SCRIPTS = ("CYRILLIC", "GREEK")
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")
#: A run of letters (no digits, no underscore): the unit a look-alike is judged in.
_LETTERS = re.compile(r"[^\W\d_]+")


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    return next((script for script in _SCRIPTS if name.startswith(script)), None)


def _latin_for(char: str, classes: dict[str, set[str]]) -> str | None:
    """The ASCII letter ``char`` looks like, in its case, or None."""
    ascii_letters = {c for c in classes.get(char, ()) if c in _ASCII_LETTERS}
    if not ascii_letters:
        small_capitals = [
            found.group(1)
            for c in classes.get(char, ())
            if (found := _SMALL_CAPITAL.fullmatch(unicodedata.name(c, "")))
        ]
        ascii_letters = {letter.lower() for letter in small_capitals}
    if not ascii_letters:
        return None
    same_case = sorted(c for c in ascii_letters if c.isupper() == char.isupper())
    return (same_case or sorted(ascii_letters))[0]


@functools.cache
def table() -> dict[int, str]:
    """Cyrillic or Greek letter → the ASCII letter it looks like (built once, ~35 ms)."""
    data = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    confusables: dict[str, list[dict[str, str]]] = json.loads(data.read_text(encoding="utf-8"))
    # The data lists, for each character, the characters it can be confused with; a
    # class is a character with all of those (and theirs: "І" → "l" → "I").
    classes: dict[str, set[str]] = {}
    for char, glyphs in confusables.items():
        if len(char) != 1:
            continue
        singles = {glyph["c"] for glyph in glyphs if len(glyph["c"]) == 1}
        classes.setdefault(char, set()).update(singles)
        for glyph in singles:
            classes.setdefault(glyph, set()).add(char)
    for members in classes.values():
        for member in list(members):
            if member in _ASCII_LETTERS:
                members.update(classes.get(member, ()))
    found: dict[int, str] = {}
    for char in classes:
        if len(char) == 1 and char.isalpha() and _script(char) is not None:
            latin = _latin_for(char, classes)
            if latin is not None:
                found[ord(char)] = latin
    return found


def to_latin(text: str) -> str:
    """``text`` with every all-look-alike word written in Latin letters."""
    if _any_lookalike().search(text) is None:
        return text  # Chinese, Korean, accents ...: one scan in C, nothing to do
    looks = table()
    return _LETTERS.sub(lambda word: _word_to_latin(word.group(), looks), text)


@functools.cache
def _any_lookalike() -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(table())) + "]")


def _word_to_latin(word: str, looks: dict[int, str]) -> str:
    if word.isascii():
        return word
    for char in word:
        if ord(char) not in looks and _script(char) is not None:
            return word  # a real Cyrillic or Greek word: leave it alone
    return word.translate(looks)
