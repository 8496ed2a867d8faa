"""optgate: an SMS consent gateway.

This package's ``__init__`` loads nothing: Python runs it before any submodule,
so whatever it imported, every domain module, the worker and every CLI command
would load too. ``create_app`` is a shim that imports the web stack (Flask,
Werkzeug, the provider SDKs) only when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Flask:
    """The Flask application (app/web/factory.py).

    Args:
        settings: defaults to ``Settings.from_env()``; tests pass their own.

    Raises:
        SettingsError: a setting is wrong (the message names it).
        ConfigError: keywords.yaml is missing or wrong (every problem, with its line).
    """
    from app.web.factory import create_app as factory

    return factory(settings)
