"""Settings, read from the environment once and validated as a whole.

Every setting is declared once in ``SETTINGS`` with its variable, default,
parser and a description; the README's configuration table lists the same
variables (a test keeps the two in step). A wrong value raises
``SettingsError`` naming the variable and what is expected, so a bad deploy
stops at start with one line instead of failing on the first request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.errors import SettingsError
from app.sending.limits import Limit
from app.sending.quiet import Window

#: Where the local SQLite database lives when OPTGATE_DATABASE_URL is unset.
DEFAULT_DATABASE_URL = "sqlite:///var/optgate.sqlite3"

#: Federal quiet hours (TCPA 64.1200(c)(1); docs/compliance.md, Quiet hours).
DEFAULT_QUIET_HOURS = Window(time(8, 0), time(21, 0))

#: OPTGATE_REDIS_URL value meaning "no Redis: run jobs inside the web process".
INLINE_REDIS = "inline"


class Role(StrEnum):
    """What an API token may do (see docs/api.md)."""

    #: Send messages, read them, read consent, opt contacts out.
    AGENT = "agent"
    #: Everything an agent may, plus campaigns, opt-ins the rules allow, imports, exports.
    MANAGER = "manager"


#: The organisation part of a token that may reach every organisation (an operator's).
EVERY_ORGANIZATION = "*"


@dataclass(frozen=True)
class ApiToken:
    name: str
    role: Role
    #: The one organisation the token may reach; None: every one (an operator token).
    organization: str | None
    secret: str = dataclasses.field(repr=False)

    @property
    def operator(self) -> bool:
        return self.organization is None


@dataclass(frozen=True)
class Settings:
    """Everything optgate reads from its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = "redis://127.0.0.1:6379/0"
    default_region: str = "US"
    #: Where new lines go: those `optgate lines add` adds without --organization, and
    #: those a webhook sees first (None: the only organisation; texts to a new line are
    #: held for a person when there is not exactly one).
    default_organization: str | None = None
    keywords_path: Path = Path("keywords.yaml")
    log_level: str = "INFO"
    #: The base URL providers call (https://sms.example.com); signatures cover it.
    public_url: str | None = None
    #: How many proxies in front set X-Forwarded-* headers we may believe.
    trusted_proxies: int = 0
    verify_signatures: bool = True
    #: Automatic replies to one contact on one line, at most, per hour (responder-loop guard).
    reply_limit_per_hour: int = 5
    twilio_api_url: str | None = None
    #: Bearer tokens of the HTTP API, each with a name and a role.
    api_tokens: tuple[ApiToken, ...] = ()
    #: When marketing may reach a recipient, in the recipient's time zone (None: any time).
    quiet_hours: Window | None = DEFAULT_QUIET_HOURS
    #: Provider calls one worker process makes at once.
    send_concurrency: int = 16
    #: Messages per second a line may send, by kind of line, unless the line or its
    #: group has its own rate (Twilio's defaults; docs/sending.md, Send rates).
    send_rate_long_code: float = 1.0
    send_rate_toll_free: float = 3.0
    send_rate_short_code: float = 100.0
    #: The part of a line's rate kept for transactional messages while a campaign
    #: sends on it (0: none; app/sending/rates.py).
    send_rate_transactional_share: float = 0.2
    #: At most this many marketing messages to one number per period, whatever
    #: keywords.yaml says (None: only keywords.yaml's limits apply).
    marketing_limit: Limit | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = dataclasses.field(default=None, repr=False)
    #: Signs the admin console's session cookies and forms (None: the console is off).
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    #: The header an SSO proxy in front sets to the signed-in person's user name; the
    #: console then believes it instead of asking for a password (None: off).
    console_user_header: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``).

        Raises:
            SettingsError: the first variable that is wrong, with what is expected.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.variable, "").strip()
            if raw:
                values[setting.field] = setting.parse(setting.variable, raw)
        settings = cls(**values)
        settings.check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated (tests use this).

        String values are read like the environment's ("gb" becomes "GB").
        """
        for setting in SETTINGS:
            value = changes.get(setting.field)
            if isinstance(value, str) and value.strip():
                changes[setting.field] = setting.parse(setting.variable, value.strip())
        settings = dataclasses.replace(self, **changes)
        settings.check()
        return settings

    def check(self) -> None:
        """Checks that involve more than one variable."""
        if bool(self.twilio_account_sid) != bool(self.twilio_auth_token):
            missing = "TWILIO_AUTH_TOKEN" if self.twilio_account_sid else "TWILIO_ACCOUNT_SID"
            raise SettingsError(
                missing,
                "is missing; set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN together "
                "(both from the Twilio Console) or neither",
            )

    @property
    def redis_inline(self) -> bool:
        return self.redis_url == INLINE_REDIS

    def safe_database_url(self) -> str:
        """The database URL with any password masked, for logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)


# -- parsers: (variable, raw) -> value, raising SettingsError ---------------------------


def _database_url(variable: str, raw: str) -> str:
    # Heroku-style and bare postgresql:// URLs mean "PostgreSQL through psycopg 3",
    # the driver we ship; SQLAlchemy's default for them would be psycopg2.
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw.removeprefix("postgres://")
    try:
        url: URL = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise SettingsError(
            variable,
            "expected a database URL such as sqlite:///var/optgate.sqlite3 or "
            "postgresql://user:password@host:5432/optgate",
        ) from None
    if url.host and "@" in url.host:
        # The password (or user) holds an "@": the rest of it would be read as the
        # host, and shown unmasked by safe_database_url().
        raise SettingsError(
            variable, "expected '@' in the user name or password to be written as %40"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "postgresql+psycopg"):
        raise SettingsError(
            variable,
            f"expected a sqlite:// or postgresql:// URL, got a {url.drivername} URL",
        )
    return url.render_as_string(hide_password=False)


def _redis_url(variable: str, raw: str) -> str:
    if raw == INLINE_REDIS or re.match(r"^(redis|rediss|unix)://", raw):
        return raw
    # The value is not echoed: a mistyped URL may still hold a password.
    raise SettingsError(
        variable,
        "expected a URL starting redis://, rediss:// or unix://, such as "
        f"redis://127.0.0.1:6379/0 (or {INLINE_REDIS!r} to run jobs inside the web process, "
        "for development)",
    )


def _region(variable: str, raw: str) -> str:
    region = raw.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(
            variable,
            f"expected a two-letter region code such as US, CA or GB, got {raw!r}",
        )
    return region


def _organization(variable: str, raw: str) -> str:
    if len(raw) > 100:
        raise SettingsError(variable, "expected an organization name of at most 100 characters")
    return raw


def _path(variable: str, raw: str) -> Path:
    # Whether the file is there and right is checked where it is read, with a
    # message per line of it; a directory is wrong whatever it holds.
    path = Path(raw)
    if path.is_dir():
        raise SettingsError(variable, f"expected the path of a file, and {raw} is a directory")
    return path


def _base_url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            variable,
            "expected a base URL such as https://sms.example.com or "
            "https://example.com/optgate (no query or fragment)",
        )
    return raw.rstrip("/")


def _count(low: int, high: int, what: str) -> Callable[[str, str], int]:
    def parse(variable: str, raw: str) -> int:
        # isdigit alone takes '²', which int() refuses.
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise SettingsError(variable, f"expected {what}: a whole number from {low} to {high}")
        return int(raw)

    return parse


def _boolean(variable: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise SettingsError(variable, f"expected true or false, got {raw!r}")


def _log_level(variable: str, raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(variable, f"expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def _account_sid(variable: str, raw: str) -> str:
    if not re.fullmatch(r"AC[0-9a-fA-F]{32}", raw):
        raise SettingsError(variable, "expected a Twilio Account SID: AC followed by 32 hex digits")
    return raw


def _auth_token(variable: str, raw: str) -> str:
    # Never echo the value: it is a secret.
    if not re.fullmatch(r"[0-9a-fA-F]{32}", raw):
        raise SettingsError(variable, "expected a Twilio auth token: 32 hex digits")
    return raw


#: A token's secret: long enough that guessing it is hopeless.
_MIN_SECRET = 24

#: The console's secret key: 32 bytes of randomness, written as 64 hex digits or so.
_MIN_SECRET_KEY = 32


def _secret_key(variable: str, raw: str) -> str:
    # Never echoed: it is a secret.
    if len(raw) < _MIN_SECRET_KEY or any(c.isspace() or not c.isprintable() for c in raw):
        raise SettingsError(
            variable,
            f"expected at least {_MIN_SECRET_KEY} printable characters without spaces, e.g. "
            "the output of `python3 -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return raw


def _header_name(variable: str, raw: str) -> str:
    # RFC 9110 token characters; the header a proxy sets, e.g. X-Forwarded-User.
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}", raw):
        raise SettingsError(variable, "expected an HTTP header name such as X-Forwarded-User")
    return raw


def _api_tokens(variable: str, raw: str) -> tuple[ApiToken, ...]:
    # Secrets are never echoed. A malformed entry may hold a secret in any of its
    # parts (a bare secret, parts swapped), so it is named by its position only.
    tokens: list[ApiToken] = []
    for position, entry in enumerate(raw.split(","), start=1):
        name, _, rest = entry.strip().partition(":")
        role, _, rest = rest.partition(":")
        # A secret never holds ':', so the organisation is all between role and secret.
        organization, has_organization, secret = rest.rpartition(":")
        role, organization = role.strip().lower(), organization.strip()
        what = f"token {position}"
        if name and role and secret and not has_organization:
            # The format before organisations: such a token would reach every one.
            raise SettingsError(
                variable,
                f"{what}: expected NAME:ROLE:ORGANIZATION:SECRET, and it has no organization; "
                f"write the organization's name, or {EVERY_ORGANIZATION} for an operator token "
                "that reaches every organization (campaigns:manager:acme:<secret>)",
            )
        if not name or not role or not organization or not secret:
            raise SettingsError(
                variable,
                f"{what}: expected NAME:ROLE:ORGANIZATION:SECRET entries separated by commas, "
                f"such as campaigns:manager:acme:<secret> ({EVERY_ORGANIZATION} as the "
                "organization: every one)",
            )
        if role not in {r.value for r in Role}:
            raise SettingsError(
                variable, f"{what}: expected the role agent or manager as its second part"
            )
        if len(secret) < _MIN_SECRET or not re.fullmatch(r"[A-Za-z0-9_\-.~+/=]+", secret):
            raise SettingsError(
                variable,
                f"{what}: expected a secret of at least {_MIN_SECRET} letters, digits or -._~+/= "
                "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)",
            )
        if len(organization) > 100:  # organizations.name holds 100
            raise SettingsError(
                variable, f"{what}: expected an organization name of at most 100 characters"
            )
        if any(token.name == name for token in tokens):
            raise SettingsError(variable, f"{what}: the name {name!r} is used twice")
        if any(token.secret == secret for token in tokens):
            raise SettingsError(variable, f"{what}: its secret is the same as another token's")
        reaches = None if organization == EVERY_ORGANIZATION else organization
        tokens.append(ApiToken(name, Role(role), reaches, secret))
    return tuple(tokens)


#: The highest send rate a line or a setting may have: above any carrier's offer
#: (Twilio sells short codes up to a few hundred MPS), so a typo is caught.
MAX_SEND_RATE = 10_000.0
#: The lowest: one message every 100 seconds (a slower line is a typo, or a line to retire).
MIN_SEND_RATE = 0.01


def parse_send_rate(raw: str) -> float:
    """Messages per second written as ``raw`` ("30", "0.5"): above 0, at most MAX_SEND_RATE.

    Raises:
        ValueError: saying what is wrong, written for a person (the CLI prints it).
    """
    text = raw.strip()
    # No exponents, inf or nan: float() takes them, and none is a rate anyone means. ASCII
    # digits only: float("٣") is 3.0, and what a person reads back must be what they wrote.
    if not re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", text):
        raise ValueError(
            f"{raw!r} is not a number of messages per second (e.g. 30, or 0.5 for one "
            "every 2 seconds)"
        )
    rate = float(text)
    if rate <= 0:
        raise ValueError(f"a send rate must be above 0 messages per second, got {text}")
    if rate < MIN_SEND_RATE:
        raise ValueError(
            f"a send rate is at least {MIN_SEND_RATE:g} messages per second (one every "
            f"{1 / MIN_SEND_RATE:g} seconds), got {text}"
        )
    if rate > MAX_SEND_RATE:
        raise ValueError(
            f"a send rate is at most {MAX_SEND_RATE:g} messages per second, got {text}"
        )
    return rate


def _send_rate(variable: str, raw: str) -> float:
    try:
        return parse_send_rate(raw)
    except ValueError as error:
        raise SettingsError(variable, str(error)) from None


def _share(variable: str, raw: str) -> float:
    if not re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", raw) or not 0 <= float(raw) <= 0.9:
        raise SettingsError(
            variable, f"expected a fraction from 0 (none) to 0.9, such as 0.2, got {raw!r}"
        )
    return float(raw)


def _marketing_limit(variable: str, raw: str) -> Limit | None:
    if raw.lower() == "off":
        return None
    try:
        return Limit.parse(raw)
    except ValueError as error:
        raise SettingsError(variable, f"{error}; or off") from None


def _quiet_hours(variable: str, raw: str) -> Window | None:
    if raw.lower() == "off":
        return None
    try:
        window = Window.parse(raw)
    except ValueError as error:
        raise SettingsError(
            variable, f"{error}; expected HH:MM-HH:MM such as 08:00-21:00, or off"
        ) from None
    if window.start >= time(20, 0):
        # Florida, Oklahoma and Maryland end at 20:00: such a window would leave them none.
        raise SettingsError(
            variable, f"{raw!r} starts at or after 20:00; expected an earlier start"
        )
    return window


@dataclass(frozen=True)
class Setting:
    variable: str
    field: str
    parse: Callable[[str, str], Any]
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "OPTGATE_DATABASE_URL",
        "database_url",
        _database_url,
        "Database: a SQLite file (default `sqlite:///var/optgate.sqlite3`) or "
        "`postgresql://user:pass@host/db`.",
    ),
    Setting(
        "OPTGATE_REDIS_URL",
        "redis_url",
        _redis_url,
        "Redis for the job queue (default `redis://127.0.0.1:6379/0`). `optgate dev` starts "
        "an embedded Redis when unset; `inline` runs jobs in the web process (development only).",
    ),
    Setting(
        "OPTGATE_DEFAULT_REGION",
        "default_region",
        _region,
        "Region for numbers written without a country code, e.g. `(415) 555-0100` (default `US`).",
    ),
    Setting(
        "OPTGATE_DEFAULT_ORGANIZATION",
        "default_organization",
        _organization,
        "Organization of new lines: those `optgate lines add` adds without `--organization`, "
        "and those a provider's webhook names first. Unset: the only organization; with none "
        "or several, a text to an unknown number is held until `optgate lines add` adds it.",
    ),
    Setting(
        "OPTGATE_KEYWORDS",
        "keywords_path",
        _path,
        "Path of the keyword rules (default `keywords.yaml` in the working directory); "
        "edits are picked up without a restart.",
    ),
    Setting(
        "OPTGATE_LOG_LEVEL",
        "log_level",
        _log_level,
        "`DEBUG`, `INFO` (default), `WARNING` or `ERROR`.",
    ),
    Setting(
        "OPTGATE_PUBLIC_URL",
        "public_url",
        _base_url,
        "The public base URL providers call (e.g. `https://sms.example.com`); webhook "
        "signatures are checked against it. Unset: the URL of the request.",
    ),
    Setting(
        "OPTGATE_TRUSTED_PROXIES",
        "trusted_proxies",
        _count(0, 10, "the number of proxies in front"),
        "Proxies in front that set `X-Forwarded-*` (default 0: those headers are ignored); "
        "used for the signed URL when `OPTGATE_PUBLIC_URL` is unset.",
    ),
    Setting(
        "OPTGATE_VERIFY_SIGNATURES",
        "verify_signatures",
        _boolean,
        "`true` (default). `false` accepts unsigned webhooks and warns at every start: "
        "for local tests only.",
    ),
    Setting(
        "OPTGATE_REPLY_LIMIT_PER_HOUR",
        "reply_limit_per_hour",
        _count(1, 1000, "replies per contact and line per hour"),
        "At most this many automatic replies to one contact on one line per hour "
        "(default 5): stops reply loops with other robots.",
    ),
    Setting(
        "OPTGATE_TWILIO_API_URL",
        "twilio_api_url",
        _base_url,
        "Base URL of the Twilio API (default Twilio's own); point it at a local stub or "
        "mock for tests.",
    ),
    Setting(
        "OPTGATE_API_TOKENS",
        "api_tokens",
        _api_tokens,
        "Bearer tokens of the HTTP API: `NAME:ROLE:ORGANIZATION:SECRET` entries separated "
        "by commas, ROLE `agent` or `manager`; a token reaches only its ORGANIZATION, and "
        "`*` every one (an operator's; see docs/api.md). Unset: the API answers 401.",
    ),
    Setting(
        "OPTGATE_QUIET_HOURS",
        "quiet_hours",
        _quiet_hours,
        "When marketing messages may arrive, in the recipient's local time (default "
        "`08:00-21:00`; Florida, Oklahoma and Maryland numbers end at 20:00); outside it "
        "they wait. `off` disables it.",
    ),
    Setting(
        "OPTGATE_SEND_CONCURRENCY",
        "send_concurrency",
        _count(1, 256, "provider calls in flight per worker"),
        "Provider calls one worker process makes at once (default 16).",
    ),
    Setting(
        "OPTGATE_SEND_RATE_LONG_CODE",
        "send_rate_long_code",
        _send_rate,
        "Messages per second a long code (an ordinary number) sends, unless the line or its "
        "group has its own rate (`optgate lines rate`); default 1, Twilio's per-number rate.",
    ),
    Setting(
        "OPTGATE_SEND_RATE_TOLL_FREE",
        "send_rate_toll_free",
        _send_rate,
        "The same for a toll-free number (+1 800, 833, 844, 855, 866, 877, 888); default 3.",
    ),
    Setting(
        "OPTGATE_SEND_RATE_SHORT_CODE",
        "send_rate_short_code",
        _send_rate,
        "The same for a short code; default 100.",
    ),
    Setting(
        "OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE",
        "send_rate_transactional_share",
        _share,
        "The part of a line's rate kept for transactional messages while a campaign sends "
        "on it (default 0.2): a password code then waits behind a campaign for at most a "
        "second (two messages' time on a line slower than 2 per second). `0`: no share.",
    ),
    Setting(
        "OPTGATE_MARKETING_LIMIT",
        "marketing_limit",
        _marketing_limit,
        "At most this many marketing messages to one number, e.g. `3 per 1 day` (Florida's "
        "and Oklahoma's cap); more are blocked as `frequency_limit`. Applies with the limits "
        "of keywords.yaml (`limits:`), the stricter first. Default `off`.",
    ),
    Setting(
        "TWILIO_ACCOUNT_SID",
        "twilio_account_sid",
        _account_sid,
        "Twilio Account SID (`AC…`); set together with `TWILIO_AUTH_TOKEN`.",
    ),
    Setting(
        "TWILIO_AUTH_TOKEN",
        "twilio_auth_token",
        _auth_token,
        "Twilio auth token: verifies webhook signatures and authenticates sends.",
    ),
    Setting(
        "OPTGATE_SECRET_KEY",
        "secret_key",
        _secret_key,
        "Signs the admin console's session cookies and forms: 32 or more random "
        "characters, the same on every web host. Unset: the console at `/console` is off "
        "(`optgate dev` makes one in `var/`).",
    ),
    Setting(
        "OPTGATE_CONSOLE_USER_HEADER",
        "console_user_header",
        _header_name,
        "Off by default. The header an SSO proxy in front sets to the signed-in user's "
        "name (e.g. `X-Forwarded-User`): the console believes it instead of a password, so "
        "set it only when every request passes that proxy. The user must exist "
        "(`optgate users add`).",
    ),
)


def configure_logging(settings: Settings) -> None:
    # The handler, and the masking of numbers, emails and secrets in every line.
    from app.logs import install

    install(settings)
    logging.getLogger("optgate").setLevel(settings.log_level)
    # The twilio client logs every request it makes at INFO (method, URL with
    # the account SID, headers): nine lines per send. Only when debugging.
    logging.getLogger("twilio.http_client").setLevel(
        logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    )
