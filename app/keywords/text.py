"""What a text says, without its clothes: the normalisation keywords are matched on.

Case, accents, full-width letters, curly quotes, zero-width characters,
emoji, punctuation, hyphens and underscores never change what a keyword
means, so they are folded away here, once, for the message and for every
keyword in the config alike:

    "“Stop”  🛑"  →  ["stop"]          "OPT-OUT" / "opt_out" / "Opt Out"  →  ["opt", "out"]
    "ＳＴＯＰ"     →  ["stop"]          "ARRÊT"                           →  ["arret"]
    "don’t stop" → ["dont", "stop"]    (an apostrophe inside a word joins it)
    "ЅТОР" (Cyrillic letters) → ["stop"]  (look-alikes, see lookalikes.py)
    "Dừng" / "Đừng"  →  ["dung"]       (Vietnamese: đ has no accent to drop, it is mapped)

A keyword's *key* is its words run together ("optout" for OPT OUT, OPT-OUT and
OPTOUT alike), so spacing never matters either: "S T O P" is "stop".
"""

from __future__ import annotations

import re
import unicodedata

from app.keywords.lookalikes import to_latin

#: Invisible characters people's phones insert; removed before anything else.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
#: Letters NFKD does not take apart but people type without their stroke: Vietnamese
#: writes "đ" and, without diacritics, "d" (people texting often drop them all).
_STROKED = str.maketrans({"đ": "d"})
#: The combining marks (accents, once NFKD has taken letters apart) of the Basic
#: Multilingual Plane, as one character class (built in ~7 ms): removing them is one
#: scan in C. A text with characters beyond it (emoji) is filtered one by one.
_COMBINING = re.compile(
    "["
    + "".join(re.escape(chr(c)) for c in range(0x300, 0x10000) if unicodedata.combining(chr(c)))
    + "]+"
)
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")
_INNER_APOSTROPHE = re.compile(r"(?<=[^\W_])'(?=[^\W_])")
#: A word: letters and digits of any script. Everything else separates words.
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower-case, without accents, compatibility forms, look-alikes or invisible characters."""
    if text.isascii():
        # The fast path of nearly every text: nothing below would change but the case.
        return text.casefold().translate(_APOSTROPHES)
    text = to_latin(unicodedata.normalize("NFKC", text.translate(_INVISIBLE)))
    decomposed = unicodedata.normalize("NFKD", text)
    if _BEYOND_BMP.search(decomposed):
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    else:
        text = _COMBINING.sub("", decomposed)
    # Once more after casefold: a capital with no look-alike may have a lower-case form
    # that has one ("Σ" → "σ", like "o"); reading it twice keeps folding idempotent.
    return to_latin(text.casefold()).translate(_APOSTROPHES).translate(_STROKED)


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, folded: what matching looks at."""
    return tuple(_WORD.findall(_INNER_APOSTROPHE.sub("", fold(text))))


def words_as_written(text: str) -> tuple[str, ...]:
    """The words of ``text`` in lower case but with their accents: "DỪNG" is "dừng", not
    "dung" (which, without diacritics, may be "đừng", "đúng", "dùng" or a name)."""
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).casefold()
    text = unicodedata.normalize("NFC", text.translate(_APOSTROPHES))
    return tuple(_WORD.findall(_INNER_APOSTROPHE.sub("", text)))


def key(text: str) -> str:
    """The words run together: the lookup key of a keyword or a whole message."""
    return "".join(words(text))
