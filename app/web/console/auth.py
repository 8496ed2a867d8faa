"""Signing in and out of the console.

A session remembers the user's id and their ``session_version``: a new
password or a disabled account raises the version, which ends every session
signed before. With OPTGATE_CONSOLE_USER_HEADER set, the SSO proxy in front
says who is there and no password is asked; the user must still exist and be
active here, and their role is the one stored here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden, TooManyRequests

from app.accounts import logins
from app.data.models import User
from app.web import session as db_session
from app.web import settings
from app.web.console import blueprint, page

#: The longest name or password the sign-in form reads (longer ones cannot match).
MOST_FIELD = 1024


def signed_in_user() -> User | None:
    """The user of this request, or None (not signed in, or the session ended)."""
    header = settings().console_user_header
    if header is not None:
        name = request.headers.get(header, "").strip()
        if not name:
            return None
        try:
            return logins.proxy_user(db_session(), name)
        except logins.SignInRefused:
            raise Forbidden(
                "Your single sign-on account has no active optgate user. Ask a manager to "
                "add you (`optgate users add NAME --role agent --sso-only`)."
            ) from None
    user_id, version = session.get("user_id"), session.get("version")
    if not isinstance(user_id, int) or not isinstance(version, int):
        return None
    user = db_session().get(User, user_id)
    if user is None or user.disabled_at is not None or user.session_version != version:
        session.clear()
        return None
    return user


def to_sign_in() -> ResponseReturnValue:
    """The sign-in page, coming back here afterwards."""
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a console path of this site, never elsewhere."""
    if raw and raw.startswith("/console") and not raw.startswith("//"):
        parts = urlsplit(raw)
        if not parts.scheme and not parts.netloc and "\\" not in raw:
            return raw
    return url_for("console.home")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"))
    if settings().console_user_header is not None:
        if g.console_user is not None:  # _guard asked already
            return redirect(target)
        return page(
            "login.html",
            401,
            sso=True,
            message="Sign in through your organization's single sign-on, then reload.",
        )
    if request.method == "GET":
        if g.console_user is not None:  # _guard asked already
            return redirect(target)
        return page("login.html", next=target)
    name = request.form.get("name", "")[:MOST_FIELD]
    password = request.form.get("password", "")[:MOST_FIELD]
    db = db_session()
    try:
        user = logins.sign_in(db, name, password, request.remote_addr or "unknown")
    except logins.SignInThrottled as error:
        db.commit()
        raise TooManyRequests(error.message, retry_after=error.retry_after) from None
    except logins.SignInRefused as error:
        db.commit()  # the failure counts
        return page("login.html", 401, next=target, name=name, error=error.message)
    db.commit()
    # A new session on every sign-in: a session id planted before is worth nothing.
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["version"] = user.session_version
    return redirect(target, 303)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("console.login"), 303)
