"""The Flask application factory: settings, database, keyword rules, blueprints."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.data.db import Database
from app.keywords.store import KeywordStore
from app.providers import configuration_warnings
from app.sending.quiet import require_zone_data
from app.settings import Settings, configure_logging

log = logging.getLogger("optgate")

#: The largest request body accepted.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    """The Flask application.

    Args:
        settings: defaults to ``Settings.from_env()``; tests pass their own.

    Raises:
        SettingsError: a setting is wrong (the message names it).
        ConfigError: keywords.yaml is missing or wrong (every problem, with its line).
    """
    settings = settings or Settings.from_env()
    configure_logging(settings)
    require_zone_data(settings.quiet_hours)  # inline jobs decide sends in this process
    app = Flask(__name__)
    app.config["JSON_SORT_KEYS"] = False
    # A campaign of a few hundred thousand numbers fits; anything larger is refused (413).
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.extensions["optgate.settings"] = settings
    app.extensions["optgate.database"] = Database(settings.database_url)
    # A service does not start without good keyword rules (ConfigError names
    # every problem with its line); later bad edits leave the last good ones on.
    keywords = KeywordStore(settings.keywords_path, settings.default_region)
    keywords.watch()
    app.extensions["optgate.keywords"] = keywords

    from app import web

    web.init_app(app)
    if settings.trusted_proxies:
        # Believe X-Forwarded-Proto/Host/Port/Prefix from that many proxies, and
        # no more: the URL a webhook was signed for is rebuilt from them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    if not settings.verify_signatures:
        log.warning(
            "OPTGATE_VERIFY_SIGNATURES=false: webhooks are accepted WITHOUT signature checks; "
            "anyone can opt numbers in or out. Never in production."
        )
    if settings.redis_inline:
        log.warning(
            "OPTGATE_REDIS_URL=inline: no Redis, jobs run inside the web process and are lost "
            "when it stops. For development only."
        )
    for warning in configuration_warnings(settings):
        log.warning("%s", warning)
    return app
