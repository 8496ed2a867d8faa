"""Settings: defaults, one valid and several wrong values per variable, and checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from app.errors import SettingsError
from app.sending.limits import Limit
from app.sending.quiet import Window
from app.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_QUIET_HOURS,
    INLINE_REDIS,
    SETTINGS,
    ApiToken,
    Role,
    Settings,
    configure_logging,
)

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "fedcba9876543210" * 2
TWILIO = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
#: API token secrets: every character a secret may hold, and the shortest length allowed.
SECRET = "Zq3-_x.~+/=0123456789abcdefgh"
OTHER_SECRET = "0123456789abcdefghijklmn"


def from_env(variable: str, value: str) -> Settings:
    """Settings with ``variable`` set (and its Twilio partner, which must come along)."""
    environ = {**TWILIO} if variable in TWILIO else {}
    environ[variable] = value
    return Settings.from_env(environ)


# -- defaults ---------------------------------------------------------------------------


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///var/optgate.sqlite3"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert not settings.redis_inline
    assert settings.default_region == "US"
    assert settings.default_organization is None
    assert settings.log_level == "INFO"
    assert settings.twilio_account_sid is None
    assert settings.twilio_auth_token is None
    assert settings.api_tokens == ()
    assert settings.quiet_hours == DEFAULT_QUIET_HOURS == Window(time(8, 0), time(21, 0))
    assert settings.send_concurrency == 16


def test_it_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTGATE_DEFAULT_ORGANIZATION", "acme")
    assert Settings.from_env().default_organization == "acme"


def test_it_ignores_variables_it_does_not_know() -> None:
    assert Settings.from_env({"OPTGATE_UNKNOWN": "x", "PATH": "/bin"}) == Settings()


# -- valid values -----------------------------------------------------------------------

VALID = [
    # (variable, value, field, expected)
    ("OPTGATE_DATABASE_URL", "sqlite:////tmp/optgate.sqlite3", "database_url",
     "sqlite:////tmp/optgate.sqlite3"),
    ("OPTGATE_DATABASE_URL", "postgres://u:p@h/db", "database_url",
     "postgresql+psycopg://u:p@h/db"),
    ("OPTGATE_DATABASE_URL", "postgresql://u:p@h:5432/db", "database_url",
     "postgresql+psycopg://u:p@h:5432/db"),
    ("OPTGATE_DATABASE_URL", "postgresql+psycopg://u:p%40ss@h/db?sslmode=require",
     "database_url", "postgresql+psycopg://u:p%40ss@h/db?sslmode=require"),
    ("OPTGATE_REDIS_URL", "redis://cache:6379/2", "redis_url", "redis://cache:6379/2"),
    ("OPTGATE_REDIS_URL", "rediss://:secret@cache:6380/0", "redis_url",
     "rediss://:secret@cache:6380/0"),
    ("OPTGATE_REDIS_URL", "unix:///run/redis.sock", "redis_url", "unix:///run/redis.sock"),
    ("OPTGATE_REDIS_URL", "inline", "redis_url", INLINE_REDIS),
    ("OPTGATE_DEFAULT_REGION", "gb", "default_region", "GB"),
    ("OPTGATE_DEFAULT_REGION", "CA", "default_region", "CA"),
    ("OPTGATE_DEFAULT_ORGANIZATION", "acme", "default_organization", "acme"),
    ("OPTGATE_DEFAULT_ORGANIZATION", "a" * 100, "default_organization", "a" * 100),
    ("OPTGATE_PUBLIC_URL", "https://sms.example.com/", "public_url", "https://sms.example.com"),
    ("OPTGATE_PUBLIC_URL", "http://10.0.0.5:8080/optgate", "public_url",
     "http://10.0.0.5:8080/optgate"),
    ("OPTGATE_TRUSTED_PROXIES", "2", "trusted_proxies", 2),
    ("OPTGATE_VERIFY_SIGNATURES", "false", "verify_signatures", False),
    ("OPTGATE_VERIFY_SIGNATURES", "Yes", "verify_signatures", True),
    ("OPTGATE_REPLY_LIMIT_PER_HOUR", "10", "reply_limit_per_hour", 10),
    ("OPTGATE_TWILIO_API_URL", "http://127.0.0.1:4010", "twilio_api_url",
     "http://127.0.0.1:4010"),
    ("OPTGATE_KEYWORDS", "/etc/optgate/keywords.yaml", "keywords_path",
     Path("/etc/optgate/keywords.yaml")),
    ("OPTGATE_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("OPTGATE_LOG_LEVEL", "WARNING", "log_level", "WARNING"),
    ("TWILIO_ACCOUNT_SID", SID, "twilio_account_sid", SID),
    ("TWILIO_ACCOUNT_SID", SID.upper(), "twilio_account_sid", SID.upper()),
    ("TWILIO_AUTH_TOKEN", TOKEN, "twilio_auth_token", TOKEN),
    ("OPTGATE_SECRET_KEY", "f" * 64, "secret_key", "f" * 64),
    ("OPTGATE_CONSOLE_USER_HEADER", "X-Forwarded-User", "console_user_header", "X-Forwarded-User"),
    ("OPTGATE_DEFAULT_REGION", "  fr \n", "default_region", "FR"),
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:{SECRET}", "api_tokens",
     (ApiToken("ops", Role.AGENT, "acme", SECRET),)),
    ("OPTGATE_API_TOKENS", f"ops:Manager:*:{SECRET}", "api_tokens",
     (ApiToken("ops", Role.MANAGER, None, SECRET),)),
    ("OPTGATE_API_TOKENS", f"ops:agent: Acme Motors :{SECRET} , campaigns:manager:*:{OTHER_SECRET}",
     "api_tokens",
     (ApiToken("ops", Role.AGENT, "Acme Motors", SECRET),
      ApiToken("campaigns", Role.MANAGER, None, OTHER_SECRET))),
    # A secret never holds ':', so an organisation's name may.
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:east:{SECRET}", "api_tokens",
     (ApiToken("ops", Role.AGENT, "acme:east", SECRET),)),
    ("OPTGATE_QUIET_HOURS", "07:30-20:00", "quiet_hours", Window(time(7, 30), time(20, 0))),
    ("OPTGATE_QUIET_HOURS", " 09:00 - 17:45 ", "quiet_hours", Window(time(9, 0), time(17, 45))),
    ("OPTGATE_QUIET_HOURS", "off", "quiet_hours", None),
    ("OPTGATE_QUIET_HOURS", "OFF", "quiet_hours", None),
    ("OPTGATE_MARKETING_LIMIT", "3 per 1 day", "marketing_limit", Limit(3, 1)),
    ("OPTGATE_MARKETING_LIMIT", "4/30d", "marketing_limit", Limit(4, 30)),
    ("OPTGATE_MARKETING_LIMIT", "off", "marketing_limit", None),
    ("OPTGATE_SEND_CONCURRENCY", "32", "send_concurrency", 32),
    ("OPTGATE_SEND_CONCURRENCY", "1", "send_concurrency", 1),
    ("OPTGATE_SEND_CONCURRENCY", "256", "send_concurrency", 256),
    ("OPTGATE_SEND_RATE_LONG_CODE", "4.5", "send_rate_long_code", 4.5),
    ("OPTGATE_SEND_RATE_LONG_CODE", "0.25", "send_rate_long_code", 0.25),
    ("OPTGATE_SEND_RATE_TOLL_FREE", "25", "send_rate_toll_free", 25.0),
    ("OPTGATE_SEND_RATE_SHORT_CODE", "10000", "send_rate_short_code", 10000.0),
    ("OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE", "0", "send_rate_transactional_share", 0.0),
    ("OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE", ".5", "send_rate_transactional_share", 0.5),
]  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    VALID,
    ids=[f"{variable}={value.strip()[:30]}" for variable, value, *_ in VALID],
)
def test_it_takes_a_valid_value(variable: str, value: str, field: str, expected: object) -> None:
    assert getattr(from_env(variable, value), field) == expected


def test_inline_redis_runs_jobs_in_the_web_process() -> None:
    assert Settings.from_env({"OPTGATE_REDIS_URL": "inline"}).redis_inline


# -- wrong values -----------------------------------------------------------------------

WRONG = [
    # (variable, bad value, a fragment of what is expected)
    ("OPTGATE_DATABASE_URL", "mysql://x", "expected a sqlite:// or postgresql:// URL"),
    ("OPTGATE_DATABASE_URL", "postgresql+psycopg2://u@h/db", "got a postgresql+psycopg2 URL"),
    ("OPTGATE_DATABASE_URL", "not a url", "expected a database URL"),
    ("OPTGATE_DATABASE_URL", "postgresql://u:p@h:port/db", "expected a database URL"),
    ("OPTGATE_DATABASE_URL", "postgresql://u:p@ss@h/db", "%40"),
    ("OPTGATE_REDIS_URL", "localhost:6379", "expected a URL starting redis://"),
    ("OPTGATE_REDIS_URL", "http://cache:6379", "'inline'"),
    ("OPTGATE_DEFAULT_REGION", "USA", "expected a two-letter region code"),
    ("OPTGATE_DEFAULT_REGION", "XX", "expected a two-letter region code"),
    ("OPTGATE_DEFAULT_ORGANIZATION", "a" * 101, "at most 100 characters"),
    ("OPTGATE_KEYWORDS", "/", "expected the path of a file, and / is a directory"),
    ("OPTGATE_PUBLIC_URL", "sms.example.com", "expected a base URL such as https://"),
    ("OPTGATE_PUBLIC_URL", "https://x.example/hook?a=1", "no query or fragment"),
    ("OPTGATE_TRUSTED_PROXIES", "-1", "a whole number from 0 to 10"),
    ("OPTGATE_TRUSTED_PROXIES", "11", "a whole number from 0 to 10"),
    ("OPTGATE_VERIFY_SIGNATURES", "maybe", "expected true or false"),
    ("OPTGATE_REPLY_LIMIT_PER_HOUR", "0", "a whole number from 1 to 1000"),
    ("OPTGATE_TWILIO_API_URL", "ftp://x", "expected a base URL"),
    ("OPTGATE_LOG_LEVEL", "LOUD", "expected DEBUG, INFO, WARNING or ERROR"),
    ("OPTGATE_LOG_LEVEL", "CRITICAL", "expected DEBUG, INFO, WARNING or ERROR"),
    ("TWILIO_ACCOUNT_SID", "SK" + "0" * 32, "AC followed by 32 hex digits"),
    ("TWILIO_ACCOUNT_SID", "AC123", "AC followed by 32 hex digits"),
    ("TWILIO_ACCOUNT_SID", "AC" + "g" * 32, "AC followed by 32 hex digits"),
    ("TWILIO_AUTH_TOKEN", "hunter2", "32 hex digits"),
    ("TWILIO_AUTH_TOKEN", TOKEN + "0", "32 hex digits"),
    ("OPTGATE_SECRET_KEY", "short", "at least 32 printable characters"),
    ("OPTGATE_SECRET_KEY", "a b" * 20, "without spaces"),
    ("OPTGATE_CONSOLE_USER_HEADER", "X Forwarded User", "HTTP header name"),
    ("OPTGATE_CONSOLE_USER_HEADER", "X-User:", "HTTP header name"),
    ("OPTGATE_API_TOKENS", "ops:agent", "token 1: expected NAME:ROLE:ORGANIZATION:SECRET entries"),
    ("OPTGATE_API_TOKENS", f"agent:{SECRET}", "token 1: expected NAME:ROLE:ORGANIZATION:SECRET"),
    ("OPTGATE_API_TOKENS", f":agent:acme:{SECRET}",
     "token 1: expected NAME:ROLE:ORGANIZATION:SECRET"),
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:{SECRET},",
     "token 2: expected NAME:ROLE:ORGANIZATION:SECRET"),
    ("OPTGATE_API_TOKENS", f"ops:agent: :{SECRET}",
     "token 1: expected NAME:ROLE:ORGANIZATION:SECRET entries"),
    # The format before organisations stops the start, saying how to write it now.
    ("OPTGATE_API_TOKENS", f"ops:agent:{SECRET}",
     "token 1: expected NAME:ROLE:ORGANIZATION:SECRET, and it has no organization; write the "
     "organization's name, or * for an operator token that reaches every organization"),
    ("OPTGATE_API_TOKENS", f"ops:admin:acme:{SECRET}",
     "token 1: expected the role agent or manager as its second part"),
    ("OPTGATE_API_TOKENS", "ops:agent:acme:hunter2", "expected a secret of at least 24 letters"),
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:{OTHER_SECRET[:-1]}",
     "expected a secret of at least 24 letters"),
    ("OPTGATE_API_TOKENS", "ops:agent:acme:" + "p@ss" * 8,
     "expected a secret of at least 24 letters"),
    ("OPTGATE_API_TOKENS", f"ops:agent:{'a' * 101}:{SECRET}",
     "token 1: expected an organization name of at most 100 characters"),
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:{SECRET},ops:manager:beta:{OTHER_SECRET}",
     "token 2: the name 'ops' is used twice"),
    ("OPTGATE_API_TOKENS", f"ops:agent:acme:{SECRET},campaigns:manager:beta:{SECRET}",
     "token 2: its secret is the same as another token's"),
    ("OPTGATE_QUIET_HOURS", "8-21", "'8' is not a time of day such as 08:00"),
    ("OPTGATE_QUIET_HOURS", "21:00-08:00", "'21:00-08:00' ends before it starts"),
    ("OPTGATE_QUIET_HOURS", "25:00-26:00", "'25:00' is not a time of day such as 08:00"),
    ("OPTGATE_QUIET_HOURS", "08:00", "has no '-' between the start and the end"),
    ("OPTGATE_QUIET_HOURS", "09:00-09:00", "ends before it starts"),
    ("OPTGATE_QUIET_HOURS", "20:00-21:00", "starts at or after 20:00"),
    ("OPTGATE_QUIET_HOURS", "always", "expected HH:MM-HH:MM such as 08:00-21:00, or off"),
    ("OPTGATE_MARKETING_LIMIT", "4 a month", "expected a limit such as '4 per 30 days'"),
    ("OPTGATE_MARKETING_LIMIT", "0 per 1 day", "both at least 1), got '0 per 1 day'; or off"),
    ("OPTGATE_SEND_CONCURRENCY", "0", "a whole number from 1 to 256"),
    ("OPTGATE_SEND_CONCURRENCY", "1000", "a whole number from 1 to 256"),
    ("OPTGATE_SEND_CONCURRENCY", "x", "a whole number from 1 to 256"),
    ("OPTGATE_SEND_CONCURRENCY", "-4", "a whole number from 1 to 256"),
    ("OPTGATE_SEND_CONCURRENCY", "²", "a whole number from 1 to 256"),
    ("OPTGATE_SEND_RATE_LONG_CODE", "0", "a send rate must be above 0 messages per second"),
    ("OPTGATE_SEND_RATE_LONG_CODE", "-1", "a send rate must be above 0 messages per second"),
    ("OPTGATE_SEND_RATE_TOLL_FREE", "fast", "'fast' is not a number of messages per second"),
    ("OPTGATE_SEND_RATE_TOLL_FREE", "inf", "'inf' is not a number of messages per second"),
    ("OPTGATE_SEND_RATE_SHORT_CODE", "10001", "at most 10000 messages per second"),
    ("OPTGATE_SEND_RATE_LONG_CODE", "0.001", "at least 0.01 messages per second"),
    ("OPTGATE_SEND_RATE_LONG_CODE", "٣", "'٣' is not a number of messages per second"),
    ("OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE", "٠", "a fraction from 0 (none) to 0.9"),
    ("OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE", "1", "a fraction from 0 (none) to 0.9"),
    ("OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE", "20%", "a fraction from 0 (none) to 0.9"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    WRONG,
    ids=[f"{variable}={value[:30]}" for variable, value, _ in WRONG],
)
def test_it_rejects_a_wrong_value_naming_the_variable_and_what_is_expected(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env(variable, value)
    assert str(caught.value).startswith(f"{variable}: ")
    assert expected in str(caught.value)
    assert caught.value.variable == variable


def test_every_setting_has_a_valid_and_a_wrong_value_above() -> None:
    variables = {setting.variable for setting in SETTINGS}
    assert {variable for variable, *_ in VALID} == variables
    assert {variable for variable, *_ in WRONG} == variables


@pytest.mark.parametrize(
    "token", ["hunter2", "not-a-token-but-a-secret", TOKEN[:-1] + "z"], ids=str.__len__
)
def test_a_wrong_auth_token_is_not_echoed(token: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env("TWILIO_AUTH_TOKEN", token)
    assert token not in str(caught.value)
    assert token not in repr(caught.value)


def test_a_database_url_error_does_not_echo_the_password() -> None:
    for url in ("mysql://u:s3cret@h/db", "postgresql://u:s3cret@h:port/db"):
        with pytest.raises(SettingsError) as caught:
            from_env("OPTGATE_DATABASE_URL", url)
        assert "s3cret" not in str(caught.value)


def test_the_auth_token_is_not_in_the_repr_of_settings() -> None:
    assert TOKEN not in repr(Settings.from_env(TWILIO))


# -- API tokens: secrets are never echoed -----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"ops:agent:acme:{SECRET}x!",
        f"ops:agent:acme:{SECRET[:20]}",
        f"ops:admin:acme:{SECRET}",
        f"ops:agent:acme:{SECRET},ops:manager:acme:{OTHER_SECRET}",
        f"ops:agent:acme:{SECRET},campaigns:manager:acme:{SECRET}",
        f"ops:agent:acme:{OTHER_SECRET},campaigns:acme:{SECRET}",
        SECRET,
        f"ops:{SECRET}:acme:agent",
        f"ops:agent:{SECRET}",
        f"ops:agent:{SECRET}:acme",
        f"ops:agent:{SECRET * 4}:{OTHER_SECRET}",
    ],
    ids=[
        "bad-character",
        "short",
        "unknown-role",
        "duplicate-name",
        "duplicate-secret",
        "missing-role",
        "bare-secret",
        "secret-and-role-swapped",
        "no-organization",
        "secret-and-organization-swapped",
        "secret-as-a-long-organization",
    ],
)
def test_a_wrong_api_token_never_echoes_a_secret(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env("OPTGATE_API_TOKENS", value)
    for secret in (SECRET, SECRET[:20], OTHER_SECRET):
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    # One line: the start stops with it, as with every setting.
    assert "\n" not in str(caught.value)


def test_api_token_secrets_are_not_in_the_repr_of_settings() -> None:
    settings = Settings.from_env(
        {"OPTGATE_API_TOKENS": f"ops:agent:acme:{SECRET},campaigns:manager:*:{OTHER_SECRET}"}
    )
    assert SECRET not in repr(settings)
    assert OTHER_SECRET not in repr(settings)
    assert "ops" in repr(settings)


# -- Twilio credentials come in pairs ---------------------------------------------------


def test_both_twilio_credentials_are_taken_together() -> None:
    settings = Settings.from_env(TWILIO)
    assert (settings.twilio_account_sid, settings.twilio_auth_token) == (SID, TOKEN)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": TOKEN}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "  "}, "TWILIO_AUTH_TOKEN"),
    ],
    ids=["sid-only", "token-only", "blank-token"],
)
def test_a_lone_twilio_credential_names_the_missing_one(
    given: dict[str, str], missing: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(given)
    assert str(caught.value).startswith(f"{missing}: is missing")
    assert caught.value.variable == missing
    assert TOKEN not in str(caught.value)


# -- empty values -----------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"], ids=["empty", "spaces", "tab-newline"])
def test_an_empty_value_counts_as_unset(blank: str) -> None:
    environ = {setting.variable: blank for setting in SETTINGS}
    assert Settings.from_env(environ) == Settings()


def test_surrounding_whitespace_is_trimmed() -> None:
    settings = Settings.from_env({"OPTGATE_LOG_LEVEL": " warning\n", **TWILIO})
    assert settings.log_level == "WARNING"


# -- replace ----------------------------------------------------------------------------


def test_replace_applies_changes() -> None:
    settings = Settings().replace(default_organization="acme", redis_url="inline")
    assert settings.default_organization == "acme"
    assert settings.redis_inline


def test_replace_checks_the_twilio_pair() -> None:
    with pytest.raises(SettingsError, match=r"^TWILIO_AUTH_TOKEN: is missing"):
        Settings().replace(twilio_account_sid=SID)
    with pytest.raises(SettingsError, match=r"^TWILIO_ACCOUNT_SID: is missing"):
        Settings.from_env(TWILIO).replace(twilio_account_sid=None)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"default_region": "USA"}, "OPTGATE_DEFAULT_REGION"),
        ({"log_level": "LOUD"}, "OPTGATE_LOG_LEVEL"),
        ({"database_url": "mysql://x"}, "OPTGATE_DATABASE_URL"),
        ({"redis_url": "localhost:6379"}, "OPTGATE_REDIS_URL"),
        ({"twilio_account_sid": "AC123", "twilio_auth_token": TOKEN}, "TWILIO_ACCOUNT_SID"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(value),
)
def test_replace_rejects_a_wrong_value_like_the_environment_does(
    changes: dict[str, Any], variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings().replace(**changes)
    assert caught.value.variable == variable


def test_replace_reads_values_like_the_environment_does() -> None:
    settings = Settings().replace(
        default_region="gb",
        log_level="debug",
        database_url="postgres://u:p@h/db",
        api_tokens=f"ops:manager:*:{SECRET}",
        quiet_hours="off",
        send_concurrency="4",
    )
    assert settings.default_region == "GB"
    assert settings.api_tokens == (ApiToken("ops", Role.MANAGER, None, SECRET),)
    assert settings.quiet_hours is None
    assert settings.send_concurrency == 4
    assert settings.log_level == "DEBUG"
    assert settings.database_url == "postgresql+psycopg://u:p@h/db"


def test_the_make_settings_fixture_validates(make_settings: Any) -> None:
    assert make_settings(log_level="error").log_level == "ERROR"
    with pytest.raises(SettingsError):
        make_settings(default_region="Narnia")


# -- safe_database_url ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("postgres://optgate:s3cret@db:5432/optgate",
         "postgresql+psycopg://optgate:***@db:5432/optgate"),
        ("postgresql://optgate:p%40ss%2Fw@db/optgate?sslmode=require",
         "postgresql+psycopg://optgate:***@db/optgate?sslmode=require"),
        ("postgresql://optgate@db/optgate", "postgresql+psycopg://optgate@db/optgate"),
        ("sqlite:////tmp/optgate.sqlite3", "sqlite:////tmp/optgate.sqlite3"),
    ],
    ids=["password", "escaped-password", "no-password", "sqlite"],
)  # fmt: skip
def test_safe_database_url_masks_the_password(url: str, safe: str) -> None:
    settings = Settings.from_env({"OPTGATE_DATABASE_URL": url})
    assert settings.safe_database_url() == safe
    assert "s3cret" not in settings.safe_database_url()
    assert "ss/w" not in settings.safe_database_url()


def test_the_default_database_url_is_safe_as_is() -> None:
    assert Settings().safe_database_url() == DEFAULT_DATABASE_URL


def test_a_mistyped_redis_url_is_not_echoed_because_it_may_hold_a_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"OPTGATE_REDIS_URL": "redis:/:s3cret@cache.internal:6379"})
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith("OPTGATE_REDIS_URL: ")


@pytest.mark.parametrize(("level", "twilio_level"), [("INFO", "WARNING"), ("DEBUG", "DEBUG")])
def test_the_twilio_clients_request_log_shows_only_when_debugging(
    make_settings: Callable[..., Settings], level: str, twilio_level: str
) -> None:
    # At INFO it would log nine lines per send, the account SID among them.
    logger = logging.getLogger("twilio.http_client")
    before = logger.level
    try:
        configure_logging(make_settings(log_level=level))
        assert logging.getLevelName(logger.level) == twilio_level
    finally:
        logger.setLevel(before)


@pytest.mark.parametrize("key", ["tooshort-secret", "with a space " * 4, "nul\x00" * 10])
def test_a_wrong_secret_key_is_not_echoed(key: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env("OPTGATE_SECRET_KEY", key)
    assert key.strip() not in str(caught.value)
    assert "secret_key=" not in repr(Settings(secret_key="s" * 40))
