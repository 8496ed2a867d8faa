"""Signing in: the password, and a wait that grows after failed tries.

Failures are counted per account and per client address, in the database
(so every web process and host counts the same ones). The first few are
free; after them each try must wait twice as long as the one before, up to
``MOST_WAIT``, and a try made too early is refused without looking at the
password. A count is forgotten an hour after its last failure; a success
forgets the account's count (not the address's: one good account must not
clear the way to guessing others').
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounts.users import canonical_name, password_matches
from app.data.models import LoginFailure, User, utcnow
from app.errors import InvalidRequest, OptgateError

#: Failed tries before the waits begin: per account, and per client address (an
#: office behind one address has many people).
FREE_PER_ACCOUNT = 5
FREE_PER_ADDRESS = 20
#: The longest wait between two tries.
MOST_WAIT = timedelta(minutes=15)
#: A count is forgotten this long after its last failure.
FORGET_AFTER = timedelta(hours=1)


class SignInRefused(OptgateError):
    """Wrong name or password, or a disabled account: one message for all three, so
    that a stranger learns nothing about which accounts exist."""

    def __init__(self) -> None:
        super().__init__("That user name and password do not match an active account.")


class SignInThrottled(OptgateError):
    """Too many failed tries; ``retry_after`` seconds until the next may be made."""

    def __init__(self, retry_after: int) -> None:
        unit = "second" if retry_after == 1 else "seconds"
        super().__init__(
            f"Too many failed sign-ins: try again in {retry_after} {unit}. "
            "A manager can set a new password with `optgate users password`."
        )
        self.retry_after = retry_after


def _keys(name: str | None, client: str) -> list[tuple[str, int]]:
    keys = [(f"ip:{client}", FREE_PER_ADDRESS)]
    return [(f"user:{name}", FREE_PER_ACCOUNT), *keys] if name is not None else keys


def _printable(client: str) -> str:
    """The client's address as a key: what a proxy's header put there, made storable."""
    return "".join(c for c in client if c.isprintable())[:150] or "unknown"


def wait_needed(failures: int, free: int) -> timedelta:
    """How long a try must wait after the last of ``failures`` failed ones."""
    if failures < free:
        return timedelta(0)
    doublings = min(failures - free, 20)  # 2**20 s is past MOST_WAIT already
    return min(timedelta(seconds=2**doublings), MOST_WAIT)


def _throttled(session: Session, keys: list[tuple[str, int]], now: datetime) -> int | None:
    longest: int | None = None
    for key, free in keys:
        row = session.get(LoginFailure, key)
        if row is None or now - row.last_at > FORGET_AFTER:
            continue
        left = row.last_at + wait_needed(row.failures, free) - now
        if left > timedelta(0):
            seconds = max(1, int(left.total_seconds() + 0.999))
            longest = max(longest or 0, seconds)
    return longest


def _record_failure(session: Session, key: str, now: datetime) -> None:
    # One statement, so that two web processes counting at once both count.
    stale = now - FORGET_AFTER
    updated = session.execute(
        sa.update(LoginFailure)
        .where(LoginFailure.key == key)
        .values(
            failures=sa.case((LoginFailure.last_at < stale, 1), else_=LoginFailure.failures + 1),
            last_at=now,
        )
    )
    if getattr(updated, "rowcount", 0) == 0:
        try:
            with session.begin_nested():
                session.add(LoginFailure(key=key, failures=1, last_at=now))
        except IntegrityError:
            # Another process added it in between: count on its row.
            session.execute(
                sa.update(LoginFailure)
                .where(LoginFailure.key == key)
                .values(failures=LoginFailure.failures + 1, last_at=now)
            )


def sign_in(
    session: Session, name: str, password: str, client: str, now: datetime | None = None
) -> User:
    """The active user ``name`` if ``password`` is theirs.

    A failure is written to ``session`` before the error is raised: the caller
    commits in both cases.

    Raises:
        SignInThrottled: too many failures lately (the password was not checked).
        SignInRefused: wrong name or password, or the account is disabled.
    """
    now = now or utcnow()
    try:
        canonical: str | None = canonical_name(name)
    except InvalidRequest:
        # No account has such a name (a NUL, a space, 1,000 characters): nothing to
        # look up, and nothing a database may refuse; the address's count still counts.
        canonical = None
    keys = _keys(canonical, _printable(client))
    wait = _throttled(session, keys, now)
    if wait is not None:
        raise SignInThrottled(wait)
    user = None
    if canonical is not None:
        user = session.scalars(sa.select(User).where(User.name == canonical)).one_or_none()
    if not password_matches(user, password) or user is None or user.disabled_at is not None:
        for key, _free in keys:
            _record_failure(session, key, now)
        raise SignInRefused()
    session.execute(sa.delete(LoginFailure).where(LoginFailure.key == f"user:{canonical}"))
    user.last_login_at = now
    return user


def proxy_user(session: Session, name: str) -> User:
    """The active user an SSO proxy vouches for.

    Raises:
        SignInRefused: no such user, or disabled.
    """
    try:
        canonical = canonical_name(name)
    except InvalidRequest:
        raise SignInRefused() from None
    user = session.scalars(sa.select(User).where(User.name == canonical)).one_or_none()
    if user is None or user.disabled_at is not None:
        raise SignInRefused()
    return user
