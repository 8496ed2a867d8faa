"""Every error answers JSON with a message a person can act on, never a traceback;
on the admin console's pages, a page that says the same (app/web/console)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from werkzeug.exceptions import HTTPException

from app.errors import Conflict, ConsentRefused, NotFound, OptgateError
from app.logs import describe_database_error, frames

log = logging.getLogger("optgate.web")


#: The HTTP status of each kind of domain error; any other is the client's mistake (400).
STATUS: dict[type[OptgateError], int] = {NotFound: 404, Conflict: 409, ConsentRefused: 409}


def status_of(error: OptgateError) -> int:
    """The status for ``error``: its own class's, or the nearest ancestor's."""
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 400)


def _console() -> bool:
    from app.web.console import is_console_request

    return is_console_request()


def _page(status: int, title: str, message: str) -> ResponseReturnValue:
    from app.web.console import error_page

    return error_page(status, title, message)


def _optgate_error(error: OptgateError) -> ResponseReturnValue:
    if _console():
        from app.web.console import optgate_error_page

        return optgate_error_page(error, status_of(error))
    body: dict[str, str] = {"error": type(error).__name__, "message": error.message}
    if isinstance(error, ConsentRefused):
        body["reason"] = error.reason
        body["hint"] = error.hint
    return jsonify(body), status_of(error)


def _http_error(error: HTTPException) -> ResponseReturnValue:
    if _console():
        from app.web.console import http_error_page

        return http_error_page(error)
    response = jsonify(
        {"error": error.name.replace(" ", ""), "message": error.description or error.name}
    )
    # Keep what the error says besides its body (WWW-Authenticate on a 401, Allow on a 405).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, error.code or 500


def _database_unavailable(error: DBAPIError) -> ResponseReturnValue:
    # The database is down or unreachable: 503 tells providers and clients to
    # retry later; nothing was committed.
    log.error("database unavailable: %s", describe_database_error(error))
    if _console():
        return _page(503, "The database is unavailable", "Nothing was changed; try again soon.")
    return jsonify(
        {"error": "ServiceUnavailable", "message": "the database is unavailable; retry later"}
    ), 503


#: SQLSTATE classes and codes that mean "the database cannot do this now", not "this
#: request is wrong": a connection problem (08), a read-only transaction (25006: a standby
#: after a failover, default_transaction_read_only), out of disk or memory (53), an
#: administrator's shutdown (57P). psycopg raises some of them as InternalError, not
#: OperationalError; each is answered 503 so that Twilio and clients retry.
_UNAVAILABLE_SQLSTATES = ("08", "25006", "53", "57P")


def _database_error(error: DBAPIError) -> ResponseReturnValue:
    sqlstate = str(getattr(error.orig, "sqlstate", "") or "")
    if isinstance(error, OperationalError) or sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return _database_unavailable(error)
    return _unexpected(error)


def _unexpected(error: Exception) -> ResponseReturnValue:
    if isinstance(error, StatementError):
        # The database's text may quote the row it refused, a message body among
        # its columns: say what and where, without that text.
        log.error(
            "unexpected database error: %s\n%s", describe_database_error(error), frames(error)
        )
    else:
        log.exception("unexpected error", exc_info=error)
    if _console():
        return _page(500, "Something went wrong", "An unexpected error happened; it was logged.")
    return jsonify(
        {"error": "InternalServerError", "message": "an unexpected error happened; it was logged"}
    ), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(OptgateError, _optgate_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(Exception, _unexpected)
