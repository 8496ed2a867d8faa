"""SMS providers. One module per provider, one line per provider in PROVIDERS.

To add one: copy twilio.py and its test table, implement the Provider protocol
(providers/base.py), and add a line here. Nothing else names a provider.

Adapters are imported when first asked for, so that code which only names a
provider (the inbound pipeline, the sender, the CLI) does not load its SDK.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from app.errors import NotFound
from app.providers.base import Provider
from app.settings import Settings

#: name -> "module:class" of its adapter, a callable taking the Settings.
PROVIDERS: dict[str, str] = {
    "twilio": "app.providers.twilio:TwilioProvider",
}


def configuration_warnings(settings: Settings) -> list[str]:
    """What each provider says is missing from its configuration."""
    return [
        warning
        for name in PROVIDERS
        for warning in get_provider(name, settings).configuration_warnings()
    ]


@cache
def get_provider(name: str, settings: Settings) -> Provider:
    """The adapter called ``name``, built once per settings and reused (its API client too).

    Raises:
        NotFound: no such provider (naming the ones there are).
    """
    where = PROVIDERS.get(name)
    if where is None:
        raise NotFound(f"no provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module, _, factory = where.partition(":")
    provider: Provider = getattr(import_module(module), factory)(settings)
    return provider
