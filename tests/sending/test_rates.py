"""Send rates (app/sending/rates.py): which rate is in force, and the limiter on a real
Redis with its clock pinned, so that each test walks simulated seconds without waiting.

The property every pacing test checks is the one the carriers care about: in any closed
one-second window of the slots handed out for a bucket, wherever it starts, at most R
(``at_most_r_per_second``).
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import redis

from app.data.models import MessageKind
from app.sending import rates
from app.sending.rates import (
    EPOCH_KEY,
    Answer,
    Later,
    LineKind,
    Paced,
    Slot,
    horizons,
    line_kind,
    rate_in_force,
)
from app.settings import Settings
from tests.conftest import cases

US = 1_000_000
#: Where the pinned clock starts (µs): any time works, this one is easy to read.
START = 10**12
LONG_CODE, TOLL_FREE, SHORT_CODE = "+14155550100", "+18885550100", "12345"


def at_most_r_per_second(times_us: Iterable[int], rate: float) -> None:
    """No closed window of one second holds more than ``rate`` of ``times_us``."""
    times = sorted(times_us)
    assert len(times) == len(set(times)), "two hand-offs in one slot"
    most = int(rate)
    crowded = [
        (times[i], times[i + most])
        for i in range(len(times) - most)
        if times[i + most] - times[i] <= US
    ]
    assert not crowded, f"{most + 1} hand-offs within one second, first from {crowded[0]}"


# -- which rate, which bucket -------------------------------------------------------------


@cases(
    ("address", "kind"),
    [
        ("a short code", "12345", LineKind.SHORT_CODE),
        ("a six-digit short code", "123456", LineKind.SHORT_CODE),
        ("toll-free 800", "+18005550100", LineKind.TOLL_FREE),
        ("toll-free 833", "+18335550100", LineKind.TOLL_FREE),
        ("toll-free 844", "+18445550100", LineKind.TOLL_FREE),
        ("toll-free 855", "+18555550100", LineKind.TOLL_FREE),
        ("toll-free 866", "+18665550100", LineKind.TOLL_FREE),
        ("toll-free 877", "+18775550100", LineKind.TOLL_FREE),
        ("toll-free 888", "+18885550100", LineKind.TOLL_FREE),
        ("801 is Utah, not toll-free", "+18015550100", LineKind.LONG_CODE),
        ("a US long code", "+14155550100", LineKind.LONG_CODE),
        ("a UK number", "+442071234567", LineKind.LONG_CODE),
    ],
)
def test_the_kind_of_a_line(address: str, kind: LineKind) -> None:
    assert line_kind(address) is kind


def test_a_lines_own_rate_beats_its_groups_which_beats_its_kinds_default() -> None:
    settings = Settings().replace(send_rate_long_code="2", send_rate_short_code="80")
    own = rate_in_force(7, LONG_CODE, 30.0, 3, 50.0, settings)
    assert (own.per_second, own.bucket, own.source) == (30.0, "line:7", "line")
    group = rate_in_force(7, LONG_CODE, None, 3, 50.0, settings)
    assert (group.per_second, group.bucket, group.source) == (50.0, "group:3", "group")
    default = rate_in_force(7, LONG_CODE, None, 3, None, settings)
    assert (default.per_second, default.bucket) == (2.0, "line:7")
    assert default.source == "long code default"
    short = rate_in_force(8, SHORT_CODE, None, None, None, settings)
    assert (short.per_second, short.source) == (80.0, "short code default")
    toll_free = rate_in_force(9, TOLL_FREE, None, None, None, settings)
    assert (toll_free.per_second, toll_free.source) == (3.0, "toll-free default")


@pytest.mark.parametrize("rate", [0.5, 1, 3, 4.5, 10, 100, 1000])
def test_slots_are_far_enough_apart_for_r_per_second_and_a_late_hand_off(rate: float) -> None:
    found = horizons(rate, 0.2)
    # R slots span (1 + MARGIN) s: a hand-off up to MARGIN late keeps R in a second.
    assert found.grid * rate >= (1 + rates.MARGIN) * US
    # Campaigns always reach one slot at least, and transactional messages one more.
    assert found.grid <= found.bulk < found.transactional


# -- the limiter, on a pinned clock ---------------------------------------------------------


@dataclass
class Clock:
    now: int = START

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * US)


@dataclass
class Flow:
    """Messages of one campaign (or single messages of one kind) waiting for slots.

    Like the sender, it asks for what is due, keeps the slots it gets, and asks again
    for a refused message when the limiter said to (its claim went back to the queue).
    An *eager* flow is a campaign with a backlog of millions: workers claim more of it
    all the time, so it asks at every chance, whatever it was told.
    """

    flow: str
    kind: MessageKind
    waiting: list[Paced]
    eager: bool = False
    due: dict[int, int] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    refusals: list[Later] = field(default_factory=list)

    def ready(self, now: int, most: int) -> list[Paced]:
        if self.eager:
            return self.waiting[:most]
        return [m for m in self.waiting if self.due.get(m.message_id, 0) <= now][:most]

    def answered(self, answers: Sequence[Answer]) -> None:
        for answer in answers:
            if isinstance(answer, Slot):
                self.slots.append(answer)
                self.waiting = [m for m in self.waiting if m.message_id != answer.message_id]
            else:
                self.refusals.append(answer)
                self.due[answer.message_id] = answer.redis_us


_ids = iter(range(1, 10**9))


def messages(
    count: int,
    flow: str,
    kind: MessageKind = MessageKind.MARKETING,
    *,
    line_id: int = 1,
    address: str = LONG_CODE,
    line_rate: float | None = 10.0,
    group_id: int | None = None,
    group_rate: float | None = None,
    eager: bool = False,
) -> Flow:
    return Flow(
        flow,
        kind,
        [
            Paced(next(_ids), line_id, address, kind, flow, group_id, line_rate, group_rate)
            for _ in range(count)
        ],
        eager,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter_for(redis_client: redis.Redis, clock: Clock) -> Callable[..., rates.Limiter]:
    # A Redis that has not lost the limiter's state: no fresh start (tested on its own).
    redis_client.set(EPOCH_KEY, 0)

    def build(**settings: str) -> rates.Limiter:
        return rates.Limiter(redis_client, Settings().replace(**settings), redis_clock=clock)

    return build


@pytest.fixture
def limiter(limiter_for: Callable[..., rates.Limiter]) -> rates.Limiter:
    return limiter_for()


def run(
    limiter: rates.Limiter,
    clock: Clock,
    flows: Sequence[Flow],
    seconds: float,
    *,
    step: float = 0.02,
    most: int = 40,
    arrivals: dict[int, float] | None = None,
) -> None:
    """Walk ``seconds`` of the pinned clock; at each step each flow (in order: the first
    asks first, as the most eager worker would) asks for what is due.

    Args:
        arrivals: flow index -> second at which that flow starts asking.
    """
    start = clock.now
    while clock.now < start + seconds * US:
        for index, flow in enumerate(flows):
            if arrivals and clock.now < start + arrivals.get(index, 0) * US:
                continue
            ready = flow.ready(clock.now, most)
            if ready:
                flow.answered(limiter.pace(ready))
        clock.advance(step)


@pytest.mark.redis
def test_one_line_never_hands_over_more_than_its_rate_in_any_second(
    limiter: rates.Limiter, clock: Clock
) -> None:
    big = messages(400, "campaign:1", eager=True)
    small = messages(30, "campaign:2")
    singles = messages(60, "single:transactional", MessageKind.TRANSACTIONAL)
    run(limiter, clock, [big, small, singles], 12, step=0.013)
    taken = [slot.redis_us for flow in (big, small, singles) for slot in flow.slots]
    at_most_r_per_second(taken, 10)
    # And the line is kept busy: close to 10 / (1 + MARGIN) a second.
    assert len(taken) >= 10 * 10


@pytest.mark.redis
def test_slots_handed_out_at_random_to_many_lines_keep_each_lines_rate(
    limiter: rates.Limiter, clock: Clock
) -> None:
    chooser = random.Random(17)
    lines = {1: 7.0, 2: 3.0, 3: 25.0, 4: 1.0}
    flows = [
        messages(300, f"campaign:{line}{n}", kind, line_id=line, line_rate=rate)
        for line, rate in lines.items()
        for n, kind in enumerate((MessageKind.MARKETING, MessageKind.TRANSACTIONAL))
    ]
    given_back: set[str] = set()
    start = clock.now
    while clock.now < start + 15 * US:
        flow = chooser.choice(flows)
        ready = flow.ready(clock.now, chooser.randint(1, 12))
        answers = limiter.pace(ready)
        flow.answered(answers)
        # Now and then a decision blocks a message that had its slot: it gives it back.
        back = [a for a in answers if isinstance(a, Slot) and chooser.random() < 0.1]
        limiter.release(back)
        given_back |= {slot.member for slot in back}
        clock.advance(chooser.uniform(0, 0.03))
    for line, rate in lines.items():
        taken = [
            slot.redis_us
            for flow in flows
            for slot in flow.slots
            if slot.rate.bucket == f"line:{line}" and slot.member not in given_back
        ]
        at_most_r_per_second(taken, rate)
        assert len(taken) >= rate * 5, f"line {line} was starved"


@pytest.mark.redis
def test_a_groups_rate_is_shared_by_its_lines_and_a_lines_own_rate_is_apart(
    limiter: rates.Limiter, clock: Clock
) -> None:
    # Lines 1 and 2 share their group's 10/s; line 3 is in the group but has its own 5/s.
    first = messages(200, "campaign:1", line_id=1, line_rate=None, group_id=9, group_rate=10)
    second = messages(200, "campaign:2", line_id=2, line_rate=None, group_id=9, group_rate=10)
    apart = messages(200, "campaign:3", line_id=3, line_rate=5, group_id=9, group_rate=10)
    run(limiter, clock, [first, second, apart], 10)
    shared = [slot.redis_us for flow in (first, second) for slot in flow.slots]
    assert {slot.rate.bucket for flow in (first, second) for slot in flow.slots} == {"group:9"}
    at_most_r_per_second(shared, 10)
    # Shared, not 10/s each: together the two lines got about 10 a second (for the
    # 10 s walked, and the second reserved ahead at its end).
    assert 90 <= len(shared) <= 110
    assert {slot.rate.bucket for slot in apart.slots} == {"line:3"}
    at_most_r_per_second([slot.redis_us for slot in apart.slots], 5)
    assert len(apart.slots) >= 45


@pytest.mark.redis
def test_a_big_campaign_does_not_starve_a_small_one_queued_after_it(
    limiter: rates.Limiter, clock: Clock
) -> None:
    big = messages(1000, "campaign:1", eager=True)
    small = messages(10, "campaign:2")
    # The big one starts first, holds every slot within reach, and asks first, always.
    run(limiter, clock, [big, small], 6, arrivals={1: 2.0})
    arrived = START + 2 * US
    assert not small.waiting, f"{len(small.waiting)} of the small campaign still wait"
    # Its 10 messages went within about three seconds of its arrival (the line sends
    # ten a second, and the two campaigns now share it), not after the big one's 1000.
    assert max(slot.redis_us for slot in small.slots) - arrived <= 3.5 * US
    # The big one kept sending meanwhile: fairness bounds how far ahead a campaign
    # reserves, not how much of the line it may use.
    sent_after = [s for s in big.slots if s.redis_us > arrived + US]
    assert len(sent_after) >= 25


@pytest.mark.redis
def test_a_refused_message_is_told_when_to_ask_again_spread_at_its_share(
    limiter: rates.Limiter, clock: Clock
) -> None:
    burst = messages(40, "campaign:1")
    answers = limiter.pace(burst.waiting)
    slots = [a for a in answers if isinstance(a, Slot)]
    later = [a for a in answers if isinstance(a, Later)]
    # Ten a second, reserved up to (1 - share) of a second ahead: 8 slots.
    assert len(slots) == 8
    assert {a.reason for a in later} == {"busy"}
    retries = [a.redis_us for a in later]
    # Not all at once: one slot apart, in order, each after the line's reach.
    grid = horizons(10, 0.2).grid
    assert retries == sorted(retries)
    assert all(b - a >= grid for a, b in itertools.pairwise(retries))
    assert retries[0] > clock.now
    # In the local clock too: later than now, never before the slot's Redis time.
    assert all(a.retry_at > slots[0].at for a in later)


@pytest.mark.redis
def test_a_transactional_message_waits_at_most_a_second_behind_a_campaign(
    limiter_for: Callable[..., rates.Limiter], clock: Clock
) -> None:
    for rate in (3.0, 10.0, 100.0):
        waits = _transactional_waits(limiter_for(), clock, rate)
        assert max(waits) <= 1.0, f"at {rate}/s a password code waited {max(waits):.2f} s"
    # The line's own time is the floor: at 1/s a slot is a second long, and a password
    # code waits at most two of them (the campaign's next one, then its own).
    assert max(_transactional_waits(limiter_for(), clock, 1.0)) <= 2 * 1.02


@pytest.mark.redis
def test_without_a_transactional_share_a_password_code_queues_behind_the_campaign(
    limiter_for: Callable[..., rates.Limiter], clock: Clock
) -> None:
    # What the share is for (and that the test above can fail): with no share, the
    # campaign holds the whole reach and the code waits its turn with the campaign.
    waits = _transactional_waits(limiter_for(send_rate_transactional_share="0"), clock, 10.0)
    assert max(waits) > 1.0


def _transactional_waits(limiter: rates.Limiter, clock: Clock, rate: float) -> list[float]:
    """Seconds from asking to the slot, for password codes arriving (within their share of
    the rate) while a campaign on the same line takes every slot it may: it asks first,
    every 20 ms."""
    line_id = next(_ids)
    campaign = messages(
        int(rate * 40), f"campaign:{line_id}", line_id=line_id, line_rate=rate, eager=True
    )
    # One code per (1 / (share x rate)) seconds, a little more: within their share.
    apart = 1.1 / (0.2 * rate)
    run(limiter, clock, [campaign], 3)
    waits = []
    for _ in range(8):
        code = messages(1, "single:transactional", MessageKind.TRANSACTIONAL, line_id=line_id,
                        line_rate=rate)  # fmt: skip
        asked = clock.now
        while code.waiting:
            run(limiter, clock, [campaign], 0.02)
            code.answered(limiter.pace(code.ready(clock.now, 1)))
            assert clock.now - asked < 30 * US, "never got a slot"
        waits.append((code.slots[0].redis_us - asked) / US)
        run(limiter, clock, [campaign], apart)
    assert campaign.waiting, "the campaign must still be sending"
    return waits


@pytest.mark.redis
def test_transactional_messages_cannot_starve_a_campaign_either(
    limiter: rates.Limiter, clock: Clock
) -> None:
    codes = messages(2000, "single:transactional", MessageKind.TRANSACTIONAL, eager=True)
    campaign = messages(2000, "campaign:1", eager=True)
    # The codes ask first, every time, far more than their share.
    run(limiter, clock, [codes, campaign], 10)
    # They get about their share (0.2) of the line, and the campaign the rest.
    assert len(campaign.slots) >= 0.7 * (len(codes.slots) + len(campaign.slots))
    assert len(codes.slots) >= 0.15 * (len(codes.slots) + len(campaign.slots))
    at_most_r_per_second([s.redis_us for s in codes.slots + campaign.slots], 10)


@pytest.mark.redis
def test_transactional_messages_alone_may_use_the_whole_line(
    limiter: rates.Limiter, clock: Clock
) -> None:
    codes = messages(2000, "single:transactional", MessageKind.TRANSACTIONAL, eager=True)
    run(limiter, clock, [codes], 10)
    assert len(codes.slots) >= 90


@pytest.mark.redis
def test_a_slot_given_back_is_taken_by_the_next_ask(limiter: rates.Limiter, clock: Clock) -> None:
    first = messages(3, "campaign:1")
    slots = [a for a in limiter.pace(first.waiting) if isinstance(a, Slot)]
    assert len(slots) == 3
    limiter.release([slots[1]])  # its message was blocked by the decision
    [again] = limiter.pace(messages(1, "campaign:1").waiting)
    assert isinstance(again, Slot)
    assert again.redis_us == slots[1].redis_us
    # Given back twice, or after its time, changes nothing.
    limiter.release([slots[1]])
    clock.advance(2)
    limiter.release(slots)


@pytest.mark.redis
def test_a_changed_rate_starts_after_the_slots_of_the_old_one(
    limiter: rates.Limiter, clock: Clock
) -> None:
    fast = messages(100, "campaign:1", line_rate=50.0)
    run(limiter, clock, [fast], 0.5)
    last_fast = max(slot.redis_us for slot in fast.slots)
    slow = messages(5, "campaign:1", line_rate=2.0)
    run(limiter, clock, [slow], 3)
    assert slow.slots, "the new rate gives slots"
    assert min(slot.redis_us for slot in slow.slots) > last_fast
    at_most_r_per_second([slot.redis_us for slot in slow.slots], 2)


@pytest.mark.redis
def test_a_flushed_redis_starts_afresh_after_the_reservations_it_forgot(
    limiter: rates.Limiter, clock: Clock, redis_client: redis.Redis
) -> None:
    before = messages(20, "campaign:1")
    before.answered(limiter.pace(before.waiting))
    forgotten = max(slot.redis_us for slot in before.slots)
    redis_client.flushdb()
    redis_client.script_flush()
    after = messages(20, "campaign:1")
    run(limiter, clock, [after], 3)
    assert after.slots, "no crash, and slots again"
    # The slots reserved before the flush may still be handed over: the fresh state
    # begins after them, so a flush never doubles the rate.
    assert min(slot.redis_us for slot in after.slots) > forgotten
    at_most_r_per_second([s.redis_us for s in before.slots + after.slots], 10)


@pytest.mark.redis
def test_without_redis_every_message_waits_and_nothing_raises(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    gone = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = rates.Limiter(gone, Settings())
    answers = limiter.pace(messages(3, "campaign:1").waiting)
    assert [a.reason for a in answers if isinstance(a, Later)] == ["unavailable"] * 3
    limiter.release([])  # nothing to give back: no call at all
    # The log says what and how many; never a number.
    assert "Redis did not answer" in caplog.text
    assert "+1" not in caplog.text


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[object]:
    from tests.processes.test_redis_restart import private_redis as start

    with start(tmp_path / "redis") as server:
        yield server


@pytest.mark.redis
def test_a_restarted_redis_is_a_fresh_limiter_state(private_redis: object) -> None:
    server = private_redis
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)  # type: ignore[attr-defined]
    limiter = rates.Limiter(client, Settings())
    line = messages(5, "campaign:1", line_rate=50.0)
    first = limiter.pace(line.waiting)
    assert all(isinstance(a, Slot | Later) for a in first)
    server.kill()  # type: ignore[attr-defined]
    down = limiter.pace(messages(2, "campaign:1", line_rate=50.0).waiting)
    assert [a.reason for a in down if isinstance(a, Later)] == ["unavailable"] * 2
    server.start()  # type: ignore[attr-defined]  # empty: no epoch, no script
    seconds, micros = client.time()
    asked = seconds * US + micros
    again = messages(5, "campaign:1", line_rate=50.0)
    deadline = time.monotonic() + 10
    while not again.slots:
        assert time.monotonic() < deadline, "no slot 10 s after the restart"
        seconds, micros = client.time()
        answers = limiter.pace(again.ready(seconds * US + micros, 5))
        assert not [a for a in answers if isinstance(a, Later) and a.reason == "unavailable"]
        again.answered(answers)
        if not again.slots:
            time.sleep(0.05)  # the fresh state's first slots come a reach later
    # Whatever it gave before the restart may still be handed over: the fresh state's
    # first slot comes a whole reach after it began.
    reach = round(limiter.reach(rate_in_force(1, LONG_CODE, 50.0, None, None, Settings())) * US)
    assert min(slot.redis_us for slot in again.slots) >= asked + reach
    client.close()


@pytest.mark.redis
def test_the_sender_adapter_paces_what_the_database_says(
    limiter: rates.Limiter, db: object, clock: Clock
) -> None:
    import sqlalchemy as sa

    from app.addresses import normalize_line
    from app.data.db import Database
    from app.data.models import Campaign, Direction, Line, Message, MessageStatus
    from app.lines import add_line, get_or_create_group, get_or_create_organization

    database = db
    assert isinstance(database, Database)
    with database.transaction() as session:
        organization = get_or_create_organization(session, "acme")
        group = get_or_create_group(session, organization, "MG1")
        group.send_rate = 20.0
        grouped, _ = add_line(session, normalize_line("+14155550101"), organization, group)
        own, _ = add_line(session, normalize_line("12345"), organization)
        campaign = Campaign(organization_id=organization.id, line_id=grouped.id, body="Sale",
                            kind=MessageKind.MARKETING, created_by="test")  # fmt: skip
        session.add(campaign)
        session.flush()
        ids = []
        for line, kind, campaign_id in [
            (grouped, MessageKind.MARKETING, campaign.id),
            (grouped, MessageKind.MARKETING, campaign.id),
            (own, MessageKind.TRANSACTIONAL, None),
        ]:
            message = Message(
                organization_id=organization.id,
                line_id=line.id,
                direction=Direction.OUTBOUND,
                address="+14155550199",
                body="Hi",
                kind=kind,
                campaign_id=campaign_id,
                status=MessageStatus.SENDING,
            )
            session.add(message)
            session.flush()
            ids.append(message.id)
        group_id, short_code_id = group.id, own.id
    pacer = rates.SendPacer(limiter, database, sleep=lambda seconds: clock.advance(seconds))
    answers = pacer.reserve(ids)
    assert set(answers) == set(ids)
    slots = [answers[i] for i in ids]
    assert all(isinstance(slot, Slot) for slot in slots)
    [a, b, c] = [slot for slot in slots if isinstance(slot, Slot)]
    assert (a.rate.bucket, a.rate.per_second, a.rate.source) == (f"group:{group_id}", 20.0, "group")
    assert a.member.endswith("|b|campaign:1") or "|b|campaign:" in a.member
    assert a.redis_us < b.redis_us  # earlier ids, earlier slots
    assert (c.rate.bucket, c.rate.source) == (f"line:{short_code_id}", "short code default")
    assert "|t|single:transactional" in c.member
    pacer.give_back([b])
    with database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Line)) == 2


@pytest.mark.redis
def test_the_sender_adapter_waits_for_the_slot_and_converts_a_later_to_send_at(
    limiter: rates.Limiter,
) -> None:
    from datetime import UTC, datetime, timedelta

    now = [100.0]
    slept: list[float] = []
    local = replace(limiter, monotonic=lambda: now[0])

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = rates.SendPacer(local, database=None, sleep=sleep)  # type: ignore[arg-type]
    slot = Slot(1, 100.25, rate_in_force(1, LONG_CODE, None, None, None, Settings()), 0, "")
    pacer.wait_for(slot)
    assert now[0] >= slot.at and slept == [0.25]
    wall = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert pacer.send_at(Later(1, now[0] + 3.5, "busy"), wall) == wall + timedelta(seconds=3.5)
    assert pacer.send_at(Later(1, now[0] - 1, "busy"), wall) == wall
