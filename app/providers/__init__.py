"""SMS providers. One module per provider, one line per provider in PROVIDERS.

To add one: copy twilio.py and its test table, implement the Provider protocol
(providers/base.py), and add a line here. Nothing else names a provider.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from app.errors import NotFound
from app.providers.base import Provider
from app.providers.twilio import TwilioProvider
from app.settings import Settings

PROVIDERS: dict[str, Callable[[Settings], Provider]] = {
    "twilio": TwilioProvider,
}


def configuration_warnings(settings: Settings) -> list[str]:
    """What each provider says is missing from its configuration."""
    return [
        warning
        for make in PROVIDERS.values()
        for warning in make(settings).configuration_warnings()
    ]


@cache
def get_provider(name: str, settings: Settings) -> Provider:
    """The adapter called ``name``, built once per settings and reused (its API client too).

    Raises:
        NotFound: no such provider (naming the ones there are).
    """
    factory = PROVIDERS.get(name)
    if factory is None:
        raise NotFound(f"no provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    return factory(settings)
