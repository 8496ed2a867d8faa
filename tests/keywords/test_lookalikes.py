"""Look-alike letters and stop-sign emoji: the data they come from, and what they leave alone."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.keywords import ConfigError, lookalikes, signs, text
from app.keywords.text import fold, words


def test_the_table_comes_from_unicode_confusables() -> None:
    table = lookalikes.table()
    assert len(table) > 60
    assert table[ord("\u0405")] == "S"  # CYRILLIC CAPITAL LETTER DZE
    assert table[ord("\u0440")] == "p"  # CYRILLIC SMALL LETTER ER
    assert table[ord("\u0399")] == "I"  # GREEK CAPITAL IOTA: in the class of "l" and "I"
    assert table[ord("\u0442")] == "t"  # CYRILLIC SMALL TE, via LATIN LETTER SMALL CAPITAL T
    for code, latin in table.items():
        assert unicodedata.name(chr(code)).startswith(("CYRILLIC", "GREEK"))
        assert latin.isascii() and latin.isalpha() and len(latin) == 1


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("\u0405\u0422\u041e\u0420", ("stop",)),  # ЅТОР
        ("ST\u041eP now", ("stop", "now")),
        ("\u0397\u0395L\u03a1", ("help",)),  # ΗΕLΡ
        ("стоп", ("стоп",)),  # п has no look-alike: a real Russian word stays Russian
        ("Сколько стоит", ("сколько", "стоит")),
        ("Ευχαριστώ πολύ", ("ευχαριστω", "πολυ")),
        ("ОК", ("ok",)),  # all look-alikes: read as "ok", which is no keyword
    ],
)
def test_look_alikes_read_as_latin_and_real_words_stay(written: str, read: tuple[str]) -> None:
    assert words(written) == read


def test_ascii_texts_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(_text: str) -> str:
        raise AssertionError("an ASCII text went through look-alike folding")

    monkeypatch.setattr(text, "to_latin", never)
    assert fold("Don't STOP by") == "don't stop by"


def _slow_fold(value: str) -> str:
    """What fold did for every text before its ASCII fast path."""
    value = unicodedata.normalize("NFKC", value)
    decomposed = unicodedata.normalize("NFKD", value)
    value = "".join(c for c in decomposed if not unicodedata.combining(c))
    return value.casefold().translate(str.maketrans({"`": "'"}))


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_fast_path_folds_like_the_slow_one(value: str) -> None:
    assert fold(value) == _slow_fold(value)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=0x370, max_codepoint=0x52F) | st.just(" ")))
def test_greek_and_cyrillic_fold_idempotently(value: str) -> None:
    once = words(value)
    assert words(" ".join(once)) == once


def test_accents_go_in_every_script_but_emoji_texts_too() -> None:
    assert words("ARRE\u0302T \U0001f6d1") == ("arret",)
    assert words("Hủy đăng ký") == ("huy", "dang", "ky")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('stop_signs: ["\U0001f6d1", "ab"]\n', "x.yaml:1: stop_signs[1]: expected one emoji"),
        ('stop_signs:\n  - "\U0001f6d1\U0001f6ab"\n', "x.yaml:2: stop_signs[0]: expected one"),
        ("signs: []\n", "x.yaml:1: expected one key, stop_signs: a list of emoji"),
    ],
)
def test_emoji_file_errors_name_their_line(content: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        signs.parse(content, "x.yaml")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "written", ["\U0001f6d1", "\u270b\U0001f3fd", "\u270b\ufe0f", "\U0001f645\u200d\u2642\ufe0f"]
)
def test_modifiers_never_hide_a_stop_sign(written: str) -> None:
    assert signs.has_stop_sign(written)
    assert signs.has_stop_sign(written * 3)


def test_other_emoji_are_not_stop_signs() -> None:
    assert not signs.has_stop_sign("\U0001f44d\U0001f3fb \u2764\ufe0f \U0001f697")
