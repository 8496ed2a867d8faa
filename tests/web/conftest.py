"""The admin API's app (tests/web/admin.py) as a fixture, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from app import create_app
from app.data.db import Database
from app.settings import Settings
from tests.web.admin import Admin, open_admin, open_api


@pytest.fixture
def admin(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    yield from open_admin(make_settings, clean_database_url, redis_url)


@pytest.fixture
def make_app() -> Iterator[Callable[[Settings], Flask]]:
    """create_app, with each app's database engine disposed after the test."""
    apps: list[Flask] = []

    def build(settings: Settings) -> Flask:
        app = create_app(settings)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["optgate.database"].dispose()


@pytest.fixture
def api_and_database(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[tuple[Flask, Database]]:
    """The API app (admin.api_app) on the test database, and that database."""
    with open_api(make_settings, clean_database_url, redis_url) as (app, database):
        yield app, database
