"""Addresses: every written form of one number, short code or email gives one key."""

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from app.addresses import (
    Address,
    AddressKind,
    is_valid_phone,
    normalize,
    normalize_line,
    sms_recipient,
)
from app.errors import InvalidAddress

PHONE = AddressKind.PHONE
SHORT_CODE = AddressKind.SHORT_CODE
EMAIL = AddressKind.EMAIL

ZWSP = "\u200b"  # zero-width space
BOM = "\ufeff"  # zero-width no-break space (byte order mark)
NBSP = "\u00a0"  # no-break space


def full_width(text: str) -> str:
    """``text`` with ASCII digits and '+' in their full-width forms (＋１２３)."""
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "+0123456789"})


def arabic_indic(text: str, zero: str = "\u0660") -> str:
    """``text`` with ASCII digits in another script (default Arabic-Indic: ٠١٢)."""
    return text.translate({ord(c): ord(zero) + int(c) for c in string.digits})


# -- written forms ----------------------------------------------------------------------

WRITTEN_FORMS = [
    # (raw, default region, expected value, expected kind)
    pytest.param("+14155550100", "US", "+14155550100", PHONE, id="e164"),
    pytest.param("+1 415 555 0100", "US", "+14155550100", PHONE, id="e164-spaces"),
    pytest.param("+1-415-555-0100", "US", "+14155550100", PHONE, id="e164-dashes"),
    pytest.param("+1.415.555.0100", "US", "+14155550100", PHONE, id="e164-dots"),
    pytest.param("+1 (415) 555-0100", "US", "+14155550100", PHONE, id="e164-parentheses"),
    pytest.param("(415) 555-0100", "US", "+14155550100", PHONE, id="us-national-parentheses"),
    pytest.param("415-555-0100", "US", "+14155550100", PHONE, id="us-national-dashes"),
    pytest.param("415.555.0100", "US", "+14155550100", PHONE, id="us-national-dots"),
    pytest.param("4155550100", "US", "+14155550100", PHONE, id="us-national-digits"),
    pytest.param("1 415 555 0100", "US", "+14155550100", PHONE, id="us-trunk-prefix"),
    pytest.param("011 44 7911 123456", "US", "+447911123456", PHONE, id="us-idd-prefix"),
    pytest.param("tel:+1-415-555-0100", "US", "+14155550100", PHONE, id="tel-uri"),
    pytest.param(full_width("+1 415 555 0100"), "US", "+14155550100", PHONE, id="full-width"),
    pytest.param(arabic_indic("+1 415 555 0100"), "US", "+14155550100", PHONE, id="arabic-indic"),
    pytest.param(f"{ZWSP}+14155550100{BOM}", "US", "+14155550100", PHONE, id="zero-width-around"),
    pytest.param(f"+1415{ZWSP}555{BOM}0100", "US", "+14155550100", PHONE, id="zero-width-inside"),
    pytest.param("  +1 415 555 0100\n", "US", "+14155550100", PHONE, id="whitespace-newline"),
    pytest.param("\t\r\n(415) 555-0100 \n", "US", "+14155550100", PHONE, id="tabs-newlines"),
    pytest.param(
        f"{NBSP}415{NBSP}555{NBSP}0100\u3000",
        "US",
        "+14155550100",
        PHONE,
        id="no-break-and-ideographic-spaces",
    ),
    pytest.param("+44 7911 123456", "US", "+447911123456", PHONE, id="gb-international"),
    pytest.param("07911 123456", "GB", "+447911123456", PHONE, id="gb-national"),
    pytest.param("+44 (0)7911 123456", "US", "+447911123456", PHONE, id="gb-optional-zero"),
    pytest.param("+33 6 12 34 56 78", "US", "+33612345678", PHONE, id="fr-international"),
    pytest.param("06 12 34 56 78", "FR", "+33612345678", PHONE, id="fr-national"),
    pytest.param("+49 1512 3456789", "US", "+4915123456789", PHONE, id="de-international"),
    pytest.param("01512 3456789", "DE", "+4915123456789", PHONE, id="de-national"),
    pytest.param("+91 98765 43210", "US", "+919876543210", PHONE, id="in-international"),
    pytest.param("098765 43210", "IN", "+919876543210", PHONE, id="in-national"),
    pytest.param("+55 11 91234-5678", "US", "+5511912345678", PHONE, id="br-international"),
    pytest.param("(11) 91234-5678", "BR", "+5511912345678", PHONE, id="br-national"),
    pytest.param("12345", "US", "12345", SHORT_CODE, id="short-code-5"),
    pytest.param("123456", "US", "123456", SHORT_CODE, id="short-code-6"),
    pytest.param(" 12345 ", "US", "12345", SHORT_CODE, id="short-code-whitespace"),
    pytest.param(full_width("12345"), "US", "12345", SHORT_CODE, id="short-code-full-width"),
    pytest.param(arabic_indic("12345"), "US", "12345", SHORT_CODE, id="short-code-arabic-indic"),
    pytest.param(
        arabic_indic("12345", zero="\u0966"), "IN", "12345", SHORT_CODE, id="short-code-devanagari"
    ),
    pytest.param(f"{ZWSP}12345{BOM}", "US", "12345", SHORT_CODE, id="short-code-zero-width"),
    pytest.param("12345", "GB", "12345", SHORT_CODE, id="short-code-other-region"),
    pytest.param("  Jane.Doe@Example.COM ", "US", "jane.doe@example.com", EMAIL, id="email"),
    pytest.param("jane@example.com\n", "US", "jane@example.com", EMAIL, id="email-newline"),
    pytest.param(
        f"{ZWSP}jane@example.com{BOM}", "US", "jane@example.com", EMAIL, id="email-zero-width"
    ),
    pytest.param(
        "ＪＡＮＥ@ＥＸＡＭＰＬＥ.ＣＯＭ", "US", "jane@example.com", EMAIL, id="email-full-width"
    ),
    pytest.param(
        "jose\u0301@example.com", "US", "jos\u00e9@example.com", EMAIL, id="email-decomposed-accent"
    ),
    pytest.param(
        f"jose{ZWSP}\u0301@example.com",
        "US",
        "jos\u00e9@example.com",
        EMAIL,
        id="email-zero-width-before-accent",
    ),
]


@pytest.mark.parametrize(("raw", "region", "value", "kind"), WRITTEN_FORMS)
def test_it_normalises_each_written_form(
    raw: str, region: str, value: str, kind: AddressKind
) -> None:
    assert normalize(raw, region) == Address(value, kind)


def test_the_default_region_is_us() -> None:
    assert normalize("(415) 555-0100") == Address("+14155550100", PHONE)


def test_an_address_prints_as_its_value() -> None:
    assert str(normalize("+1 415 555 0100")) == "+14155550100"


# -- invalid input ----------------------------------------------------------------------

INVALID = [
    # (raw, a fragment of the reason)
    pytest.param("", "empty", id="empty"),
    pytest.param("   \n\t", "empty", id="whitespace-only"),
    pytest.param(f"{ZWSP}{BOM}", "empty", id="zero-width-only"),
    pytest.param("hello", "expected a phone number", id="a-word"),
    pytest.param("+1 555 0100", "too short", id="local-only"),
    pytest.param("555-0100", "include the area code", id="us-seven-digits-with-dash"),
    pytest.param("415-555-0100 ext 3", "extension", id="extension"),
    pytest.param("+1 415 555 0100 x3", "extension", id="extension-x"),
    pytest.param("tel:+1-415-555-0100;ext=3", "extension", id="extension-tel-uri"),
    pytest.param("+999 123456789", "unknown country code", id="unknown-country-code"),
    pytest.param("1" * 30, "too long", id="thirty-digits"),
    pytest.param("9" * 300, "too long", id="three-hundred-digits"),
    pytest.param("+1 415 555 0100 1234", "too long", id="e164-too-long"),
    pytest.param("a@b", "email address", id="email-no-dot-in-domain"),
    pytest.param("a@@b.com", "email address", id="email-two-ats"),
    pytest.param("a@b@c.com", "email address", id="email-two-separate-ats"),
    pytest.param("@example.com", "email address", id="email-no-local-part"),
    pytest.param("jane@", "email address", id="email-no-domain"),
    pytest.param("jane doe@example.com", "email address", id="email-space-in-local-part"),
    pytest.param("jane@exa mple.com", "email address", id="email-space-in-domain"),
    pytest.param("jane@example.com.", "email address", id="email-trailing-dot"),
    pytest.param("x" * 65 + "@example.com", "email address", id="email-local-part-too-long"),
]


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_it_rejects_invalid_input_naming_it_and_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        normalize(raw)
    message = str(caught.value)
    # A long input is named by its first 80 characters, not echoed whole.
    shown = repr(raw) if len(raw) <= 80 else f"{raw[:80]!r} (and {len(raw) - 80} more)"
    assert message.startswith(shown)
    assert reason in message
    assert caught.value.raw == raw


def test_it_rejects_an_extension() -> None:
    with pytest.raises(InvalidAddress, match="extensions cannot receive text messages"):
        normalize("415-555-0100 ext 3")


def test_a_short_number_is_read_in_the_default_region() -> None:
    with pytest.raises(InvalidAddress, match="read as GB numbers"):
        normalize("7911 12", "GB")


def test_a_national_number_of_another_country_is_rejected_in_the_default_region() -> None:
    with pytest.raises(InvalidAddress, match="too long"):
        normalize("07911 123456", "US")


@pytest.mark.parametrize("region", ["SG", "DK", "NO"])
def test_an_unspaced_eight_digit_national_number_is_a_phone_number(region: str) -> None:
    assert normalize("81234567", region) == normalize("8123 4567", region)
    assert normalize("81234567", region).kind is PHONE


@pytest.mark.parametrize(("digits", "region"), [("44844", "DE"), ("12345", "US"), ("123456", "GB")])
def test_up_to_six_bare_digits_are_always_a_short_code(digits: str, region: str) -> None:
    # "44844" is also a possible German number, but German short codes are 5 digits.
    assert normalize(digits, region) == Address(digits, SHORT_CODE)


def test_eight_bare_digits_that_are_no_number_of_the_region_are_a_short_code() -> None:
    assert normalize("12345678", "US") == Address("12345678", SHORT_CODE)


# -- lines ------------------------------------------------------------------------------


def test_a_line_is_a_phone_number_or_a_short_code() -> None:
    assert normalize_line("(415) 555-0100") == Address("+14155550100", PHONE)
    assert normalize_line(" 12345 ") == Address("12345", SHORT_CODE)
    assert normalize_line("07911 123456", "GB") == Address("+447911123456", PHONE)


def test_a_line_is_not_an_email() -> None:
    with pytest.raises(InvalidAddress, match="not an email") as caught:
        normalize_line("jane@example.com")
    assert "'jane@example.com'" in str(caught.value)


def test_a_line_is_rejected_like_any_address() -> None:
    with pytest.raises(InvalidAddress, match="extension"):
        normalize_line("415-555-0100 ext 3")


# -- is_valid_phone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        pytest.param("+14155550100", True, id="us"),
        pytest.param("+447911123456", True, id="gb-mobile"),
        pytest.param("+33612345678", True, id="fr-mobile"),
        pytest.param("+10155550100", False, id="us-area-code-starting-with-0"),
        pytest.param("+19995550100", False, id="us-unassigned-area-code"),
        pytest.param("+1415555010", False, id="us-too-short"),
        pytest.param("14155550100", False, id="no-plus"),
        pytest.param("12345", False, id="short-code"),
        pytest.param("jane@example.com", False, id="email"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_valid_phone_checks_the_numbering_plan(value: str, valid: bool) -> None:
    assert is_valid_phone(value) is valid


def test_a_possible_but_invalid_number_is_still_normalised() -> None:
    # A STOP from an area code newer than our metadata must still be recorded.
    address = normalize("+1 015 555 0100")
    assert address == Address("+10155550100", PHONE)
    assert not is_valid_phone(address.value)


# -- properties -------------------------------------------------------------------------

REGIONS = [
    "US", "CA", "GB", "FR", "DE", "IN", "BR", "MX", "AU", "JP",
    "IT", "NL", "ZA", "AR", "KR", "RU", "SE", "CN", "SG", "DK", "NO",
]  # fmt: skip

SEPARATORS = ["", " ", "-", "."]
INVISIBLE = ["", ZWSP, BOM, "\u200c", "\u200d", "\u2060"]
WHITESPACE = st.text(alphabet=" \t\n\r\u00a0\u3000", max_size=3)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def example_mobile_number(region: str) -> phonenumbers.PhoneNumber:
    number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    assert number is not None, region
    return number


EXAMPLE_MOBILE_NUMBERS = {region: example_mobile_number(region) for region in REGIONS}


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, phonenumbers.PhoneNumber]:
    """A region and one of its mobile numbers: the example number, trailing digits varied."""
    region = draw(st.sampled_from(REGIONS))
    example_number = EXAMPLE_MOBILE_NUMBERS[region]
    national = str(example_number.national_number)
    varied = draw(st.integers(min_value=0, max_value=4))
    tail = draw(st.text(alphabet=string.digits, min_size=varied, max_size=varied))
    number = phonenumbers.PhoneNumber(
        country_code=example_number.country_code,
        national_number=int(national[: len(national) - varied] + tail),
    )
    assume(phonenumbers.is_possible_number(number))
    return region, number


@st.composite
def perturbed(draw: st.DrawFn, rendering: str) -> str:
    """``rendering`` with random separators between digits, invisible characters,
    surrounding whitespace and maybe full-width digits."""
    out: list[str] = []
    for char in rendering:
        if char in " -.":
            continue  # replaced by the random separators below
        out.append(char)
        if char.isdigit():
            out.append(draw(st.sampled_from(SEPARATORS)))
            out.append(draw(st.sampled_from(INVISIBLE)))
    text = "".join(out).rstrip(" -.")
    if draw(st.booleans()):
        text = full_width(text)
    return draw(WHITESPACE) + draw(st.sampled_from(INVISIBLE)) + text + draw(WHITESPACE)


FORMATS = {
    "E164": PhoneNumberFormat.E164,
    "INTERNATIONAL": PhoneNumberFormat.INTERNATIONAL,
    "NATIONAL": PhoneNumberFormat.NATIONAL,
    "RFC3966": PhoneNumberFormat.RFC3966,
}


@PROPERTY_SETTINGS
@given(data=st.data(), generated=phone_numbers())
def test_every_written_form_of_a_number_gives_the_same_key(
    data: st.DataObject, generated: tuple[str, phonenumbers.PhoneNumber]
) -> None:
    region, number = generated
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    for name, number_format in FORMATS.items():
        rendering = phonenumbers.format_number(number, number_format)
        written = data.draw(perturbed(rendering), label=name)
        assert normalize(written, region) == Address(e164, PHONE), (name, rendering)


ADDRESS_CHARACTERS = (
    string.digits + "+-.() @abcxyzABCXYZ" + "\t\n" + ZWSP + BOM + "\u0301\u0308" + "１２＋ａ"
)
ADDRESS_TEXT = st.text(alphabet=ADDRESS_CHARACTERS, min_size=1, max_size=15)
RANDOM_TEXT = st.one_of(
    st.text(max_size=30),
    ADDRESS_TEXT,
    st.builds("{}@{}.{}".format, ADDRESS_TEXT, ADDRESS_TEXT, ADDRESS_TEXT),
    st.text(alphabet="0123456789\u0660\u0661\u0662\u0967\u0968１２", min_size=3, max_size=8),
)


def normalised_or_none(raw: str, region: str) -> Address | None:
    try:
        return normalize(raw, region)
    except InvalidAddress:
        return None


@PROPERTY_SETTINGS
@given(raw=RANDOM_TEXT, region=st.sampled_from(REGIONS))
@example(raw=f"a@e{ZWSP}\u0301x.com", region="US")
@example(raw=arabic_indic("123"), region="US")
def test_normalising_random_text_is_idempotent(raw: str, region: str) -> None:
    address = normalised_or_none(raw, region)
    if address is None:
        return
    # The key stands for itself, whatever the default region of the second reading.
    assert normalize(address.value) == address
    assert normalize(address.value, region) == address
    assert address.value.isascii() or address.kind is EMAIL


@PROPERTY_SETTINGS
@given(data=st.data(), generated=phone_numbers(), format_name=st.sampled_from(list(FORMATS)))
def test_normalising_a_written_number_is_idempotent(
    data: st.DataObject, generated: tuple[str, phonenumbers.PhoneNumber], format_name: str
) -> None:
    region, number = generated
    written = data.draw(perturbed(phonenumbers.format_number(number, FORMATS[format_name])))
    address = normalize(written, region)
    assert normalize(address.value) == address


LOCAL_PART = st.text(
    alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20
)
LABEL = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=10)


@st.composite
def emails(draw: st.DrawFn) -> str:
    labels = draw(st.lists(LABEL, min_size=2, max_size=3))
    return f"{draw(LOCAL_PART)}@{'.'.join(labels)}"


@PROPERTY_SETTINGS
@given(email=emails(), data=st.data())
def test_every_case_and_whitespace_variant_of_an_email_gives_the_same_key(
    email: str, data: st.DataObject
) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(email), max_size=len(email)))
    varied = "".join(c.swapcase() if flip else c for c, flip in zip(email, flips, strict=True))
    invisible = data.draw(st.sampled_from(INVISIBLE))
    written = data.draw(WHITESPACE) + invisible + varied + data.draw(WHITESPACE)
    assert normalize(written) == normalize(email.upper()) == Address(email.lower(), EMAIL)


# -- sms_recipient's fast path ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\+1[2-9]\d\d[2-9]\d{6}", fullmatch=True))
def test_the_cached_nanp_check_agrees_with_phonenumbers(number: str) -> None:
    # sms_recipient decides canonical NANP numbers by their exchange (+1NPANXX), cached;
    # phonenumbers' patterns must not depend on the last four digits.
    try:
        fast: str | None = sms_recipient(number)
    except InvalidAddress:
        fast = None
    assert fast == (number if is_valid_phone(number) else None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550123", "+14155550123"),
        ("(415) 555-0123", "+14155550123"),
        (" +44 20 7946 0958 ", "+442079460958"),
    ],
)
def test_sms_recipient_gives_the_e164_number(raw: str, expected: str) -> None:
    assert sms_recipient(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("a@example.com", "texts go to phone numbers, and this is an email address"),
        ("12345", "texts go to phone numbers, and this is a short code"),
        ("+12005550100", "no such number in its country's numbering plan"),
        ("+447700900123", "no such number in its country's numbering plan"),
    ],
)
def test_sms_recipient_refuses_what_cannot_receive_texts(raw: str, why: str) -> None:
    with pytest.raises(InvalidAddress) as raised:
        sms_recipient(raw)
    assert raised.value.why == why


def test_an_email_must_fit_smtp_and_hold_no_control_character() -> None:
    longest = "jo@" + "a" * 247 + ".com"
    assert normalize(longest).value == longest  # 254 characters
    with pytest.raises(InvalidAddress, match="at most 254 characters"):
        normalize("j" + longest)
    for control in ("\x00", "\x1b", "\x7f"):
        with pytest.raises(InvalidAddress, match="expected an email address"):
            normalize(f"jo{control}@example.com")
