"""Errors a person can act on.

Every error optgate raises on purpose derives from ``OptgateError`` and its
message is written for whoever will read it (an operator at the CLI, an API
client): it names the input and says what would work. The CLI prints the
message on one line and exits 1; the web layer turns it into a JSON 4xx
(which status for which error is its business: app/web/errors.py).

    OptgateError
    ├── SettingsError      a setting is missing or malformed (the start stops)
    ├── InvalidAddress     a phone number, short code or email we cannot normalise
    ├── InvalidChange      a consent change that does not make sense (wrong channel for
    │                      the address, unknown scope, ...)
    ├── InvalidMessage     a message or campaign that cannot be queued (empty body,
    │                      unknown kind or topic, a time without a zone, ...)
    ├── InvalidRequest     an API request with a field or parameter we cannot use
    ├── NotFound           a line, organisation or address that does not exist
    ├── Conflict           the thing exists already, differently
    └── ConsentRefused     the consent rules forbid the change; `hint` says
                           what would work ("the contact must text START to ...")
"""

from __future__ import annotations


class OptgateError(Exception):
    """Base class: the message is meant for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SettingsError(OptgateError):
    """A setting is missing or has a value we cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class InvalidAddress(OptgateError):
    """Input that is not a phone number, short code or email address."""

    def __init__(self, raw: str, why: str) -> None:
        # A megabyte of input does not go back into the message whole.
        shown = repr(raw) if len(raw) <= 80 else repr(raw[:80]) + f" (and {len(raw) - 80} more)"
        super().__init__(f"{shown} is not a valid address: {why}")
        self.raw = raw
        self.why = why


class InvalidChange(OptgateError):
    """A consent change whose parts do not fit together."""


class InvalidMessage(OptgateError):
    """A message or campaign that cannot be queued as asked."""


class InvalidRequest(OptgateError):
    """An API request whose field or query parameter cannot be used as given."""


class NotFound(OptgateError):
    """A line, organisation, campaign or address that does not exist."""


class Conflict(OptgateError):
    """The thing exists already, differently."""


class ConsentRefused(OptgateError):
    """The consent rules forbid this change; nothing was written."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message} {hint}")
        self.reason = message
        self.hint = hint
