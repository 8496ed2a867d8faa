"""The send job end to end: claim, the policy at send time, the hand-off to a local
Twilio stub through the real twilio client, and what is recorded — on SQLite and
PostgreSQL. Also the hand-off protocol with the STOP webhook (app/sending/handoff.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.addresses import normalize
from app.consent import ledger
from app.consent.values import Channel, Flag, Scope, Source, Status
from app.data.db import Database
from app.data.models import Line, MessageStatus
from app.providers import twilio as twilio_module
from app.providers.base import Outgoing
from app.sending import handoff
from app.sending import sender as sender_module
from app.sending.sender import MAX_ATTEMPTS
from tests.conftest import add_message, free_port
from tests.twilio_stub import Answer, twilio_error
from tests.web.test_webhooks import Twilio
from tests.workers.conftest import LINE, PUBLIC_URL, Outbound
from workers.queue import redis_outbox

CONTACT = "+14155550123"
OTHER = "+14155550124"
NEW_YORK = "+12125550100"


def opt_out(env: Outbound, number: str = CONTACT, **change: Any) -> None:
    with env.database.transaction() as session:
        line = session.scalars(sa.select(Line).where(Line.address == LINE)).one()
        values: dict[str, Any] = {
            "organization_id": line.organization_id,
            "address": normalize(number),
            "scope": Scope.line(line.id),
            "status": Status.OPTED_OUT,
            "source": Source.KEYWORD,
            "actor": number,
            "via_line_id": line.id,
        }
        values.update(change)
        ledger.apply(session, ledger.Change(**values))


def flag(env: Outbound, name: Flag, number: str = CONTACT) -> None:
    with env.database.transaction() as session:
        line = session.scalars(sa.select(Line).where(Line.address == LINE)).one()
        ledger.set_flag(
            session,
            ledger.FlagChange(
                organization_id=line.organization_id,
                address=normalize(number),
                flag=name,
                set=True,
                source=Source.MANUAL,
                actor="alice",
            ),
        )


def flag_is_set(env: Outbound, name: Flag, number: str = CONTACT) -> bool:
    from app.data.models import ContactAddress, FlagState

    with env.database.sessions() as session:
        row = session.scalars(
            sa.select(FlagState)
            .join(ContactAddress, ContactAddress.id == FlagState.address_id)
            .where(ContactAddress.value == number, FlagState.name == name)
        ).one_or_none()
        return bool(row and row.is_set)


def insert_queued(env: Outbound, address: str, **values: Any) -> int:
    """A queued row written directly (for what enqueueing itself refuses)."""
    return add_message(
        env.database,
        LINE,
        direction="outbound",
        address=address,
        body="Hello",
        kind=values.pop("kind", "transactional"),
        status=values.pop("status", MessageStatus.QUEUED),
        **values,
    )


# -- sent ---------------------------------------------------------------------------------


def test_an_allowed_message_is_handed_to_twilio_and_its_sid_recorded(outbound: Outbound) -> None:
    message_id = outbound.queue(CONTACT, "Your order shipped")

    assert outbound.sender().send_one(message_id) == "sent"

    [seen] = outbound.stub.received
    assert (seen.to, seen.sender, seen.body) == (CONTACT, LINE, "Your order shipped")
    assert seen.status_callback == f"{PUBLIC_URL}/webhooks/twilio/status?message={message_id}"
    row = outbound.message(message_id)
    assert row.status is MessageStatus.SENT
    assert row.provider == "twilio"
    assert row.provider_message_id is not None and row.provider_message_id.startswith("SM")
    assert row.sent_at is not None and row.block_reason is None


def test_without_a_public_url_no_status_callback_is_asked_for(outbound: Outbound) -> None:
    message_id = outbound.queue(CONTACT)

    outbound.sender(public_url=None).send_one(message_id)

    [seen] = outbound.stub.received
    assert seen.status_callback is None
    assert "StatusCallback" not in seen.form


def test_a_message_is_claimed_once_even_by_two_workers_at_once(outbound: Outbound) -> None:
    outbound.stub.delay = 0.02
    ids = [outbound.queue(f"+1415555{1000 + n}") for n in range(40)]
    first, second = outbound.sender(), outbound.sender()
    results: list[Counter[str]] = []

    threads = [
        threading.Thread(target=lambda s=sender: results.append(s.send_all(ids)))
        for sender in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results, Counter()) == Counter(sent=40, skipped=40)
    assert set(outbound.stub.count_by_recipient().values()) == {1}
    assert len(outbound.stub.received) == 40


def test_a_message_done_or_not_yet_due_is_skipped(outbound: Outbound) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    future = outbound.queue(CONTACT, send_at=later)
    done = outbound.queue(OTHER)
    sender = outbound.sender()
    sender.send_one(done)

    assert sender.send_all([future, done]) == Counter(skipped=2)
    assert outbound.message(future).status is MessageStatus.QUEUED
    assert [seen.to for seen in outbound.stub.received] == [OTHER]


# -- blocked ------------------------------------------------------------------------------

BLOCKED = [
    pytest.param(lambda env: opt_out(env), "transactional", {}, "opted_out", id="line STOP"),
    pytest.param(
        lambda env: opt_out(env, scope=Scope.organization(), source=Source.MANUAL),
        "conversational",
        {},
        "opted_out",
        id="organisation-wide staff opt-out",
    ),
    pytest.param(
        lambda env: opt_out(env, channel=Channel.ALL, source=Source.API),
        "transactional",
        {},
        "opted_out",
        id="opt-out of all channels",
    ),
    pytest.param(
        lambda env: flag(env, Flag.DO_NOT_CONTACT), "transactional", {}, "do_not_contact",
        id="do not contact",
    ),
    pytest.param(lambda env: flag(env, Flag.SILENCED), "transactional", {}, "silenced",
                 id="silenced"),
    pytest.param(lambda env: flag(env, Flag.BOUNCED), "transactional", {}, "bounced",
                 id="bounced"),
    pytest.param(
        lambda env: (flag(env, Flag.BOUNCED), opt_out(env), flag(env, Flag.DO_NOT_CONTACT)),
        "transactional",
        {},
        "do_not_contact",
        id="do not contact comes first",
    ),
    pytest.param(
        lambda env: opt_out(env, topic="price_drop"),
        "marketing",
        {"topic": "price_drop"},
        "topic_opted_out",
        id="marketing on a stopped topic",
    ),
    pytest.param(
        lambda env: None, "marketing", {"require_opt_in": True}, "no_consent",
        id="marketing that requires opt-in, to someone never asked",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("prepare", "kind", "options", "reason"), BLOCKED)
def test_a_message_the_policy_refuses_is_stored_blocked_and_never_sent(
    outbound: Outbound,
    prepare: Callable[[Outbound], object],
    kind: str,
    options: dict[str, Any],
    reason: str,
) -> None:
    message_id = outbound.queue(CONTACT, kind=kind, **options)
    prepare(outbound)  # after enqueueing: the worker decides at send time

    assert outbound.sender().send_one(message_id) == "blocked"

    row = outbound.message(message_id)
    assert (row.status, row.block_reason) == (MessageStatus.BLOCKED, reason)
    assert outbound.stub.received == []


def test_an_address_that_cannot_receive_texts_is_blocked_at_send_time(outbound: Outbound) -> None:
    # Enqueueing refuses these; a row written another way is still caught.
    ids = [insert_queued(outbound, address) for address in ("+447700900123", "a@example.com")]

    assert outbound.sender().send_all(ids) == Counter(blocked=2)
    assert {outbound.message(i).block_reason for i in ids} == {"invalid_address"}
    assert outbound.stub.received == []


def test_transactional_messages_skip_the_marketing_checks(outbound: Outbound) -> None:
    opt_out(outbound, topic="price_drop")
    message_id = outbound.queue(CONTACT, kind="transactional", topic="price_drop",
                                require_opt_in=True)  # fmt: skip

    assert outbound.sender().send_one(message_id) == "sent"


def test_an_opt_out_on_another_line_does_not_block_this_one(outbound: Outbound) -> None:
    with outbound.database.transaction() as session:
        line = session.scalars(sa.select(Line).where(Line.address == LINE)).one()
        other = Line(organization_id=line.organization_id, address="+14155550101")
        session.add(other)
        session.flush()
        other_id = other.id
    opt_out(outbound, scope=Scope.line(other_id), via_line_id=other_id)

    assert outbound.sender().send_one(outbound.queue(CONTACT)) == "sent"


# -- quiet hours --------------------------------------------------------------------------


def test_marketing_outside_quiet_hours_waits_for_the_window_and_then_goes(
    outbound: Outbound,
) -> None:
    night = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # 22:00 in New York
    message_id = outbound.queue(NEW_YORK, kind="marketing")
    sender = outbound.sender(clock=lambda: night, quiet_hours="08:00-21:00")

    assert sender.send_one(message_id) == "deferred"

    morning = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)  # 08:00 EST
    row = outbound.message(message_id)
    assert (row.status, row.send_at, row.claimed_at) == (MessageStatus.QUEUED, morning, None)
    assert outbound.scheduled == [(message_id, morning)]
    assert outbound.stub.received == []
    # Not due before the window opens; sent once it has.
    assert (
        outbound.sender(clock=lambda: morning - timedelta(seconds=1)).send_one(message_id)
        == "skipped"
    )
    assert (
        outbound.sender(clock=lambda: morning, quiet_hours="08:00-21:00").send_one(message_id)
        == "sent"
    )


def test_transactional_messages_ignore_quiet_hours(outbound: Outbound) -> None:
    night = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    message_id = outbound.queue(NEW_YORK, kind="transactional")

    assert (
        outbound.sender(clock=lambda: night, quiet_hours="08:00-21:00").send_one(message_id)
        == "sent"
    )


# -- provider errors ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_passing_failure_is_retried_with_backoff_then_fails_with_its_code(
    outbound: Outbound,
) -> None:
    outbound.stub.answers[CONTACT] = twilio_error(20503, "Service Unavailable", 503)
    clock = Clock()
    sender = outbound.sender(clock=clock)
    message_id = outbound.queue(CONTACT)

    delays = []
    for attempt in range(1, MAX_ATTEMPTS):
        assert sender.send_one(message_id) == "retry"
        row = outbound.message(message_id)
        assert (row.status, row.attempts) == (MessageStatus.QUEUED, attempt)
        assert row.send_at is not None
        delays.append((row.send_at - clock.now).total_seconds())
        clock.now = row.send_at
    assert sender.send_one(message_id) == "failed"

    assert delays == [10, 30, 90, 270]
    row = outbound.message(message_id)
    assert (row.status, row.error_code, row.attempts) == (MessageStatus.FAILED, "20503",
                                                          MAX_ATTEMPTS)  # fmt: skip
    assert "503" in (row.meta or {})["error"]
    assert len(outbound.stub.received) == MAX_ATTEMPTS
    assert [when for _, when in outbound.scheduled] == [
        when for when in sorted(when for _, when in outbound.scheduled)
    ]


def test_a_provider_that_cannot_be_reached_is_retried(outbound: Outbound) -> None:
    sender = outbound.sender(twilio_api_url=f"http://127.0.0.1:{free_port()}")
    message_id = outbound.queue(CONTACT)

    assert sender.send_one(message_id) == "retry"
    assert outbound.message(message_id).attempts == 1


def test_a_send_whose_answer_never_comes_is_not_sent_again(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twilio_module, "SEND_TIMEOUT", 0.3)
    outbound.stub.answers[CONTACT] = Answer(201, {"sid": "SM" + "1" * 32}, delay=1.5)
    message_id = outbound.queue(CONTACT)

    assert outbound.sender().send_one(message_id) == "interrupted"

    row = outbound.message(message_id)
    assert (row.status, row.error_code) == (MessageStatus.FAILED, handoff.INTERRUPTED)
    assert outbound.scheduled == []
    assert len(outbound.stub.received) == 1


def test_21610_on_send_records_a_carrier_opt_out_and_blocks_what_follows(
    outbound: Outbound,
) -> None:
    outbound.stub.answers[CONTACT] = twilio_error(
        21610, "Attempt to send to unsubscribed recipient"
    )
    sender = outbound.sender()

    assert sender.send_one(outbound.queue(CONTACT)) == "failed"
    assert sender.send_one(outbound.queue(CONTACT)) == "blocked"

    first, second = outbound.messages()
    assert (first.status, first.error_code) == (MessageStatus.FAILED, "21610")
    assert (second.status, second.block_reason) == (MessageStatus.BLOCKED, "opted_out")
    assert len(outbound.stub.received) == 1
    with outbound.database.sessions() as session:
        from app.data.models import ConsentEvent

        [event] = session.scalars(sa.select(ConsentEvent)).all()
    assert (event.source, event.new_value, event.message_id) == ("carrier", "opted_out", first.id)


def test_an_invalid_number_code_on_send_flags_the_number_bounced(outbound: Outbound) -> None:
    outbound.stub.answers[CONTACT] = twilio_error(21211, "Invalid 'To' Phone Number")
    sender = outbound.sender()

    assert sender.send_one(outbound.queue(CONTACT)) == "failed"

    assert flag_is_set(outbound, Flag.BOUNCED)
    assert sender.send_one(outbound.queue(CONTACT)) == "blocked"
    assert outbound.messages()[1].block_reason == "bounced"


def test_a_sender_side_error_fails_the_message_and_marks_no_one(outbound: Outbound) -> None:
    outbound.stub.answers[CONTACT] = twilio_error(20003, "Authenticate", 401)

    assert outbound.sender().send_one(outbound.queue(CONTACT)) == "failed"

    [row] = outbound.messages()
    assert row.error_code == "20003"
    assert not flag_is_set(outbound, Flag.BOUNCED)
    assert outbound.sender().send_one(outbound.queue(CONTACT)) == "failed"  # not blocked


# -- the decision is fresh ----------------------------------------------------------------


def test_a_stale_decision_is_taken_again_before_the_hand_off(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = outbound.queue(CONTACT)
    looks: list[float] = []

    def paused_worker_clock() -> float:
        # The worker looks at its clock before deciding and again before the
        # hand-off. Between its first two looks, a STOP commits and the worker
        # is paused for longer than a decision stays good.
        looks.append(time.monotonic())
        if len(looks) == 2:
            opt_out(outbound)
            return looks[0] + handoff.DECISION_TTL + 1
        return looks[-1]

    monkeypatch.setattr(sender_module, "monotonic", paused_worker_clock)

    assert outbound.sender().send_one(message_id) == "blocked"
    assert len(looks) == 3, "decided twice"
    assert outbound.message(message_id).block_reason == "opted_out"
    assert outbound.stub.received == []


# -- the hand-off protocol with the STOP webhook ------------------------------------------


class HeldProvider:
    """Wraps the real adapter; holds each send until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned_at: float | None = None

    def send(self, message: Outgoing) -> str:
        self.entered.set()
        assert self.release.wait(10)
        sid: str = self.inner.send(message)
        self.returned_at = time.monotonic()
        return sid

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def sending_held(outbound: Outbound, message_id: int) -> tuple[HeldProvider, threading.Thread]:
    """A worker thread sending ``message_id``, held inside the provider call."""
    sender = outbound.sender()
    held = HeldProvider(sender.provider)
    sender.provider = held
    worker = threading.Thread(target=sender.send_one, args=(message_id,))
    worker.start()
    assert held.entered.wait(5), "the worker decided and is handing the message over"
    return held, worker


@pytest.fixture
def webhook(outbound: Outbound) -> Iterator[Twilio]:
    app: Flask = create_app(outbound.settings)
    database = Database(outbound.settings.database_url)
    # The public URL is what Twilio signs (settings.public_url).
    yield Twilio(app.test_client(), database, base=PUBLIC_URL)
    database.dispose()
    app.extensions["optgate.database"].dispose()


def test_a_stop_is_answered_only_after_the_hand_off_in_flight_to_that_number(
    outbound: Outbound, webhook: Twilio
) -> None:
    message_id = outbound.queue(CONTACT)
    held, worker = sending_held(outbound, message_id)

    answered: dict[str, Any] = {}

    def stop() -> None:
        response = webhook.text("STOP", sender=CONTACT, to=LINE)
        answered["status"], answered["at"] = response.status_code, time.monotonic()

    texting = threading.Thread(target=stop)
    texting.start()
    texting.join(0.5)
    assert texting.is_alive(), "the STOP must wait for the hand-off in flight"
    assert webhook.status_of(CONTACT, LINE) == "opted_out", "...but is already committed"

    held.release.set()
    worker.join(5)
    texting.join(5)
    assert answered["status"] == 200
    assert held.returned_at is not None and held.returned_at <= answered["at"]
    assert outbound.message(message_id).status is MessageStatus.SENT
    # And after the answer, nothing more leaves for that number.
    assert outbound.sender().send_one(outbound.queue(CONTACT)) == "blocked"
    assert len(outbound.stub.received) == 1


def test_a_stop_does_not_wait_when_nothing_is_in_flight(
    outbound: Outbound, webhook: Twilio
) -> None:
    outbound.queue(CONTACT)  # queued, not claimed: the worker will read the STOP
    started = time.monotonic()

    assert webhook.text("STOP", sender=CONTACT, to=LINE).status_code == 200

    assert time.monotonic() - started < handoff.FENCE_WAIT / 2


def test_a_hand_off_left_by_a_dead_worker_delays_a_stop_boundedly(
    outbound: Outbound, webhook: Twilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "FENCE_WAIT", 0.3)
    message_id = outbound.queue(CONTACT)
    with outbound.database.transaction() as session:
        assert handoff.claim(session, message_id)  # ...and the worker dies here
    started = time.monotonic()

    assert webhook.text("STOP", sender=CONTACT, to=LINE).status_code == 200

    assert 0.3 <= time.monotonic() - started < 3
    assert webhook.status_of(CONTACT, LINE) == "opted_out"


def test_the_decision_to_send_is_read_without_the_write_lock(outbound: Outbound) -> None:
    """On SQLite the claim and the record of the hand-off take the write lock, and the
    consent read between them does not: STOPs answered meanwhile are not held up."""
    message_id = outbound.queue(CONTACT)
    sender = outbound.sender()
    begins: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement.strip())

    sa.event.listen(outbound.database.engine, "before_cursor_execute", seen)
    try:
        assert sender.send_one(message_id) == "sent"
    finally:
        sa.event.remove(outbound.database.engine, "before_cursor_execute", seen)

    if outbound.database.engine.dialect.name == "sqlite":
        assert begins == ["BEGIN IMMEDIATE", "BEGIN", "BEGIN IMMEDIATE"], begins


def test_a_stop_waiting_for_a_hand_off_never_takes_the_write_lock(outbound: Outbound) -> None:
    """On SQLite each look of the wait is a plain BEGIN: the worker it waits for can commit."""
    message_id = outbound.queue(CONTACT)
    with outbound.database.transaction() as session:
        assert handoff.claim(session, message_id)
    organization = outbound.message(message_id).organization_id
    begins: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    sa.event.listen(outbound.database.engine, "before_cursor_execute", seen)
    try:
        handoff.wait_for_hand_offs(outbound.database, organization, CONTACT, wait=0.2)
    finally:
        sa.event.remove(outbound.database.engine, "before_cursor_execute", seen)

    if outbound.database.engine.dialect.name == "sqlite":
        assert begins and set(begins) == {"BEGIN"}, begins
    else:
        assert "BEGIN IMMEDIATE" not in begins


# -- receipts for hand-offs whose outcome was unknown ------------------------------------


def test_a_receipt_revives_a_message_whose_hand_off_was_cut_off(
    outbound: Outbound, webhook: Twilio
) -> None:
    message_id = insert_queued(
        outbound, CONTACT, status=MessageStatus.FAILED, error_code=handoff.INTERRUPTED
    )
    twilio_sid = "SM" + "ab" * 16
    path = f"/webhooks/twilio/status?message={message_id}"
    params = {"MessageSid": twilio_sid, "MessageStatus": "delivered", "To": CONTACT, "From": LINE}

    assert webhook.post(path, params, signed_url=webhook.base + path).status_code == 200

    row = outbound.message(message_id)
    assert (row.status, row.error_code) == (MessageStatus.DELIVERED, None)
    assert (row.provider, row.provider_message_id) == ("twilio", twilio_sid)


def test_a_receipt_that_beats_the_worker_is_kept_and_the_worker_does_not_undo_it(
    outbound: Outbound, webhook: Twilio
) -> None:
    message_id = outbound.queue(CONTACT)
    held, worker = sending_held(outbound, message_id)
    path = f"/webhooks/twilio/status?message={message_id}"
    twilio_sid = "SM" + "cd" * 16
    params = {"MessageSid": twilio_sid, "MessageStatus": "delivered", "To": CONTACT, "From": LINE}
    assert webhook.post(path, params, signed_url=webhook.base + path).status_code == 200

    held.release.set()
    worker.join(5)

    row = outbound.message(message_id)
    assert (row.status, row.provider_message_id) == (MessageStatus.DELIVERED, twilio_sid)


# -- requeue ------------------------------------------------------------------------------


def test_requeue_settles_dead_hand_offs_and_enqueues_what_redis_lost(
    outbound: Outbound,
) -> None:
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    old = datetime.now(UTC) - timedelta(hours=1)
    lost = insert_queued(outbound, CONTACT, updated_at=old)
    later = insert_queued(
        outbound, OTHER, updated_at=old, send_at=datetime.now(UTC) + timedelta(days=1)
    )
    dead = insert_queued(outbound, "+14155550125", status=MessageStatus.SENDING,
                         claimed_at=old, updated_at=old)  # fmt: skip
    fresh = outbound.queue("+14155550126")  # its job is in Redis: left alone
    outbound.redis.flushdb()  # Redis lost everything

    done = redis_outbox(outbound.settings, outbound.database).requeue()

    assert (done.queued, done.scheduled, done.interrupted) == (1, 1, 1)
    queue = Queue("outbound", connection=outbound.redis)
    [job] = queue.get_jobs()
    assert job.args == ([lost],)
    [scheduled] = ScheduledJobRegistry(queue=queue).get_job_ids()
    assert queue.fetch_job(scheduled).args == ([later],)  # type: ignore[union-attr]
    row = outbound.message(dead)
    assert (row.status, row.error_code) == (MessageStatus.FAILED, handoff.INTERRUPTED)
    assert outbound.message(fresh).status is MessageStatus.QUEUED
    # Sending what was requeued works, and the settled one is never sent.
    assert outbound.sender().send_all([lost, dead]) == Counter(sent=1, skipped=1)


def test_the_rq_job_sends_with_settings_from_the_environment(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = outbound.queue(CONTACT)
    assert outbound.send_from_environment(monkeypatch, [message_id]) == {"sent": 1}
    assert outbound.message(message_id).status is MessageStatus.SENT
