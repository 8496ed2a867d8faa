"""Fixtures for the outbound path: a migrated database with one line, the test
Redis, a local Twilio stub, and the outbox and sender wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from app.addresses import normalize_line
from app.data.db import Database
from app.data.models import Message
from app.lines import add_line, get_or_create_organization
from app.providers.twilio import TwilioProvider
from app.sending.outbox import Outbox
from app.sending.sender import Sender
from app.settings import Settings
from tests.conftest import free_port
from tests.twilio_stub import TwilioStub, running_stub
from workers import outbound as outbound_module
from workers.queue import redis_outbox

LINE = "+14155550100"
PUBLIC_URL = "https://sms.example.com"


@dataclass
class Outbound:
    settings: Settings
    database: Database
    stub: TwilioStub
    outbox: Outbox
    redis: redis.Redis
    #: (message id, when) of every retry, deferral or return a sender scheduled.
    scheduled: list[tuple[int, datetime]] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)

    def sender(self, clock: Callable[[], datetime] | None = None, **changes: Any) -> Sender:
        settings = self.settings.replace(**changes) if changes else self.settings
        options: dict[str, Any] = {"clock": clock} if clock else {}
        sender = Sender(
            settings,
            self.database,
            TwilioProvider(settings),
            lambda message_ids, when: self.scheduled.extend((i, when) for i in message_ids),
            **options,
        )
        self.senders.append(sender)
        return sender

    def queue(
        self, to: str, body: str = "Your order shipped", kind: str = "transactional", **options: Any
    ) -> int:
        return self.outbox.message(LINE, to, body, kind, **options)

    def message(self, message_id: int) -> Message:
        with self.database.sessions() as session:
            row = session.get(Message, message_id)
            assert row is not None
            return row

    def messages(self) -> list[Message]:
        with self.database.sessions() as session:
            return list(session.scalars(sa.select(Message).order_by(Message.id)))

    def send_from_environment(
        self, monkeypatch: pytest.MonkeyPatch, ids: list[int], **environ: str
    ) -> dict[str, int]:
        """Run the RQ job ``send_messages`` the way a worker does: with its
        settings read from the environment (these settings, plus ``environ``)."""
        settings = self.settings
        variables = {
            "OPTGATE_DATABASE_URL": settings.database_url,
            "OPTGATE_REDIS_URL": settings.redis_url,
            "OPTGATE_TWILIO_API_URL": settings.twilio_api_url or "",
            "OPTGATE_QUIET_HOURS": "off",
            "TWILIO_ACCOUNT_SID": settings.twilio_account_sid or "",
            "TWILIO_AUTH_TOKEN": settings.twilio_auth_token or "",
            "OPTGATE_KEYWORDS": str(settings.keywords_path),
            # Bursts through one long code; tests/workers/test_paced_sending.py sets its own.
            "OPTGATE_SEND_RATE_LONG_CODE": "10000",
            **environ,
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        outbound_module._sender.cache_clear()
        try:
            return outbound_module.send_messages(ids)
        finally:
            outbound_module._sender().close()
            outbound_module._sender().database.dispose()
            outbound_module._sender.cache_clear()


@pytest.fixture
def outbound(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
) -> Iterator[Outbound]:
    with running_stub(free_port()) as stub:
        settings = make_settings(
            database_url=clean_database_url,
            redis_url=redis_url,
            twilio_api_url=stub.url,
            public_url=PUBLIC_URL,
            quiet_hours="off",
        )
        database = Database(clean_database_url)
        with database.transaction() as session:
            organization = get_or_create_organization(session, settings.default_organization)
            add_line(session, normalize_line(LINE), organization)
        env = Outbound(settings, database, stub, redis_outbox(settings, database), redis_client)
        yield env
        for sender in env.senders:
            sender.close()
        database.dispose()
