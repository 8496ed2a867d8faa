"""The worker keeps frequency limits: counted over what was sent, in the same batch too,
and over what another worker is handing over now."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from app.data.models import Message, MessageStatus, utcnow
from app.sending.limits import Limit, Limits
from tests.conftest import SHIPPED_KEYWORDS
from tests.workers.conftest import Outbound

CONTACT, OTHER = "+14155550199", "+14155550188"


def test_marketing_past_the_limit_is_blocked_in_one_batch_and_later(outbound: Outbound) -> None:
    sender = outbound.sender()
    sender.limits = lambda: Limits(overall=(Limit(2, 30),))
    first = [outbound.queue(CONTACT, f"Deal {n}", "marketing") for n in range(3)]
    other = outbound.queue(OTHER, "Deal", "marketing")

    outcomes = sender.send_all([*first, other])

    assert outcomes == {"sent": 3, "blocked": 1}
    rows = {row.id: row for row in outbound.messages()}
    assert [rows[i].status for i in first] == [MessageStatus.SENT] * 2 + [MessageStatus.BLOCKED]
    assert rows[first[2]].block_reason == "frequency_limit"
    assert rows[other].status is MessageStatus.SENT
    # Later: still over; a transactional message is never limited.
    assert sender.send_one(outbound.queue(CONTACT, "Deal 4", "marketing")) == "blocked"
    assert sender.send_one(outbound.queue(CONTACT, "Your order shipped")) == "sent"
    assert len(outbound.stub.sent_to(CONTACT)) == 3


def test_a_topic_limit_counts_its_topic_only(outbound: Outbound) -> None:
    sender = outbound.sender()
    sender.limits = lambda: Limits(topics={"price_drop": Limit(1, 7)})
    price = [outbound.queue(CONTACT, "Price", "marketing", topic="price_drop") for _ in range(2)]
    arrival = outbound.queue(CONTACT, "New car", "marketing", topic="new_arrival")

    assert sender.send_all([*price, arrival]) == {"sent": 2, "blocked": 1}
    assert outbound.message(price[1]).block_reason == "frequency_limit"


def test_a_message_another_worker_is_handing_over_counts(outbound: Outbound) -> None:
    sender = outbound.sender()
    sender.limits = lambda: Limits(overall=(Limit(1, 30),))
    elsewhere = outbound.queue(CONTACT, "Deal", "marketing")
    with outbound.database.transaction() as session:
        session.execute(
            sa.update(Message)
            .where(Message.id == elsewhere)
            .values(status=MessageStatus.SENDING, claimed_at=utcnow())
        )

    assert sender.send_one(outbound.queue(CONTACT, "Deal 2", "marketing")) == "blocked"


def test_without_limits_nothing_is_counted(outbound: Outbound) -> None:
    sender = outbound.sender()
    ids = [outbound.queue(CONTACT, f"Deal {n}", "marketing") for n in range(5)]

    assert sender.send_all(ids) == {"sent": 5}


@pytest.mark.parametrize(
    ("written", "setting", "sent"),
    [
        ("limits:\n  marketing: 2 per 30 days\n", None, 2),
        ("limits:\n  marketing: 5 per 30 days\n", "1 per 1 day", 1),
        ("", None, 4),  # the shipped file's own limit: JOIN promises up to 4 a month
    ],
    ids=["keywords.yaml", "the setting is stricter", "shipped"],
)
def test_the_rq_job_keeps_the_limits_of_keywords_yaml_and_the_setting(
    outbound: Outbound,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    written: str,
    setting: str | None,
    sent: int,
) -> None:
    rules = tmp_path / "keywords.yaml"
    shipped = SHIPPED_KEYWORDS.read_text(encoding="utf-8")
    if written:
        shipped = shipped.replace("limits:\n  marketing: 4 per 30 days\n", written)
    rules.write_text(shipped, encoding="utf-8")
    ids = [outbound.queue(CONTACT, f"Deal {n}", "marketing") for n in range(6)]
    outcomes = outbound.send_from_environment(
        monkeypatch,
        ids,
        OPTGATE_KEYWORDS=str(rules),
        OPTGATE_MARKETING_LIMIT=setting or "off",
    )

    assert outcomes == {"sent": sent, "blocked": 6 - sent}
