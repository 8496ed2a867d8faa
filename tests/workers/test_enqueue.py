"""Enqueueing from plain Python: what is refused (and then nothing is written), what a
row and its job look like, campaigns in chunks, and Redis being down."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from rq import Queue

from app.data.models import Campaign, Message, MessageStatus
from app.errors import InvalidAddress, InvalidMessage, NotFound
from app.sending import outbox as outbox_module
from tests.conftest import free_port
from tests.workers.conftest import LINE, Outbound
from workers import queue as queue_module
from workers.queue import RedisJobs, job_id, redis_outbox


def jobs(env: Outbound) -> list[Any]:
    return list(Queue("outbound", connection=env.redis).get_jobs())


def count(env: Outbound, table: type[Any] = Message) -> int:
    with env.database.sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_a_message_row_is_committed_before_its_job_is_enqueued(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_at_dispatch: list[MessageStatus | None] = []
    dispatch = RedisJobs.dispatch

    def checking_dispatch(self: RedisJobs, ids: Any, *args: Any, **kwargs: Any) -> None:
        # Another connection must already see the row: a worker may take the job at once.
        with outbound.database.sessions() as other:
            seen_at_dispatch.extend(other.get(Message, i).status for i in ids)  # type: ignore[union-attr]
        dispatch(self, ids, *args, **kwargs)

    monkeypatch.setattr(RedisJobs, "dispatch", checking_dispatch)

    message_id = outbound.queue("(415) 555-0123", "Your order shipped")

    assert seen_at_dispatch == [MessageStatus.QUEUED]
    [job] = jobs(outbound)
    assert job.id == job_id([message_id]) and job.id.startswith(f"send-{message_id}-1-")
    assert (job.func_name, job.args) == ("workers.outbound.send_messages", ([message_id],))
    row = outbound.message(message_id)
    assert (row.address, row.body, row.kind, row.status) == (
        "+14155550123", "Your order shipped", "transactional", MessageStatus.QUEUED
    )  # fmt: skip


def test_job_ids_derive_from_the_message_ids() -> None:
    assert job_id([7, 8, 9]) == job_id([7, 8, 9])
    assert job_id([7, 8, 9]) != job_id([7, 8, 10])
    assert job_id([7, 8, 9]).startswith("send-7-3-")
    assert job_id([7], "at1700000000").startswith("at1700000000-7-1-")


REFUSED = [
    pytest.param({"line": "+14155550999"}, NotFound, "optgate lines add", id="unknown line"),
    pytest.param({"line": "hello"}, InvalidAddress, "hello", id="line that is no number"),
    pytest.param({"to": "+1415"}, InvalidAddress, "+1415", id="number too short"),
    pytest.param({"to": "a@example.com"}, InvalidAddress, "an email address", id="email"),
    pytest.param({"to": "12345"}, InvalidAddress, "a short code", id="short code"),
    pytest.param({"to": "+447700900123"}, InvalidAddress, "numbering plan", id="not in plan"),
    pytest.param({"body": "   "}, InvalidMessage, "the body is empty", id="empty body"),
    pytest.param({"body": "x" * 1601}, InvalidMessage, "at most 1600", id="body too long"),
    pytest.param({"kind": "promo"}, InvalidMessage, "transactional, conversational, marketing",
                 id="unknown kind"),
    pytest.param({"topic": "pricedrop"}, InvalidMessage, "known: new_arrival, price_drop",
                 id="misspelt topic"),
    pytest.param({"send_at": datetime(2026, 12, 1, 9, 0)}, InvalidMessage, "no time zone",
                 id="naive time"),
    pytest.param({"send_at": datetime.min.replace(tzinfo=UTC) + timedelta(hours=1)},
                 None, None, id="earliest time is fine"),
    pytest.param({"campaign": 999}, NotFound, "no campaign 999", id="unknown campaign"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "error", "fragment"), REFUSED)
def test_what_can_never_be_sent_is_refused_and_nothing_is_written(
    outbound: Outbound, change: dict[str, Any], error: type[Exception] | None, fragment: str | None
) -> None:
    call = {"line": LINE, "to": "+14155550123", "body": "Hi", "kind": "transactional", **change}
    if error is None:
        outbound.outbox.message(**call)
        return
    with pytest.raises(error, match=re.escape(fragment or "")):
        outbound.outbox.message(**call)
    assert count(outbound) == 0
    assert jobs(outbound) == []


def test_a_time_out_of_range_is_refused(outbound: Outbound) -> None:
    from datetime import timezone

    edge = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(InvalidMessage, match="out of range"):
        outbound.outbox.campaign(LINE, ["+14155550123"], "Hi", send_at=edge)
    assert count(outbound, Campaign) == 0


def test_enqueue_message_needs_only_the_environment(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = outbound.settings
    monkeypatch.setenv("OPTGATE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("OPTGATE_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("OPTGATE_KEYWORDS", str(settings.keywords_path))
    queue_module.default_outbox.cache_clear()
    try:
        message_id = queue_module.enqueue_message(
            LINE, "+14155550123", "Sale!", "marketing", topic="price_drop"
        )
        report = queue_module.enqueue_campaign(LINE, ["+14155550124", "nope"], "Sale!")
    finally:
        queue_module.default_outbox().database.dispose()
        queue_module.default_outbox.cache_clear()
    assert outbound.message(message_id).topic == "price_drop"
    assert (report.queued, [row.row for row in report.invalid]) == (1, [2])


# -- campaigns ----------------------------------------------------------------------------


def test_a_long_campaign_tells_the_web_server_it_is_alive_after_every_chunk(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    # POST /api/v1/campaigns runs this in a web process, which gunicorn would
    # otherwise replace halfway through a large list (app/runtime/heartbeat.py).
    monkeypatch.setattr(outbox_module, "CHUNK", 3)
    beats: list[int] = []
    numbers = [f"+141555500{n:02d}" for n in range(1, 10)]

    outbound.outbox.campaign(
        LINE, numbers, "Prices drop today", progress=lambda: beats.append(len(beats))
    )

    assert len(beats) == 3


def test_a_campaign_queues_every_valid_row_and_reports_the_others(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "CHUNK", 3)
    monkeypatch.setattr(queue_module, "JOB_SIZE", 2)
    read: list[int] = []

    def recipients() -> Iterator[str]:
        rows = ["+14155550001", "nope", "+14155550002", "(415) 555-0001", "a@b.co",
                "+14155550003", "+14155550004", "+447700900123", "+14155550005"]  # fmt: skip
        for number, row in enumerate(rows, start=1):
            read.append(number)
            yield row

    report = outbound.outbox.campaign(LINE, recipients(), "Prices drop today", name="Nov sale")

    assert (report.recipients, report.queued) == (9, 5)
    assert [(row.row, row.value) for row in report.invalid] == [
        (2, "nope"), (4, "(415) 555-0001"), (5, "a@b.co"), (8, "+447700900123")
    ]  # fmt: skip
    assert report.invalid[1].reason == "+14155550001 is listed before"
    rows = outbound.messages()
    assert [row.address for row in rows] == [f"+1415555000{n}" for n in range(1, 6)]
    assert {(row.campaign_id, row.kind, row.status) for row in rows} == {
        (report.id, "marketing", MessageStatus.QUEUED)
    }
    # Chunks of 3 rows, jobs of at most 2 messages: 3 chunks → 2 + 1 + 1 + 1 messages' jobs.
    batches = sorted(job.args[0] for job in jobs(outbound))
    assert sorted(i for batch in batches for i in batch) == [row.id for row in rows]
    assert max(len(batch) for batch in batches) == 2
    with outbound.database.sessions() as session:
        campaign = session.get(Campaign, report.id)
        assert campaign is not None
        assert (campaign.recipients, campaign.invalid, campaign.name) == (9, 4, "Nov sale")
        assert campaign.enqueued_at is not None
        assert [row["row"] for row in campaign.invalid_rows or []] == [2, 4, 5, 8]


def test_a_campaign_refuses_bad_input_before_writing_anything(outbound: Outbound) -> None:
    with pytest.raises(InvalidMessage, match="no topic"):
        outbound.outbox.campaign(LINE, ["+14155550001"], "Hi", topic="nope")
    with pytest.raises(NotFound):
        outbound.outbox.campaign("+14155550999", ["+14155550001"], "Hi")
    assert count(outbound, Campaign) == count(outbound) == 0


def test_a_scheduled_campaign_waits_in_rqs_scheduler(outbound: Outbound) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)

    report = outbound.outbox.campaign(LINE, ["+14155550001", "+14155550002"], "Hi", send_at=later)

    queue = Queue("outbound", connection=outbound.redis)
    assert queue.get_jobs() == []
    [scheduled] = queue.scheduled_job_registry.get_job_ids()
    assert scheduled.startswith(f"at{int(later.timestamp())}-")
    assert {row.send_at for row in outbound.messages()} == {
        later.replace(microsecond=later.microsecond)
    }
    assert report.queued == 2


# -- Redis down ---------------------------------------------------------------------------


def test_with_redis_down_rows_stay_queued_and_requeue_sends_them_later(
    outbound: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    down = redis_outbox(outbound.settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"),
                  outbound.database)  # fmt: skip

    with caplog.at_level(logging.WARNING, "optgate.queue"):
        message_id = down.message(LINE, "+14155550123", "Hi", "transactional")

    assert outbound.message(message_id).status is MessageStatus.QUEUED
    assert "optgate requeue" in caplog.text
    assert jobs(outbound) == []
    done = outbound.outbox.requeue(older_than=timedelta(0))
    assert done.queued == 1
    [job] = jobs(outbound)
    assert job.args == ([message_id],)
