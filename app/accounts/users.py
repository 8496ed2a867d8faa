"""Console accounts: one per person, a role (the API's), one organisation or all.

Passwords are hashed with argon2id (argon2-cffi, its default parameters, RFC
9106's second recommendation). Names are compared as written in lower case,
so "Jane" and "jane" are one account. Accounts are disabled, never deleted:
the history names the people who made each change.
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from app.data.models import Organization, User, utcnow
from app.errors import Conflict, InvalidRequest, NotFound
from app.settings import Role

#: The longest user name (an email address fits).
MOST_NAME = 120
#: Passwords: long enough to resist guessing offline, short enough to hash quickly.
LEAST_PASSWORD = 12
MOST_PASSWORD = 512

_hasher = PasswordHasher()
#: A name is one word: no spaces or control characters (any script is fine).
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")


def canonical_name(raw: str) -> str:
    """The name as stored: NFC, lower case, without surrounding spaces.

    Raises:
        InvalidRequest: empty, too long, or holding a space or control character.
    """
    name = unicodedata.normalize("NFC", raw.strip()).lower()
    if not name:
        raise InvalidRequest("name: say whose account it is, e.g. jane or jane@example.com")
    if len(name) > MOST_NAME:
        raise InvalidRequest(f"name: at most {MOST_NAME} characters")
    if not _NAME.fullmatch(name):
        raise InvalidRequest("name: one word, without spaces or control characters")
    return name


def check_password(password: str, name: str) -> None:
    """Raises InvalidRequest if ``password`` is too short, too long or the name itself."""
    if len(password) < LEAST_PASSWORD:
        raise InvalidRequest(
            f"password: at least {LEAST_PASSWORD} characters (a few words make a good one)"
        )
    if len(password) > MOST_PASSWORD:
        raise InvalidRequest(f"password: at most {MOST_PASSWORD} characters")
    if "\x00" in password:
        raise InvalidRequest("password: holds the NUL character, which no keyboard types")
    if password.strip().lower() == name:
        raise InvalidRequest("password: must not be the user name")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


#: Verified when the name is unknown, so that a wrong name takes as long as a wrong
#: password and the time does not tell which names exist.
_STAND_IN = _hasher.hash("not anyone's password")


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s (False for None, after the same work)."""
    stored = user.password_hash if user is not None and user.password_hash else _STAND_IN
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    if user is None or not user.password_hash:
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        # Stronger parameters than when it was set: stored again with them.
        user.password_hash = _hasher.hash(password)
    return True


def add_user(
    session: Session,
    name: str,
    role: Role,
    organization: Organization | None,
    password: str | None,
    created_by: str,
) -> User:
    """A new account; ``password`` None: it signs in through the SSO proxy only.

    Raises:
        InvalidRequest: a bad name or password.
        Conflict: the name is taken.
    """
    name = canonical_name(name)
    if password is not None:
        check_password(password, name)
    require_free_name(session, name)
    user = User(
        name=name,
        role=role,
        organization_id=organization.id if organization else None,
        password_hash=hash_password(password) if password is not None else None,
        created_by=created_by,
    )
    session.add(user)
    session.flush()
    return user


def require_free_name(session: Session, name: str) -> None:
    """Raises Conflict if the (canonical) ``name`` is taken."""
    if session.scalar(sa.select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"there is a user {name!r} already (`optgate users list`)")


def find_user(session: Session, name: str, organization_id: int | None = None) -> User:
    """The user ``name``; with ``organization_id``, only one of that organisation (a user
    of another, or of every one, is answered as one that does not exist).

    Raises:
        NotFound: no such user (in that organisation).
    """
    query = sa.select(User).where(User.name == canonical_name(name))
    if organization_id is not None:
        query = query.where(User.organization_id == organization_id)
    user = session.scalars(query).one_or_none()
    if user is None:
        raise NotFound(f"there is no user {name.strip()!r} (`optgate users list`)")
    return user


def list_users(session: Session, organization_id: int | None = None) -> list[User]:
    """Every user, by name; with ``organization_id``, that organisation's."""
    query = sa.select(User).order_by(User.name)
    if organization_id is not None:
        query = query.where(User.organization_id == organization_id)
    return list(session.scalars(query))


def set_password(session: Session, user: User, password: str) -> None:
    """A new password; the user's other sessions end."""
    check_password(password, user.name)
    user.password_hash = hash_password(password)
    user.session_version += 1


def disable(session: Session, user: User) -> bool:
    """The user can no longer sign in, and their sessions end; False if already so."""
    if user.disabled_at is not None:
        return False
    user.disabled_at = utcnow()
    user.session_version += 1
    return True


def enable(session: Session, user: User) -> bool:
    """False if the user was not disabled."""
    if user.disabled_at is None:
        return False
    user.disabled_at = None
    return True
