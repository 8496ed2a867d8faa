"""The admin API's app (tests/web/admin.py) as a fixture, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.settings import Settings
from tests.web.admin import Admin, open_admin


@pytest.fixture
def admin(
    make_settings: Callable[..., Settings], clean_database_url: str, redis_url: str
) -> Iterator[Admin]:
    yield from open_admin(make_settings, clean_database_url, redis_url)
