"""Properties of keyword matching: normalising is stable, and clothes never change a keyword.

(a) ``words`` and ``key`` are idempotent: folding folded text changes nothing.
(b) Case, surrounding punctuation, quotes, whitespace, zero-width characters and emoji
    around a default keyword (or a topic command) never change what it asks for.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.keywords.text import key, words

KEYWORDS_YAML = Path(__file__).resolve().parents[2] / "keywords.yaml"

#: Every keyword of the shipped file, and a topic command of each kind.
KEYWORDS = (
    # opt-out
    "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "UNSUB", "CANCEL", "END", "QUIT", "REVOKE",
    "OPTOUT", "OPT OUT", "REMOVE", "ARRET", "TD",
    # opt-in
    "START", "UNSTOP", "YES",
    # help
    "HELP", "INFO", "AIDE",
    # responders
    "HOURS", "JOIN",
    # topic commands
    "STOP PRICE DROP", "START NEW ARRIVAL",
)  # fmt: skip

WHITESPACE = (" ", "  ", "\n", "\t", "\r\n", "\u00a0", "\u3000")
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
PUNCTUATION = (".", "!", "?", ",", "...", "!!!", "?!", "-", "*", "~", ":", ";", "(", ")")
QUOTES = (
    ('"', '"'),
    ("'", "'"),
    ("\u201c", "\u201d"),  # \u201c \u201d
    ("\u2018", "\u2019"),  # \u2018 \u2019
    ("\u00ab", "\u00bb"),  # \u00ab \u00bb
    ("`", "`"),
)
#: Emoji without letters or digits in them (no keycaps, no enclosed letters).
EMOJI = (
    "\U0001f6d1",  # stop sign
    "\u270b",  # raised hand
    "\U0001f44d",  # thumbs up
    "\U0001f44d\U0001f3fd",  # thumbs up, skin tone
    "\U0001f621",  # angry face
    "\u2764\ufe0f",  # red heart with variation selector
    "\U0001f64f",  # folded hands
    "\U0001f697",  # car
    "\U0001f1fa\U0001f1f8",  # flag
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family, joined by ZWJ
)


@functools.cache
def matcher() -> Any:
    """The matcher for the shipped file (imported here: it is built alongside these tests)."""
    from app.keywords import Matcher, load

    return Matcher(load(KEYWORDS_YAML))


def outcome(text: str) -> tuple[Any, ...]:
    intent = matcher().match(text)
    return (intent.action, intent.topic, intent.responder, intent.needs_review)


# -- (a) normalisation is idempotent ------------------------------------------------------

#: Characters that normalisation works hard on, to mix into arbitrary text.
TRICKY = "".join(
    (
        "STOPstop PRICEdrop",
        "ÀÉÎõüçßİıſ\ufb01",  # accents, sharp s, dotted/dotless i, long s, fi ligature
        "\uff33\uff34\uff2f\uff30\uff53\uff54\uff4f\uff50\uff11",  # full-width STOPstop1
        "\u03a3\u03c3\u03c2\u0390\u03b0ǅǈŉ\u1e9e\u212b",  # Greek sigmas, titlecase, Angstrom
        "'\u2019\u2018\u02bc`\u00b4_-\u2013\u2014.,!?\"\u201c\u201d\u00ab\u00bb",  # quotes, dashes
        " \t\n\u00a0\u3000",  # whitespace
        "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e",  # invisible
        "\u0301\u0308\u0345\ufe0f",  # combining marks, variation selector
        "\U0001f6d1\U0001f44d\U0001f3fd",  # emoji, skin tone
        "\u00b2\u00bd\u216b\u24c8\u338f",  # superscript, fraction, roman numeral, circled S, kg
    )
)
texts = st.one_of(st.text(), st.text(alphabet=st.sampled_from(TRICKY)))


@settings(max_examples=300)
@given(texts)
def test_key_is_idempotent(text: str) -> None:
    assert key(key(text)) == key(text)


@settings(max_examples=300)
@given(texts)
def test_words_are_idempotent(text: str) -> None:
    once = words(text)
    assert words(" ".join(once)) == once


# -- (b) clothes around a keyword never change its intent ---------------------------------


@st.composite
def recased(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if up else c.lower() for c, up in zip(text, flips, strict=True))


@st.composite
def with_zero_width(draw: st.DrawFn, text: str) -> str:
    """Zero-width characters anywhere, inside the keyword too."""
    chars = list(text)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(chars)))
        chars.insert(at, draw(st.sampled_from(ZERO_WIDTH)))
    return "".join(chars)


def clothes() -> st.SearchStrategy[str]:
    """Something that may go before or after a keyword."""
    return st.lists(
        st.one_of(
            st.sampled_from(WHITESPACE),
            st.sampled_from(ZERO_WIDTH),
            st.sampled_from(PUNCTUATION),
            st.sampled_from(EMOJI),
        ),
        max_size=4,
    ).map("".join)


@st.composite
def dressed(draw: st.DrawFn) -> tuple[str, str]:
    """(a bare keyword, the same keyword dressed up)."""
    bare = draw(st.sampled_from(KEYWORDS))
    text = draw(recased(bare))
    text = draw(with_zero_width(text))
    if draw(st.booleans()):
        opening, closing = draw(st.sampled_from(QUOTES))
        text = opening + text + closing
    text = draw(clothes()) + text + draw(clothes())
    return bare, text


@settings(max_examples=250, deadline=None)
@given(dressed())
def test_clothes_never_change_a_keyword(pair: tuple[str, str]) -> None:
    bare, text = pair
    assert outcome(text) == outcome(bare)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(KEYWORDS), st.sampled_from(EMOJI), st.sampled_from(WHITESPACE))
def test_emoji_around_a_keyword(bare: str, emoji: str, space: str) -> None:
    """The common phone forms: "STOP \U0001f6d1", "\U0001f6d1STOP", "\U0001f44d YES \U0001f44d"."""
    expected = outcome(bare)
    assert outcome(bare + space + emoji) == expected
    assert outcome(emoji + bare) == expected
    assert outcome(emoji + space + bare + space + emoji) == expected
