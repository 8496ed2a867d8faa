"""The admin console at ``/console``: server-rendered pages for agents and managers.

Plain HTML forms that work without JavaScript; htmx (vendored in ``static/``)
only makes some of them update in place. Every change goes through the same
domain functions as the API (the ledger for consent, app/accounts for users);
no view writes a table row itself. What the modules hold:

- ``__init__``: the blueprint, who is signed in, the organisation in view,
  rendering, the security headers and the error pages;
- ``auth``: signing in and out (password, or an SSO proxy's header);
- ``contacts``: find a contact, their preferences, history and messages;
- ``reports``: the snapshot, the export and imports;
- ``review``: the review queue and the keyword tester;
- ``people``: the managers' page of users.

Every page needs a signed-in user; every POST needs the form's CSRF token
(Flask-WTF). A user of one organisation sees that one only: what belongs to
another is answered as what does not exist (404).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import Blueprint, Flask, g, make_response, redirect, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import Forbidden, HTTPException, NotFound, ServiceUnavailable

from app.data.models import Organization, User
from app.errors import ConsentRefused, InvalidChange, OptgateError
from app.settings import Role
from app.web import session as db_session
from app.web import settings
from app.web.api import text_problem

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

#: How long a session lasts without signing in again, and a form stays usable.
SESSION_LIFETIME = timedelta(hours=12)
FORM_LIFETIME = timedelta(hours=8)

#: No inline script or style, nothing from elsewhere: an injected tag cannot run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

#: Pages a visitor who has not signed in may open.
_OPEN = {"console.login", "console.static"}


class ConsoleSessions(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS (directly, or
    through a proxy OPTGATE_TRUSTED_PROXIES believes), so one setting serves both a
    laptop on http://127.0.0.1 and a host behind TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


# -- who is signed in, and where ---------------------------------------------------------


def user() -> User:
    """The signed-in user (every view but the sign-in page has one)."""
    found: User = g.console_user
    return found


def actor() -> str:
    """Who a change is recorded as made by: the signed-in person, through the console."""
    return f"{user().name} (console)"


def is_manager() -> bool:
    return user().role is Role.MANAGER


def managers_only(view: F) -> F:
    """The view is a manager's: an agent gets the 403 page."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if not is_manager():
            raise Forbidden(
                f"This page is for managers; you are signed in as {user().name}, an agent. "
                "Ask a manager if you need it."
            )
        return view(*args, **kwargs)

    return cast(F, checked)


def organizations() -> list[Organization]:
    """The organisations the user reaches: their own, or (an operator) every one."""
    if "console_organizations" not in g:
        own = user().organization_id
        query = sa.select(Organization).order_by(Organization.name)
        if own is not None:
            query = query.where(Organization.id == own)
        g.console_organizations = list(db_session().scalars(query))
    found: list[Organization] = g.console_organizations
    return found


def organization() -> Organization:
    """The organisation in view: the user's own, or the one an operator chose."""
    if "console_organization" in g:
        found: Organization = g.console_organization
        return found
    reachable = organizations()
    if not reachable:
        raise NotFound(
            "There is no organization yet: it begins with its first line "
            "(`optgate lines add NUMBER --organization NAME`)."
        )
    chosen = session.get("organization_id")
    g.console_organization = next((o for o in reachable if o.id == chosen), reachable[0])
    return cast(Organization, g.console_organization)


# -- pages --------------------------------------------------------------------------------


def page(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    """``template`` rendered with what every page shows (the user, the organisation)."""
    return render_template(f"console/{template}", **context), status


#: The longest reason a form takes.
MOST_REASON = 500


def reason_field() -> str | None:
    """The form's optional ``reason``: free text, one paragraph or a few.

    Raises:
        InvalidChange: too long, or holding a control character.
    """
    raw = request.form.get("reason", "").strip()
    if not raw:
        return None
    if len(raw) > MOST_REASON:
        raise InvalidChange(f"Reason: at most {MOST_REASON} characters.")
    if problem := text_problem(raw, free_text=True):
        raise InvalidChange(f"Reason: it {problem}.")
    return raw


def wants_fragment() -> bool:
    """The request came from htmx, which swaps in a part of the page."""
    return request.headers.get("HX-Request") == "true"


def refusal(error: OptgateError) -> dict[str, str]:
    """What a page shows of a refused change: the reason, and what would work."""
    if isinstance(error, ConsentRefused):
        return {"reason": error.reason, "hint": error.hint}
    return {"reason": error.message, "hint": ""}


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    signed_in = g.get("console_user") is not None
    html = render_template("console/error.html", title=title, message=message, signed_in=signed_in)
    return html, status


def _http_error(error: HTTPException) -> ResponseReturnValue:
    if isinstance(error, CSRFError):
        return error_page(
            400,
            "This form has expired",
            "The form was older than its time limit, or did not come from this console. "
            "Nothing was changed: go back, reload the page and try again.",
        )
    titles = {403: "Not for your role", 404: "Not found", 429: "Please wait"}
    message = error.description or error.name
    if error.code == 404 and "requested URL was not found" in message:
        message = "There is no such page. Start again from Find a contact."
    body, status = error_page(error.code or 500, titles.get(error.code or 0, error.name), message)
    response = make_response(body, status)
    # What the error says besides its body: Retry-After on a 429, Allow on a 405.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


# -- every request -------------------------------------------------------------------------


@blueprint.before_request
def _guard() -> ResponseReturnValue | None:
    if settings().secret_key is None:
        raise ServiceUnavailable(
            "The console is off: set OPTGATE_SECRET_KEY (the same on every web host) and "
            "restart the web app."
        )
    from app.web.console import auth

    # Who it is first: a refused form's page still shows its menu.
    g.console_user = auth.signed_in_user()
    if request.method == "POST":
        if request.endpoint == "console.imports" and g.console_user is not None:
            # The CSRF check reads the form, so the upload's larger limit is set first.
            from app.web.api.reports import MAX_IMPORT_BYTES

            request.max_content_length = MAX_IMPORT_BYTES
        csrf.protect()
    if g.console_user is None and request.endpoint not in _OPEN:
        return auth.to_sign_in()
    return None


@blueprint.after_request
def _headers(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "console.static":
        # Pages show personal data: not kept by the browser or any cache on the way.
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.context_processor
def _everywhere() -> dict[str, Any]:
    return {
        "console_user": g.get("console_user"),
        "console_sso": settings().console_user_header is not None,
        "is_manager": _is_manager_or_none,
        "console_organizations": organizations,
        "console_organization": organization,
    }


def _is_manager_or_none() -> bool:
    return g.get("console_user") is not None and is_manager()


@blueprint.post("/organization")
def choose_organization() -> ResponseReturnValue:
    """An operator's choice of the organisation in view (kept in the session)."""
    from app.web.console.auth import safe_next

    raw = request.form.get("organization", "")
    chosen = next((o for o in organizations() if raw.isdigit() and o.id == int(raw)), None)
    if chosen is None:
        raise NotFound("There is no such organization for you; choose one from the list.")
    session["organization_id"] = chosen.id
    return redirect(safe_next(request.form.get("next")), 303)


def is_console_request() -> bool:
    """The request is for a console page (its errors are pages, not JSON)."""
    return request.path == "/console" or request.path.startswith("/console/")


def init_app(app: Flask) -> None:
    from app.web.console import auth, contacts, people, reports, review  # noqa: F401

    secret = app.extensions["optgate.settings"].secret_key
    if secret is not None:
        app.secret_key = secret
    app.session_interface = ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="optgate_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # Only the console's forms carry a token: webhooks and the API do not.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=int(FORM_LIFETIME.total_seconds()),
    )
    csrf.init_app(app)
    app.register_blueprint(blueprint)


def http_error_page(error: HTTPException) -> ResponseReturnValue:
    """app/web/errors.py calls this for a console request's HTTP error."""
    return _http_error(error)


def optgate_error_page(error: OptgateError, status: int) -> ResponseReturnValue:
    """app/web/errors.py calls this for a console request's domain error."""
    title = {404: "Not found", 409: "Not possible"}.get(status, "Please check what you entered")
    shown = refusal(error)
    return error_page(status, title, " ".join(part for part in shown.values() if part))
