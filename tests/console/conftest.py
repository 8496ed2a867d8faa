"""Fixtures of the console tests: the app with users (tests/console/console.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.settings import Settings
from tests.console.console import Browser, open_console, signed_in
from tests.web.admin import Admin


@pytest.fixture
def console(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    yield from open_console(make_settings, clean_database_url, redis_url)


@pytest.fixture
def agent(console: Admin) -> Browser:
    """alice, an agent of "default", signed in."""
    return signed_in(console, "alice")


@pytest.fixture
def manager(console: Admin) -> Browser:
    """maria, a manager of "default", signed in."""
    return signed_in(console, "maria")
