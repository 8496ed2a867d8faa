"""What a text says, without its clothes: the normalisation keywords are matched on.

Case, accents, full-width letters, curly quotes, zero-width characters,
emoji, punctuation, hyphens and underscores never change what a keyword
means, so they are folded away here, once, for the message and for every
keyword in the config alike:

    "“Stop”  🛑"  →  ["stop"]          "OPT-OUT" / "opt_out" / "Opt Out"  →  ["opt", "out"]
    "ＳＴＯＰ"     →  ["stop"]          "ARRÊT"                           →  ["arret"]
    "don’t stop" → ["dont", "stop"]    (an apostrophe inside a word joins it)

A keyword's *key* is its words run together ("optout" for OPT OUT, OPT-OUT and
OPTOUT alike), so spacing never matters either: "S T O P" is "stop".
"""

from __future__ import annotations

import re
import unicodedata

#: Invisible characters people's phones insert; removed before anything else.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_INNER_APOSTROPHE = re.compile(r"(?<=[^\W_])'(?=[^\W_])")
#: A word: letters and digits of any script. Everything else separates words.
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Lower-case, without accents, compatibility forms or invisible characters."""
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE))
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return text.casefold().translate(_APOSTROPHES)


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, folded: what matching looks at."""
    return tuple(_WORD.findall(_INNER_APOSTROPHE.sub("", fold(text))))


def key(text: str) -> str:
    """The words run together: the lookup key of a keyword or a whole message."""
    return "".join(words(text))
