"""Addresses: the keys consent is stored under.

A phone number becomes E.164 (``+14155550100``), a short code stays digits
(``12345``), an email is trimmed and lower-cased. Every written form of one
number yields the same key, so duplicate contacts share one consent (R13).

Normalisation checks that a number is *possible* (right length for its
country), not that it is *valid* in phonenumbers' numbering-plan metadata: a
STOP from a number in an area code newer than our metadata must still be
recorded. Whether a number can receive texts is the send policy's question
(``is_valid_phone``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from app.errors import InvalidAddress

__all__ = [
    "Address",
    "AddressKind",
    "is_valid_phone",
    "normalize",
    "normalize_line",
    "sms_recipient",
]


class AddressKind(StrEnum):
    PHONE = "phone"
    SHORT_CODE = "short_code"
    EMAIL = "email"


@dataclass(frozen=True)
class Address:
    value: str
    kind: AddressKind

    def __str__(self) -> str:
        return self.value


# Short codes are 3 to 8 digits (US and Canada 5-6, UK, France and Germany 5,
# India 5-6, Australia up to 8). Providers send phone numbers in E.164 with a
# "+", so bare digits from a provider are a short code. A person may type a
# national number as bare digits, though, and in some countries (Singapore,
# Denmark, Norway, ...) those are 8 digits: 7 or 8 digits that make a possible
# number of the default region are read as that number.
_SHORT_CODE = re.compile(r"\d{3,8}")
_ALWAYS_SHORT_CODE = 6
_EMAIL = re.compile(r"[^@\s]{1,64}@(?:[^@\s.]+\.)+[^@\s.]+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def normalize(raw: str, default_region: str = "US") -> Address:
    """The canonical address for ``raw``.

    Args:
        raw: a phone number in any common written form, a short code, or an email.
        default_region: the country of numbers written without a country code.

    Raises:
        InvalidAddress: naming ``raw`` and why it was rejected.
    """
    # NFKC turns full-width digits and other compatibility forms into ASCII. The
    # invisible characters go first: left in, they would keep NFKC from composing
    # what they separate ("e", ZWSP, U+0301), and the key would not be canonical.
    text = unicodedata.normalize("NFKC", raw.translate(_INVISIBLE)).strip()
    if not text:
        raise InvalidAddress(raw, "it is empty")
    if "@" in text:
        return _email(raw, text)
    if _SHORT_CODE.fullmatch(text):
        # \d matches any script's digits, which NFKC leaves alone (Arabic-Indic...).
        digits = "".join(str(unicodedata.decimal(c)) for c in text)
        if len(digits) <= _ALWAYS_SHORT_CODE or not _possible_phone(digits, default_region):
            return Address(digits, AddressKind.SHORT_CODE)
        text = digits
    return Address(_phone(raw, text, default_region), AddressKind.PHONE)


def normalize_line(raw: str, default_region: str = "US") -> Address:
    """Like ``normalize``, for our own sending lines: a phone number or a short code."""
    address = normalize(raw, default_region)
    if address.kind is AddressKind.EMAIL:
        raise InvalidAddress(raw, "a line is a phone number or a short code, not an email")
    return address


def is_valid_phone(value: str) -> bool:
    """Whether an E.164 number is valid in phonenumbers' numbering-plan metadata."""
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(value, None)))
    except NumberParseException:
        return False


#: Already-canonical NANP numbers (+1, area code and exchange not starting 0/1):
#: normalize() would return them unchanged, so a campaign of millions skips it.
_CANONICAL_NANP = re.compile(r"\+1[2-9]\d\d[2-9]\d{6}")


def sms_recipient(raw: str, default_region: str = "US") -> str:
    """The E.164 number a text to ``raw`` goes to.

    Raises:
        InvalidAddress: ``raw`` is not a phone number, or not one its country's
            numbering plan has (texts cannot reach it).
    """
    text = raw.strip()
    if _CANONICAL_NANP.fullmatch(text):
        valid, value = _nanp_exchange_is_valid(text[:8]), text
    else:
        address = normalize(raw, default_region)
        if address.kind is not AddressKind.PHONE:
            what = "an email address" if address.kind is AddressKind.EMAIL else "a short code"
            raise InvalidAddress(raw, f"texts go to phone numbers, and this is {what}")
        valid, value = is_valid_phone(address.value), address.value
    if not valid:
        raise InvalidAddress(raw, "no such number in its country's numbering plan")
    return value


@cache
def _nanp_exchange_is_valid(prefix: str) -> bool:
    """Whether numbers of the NANP exchange ``+1NPANXX`` are valid.

    phonenumbers' NANP patterns decide validity on the area code and exchange
    alone (the last four digits are always \\d{4}); tests/test_addresses.py
    checks that against sampled numbers. Caching per exchange makes the check
    of a million-number campaign take a second instead of a minute.
    """
    return is_valid_phone(prefix + "0000")


def _phone(raw: str, text: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as error:
        raise InvalidAddress(raw, _parse_problem(error)) from None
    if number.extension:
        raise InvalidAddress(raw, "phone extensions cannot receive text messages")
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        raise InvalidAddress(raw, _length_problem(possible, default_region))
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _possible_phone(digits: str, region: str) -> bool:
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException:
        return False
    possible = phonenumbers.is_possible_number_with_reason(number)
    return bool(possible == ValidationResult.IS_POSSIBLE)


#: The longest email address SMTP carries (RFC 5321: a 256-octet path, brackets included).
MOST_EMAIL = 254


def _email(raw: str, text: str) -> Address:
    email = text.lower()
    if len(email) > MOST_EMAIL:
        raise InvalidAddress(raw, f"an email address has at most {MOST_EMAIL} characters")
    if not _EMAIL.fullmatch(email) or any(unicodedata.category(c) == "Cc" for c in email):
        raise InvalidAddress(raw, "expected an email address such as name@example.com")
    return Address(email, AddressKind.EMAIL)


def _parse_problem(error: NumberParseException) -> str:
    problems = {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        NumberParseException.NOT_A_NUMBER: "expected a phone number, a short code or an email",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
        NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
        NumberParseException.TOO_LONG: "too long to be a phone number",
    }
    return problems.get(error.error_type, "expected a phone number, a short code or an email")


def _length_problem(reason: int, default_region: str) -> str:
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return "unknown country code"
    if reason in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return (
            "too short: include the area code (numbers without a country code are read "
            f"as {default_region} numbers)"
        )
    if reason == ValidationResult.TOO_LONG:
        return "too long for a phone number of its country"
    return "not a possible phone number length for its country"
