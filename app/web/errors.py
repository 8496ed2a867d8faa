"""Every error answers JSON with a message a person can act on, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app.errors import ConsentRefused, OptgateError

log = logging.getLogger("optgate.web")


def _optgate_error(error: OptgateError) -> ResponseReturnValue:
    body: dict[str, str] = {"error": type(error).__name__, "message": error.message}
    if isinstance(error, ConsentRefused):
        body["reason"] = error.reason
        body["hint"] = error.hint
    return jsonify(body), error.http_status


def _http_error(error: HTTPException) -> ResponseReturnValue:
    response = jsonify(
        {"error": error.name.replace(" ", ""), "message": error.description or error.name}
    )
    # Keep what the error says besides its body (WWW-Authenticate on a 401, Allow on a 405).
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, error.code or 500


def _database_unavailable(error: OperationalError) -> ResponseReturnValue:
    # The database is down or unreachable: 503 tells providers and clients to
    # retry later; nothing was committed.
    log.error("database unavailable: %s", error.orig)
    return jsonify(
        {"error": "ServiceUnavailable", "message": "the database is unavailable; retry later"}
    ), 503


def _unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("unexpected error", exc_info=error)
    return jsonify(
        {"error": "InternalServerError", "message": "an unexpected error happened; it was logged"}
    ), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(OptgateError, _optgate_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
