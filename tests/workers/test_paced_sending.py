"""The sender keeps each line's send rate (app/sending/rates.py) with the real limiter
on the test Redis, the real twilio client and the local stub, on SQLite and PostgreSQL.

Every test times the hand-offs where the limiter governs them: the moment the sender
calls the provider (``Timed``). The stub's arrival times add the network's jitter,
which is not the sender's to keep.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from app.data.models import Line, MessageStatus
from app.lines import set_send_rate
from app.providers.base import Outgoing
from app.sending import handoff, rates
from app.sending import sender as sender_module
from app.sending.rates import Limiter, SendPacer
from app.sending.sender import Outcome, Sender
from tests.sending.test_rates import US, at_most_r_per_second
from tests.workers.conftest import LINE, Outbound
from tests.workers.test_outbound import opt_out

pytestmark = pytest.mark.redis


@dataclass
class Timed:
    """Wraps the real adapter; notes when each hand-off began (monotonic)."""

    inner: Any
    began: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def send(self, message: Outgoing) -> str:
        with self._lock:
            self.began.append((message.recipient, time.monotonic()))
        sid: str = self.inner.send(message)
        return sid

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Worker:
    """One paced sender, as one worker process has: its own Redis client and limiter,
    and a scheduler that sends what it gave back when its time comes."""

    sender: Sender
    provider: Timed
    returns: list[tuple[list[int], datetime]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def send(self, ids: Sequence[int]) -> None:
        self.outcomes.update(str(k) for k in self.sender.send_all(ids).elements())

    def drain(self, ids: Sequence[int], within: float = 30.0) -> None:
        """Send ``ids``, then each return at its time, until none is left."""
        deadline = time.monotonic() + within
        self.send(ids)
        while self.returns:
            self.returns.sort(key=lambda r: r[1])
            due, when = self.returns.pop(0)
            wait = (when - datetime.now(UTC)).total_seconds()
            if wait > 0:
                time.sleep(wait)
            assert time.monotonic() < deadline, "messages still coming back"
            self.send(due)


def worker(outbound: Outbound, client: redis.Redis | None = None) -> Worker:
    """A paced sender on the test Redis (or on ``client``)."""
    settings = outbound.settings
    returns: list[tuple[list[int], datetime]] = []
    provider = Timed(outbound.sender().provider)
    client = client or redis.Redis.from_url(settings.redis_url)
    sender = Sender(
        settings,
        outbound.database,
        provider,  # type: ignore[arg-type]
        lambda ids, when: returns.append((list(ids), when)),
        pacer=SendPacer(Limiter(client, settings), outbound.database),
    )
    outbound.senders.append(sender)
    return Worker(sender, provider, returns)


@dataclass
class Asks:
    """Every call of a pacer's ``reserve``: the ids asked for, and each answer given."""

    asked: list[list[int]] = field(default_factory=list)
    given: dict[int, rates.Answer] = field(default_factory=dict)


def watch_reserve(
    pacer: SendPacer,
    monkeypatch: pytest.MonkeyPatch,
    alter: Callable[[rates.Answer], rates.Answer] = lambda answer: answer,
) -> Asks:
    """Note what ``pacer.reserve`` is asked and answers (each answer through ``alter``)."""
    asks, reserve = Asks(), pacer.reserve

    def watched(message_ids: Sequence[int]) -> dict[int, rates.Answer]:
        asks.asked.append(list(message_ids))
        answers = {i: alter(a) for i, a in reserve(message_ids).items()}
        asks.given.update(answers)
        return answers

    monkeypatch.setattr(pacer, "reserve", watched)
    return asks


def line_rate(outbound: Outbound, rate: float | None) -> None:
    with outbound.database.transaction() as session:
        line = session.scalars(sa.select(Line).where(Line.address == LINE)).one()
        set_send_rate(line, rate)


def recipients(count: int, start: int = 3000) -> list[str]:
    return [f"+1415555{start + n:04d}" for n in range(count)]


def campaign(outbound: Outbound, count: int, kind: str = "marketing") -> list[int]:
    return [outbound.queue(to, kind=kind) for to in recipients(count)]


def test_two_workers_sending_one_campaign_keep_the_lines_rate_and_send_each_once(
    outbound: Outbound,
) -> None:
    line_rate(outbound, 10.0)
    ids = campaign(outbound, 30)
    workers = [worker(outbound), worker(outbound)]
    threads = [threading.Thread(target=w.drain, args=(ids[i::2],)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    began = [at for w in workers for _, at in w.provider.began]
    at_most_r_per_second((round(at * US) for at in began), 10.0)
    assert outbound.stub.count_by_recipient() == dict.fromkeys(recipients(30), 1)
    assert {m.status for m in outbound.messages()} == {MessageStatus.SENT}
    # More than a second's worth: some had to go back to the queue and come back.
    assert sum(w.outcomes["paced"] for w in workers) > 0
    assert max(began) - min(began) >= 2.0


def test_a_message_given_back_keeps_its_attempts_and_waits_queued_until_its_time(
    outbound: Outbound,
) -> None:
    line_rate(outbound, 2.0)
    ids = campaign(outbound, 8)
    one = worker(outbound)
    asked = datetime.now(UTC)
    one.send(ids)
    assert one.outcomes["paced"] > 0
    back = sorted(i for due, _ in one.returns for i in due)
    rows = {m.id: m for m in outbound.messages()}
    send_at = {}
    for message_id in back:
        row = rows[message_id]
        assert row.status is MessageStatus.QUEUED and row.claimed_at is None
        assert row.attempts == 0
        assert row.send_at is not None
        send_at[message_id] = row.send_at.replace(tzinfo=UTC)
    # Told to come back one by one, at the line's rate, not all at once.
    times = [send_at[i] for i in back]
    assert times[0] > asked
    assert all((b - a).total_seconds() >= 0.5 for a, b in itertools.pairwise(times)), times
    # One job per second of returns, each no earlier than any of its messages.
    for due, when in one.returns:
        assert when.microsecond == 0
        assert all(send_at[i] <= when for i in due)
    # Sent before their time, they are skipped, not sent early.
    early = [i for i in back if send_at[i] > datetime.now(UTC) + timedelta(seconds=0.5)]
    assert early
    assert one.sender.send_all(early) == Counter({Outcome.SKIPPED: len(early)})
    assert len(outbound.stub.received) == 8 - len(back)


def test_a_slot_the_policy_does_not_use_is_given_back_for_the_next_message(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 0.5 per second, slots are 2.04 s apart: the blocked message's slot is still
    # ahead when the batch is done.
    line_rate(outbound, 0.5)
    first = outbound.queue("+14155550124")
    blocked = outbound.queue("+14155550123")
    opt_out(outbound, "+14155550123")
    one = worker(outbound)
    pacer = one.sender.pacer
    assert pacer is not None
    asks = watch_reserve(pacer, monkeypatch)
    assert one.sender.send_all([first, blocked]) == Counter({Outcome.SENT: 1, Outcome.BLOCKED: 1})
    unused = asks.given[blocked]
    assert isinstance(unused, rates.Slot)
    seconds, micros = outbound.redis.time()
    assert unused.redis_us > seconds * US + micros
    # The next message takes that very slot.
    after = outbound.queue("+14155550125")
    [answer] = pacer.reserve([after]).values()
    assert isinstance(answer, rates.Slot) and answer.redis_us == unused.redis_us
    pacer.give_back([answer])
    assert [to for to, _ in one.provider.began] == ["+14155550124"]


def test_a_slot_further_than_a_decision_lasts_is_decided_again_when_it_comes(
    outbound: Outbound,
) -> None:
    # At 0.4 per second the second message's slot is 2.55 s ahead: longer than a
    # decision stays good. A STOP committed while it waits blocks it.
    line_rate(outbound, 0.4)
    first = outbound.queue("+14155550124")
    second = outbound.queue("+14155550123")
    one = worker(outbound)
    stop = threading.Timer(handoff.DECISION_TTL / 2, opt_out, args=(outbound, "+14155550123"))
    stop.start()
    outcomes = one.sender.send_all([first, second])
    stop.join()
    assert outcomes == Counter({Outcome.SENT: 1, Outcome.BLOCKED: 1})
    assert outbound.message(second).block_reason == "opted_out"
    assert [to for to, _ in one.provider.began] == ["+14155550124"]


def test_a_hand_off_later_than_its_slot_allows_asks_for_another(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    line_rate(outbound, 20.0)
    ids = campaign(outbound, 3)
    one = worker(outbound)
    pacer = one.sender.pacer
    assert pacer is not None
    asks = watch_reserve(pacer, monkeypatch)
    overslept = threading.Event()

    def busy_host_sleep(seconds: float) -> None:
        # The first wait overruns by far more than MARGIN, once.
        if not overslept.is_set():
            overslept.set()
            seconds += 0.3
        time.sleep(seconds)

    pacer.sleep = busy_host_sleep
    assert one.sender.send_all(ids) == Counter({Outcome.SENT: 3})
    assert len(asks.asked) == 2 and len(asks.asked[1]) == 1, asks.asked
    began = sorted(round(at * US) for _, at in one.provider.began)
    at_most_r_per_second(began, 20.0)


def test_a_host_that_always_wakes_late_gives_the_claim_back_instead_of_sending(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    line_rate(outbound, 20.0)
    [message_id] = campaign(outbound, 1)
    one = worker(outbound)
    pacer = one.sender.pacer
    assert pacer is not None
    # Every slot is ahead of now, so every hand-off waits, and wakes 0.1 s late.
    asks = watch_reserve(
        pacer,
        monkeypatch,
        lambda a: replace(a, at=time.monotonic() + 0.2) if isinstance(a, rates.Slot) else a,
    )
    pacer.sleep = lambda seconds: time.sleep(seconds + 0.1)
    assert one.sender.send_one(message_id) == Outcome.PACED
    assert len(asks.asked) == 1 + sender_module.LATE_TRIES
    assert outbound.stub.received == []
    row = outbound.message(message_id)
    assert row.status is MessageStatus.QUEUED and row.send_at is not None
    assert [i for due, _ in one.returns for i in due] == [message_id]


def test_without_redis_the_claims_go_back_and_nothing_is_sent(
    outbound: Outbound,
) -> None:
    ids = campaign(outbound, 3, kind="transactional")
    one = worker(outbound, redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    assert one.sender.send_all(ids) == Counter({Outcome.PACED: 3})
    assert outbound.stub.received == []
    assert {m.status for m in outbound.messages()} == {MessageStatus.QUEUED}
    assert sorted(i for due, _ in one.returns for i in due) == ids


def test_the_worker_job_paces_with_the_rates_of_its_environment(
    outbound: Outbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = campaign(outbound, 12, kind="transactional")
    began: list[float] = []
    send = sender_module.Sender._hand_off

    def timed(self: Sender, message: Any, outgoing: Outgoing) -> Outcome:
        began.append(time.monotonic())
        return send(self, message, outgoing)

    monkeypatch.setattr(sender_module.Sender, "_hand_off", timed)
    result = outbound.send_from_environment(monkeypatch, ids, OPTGATE_SEND_RATE_LONG_CODE="4")
    assert result.get("paced", 0) > 0 and result.get("sent", 0) >= 1
    assert result["sent"] + result["paced"] == 12
    at_most_r_per_second((round(at * US) for at in began), 4.0)
