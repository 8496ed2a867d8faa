"""No phone number, email address, message body or secret in a log line.

Two layers. At the source, every log call that could name a contact masks it
(``mask_address``, ``mask_text``) and no log call is given a message body;
database errors are described without the text the database wrote
(``describe_database_error``), because PostgreSQL quotes refused rows and
values there (``Failing row contains (...)``, a body among them).

Under that, a safety net: ``MaskingFormatter`` wraps the formatter of every
handler optgate writes through (its own on the root logger, gunicorn's error
and access logs, RQ's through the root) and masks the finished line, exception
text included. What the net recognises is in ``mask_text``; a body it cannot
recognise, which is why bodies are kept out at the source.

Masks keep enough to tell entries apart while debugging: a number keeps its
country code and last two digits (``+1********99``), an email its first
letters and top-level domain (``a***@e***.com``).
"""

from __future__ import annotations

import logging
import re
import traceback
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import phonenumbers
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, StatementError

from app.addresses import AddressKind, normalize
from app.errors import InvalidAddress

if TYPE_CHECKING:
    from app.addresses import Address
    from app.settings import Settings

__all__ = [
    "LOG_FORMAT",
    "MaskingFormatter",
    "describe_database_error",
    "frames",
    "install",
    "mask_access_atoms",
    "mask_address",
    "mask_email",
    "mask_handlers",
    "mask_phone",
    "mask_text",
]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: What replaces a secret found in a line.
SECRET = "[secret]"
#: What replaces a line whose masking failed: leaking it would be worse than losing it.
UNMASKABLE = "[a log line was dropped: it could not be masked]"

#: The secrets of this process's settings, replaced wherever they appear.
_secrets: tuple[str, ...] = ()

# A "+" (or its URL encoding, or the full-width one) and 7 to 15 digits, with at
# most two spaces, dots, dashes or parentheses between two digits ("+1 (415)").
# 7 digits is the shortest E.164 number in use; the access log's "+0000" has 4.
_PHONE = re.compile(r"(?:\+|%2[Bb]|\uff0b)\d(?:[ .\-()]{0,2}\d){6,14}(?!\d)")
# Every repetition is bounded: unbounded ones make a long run of "+1+1..." or
# "a.a.a..." take quadratic time, and a log line is any client's input.
_EMAIL = re.compile(r"[\w.%+\-]{1,64}(?:@|%40)[\w\-]{1,63}(?:\.[\w\-]{1,63}){1,8}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}://[^\s:/@]{0,256}:)[^\s@/]{1,256}@")
# The path segment of the contacts API names a contact in any written form,
# also ones the two patterns above do not recognise (415-555-0199).
_CONTACT_SEGMENT = re.compile(r"(/contacts/)([^/?#\s\"']+)")
# What PostgreSQL and SQLAlchemy write into an error's text that carries values.
_DATABASE_VALUES = (
    # The whole refused row (CHECK, NOT NULL): a message body among its columns.
    (
        re.compile(
            r"Failing row contains \(.*?"
            r"(?=\n\[SQL:|\n\nThe above exception|\n\nDuring handling|\Z)",
            re.DOTALL,
        ),
        "Failing row contains (row hidden)",
    ),
    # A duplicate or missing key's values (an address, a provider id).
    (re.compile(r"Key \(([^)\n]*)\)=\([^\n]*"), r"Key (\1)=(hidden)"),
    # Bound parameters, where an engine without hide_parameters shows them.
    (re.compile(r"\[parameters: [^\n]*"), "[parameters hidden]"),
    # A value the database could not read, quoted after the type's name.
    (
        re.compile(r"(invalid input (?:syntax|value) for [^:\n]+: |out of range: )\"[^\n]*\""),
        r'\1"(value hidden)"',
    ),
    # PostgreSQL's CONTEXT line with a parameter's value (log_parameter_max_length_on_error).
    (re.compile(r"(parameter \$\d+ = )'[^\n]*'"), r"\1'(value hidden)'"),
)
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.+\-Z]*)?")
#: Request and environment atoms of the access log that carry credentials.
_CREDENTIAL = re.compile(r"authorization|signature|cookie|token|secret|password", re.IGNORECASE)


# -- masks ------------------------------------------------------------------------------


def mask_phone(number: str) -> str:
    """``+14155550199`` as ``+1********99``: the country code and the last two digits."""
    digits = "".join(str(unicodedata.decimal(c, "")) for c in number if c.isdigit())
    if len(digits) < 5:
        return "*" * len(digits)
    code = _country_code(digits)
    hidden = max(len(digits) - len(code) - 2, 1)
    return f"+{code}{'*' * hidden}{digits[-2:]}"


def _country_code(digits: str) -> str:
    try:
        code = phonenumbers.parse("+" + digits, None).country_code
    except phonenumbers.NumberParseException:
        return digits[:1]
    return str(code) if code else digits[:1]


def mask_email(email: str) -> str:
    """``alice@example.com`` as ``a***@e***.com``."""
    local, _, domain = unquote(email).rpartition("@")
    top = domain.rsplit(".", 1)[1] if "." in domain else ""
    return f"{local[:1]}***@{domain[:1]}***.{top}"


def mask_address(address: Address | str | None, region: str = "US") -> str:
    """A contact address, as a log line may show it.

    Phone numbers and emails are masked; short codes are businesses' senders and
    stay. Text that is no address is masked all but its last two characters, as
    it may be a mistyped number.
    """
    if address is None:
        return "-"
    raw = str(address)
    try:
        found = normalize(raw, region)
    except InvalidAddress:
        return _mask_unreadable(raw)
    if found.kind is AddressKind.PHONE:
        return mask_phone(found.value)
    if found.kind is AddressKind.EMAIL:
        return mask_email(found.value)
    return found.value


def _mask_unreadable(text: str) -> str:
    shown = text[:40]
    return "*" * max(len(shown) - 2, 1) + shown[-2:] if len(shown) > 2 else "*" * len(shown)


def mask_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with secrets, credentials in URLs, the values in database errors,
    E.164 numbers (also URL-encoded), emails and ``/contacts/<address>`` masked.

    Args:
        known: addresses the text may name in a form the patterns miss (a
            provider's error about the recipient, written nationally).
    """
    for secret in _secrets:
        text = text.replace(secret, SECRET)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    text = _CONTACT_SEGMENT.sub(_mask_contact_segment, text)
    text = _EMAIL.sub(lambda m: mask_email(m[0]), text)
    text = _PHONE.sub(lambda m: mask_phone(m[0].replace("%2B", "").replace("%2b", "")), text)
    for address in known:
        text = _mask_known(text, address)
    return text


def _mask_contact_segment(match: re.Match[str]) -> str:
    segment = match[2]
    # Masked already (the access log masks its paths first): masking the mask
    # would lose the country code it kept.
    return match[0] if "*" in segment else match[1] + mask_address(unquote(segment))


def _mask_known(text: str, address: str | None) -> str:
    """The digits of a known E.164 number, with or without its country code."""
    if not address or not address.startswith("+"):
        return text
    try:
        national = str(phonenumbers.parse(address, None).national_number)
    except phonenumbers.NumberParseException:
        return text
    for digits in (address[1:], national):
        if len(digits) >= 6:
            text = re.sub(rf"(?<!\d){digits}(?!\d)", mask_phone(address), text)
    return text


# -- database errors --------------------------------------------------------------------


def describe_database_error(error: BaseException) -> str:
    """What failed in the database and where, without the values it was given.

    The driver's text is left out past its first line (PostgreSQL's DETAIL quotes
    the refused row), values quoted in that line are hidden, and the statement is
    the SQL with its placeholders.
    """
    orig = (error.orig if isinstance(error, StatementError) else None) or error
    kind = type(orig)
    parts = [f"{kind.__module__}.{kind.__qualname__}"]
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    if code:
        parts.append(f"[{code}]")
    lines = str(orig).strip().splitlines()
    if lines:
        parts.append(lines[0])
    diagnosis = getattr(orig, "diag", None)
    for field in ("table_name", "column_name", "constraint_name"):
        value = getattr(diagnosis, field, None)
        if value:
            parts.append(f"({field.split('_')[0]} {value})")
    described = " ".join(parts)
    statement = getattr(error, "statement", None)
    if statement:
        described += "; SQL: " + " ".join(str(statement).split())[:400]
    return mask_text(described)


def frames(error: BaseException) -> str:
    """Where ``error`` was raised: its traceback without any exception's text."""
    return "".join(traceback.format_tb(error.__traceback__)).rstrip()


# -- the access log ---------------------------------------------------------------------


def mask_access_atoms(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms with addresses in paths and queries masked,
    and no credential from a header or the environment."""
    masked = dict(atoms)
    request = str(atoms.get("r") or "")
    method, _, rest = request.partition(" ")
    uri, _, protocol = rest.rpartition(" ")
    if uri:
        masked["r"] = f"{method} {_mask_uri(uri)} {protocol}"
    if atoms.get("U"):
        masked["U"] = _mask_path(str(atoms["U"]))
    if atoms.get("q"):
        masked["q"] = _mask_query(str(atoms["q"]))
    if atoms.get("f"):
        masked["f"] = _mask_uri(str(atoms["f"]))
    # The user of a Basic Authorization header: optgate has no such users, so
    # anything there is a client's mistake, perhaps a token.
    masked["u"] = "-"
    for key, value in atoms.items():
        if key.startswith("{") and isinstance(value, str):
            masked[key] = "-" if _CREDENTIAL.search(key) else mask_text(value)
    return masked


def _mask_uri(uri: str) -> str:
    if "://" in uri:
        parts = urlsplit(uri)
        origin = _URL_PASSWORD.sub(r"\1***@", f"{parts.scheme}://{parts.netloc}")
        path, query = parts.path, parts.query
    else:
        origin = ""
        path, _, query = uri.partition("?")
    return origin + _mask_path(path) + (f"?{_mask_query(query)}" if query else "")


def _mask_path(path: str) -> str:
    return mask_text("/".join(_mask_value(segment) for segment in path.split("/")))


def _mask_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}{equals}{_mask_value(value)}" if equals else _mask_value(name))
    return mask_text("&".join(pairs))


def _mask_value(raw: str) -> str:
    """A path segment or query value: masked when it may name a contact (an ``@``,
    or seven digits or more, in any written form)."""
    value = unquote(raw)
    digits = sum(c.isdigit() for c in value)
    if "@" in value or (digits >= 7 and not _ISO_TIME.fullmatch(value)):
        return mask_address(value)
    return raw


# -- handlers ---------------------------------------------------------------------------


class MaskingFormatter(logging.Formatter):
    """Formats with the formatter it wraps, then masks the whole line (message,
    exception text, stack) with ``mask_text``. Records are left as they were."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__(LOG_FORMAT)
        # A handler without a formatter writes the bare message: so does its wrap.
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        try:
            return mask_text(self.inner.format(record))
        except Exception:
            # A filter that raised would lose the line without saying so.
            return f"{self.formatTime(record)} {record.levelname} {record.name}: {UNMASKABLE}"


def mask_handlers(*loggers: logging.Logger) -> None:
    """Wrap the formatter of every handler of ``loggers`` in a MaskingFormatter (once)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not isinstance(handler.formatter, MaskingFormatter):
                handler.setFormatter(MaskingFormatter(handler.formatter))


def install(settings: Settings) -> None:
    """optgate's log handler (stderr, masked) on the root logger, unless the root
    logger has handlers already (a test runner's); and this process's secrets."""
    global _secrets
    _secrets = _secrets_of(settings)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(MaskingFormatter(logging.Formatter(LOG_FORMAT)))
        root.addHandler(handler)
        root.setLevel(settings.log_level)
    # Handlers set up before this call (gunicorn's, RQ's own when it ran first).
    mask_handlers(
        *(
            logging.getLogger(name)
            for name in ("gunicorn.error", "gunicorn.access", "rq.worker", "rq.scheduler")
        )
    )


def _secrets_of(settings: Settings) -> tuple[str, ...]:
    found = [settings.twilio_auth_token, *(token.secret for token in settings.api_tokens)]
    for url in (settings.database_url, settings.redis_url):
        try:
            found.append(make_url(url).password)
        except ArgumentError:
            found.append(urlsplit(url).password)
    # The webhook password Twilio sends as HTTP basic auth (https://user:pass@host).
    found.append(urlsplit(settings.public_url or "").password)
    # Longest first, so a secret containing another is replaced whole. Short
    # strings would mask ordinary words: they are the URL pattern's to catch.
    return tuple(sorted({s for s in found if s and len(s) >= 8}, key=len, reverse=True))
