"""``optgate web``: the app under gunicorn, the same way in production and locally."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from app import create_app, logs
from app.keywords import load
from app.runtime import heartbeat
from app.sending.quiet import require_zone_data
from app.settings import Settings, configure_logging


class MaskingLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logs without a contact's number or email: the access log's paths
    and queries name contacts (``/api/v1/contacts/+14155550199/consent``)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The safety net over every line, error log and tracebacks included.
        logs.mask_handlers(self.error_log, self.access_log)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        return logs.mask_access_atoms(super().atoms(resp, req, environ, request_time))


class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Runs in each worker after the fork, so no process shares a
        # database connection with another.
        return create_app(self._settings)


def _install_heartbeat(worker: Any) -> None:
    heartbeat.install(worker.notify)


def run_web(
    settings: Settings, bind: str, workers: int | None = None, *, timeout: int = 30
) -> None:
    """Serve until stopped. Settings and keywords.yaml are checked before gunicorn starts.

    Raises:
        ConfigError: keywords.yaml is missing or wrong (so no worker fails to boot later).
    """
    load(settings.keywords_path, settings.default_region)
    # Before gunicorn starts: a worker that cannot boot would only say so in a traceback.
    require_zone_data(settings.quiet_hours)
    # Before gunicorn starts: its master logs too, and the workers inherit the setup.
    configure_logging(settings)
    options = {
        "bind": bind,
        "workers": workers or int(os.environ.get("WEB_CONCURRENCY", "2")),
        "worker_class": "sync",
        "timeout": timeout,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logger_class": MaskingLogger,
        "proc_name": "optgate-web",
        # gunicorn's control socket is one path per user account: several
        # optgate web processes would take it over from each other. We do not
        # use gunicornc, so none is opened.
        "control_socket_disable": True,
        # Long exports and imports check in as they go (app/runtime/heartbeat.py).
        "post_worker_init": _install_heartbeat,
    }
    _Server(settings, options).run()
