"""How many SMS segments a text takes (GSM 03.38 / UCS-2).

A text of only GSM-7 characters fits 160 to a message (153 per part when
split); one character outside that alphabet (an emoji, a curly quote, most
accents) makes the whole text UCS-2: 70 to a message, 67 per part. Replies
longer than one segment cost one message per segment on every send.
"""

from __future__ import annotations

import math

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters of the GSM extension table: each takes two of the 160 places.
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def segments(text: str) -> tuple[int, int, str]:
    """(segments, characters that fit in one, encoding) for ``text``."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    count = 1 if units <= single else math.ceil(units / part)
    return count, single, encoding
