"""The sender: claim → decide from committed state → hand to the provider → record.

Given message ids (an RQ job of workers/outbound.py carries up to
``workers.queue.JOB_SIZE`` of them), the sender hands them over
``OPTGATE_SEND_CONCURRENCY`` at a time from a thread pool, so the provider's
latency, not the queue's per-job cost, bounds the rate. It is plain Python:
tests drive it without RQ.

Each message goes through the hand-off protocol of app/sending/handoff.py, which is
what makes "no message leaves after its STOP was answered" true:

- **claim**: ``queued`` → ``sending``, committed; a message claimed by
  another worker (or not due yet) is skipped.
- **pace**: a slot of its line's send rate (app/sending/rates.py), shared through
  Redis by every worker; a message whose line has no slot within about a second
  goes back to ``queued`` with a ``send_at`` when it will (``paced``), rather than
  hold its claim — a STOP to its number would wait for it.
- **decide**: the send policy (app/sending/policy.py) over the recipient's
  state, read in a new transaction. Blocked → ``blocked`` with its reason.
  Outside quiet hours → back to ``queued`` with a ``send_at``, and a job
  scheduled for then.
- **hand off**: at its slot's time, never before, and within ``DECISION_TTL`` of
  the read, else decide again. A slot not used (blocked, deferred) is given back.
- **record**: ``sent`` with the provider's id; or, when the provider refused:
  a permanent error → ``failed`` with its code, and what the code means for
  the recipient (21610: a carrier opt-out in the ledger; an invalid number:
  bounced); a passing one (network, 429, 5xx) → ``queued`` again after a
  backoff, at most ``MAX_ATTEMPTS`` hand-offs; an unknown outcome (the answer
  never came) → ``failed``/``interrupted``, never resent.

At most once: a message is handed over only by the worker that claimed it,
and only while it is ``sending``; nothing moves a message back to ``queued``
after a hand-off began except a refusal the provider answered. A worker
killed mid-send leaves the message ``sending``: ``optgate requeue`` settles it
as ``interrupted`` instead of sending it again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from time import monotonic
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.consent import history
from app.consent.rules import Point
from app.data.db import Database
from app.data.models import Direction, Line, Message, MessageKind, MessageStatus, utcnow
from app.logs import mask_address, mask_text
from app.messages import receipts
from app.providers.base import Outgoing, Provider, ProviderError
from app.sending import handoff, policy, rates
from app.sending.limits import Limits
from app.sending.rates import Later, SendPacer, Slot
from app.settings import Settings

log = logging.getLogger("optgate.sender")

#: Hand-offs tried at most for one message when the provider keeps failing for
#: a passing reason; then it fails with the last error.
MAX_ATTEMPTS = 5
#: Seconds before the next try, after each passing failure (bounded backoff).
BACKOFF = (10, 30, 90, 270)
#: Fresh slots asked for one message that keeps waking too late for its slot; then
#: its claim goes back for ``LATE_RETRY`` seconds (a host too busy to keep a rate).
LATE_TRIES = 3
LATE_RETRY = 1.0


class Outcome(StrEnum):
    """What became of one message in a job (counted per job: the job's result in RQ)."""

    SENT = "sent"
    BLOCKED = "blocked"
    #: Back to ``queued`` for a later time (quiet hours).
    DEFERRED = "deferred"
    #: Back to ``queued`` after a passing failure, for another try.
    RETRY = "retry"
    #: Back to ``queued`` until its line's send rate has a slot for it.
    PACED = "paced"
    FAILED = "failed"
    #: The provider may have it: not resent.
    INTERRUPTED = "interrupted"
    #: Claimed by another worker, done already, or not due yet.
    SKIPPED = "skipped"


#: Enqueues messages again for a later time (a job for them at ``when`` or soon after).
Schedule = Callable[[Sequence[int], datetime], None]


@dataclass(frozen=True)
class Decision:
    message: Message
    outgoing: Outgoing
    verdict: policy.Verdict


@dataclass
class Sender:
    """Sends claimed messages; plain Python, so tests drive it without RQ."""

    settings: Settings
    database: Database
    provider: Provider
    #: Enqueues messages again for a later time.
    schedule: Schedule
    clock: Callable[[], datetime] = utcnow
    #: The frequency limits in force now (keywords.yaml's, which may change while it runs).
    limits: Callable[[], Limits] = Limits
    #: Paces hand-offs to each line's send rate; None sends as fast as the provider
    #: answers (tests of everything else; the worker always paces).
    pacer: SendPacer | None = None

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.send_concurrency, thread_name_prefix="optgate-send"
        )

    def send_all(self, message_ids: Sequence[int]) -> Counter[Outcome]:
        """Send each message (concurrently); the count of each outcome.

        Messages are claimed and decided ``OPTGATE_SEND_CONCURRENCY`` at a time:
        one statement claims them, one read decides them all (a handful of
        queries), then each is handed over from the pool, decided again first
        if that read has gone stale. Claiming no more than can be in flight
        keeps what a killed worker leaves ``sending`` to what it was sending.
        """
        outcomes: Counter[Outcome] = Counter()
        size = self.settings.send_concurrency
        for start in range(0, len(message_ids), size):
            outcomes.update(self._send_batch(message_ids[start : start + size]))
        return outcomes

    def _send_batch(self, message_ids: Sequence[int]) -> Counter[Outcome]:
        with self.database.transaction() as session:
            claimed = handoff.claim_many(session, message_ids, self.clock())
        outcomes: Counter[Outcome] = Counter()
        if len(claimed) < len(message_ids):
            # Another worker's, already done, or not due yet.
            outcomes[Outcome.SKIPPED] = len(message_ids) - len(claimed)
        slots: dict[int, Slot] = {}
        if claimed and self.pacer is not None:
            # Reserve before deciding, never after: the decision must still be fresh
            # when the slot comes.
            answers = self.pacer.reserve(claimed)
            slots = {i: a for i, a in answers.items() if isinstance(a, Slot)}
            refused = [a for a in answers.values() if isinstance(a, Later)]
            if refused:
                outcomes[Outcome.PACED] = self._paced(refused)
            claimed = [i for i in claimed if i in slots]
        if claimed:
            decided_at = monotonic()
            # A read-only session: on SQLite it does not take the write lock, which
            # the STOPs being answered meanwhile need.
            with self.database.reads() as session:
                decisions = self._decide(session, claimed)
            outcomes.update(
                self._pool.map(
                    lambda d: self._proceed(d, decided_at, slots.get(d.message.id)), decisions
                )
            )
        return outcomes

    def send_one(self, message_id: int) -> Outcome:
        """Send one message; its outcome."""
        [outcome] = self.send_all([message_id]).elements()
        return outcome

    def _proceed(self, decision: Decision, decided_at: float, slot: Slot | None) -> Outcome:
        late = 0
        while True:
            message, verdict = decision.message, decision.verdict
            if verdict.blocked is not None or verdict.defer_until is not None:
                if slot is not None and self.pacer is not None:
                    self.pacer.give_back([slot])
                if verdict.blocked is not None:
                    return self._block(message.id, verdict.blocked)
                assert verdict.defer_until is not None
                return self._later(
                    message.id, verdict.defer_until, Outcome.DEFERRED, message.attempts
                )
            if slot is not None and self.pacer is not None:
                self.pacer.wait_for(slot)
                if monotonic() - slot.at > rates.MARGIN:
                    # Later than its slot allows (a paused process, a busy host): two
                    # such hand-offs could share a second with their neighbours' slots.
                    # The slot is spent; ask for another, a few times, then give the
                    # claim back rather than keep the STOP of its number waiting.
                    late += 1
                    answer: Slot | Later = (
                        self.pacer.reserve([message.id])[message.id]
                        if late <= LATE_TRIES
                        else Later(message.id, monotonic() + LATE_RETRY, "busy")
                    )
                    if isinstance(answer, Later):
                        self._paced([answer])
                        return Outcome.PACED
                    slot = answer
                    continue
            if monotonic() - decided_at <= handoff.DECISION_TTL:
                return self._hand_off(message, decision.outgoing)
            # Stale (a paused process, a slow batch): a STOP answered meanwhile did
            # not wait for this hand-off, so decide again (app/sending/handoff.py).
            decided_at = monotonic()
            with self.database.reads() as session:
                [decision] = self._decide(session, [message.id])

    def _decide(self, session: Session, message_ids: Sequence[int]) -> list[Decision]:
        rows = session.execute(
            sa.select(Message, Line)
            .join(Line, Line.id == Message.line_id)
            .where(Message.id.in_(message_ids))
            .order_by(Message.id)
        ).all()
        states = history.states_of(session, ((m.organization_id, m.address) for m, _ in rows))
        now = self.clock()
        limits = self.limits()
        sent = _marketing_sent(session, [m for m, _ in rows], limits, now) if limits else {}
        decisions = []
        for message, line in rows:
            verdict = policy.decide_send(
                policy.Outbound(
                    recipient=message.address,
                    line=line.address,
                    point=Point(line.id, line.group_id),
                    kind=message.kind or MessageKind.TRANSACTIONAL,
                    topic=message.topic,
                    require_opt_in=message.require_opt_in,
                ),
                states[(message.organization_id, message.address)],
                now,
                self.settings.quiet_hours,
                limits,
                sent.get((message.organization_id, message.address), []),
            )
            if limits and verdict.allowed and message.kind is MessageKind.MARKETING:
                # The next message of the batch to this number counts this one.
                sent.setdefault((message.organization_id, message.address), []).append(
                    (message.topic, now)
                )
            outgoing = Outgoing(
                sender=line.address,
                recipient=message.address,
                body=message.body,
                status_callback=self._status_callback(message.id),
            )
            decisions.append(Decision(message, outgoing, verdict))
        return decisions

    def _status_callback(self, message_id: int) -> str | None:
        if not self.settings.public_url:
            return None  # nowhere the provider could reach; receipts need OPTGATE_PUBLIC_URL
        # Our id rides along (signed by the provider with the URL): a receipt then
        # finds a message whose provider id a dying worker never recorded.
        return (
            f"{self.settings.public_url}/webhooks/{self.provider.name}/status?message={message_id}"
        )

    def _hand_off(self, message: Message, outgoing: Outgoing) -> Outcome:
        try:
            provider_id = self.provider.send(outgoing)
        except ProviderError as error:
            return self._refused(message, error)
        now = self.clock()
        with self.database.transaction() as session:
            session.execute(
                sa.update(Message)
                .where(Message.id == message.id)
                .values(
                    # A fast receipt may have recorded the id and moved the status on.
                    provider=sa.func.coalesce(Message.provider, self.provider.name),
                    provider_message_id=sa.func.coalesce(Message.provider_message_id, provider_id),
                    status=sa.case(
                        (Message.status == MessageStatus.SENDING, MessageStatus.SENT.value),
                        else_=Message.status,
                    ),
                    sent_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        return Outcome.SENT

    def _refused(self, message: Message, error: ProviderError) -> Outcome:
        # A provider's refusal may name the recipient ("The 'To' number ... is not valid").
        said = mask_text(str(error), known=[message.address])
        if error.maybe_sent:
            log.warning("message %s: outcome unknown, not resent: %s", message.id, said)
            self._fail(message.id, handoff.INTERRUPTED, error, message.attempts)
            return Outcome.INTERRUPTED
        attempts = message.attempts + 1
        if not error.permanent and attempts < MAX_ATTEMPTS:
            delay = BACKOFF[min(attempts, len(BACKOFF)) - 1]
            log.info("message %s: %s; trying again in %ss", message.id, said, delay)
            return self._later(
                message.id, self.clock() + timedelta(seconds=delay), Outcome.RETRY, attempts
            )
        log.warning("message %s failed: %s", message.id, said)
        code = error.code or ("refused" if error.permanent else "unreachable")
        self._fail(message.id, code, error, attempts, effect=error.code)
        return Outcome.FAILED

    def _fail(
        self,
        message_id: int,
        code: str,
        error: ProviderError,
        attempts: int,
        *,
        effect: str | None = None,
    ) -> None:
        """Record the message failed; with ``effect``, apply what that provider code
        means for the recipient (a carrier opt-out, a bounce) in the same transaction."""
        with self.database.transaction() as session:
            row = session.get(Message, message_id, with_for_update=True)
            assert row is not None
            row.status, row.error_code, row.attempts = MessageStatus.FAILED, code[:16], attempts
            row.meta = {**(row.meta or {}), "error": str(error)[:500]}
            if effect:
                session.flush()
                done = receipts.apply_error(session, self.provider, row, effect)
                if done:
                    log.info(
                        "message %s: %s recorded for %s", row.id, done, mask_address(row.address)
                    )

    def _block(self, message_id: int, reason: policy.BlockReason) -> Outcome:
        with self.database.transaction() as session:
            session.execute(
                sa.update(Message)
                .where(Message.id == message_id)
                .values(
                    status=MessageStatus.BLOCKED, block_reason=reason.value, updated_at=self.clock()
                )
                .execution_options(synchronize_session=False)
            )
        return Outcome.BLOCKED

    def _later(self, message_id: int, when: datetime, outcome: Outcome, attempts: int) -> Outcome:
        """Give the claim back: the message waits in ``queued`` until ``when``."""
        self._give_back({message_id: when}, attempts)
        return outcome

    def _paced(self, refused: Sequence[Later]) -> int:
        """Give back the claims of messages whose line had no slot for them: each waits
        in ``queued`` until the time the limiter named, its attempts unchanged."""
        assert self.pacer is not None
        now = self.clock()
        self._give_back({later.message_id: self.pacer.send_at(later, now) for later in refused})
        return len(refused)

    def _give_back(self, when: dict[int, datetime], attempts: int | None = None) -> None:
        """Move claimed messages back to ``queued``, each until its time (and with
        ``attempts``, when given), in one statement; then schedule their jobs."""
        table = cast(sa.Table, Message.__table__)
        values: dict[str, object] = {
            "status": MessageStatus.QUEUED,
            "send_at": sa.bindparam("b_send_at"),
            "claimed_at": None,
            "updated_at": self.clock(),
        }
        if attempts is not None:
            values["attempts"] = attempts
        with self.database.transaction() as session:
            session.execute(
                sa.update(table)
                .where(
                    table.c.id == sa.bindparam("b_id"),
                    table.c.status == MessageStatus.SENDING,
                )
                .values(values),
                [{"b_id": i, "b_send_at": at} for i, at in when.items()],
            )
        # One job per second of them, at the end of that second: it runs when every one
        # is due (the claim skips a message whose send_at has not come), and a second
        # is the scheduler's own granularity.
        by_second: dict[datetime, list[int]] = {}
        for message_id, at in sorted(when.items(), key=lambda item: item[1]):
            second = at.replace(microsecond=0) + timedelta(seconds=1 if at.microsecond else 0)
            by_second.setdefault(second, []).append(message_id)
        for second, ids in by_second.items():
            self.schedule(ids, second)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _marketing_sent(
    session: Session, messages: Sequence[Message], limits: Limits, now: datetime
) -> dict[tuple[int, str], list[tuple[str | None, datetime]]]:
    """(topic, when) of the marketing messages each recipient got in the limits' longest
    period: those handed to the provider, and those another worker hands over now."""
    since = now - limits.longest
    marketing = [m for m in messages if m.kind is MessageKind.MARKETING]
    if not marketing:
        return {}
    sent: dict[tuple[int, str], list[tuple[str | None, datetime]]] = {}
    rows = session.execute(
        sa.select(Message.organization_id, Message.address, Message.topic, Message.sent_at).where(
            Message.organization_id.in_({m.organization_id for m in marketing}),
            Message.address.in_({m.address for m in marketing}),
            Message.direction == Direction.OUTBOUND,
            Message.kind == MessageKind.MARKETING,
            Message.id.not_in([m.id for m in messages]),
            sa.or_(Message.sent_at > since, Message.status == MessageStatus.SENDING),
        )
    )
    for organization_id, address, topic, at in rows:
        sent.setdefault((organization_id, address), []).append((topic, at or now))
    return sent


def limits_in_force(settings: Settings, configured: Limits) -> Limits:
    """keywords.yaml's limits, with the deployment's OPTGATE_MARKETING_LIMIT as well."""
    if settings.marketing_limit is None:
        return configured
    return Limits((*configured.overall, settings.marketing_limit), configured.topics)
