"""Frequency limits (app/sending/limits.py): the count, the period, the topic, the order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.consent.history import AddressState
from app.consent.rules import Point
from app.data.models import MessageKind
from app.sending.limits import Limit, Limits
from app.sending.policy import BlockReason, Outbound, decide_send
from app.sending.quiet import Window

NOW = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PRICE, ARRIVAL = "price_drop", "new_arrival"


@pytest.mark.parametrize(
    ("written", "limit"),
    [
        ("4 per 30 days", Limit(4, 30)),
        ("4/30d", Limit(4, 30)),
        (" 3 PER 1 DAY ", Limit(3, 1)),
        ("1 per 7 d", Limit(1, 7)),
    ],
)
def test_a_limit_is_written_as_n_per_d_days(written: str, limit: Limit) -> None:
    assert Limit.parse(written) == limit


NOT_LIMITS = ["", "4", "0 per 30 days", "4 per 0 days", "4 a month", "four per 30 days",
              "4 per 30 weeks", "1e3 per 30 days"]  # fmt: skip


@pytest.mark.parametrize("written", NOT_LIMITS)
def test_anything_else_is_refused_saying_what_is_expected(written: str) -> None:
    with pytest.raises(ValueError, match="expected a limit such as '4 per 30 days'"):
        Limit.parse(written)


def test_the_overall_limit_counts_every_topic_within_its_period() -> None:
    limits = Limits(overall=(Limit(3, 30),))
    sent = [(PRICE, NOW - 29 * DAY), (None, NOW - 2 * DAY), (ARRIVAL, NOW - DAY)]

    assert limits.exceeded(PRICE, sent, NOW) == Limit(3, 30)
    assert limits.exceeded(None, sent, NOW) == Limit(3, 30)
    # The oldest has aged out a day later.
    assert limits.exceeded(PRICE, sent, NOW + DAY) is None


def test_a_topic_limit_counts_that_topic_only() -> None:
    limits = Limits(topics={PRICE: Limit(1, 7)})
    sent = [(ARRIVAL, NOW - DAY), (None, NOW - DAY)]

    assert limits.exceeded(PRICE, sent, NOW) is None
    assert limits.exceeded(PRICE, [*sent, (PRICE, NOW - 6 * DAY)], NOW) == Limit(1, 7)
    assert limits.exceeded(ARRIVAL, [(ARRIVAL, NOW)] * 9, NOW) is None  # no limit there


def test_both_apply_and_the_longest_period_is_what_is_read() -> None:
    limits = Limits(overall=(Limit(4, 30),), topics={PRICE: Limit(2, 7)})

    assert limits.longest == 30 * DAY
    assert limits.exceeded(PRICE, [(PRICE, NOW - DAY)] * 2, NOW) == Limit(2, 7)
    assert limits.exceeded(ARRIVAL, [(PRICE, NOW - DAY)] * 2, NOW) is None
    assert limits.exceeded(ARRIVAL, [(PRICE, NOW - 20 * DAY)] * 4, NOW) == Limit(4, 30)
    assert not Limits() and Limits().longest == timedelta(0)


def message(kind: MessageKind = MessageKind.MARKETING, topic: str | None = PRICE) -> Outbound:
    return Outbound("+12125550100", "+14155550100", Point(7, None), kind, topic)


def test_the_policy_blocks_marketing_over_a_limit_before_quiet_hours_defer_it() -> None:
    limits = Limits(overall=(Limit(1, 30),))
    sent = [(None, NOW - DAY)]
    night = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # 01:00 in New York

    verdict = decide_send(message(), AddressState(), night, Window.parse("08:00-21:00"),
                          limits, sent)  # fmt: skip

    assert verdict.blocked is BlockReason.FREQUENCY_LIMIT


@pytest.mark.parametrize("kind", [MessageKind.TRANSACTIONAL, MessageKind.CONVERSATIONAL])
def test_transactional_and_conversational_messages_are_never_limited(kind: MessageKind) -> None:
    limits = Limits(overall=(Limit(1, 30),))

    verdict = decide_send(message(kind), AddressState(), NOW, None, limits, [(None, NOW)] * 5)

    assert verdict.allowed


def test_under_the_limit_marketing_goes() -> None:
    limits = Limits(overall=(Limit(2, 30),))

    assert decide_send(message(), AddressState(), NOW, None, limits, [(None, NOW)]).allowed


def test_every_overall_limit_applies_the_strictest_first_to_break() -> None:
    limits = Limits(overall=(Limit(10, 30), Limit(3, 1)))  # a program's and a state's

    assert limits.exceeded(None, [(None, NOW - timedelta(hours=1))] * 3, NOW) == Limit(3, 1)
    assert limits.exceeded(None, [(None, NOW - 2 * DAY)] * 9, NOW) is None
