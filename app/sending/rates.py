"""Send rates: how many messages per second each line may hand to the provider.

Carriers and providers limit every sender: at Twilio a US long code sends about 1
message segment per second (10DLC more, by the brand's trust score), a toll-free
number 3, a short code 100, and a Messaging Service pools its numbers
(docs/sending.md, "Send rates", has the figures and their sources). Messages sent
faster wait in the provider's queue, behind each other: a password code queued
behind a campaign at Twilio arrives minutes late, and a queue over 10 hours fails
(Twilio error 30001). So the workers pace themselves, together.

**The rate in force** for a line (``rate_in_force``): its own rate
(``optgate lines rate NUMBER R``); else its group's (``--group``), which all lines
of the group share; else the default of its kind, OPTGATE_SEND_RATE_LONG_CODE,
_TOLL_FREE or _SHORT_CODE. A rate belongs to a *bucket*: ``line:<id>`` or
``group:<id>``.

**The limiter** (``Limiter``, one Lua script per bucket, atomic in Redis, so it
holds across every worker process and host using that Redis). Each bucket's time
is a grid of slots ``W / R`` seconds apart on Redis's clock, ``W = 1 + MARGIN``
seconds, and each slot carries at most one hand-off. Points ``W / R`` apart put at
most ``floor(R / W) + 1 <= R`` (for a whole R) in any closed window of one second,
wherever it starts — not only aligned seconds — and a hand-off that starts up to
``MARGIN`` late still keeps that (docs/sending.md has the two lines of proof). The
script reads Redis's TIME itself, so hosts' clocks never matter; the answer is
turned into this process's monotonic clock on arrival, which can only make a
hand-off later, never earlier. A slot given back (``release``) is free again for
the next ask.

**Reserve ahead, but not far.** A slot is reserved at most about ``MAX_WAIT``
seconds ahead (``horizons``). Further than that, the answer is ``Later``: no slot
is taken, and the message goes back to ``queued`` with a ``send_at`` rather than
hold its claim — a claimed message is ``sending``, and a STOP to its recipient
waits for it (app/sending/handoff.py).

**Fair between campaigns.** Each ask names a *flow* (a campaign, or one kind of
single message). A flow may hold at most its share of a bucket's slots ahead — the
reach divided among the flows that asked in the last ``ACTIVE`` seconds — so a
campaign of a million that arrived first cannot hold every slot: as its slots pass,
it may not take new ones until it is under its share, and a small campaign asking
meanwhile gets them. The cap bounds how far ahead a flow reserves, not its
throughput: alone, a campaign uses every slot. And a refused message is told to
come back at a time spread at its flow's share of the rate, so thousands of
refused messages do not all return at once. (Splitting the rate itself per
campaign would idle a share its campaign cannot use; a central fair queue would
need the workers to hold their claims while they wait, which the STOP's wait
forbids.)

**Transactional share.** Transactional messages (password codes, order updates)
may reserve up to ``MAX_WAIT`` ahead; everything else only up to
``(1 - share) x MAX_WAIT`` (at least one slot), so the last part of the reach is
always free of campaigns: a transactional message waits behind a campaign for at
most about a second (two slots on a line slower than about 2 per second, where a
slot is itself a second long). While both kinds ask, transactional messages hold
at most that share of the slots, so they cannot starve campaigns either; alone,
they use the whole line. OPTGATE_SEND_RATE_TRANSACTIONAL_SHARE (default 0.2) sets
the share; 0 treats them like the rest.

**State lost** (Redis flushed, or restarted without persistence): the script finds
no epoch key and, for one reach, starts every bucket after the time up to which
reservations made before the loss could lie, so the loss never doubles a rate.
Redis unreachable: every ask is answered ``Later`` (reason ``unavailable``, in
``UNAVAILABLE_RETRY`` seconds): fail closed, never faster than the rate.

The sender's contract (app/sending/sender.py calls it; this module never calls the
sender). Per batch, in this order:

1. **claim**: ``handoff.claim_many`` (committed), as now.
2. **reserve**: ``answers = pacer.reserve(claimed_ids)`` — ``SendPacer.reserve(
   message_ids: Sequence[int]) -> dict[int, Slot | Later]``: one read of the
   messages' lines and groups, one Redis round trip; earlier ids get earlier
   slots.
3. **give back the claims refused**: for each ``Later``, the message goes back to
   ``queued`` with ``send_at = pacer.send_at(later, now)`` (wall clock) and a job
   scheduled for then, as for quiet hours (``Sender._later``).
4. **decide** the ones with a ``Slot`` (the policy, from a fresh read).
5. **hand off** each allowed message at ``slot.at`` (``time.monotonic()`` clock:
   ``pacer.wait_for(slot)`` sleeps until then, never earlier). The decision must
   still be younger than ``DECISION_TTL`` then; a slot lies at most
   ``Limiter.reach(rate)`` ahead (1 s from 2 messages/s up), so decide after
   reserving — never before — and decide again if it went stale (as ``_proceed``
   does).
6. **give back unused slots**: a message blocked or deferred by the decision, or
   not handed off for any reason, returns its slot: ``pacer.give_back(slots:
   Iterable[Slot]) -> None``. A slot whose time has passed is spent either way.

Pure logic plus a small Redis adapter: no Flask, RQ or provider SDK here
(tests/test_layers.py); ``redis`` is passed in.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from app.addresses import AddressKind, normalize_line
from app.data.models import Line, LineGroup, Message, MessageKind
from app.errors import InvalidAddress

if TYPE_CHECKING:
    import redis

    from app.data.db import Database
    from app.settings import Settings

log = logging.getLogger("optgate.rates")

#: Seconds ahead a slot may be reserved: half of handoff.DECISION_TTL (2 s), so a
#: decision taken right after reserving is still good at the hand-off, with a
#: second left for the read itself.
MAX_WAIT = 1.0
#: Slots are (1 + MARGIN) / R apart: a hand-off up to MARGIN seconds late (a busy
#: host, sleep overshoot) still leaves at most R in any one-second window.
MARGIN = 0.02
#: A flow that asked within this many seconds counts for the fair shares: longer
#: than a refused message takes to come back through the scheduler.
ACTIVE = 5.0
#: Seconds before a message refused because Redis did not answer is tried again.
UNAVAILABLE_RETRY = 5.0

_US = 1_000_000
_KEYS = "optgate:rate:"
#: The key whose absence means this Redis lost the limiter's state (see the module doc).
EPOCH_KEY = _KEYS + "epoch"


class LineKind(StrEnum):
    LONG_CODE = "long code"
    TOLL_FREE = "toll-free"
    SHORT_CODE = "short code"


#: NANP toll-free area codes (800, 833, 844, 855, 866, 877, 888).
_TOLL_FREE = re.compile(r"\+18(00|33|44|55|66|77|88)\d{7}")


@lru_cache(maxsize=4096)
def line_kind(address: str) -> LineKind:
    """The kind of the line numbered ``address`` (E.164, or a short code's digits)."""
    try:
        if normalize_line(address).kind is AddressKind.SHORT_CODE:
            return LineKind.SHORT_CODE
    except InvalidAddress:
        pass  # a stored line is always valid; anything else is paced as the slowest kind
    if _TOLL_FREE.fullmatch(address):
        return LineKind.TOLL_FREE
    return LineKind.LONG_CODE


def default_rate(kind: LineKind, settings: Settings) -> float:
    return {
        LineKind.LONG_CODE: settings.send_rate_long_code,
        LineKind.TOLL_FREE: settings.send_rate_toll_free,
        LineKind.SHORT_CODE: settings.send_rate_short_code,
    }[kind]


@dataclass(frozen=True)
class SendRate:
    """The rate in force for a line, and where it comes from."""

    per_second: float
    #: Whose slots it uses: ``line:<id>`` or ``group:<id>`` (shared by the group's lines).
    bucket: str
    #: ``line`` (its own), ``group`` (its group's), or ``<kind> default``.
    source: str

    def describe(self, group: str | None = None) -> str:
        """E.g. ``30/s (its own)``, ``100/s (short code default)``, ``50/s (group MG1, shared)``."""
        if self.source == "line":
            where = "its own"
        elif self.source == "group":
            where = f"group {group}, shared" if group else "its group's, shared"
        else:
            where = self.source
        return f"{self.per_second:g}/s ({where})"


def rate_in_force(
    line_id: int,
    address: str,
    line_rate: float | None,
    group_id: int | None,
    group_rate: float | None,
    settings: Settings,
) -> SendRate:
    """A line's own rate beats its group's, which beats its kind's default."""
    if line_rate is not None:
        return SendRate(line_rate, f"line:{line_id}", "line")
    if group_id is not None and group_rate is not None:
        return SendRate(group_rate, f"group:{group_id}", "group")
    kind = line_kind(address)
    return SendRate(default_rate(kind, settings), f"line:{line_id}", f"{kind} default")


@dataclass(frozen=True)
class Paced:
    """What the limiter needs to know of one message."""

    message_id: int
    line_id: int
    line_address: str
    kind: MessageKind
    #: The campaign or job key that fairness is kept between (``flow_of``).
    flow: str
    group_id: int | None = None
    #: The line's and its group's own rates (None: not set).
    line_rate: float | None = None
    group_rate: float | None = None


def flow_of(campaign_id: int | None, kind: MessageKind) -> str:
    """A campaign's messages are one flow; single messages, one per kind."""
    return f"campaign:{campaign_id}" if campaign_id is not None else f"single:{kind.value}"


@dataclass(frozen=True)
class Slot:
    """Hand the message over at ``at`` (``time.monotonic()``), not before."""

    message_id: int
    at: float
    rate: SendRate
    #: The slot's time on Redis's clock (µs), which every process shares; and its
    #: member in the bucket's sorted set, for ``release``.
    redis_us: int
    member: str


@dataclass(frozen=True)
class Later:
    """No slot within reach: give the claim back; ask again at ``retry_at`` (monotonic)."""

    message_id: int
    retry_at: float
    #: ``busy``: every slot within reach is taken; ``fair_share``: its flow (or its
    #: kind) holds its share of them already; ``unavailable``: Redis did not answer.
    reason: Literal["busy", "fair_share", "unavailable"]
    #: The same time on Redis's clock (µs; 0 when Redis did not answer).
    redis_us: int = 0


Answer = Slot | Later

_REASONS: dict[int, Literal["busy", "fair_share"]] = {2: "fair_share", 3: "busy"}


@dataclass(frozen=True)
class Horizons:
    """A bucket's grid and reach, in µs of Redis's clock (see the module doc)."""

    grid: int
    #: How far ahead non-transactional messages may reserve.
    bulk: int
    #: How far ahead transactional messages may reserve (the longest reach).
    transactional: int
    #: Slots transactional messages may hold while other kinds ask too.
    reserve: int
    #: While other kinds ask too, transactional messages get at most one slot per
    #: this many µs (their share of the rate), after a burst of ``reserve``.
    interval: int


def horizons(rate: float, share: float, max_wait: float = MAX_WAIT) -> Horizons:
    # Rounded up: a slot a microsecond too far apart costs nothing, too close could
    # put R + 1 in a window.
    grid = math.ceil((1 + MARGIN) * _US / rate)
    reach = round(max_wait * _US)
    if share <= 0:
        bulk = max(grid, reach)
        return Horizons(grid, bulk, bulk, 0, 0)
    reserve = max(1, math.ceil(share * (reach // grid)))
    # At least one slot: a campaign on a 1/s line must be able to reserve its next one.
    bulk = max(grid, reach - reserve * grid)
    # Transactional messages reach at least one slot past the campaigns' reach.
    return Horizons(grid, bulk, max(reach, bulk + grid), reserve, math.ceil(grid / share))


# Atomic per bucket. KEYS: 1 state (hash: grid, after), 2 taken (zset: slot µs ->
# "slot|class|flow"), 3 flows (zset: "class|flow" -> when it last asked), 4 dues
# (hash: "class|flow" -> the next retry time to give it), 5 the epoch (µs until
# which a lost state may still have had reservations). ARGV: 1 grid µs, 2 bulk
# reach µs, 3 transactional reach µs, 4 transactional reserve (slots), 5 active µs,
# 6 now µs (0: Redis TIME), 7 transactional interval µs, then (class, flow) per
# message: class t (transactional) or b. Returns now, then (code, µs) per message:
# 1 slot at µs; 2 fair share held, 3 busy: ask again at µs.
_SCRIPT = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function fmt(x) return string.format('%.0f', x) end
local grid, bulk, far = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, active, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local interval = tonumber(ARGV[7])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local reach = math.max(bulk, far)
local ttl = math.ceil((reach + active) / 1000) + 1000

-- No epoch: this Redis lost the limiter's state (or never had it). Reservations made
-- before may lie up to a reach ahead: no bucket created until then starts earlier.
local fresh = tonumber(redis.call('GET', KEYS[5]))
if not fresh then
  fresh = now + reach
  redis.call('SET', KEYS[5], fmt(fresh))
end
local state = redis.call('HMGET', KEYS[1], 'grid', 'after', 'tat')
local old, after, tat = tonumber(state[1]), tonumber(state[2]) or 0, tonumber(state[3]) or 0
if not old then
  after = math.max(after, fresh)
elseif old ~= grid then
  -- The rate changed: the new grid starts after the last slot of the old one.
  local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if last[2] then after = math.max(after, tonumber(last[2]) + math.max(old, grid)) end
end
-- Spent slots; flows that stopped asking.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(now))
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. fmt(now - active))
if #gone > 0 then
  redis.call('ZREM', KEYS[3], unpack(gone))
  redis.call('HDEL', KEYS[4], unpack(gone))
end
local n = (#ARGV - 7) / 2
for i = 1, n do
  redis.call('ZADD', KEYS[3], fmt(now), ARGV[6 + 2 * i] .. '|' .. ARGV[7 + 2 * i])
end
local flows = {t = 0, b = 0}
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local c = string.sub(member, 1, 1)
  flows[c] = (flows[c] or 0) + 1
end
local everyone = math.max(1, flows.t + flows.b)

-- The slots reserved ahead, and who holds them (rows come sorted by time).
local taken, held, first = {}, {}, {}
local class_held, class_first = {t = 0, b = 0}, {}
local rows = redis.call('ZRANGEBYSCORE', KEYS[2], fmt(now), '+inf', 'WITHSCORES')
for i = 1, #rows, 2 do
  local at = tonumber(rows[i + 1])
  taken[at] = true
  local c, f = string.match(rows[i], '^%d+|(.)|(.*)$')
  local key = c .. '|' .. f
  held[key] = (held[key] or 0) + 1
  if not first[key] then first[key] = at end
  class_held[c] = class_held[c] + 1
  if not class_first[c] then class_first[c] = at end
end

-- What each kind may hold ahead: its reach. While campaigns ask too, transactional
-- flows split their reserve, and the kind gets its share of the rate (a GCRA: one
-- slot per interval after a burst of the reserve), so it cannot starve campaigns.
local cap = {b = math.floor(bulk / grid) + 1, t = math.floor(far / grid) + 1}
local split = {b = cap.b, t = cap.t}
local paced = flows.b > 0 and reserve > 0 and interval > 0
if paced then split.t = reserve end
local burst = (reserve - 1) * interval

local function free_from(index)
  while taken[index * grid] do index = index + 1 end
  return index
end

local cursor = math.ceil(math.max(now, after) / grid)
local dues, out = {}, {now}
for i = 1, n do
  local c, f = ARGV[6 + 2 * i], ARGV[7 + 2 * i]
  local key = c .. '|' .. f
  local limit = now + ((c == 't') and far or bulk)
  local share = math.max(1, math.floor(split[c] / math.max(1, flows[c])))
  local code, value
  if (held[key] or 0) >= share then
    -- Its flow holds its share (all there is, when it is alone: busy): once its
    -- earliest slot has passed, it may take another.
    code, value = (share < cap[c]) and 2 or 3, first[key] + 1
  elseif class_held[c] >= cap[c] then
    code, value = 3, class_first[c] + 1
  else
    cursor = free_from(cursor)
    local index, over = cursor, false
    if c == 't' and paced and index * grid < tat - burst then
      -- Over its share of the rate: a later slot, if one is free within reach.
      index, over = free_from(math.ceil((tat - burst) / grid)), true
    end
    local at = index * grid
    if at > limit then
      -- Busy (or its share used): the first slot it may have comes within reach then.
      code, value = over and 2 or 3, at - (limit - now)
    else
      code, value = 1, at
      taken[at] = true
      redis.call('ZADD', KEYS[2], fmt(at), fmt(at) .. '|' .. key)
      held[key] = (held[key] or 0) + 1
      if not first[key] or at < first[key] then first[key] = at end
      class_held[c] = class_held[c] + 1
      if not class_first[c] or at < class_first[c] then class_first[c] = at end
      if c == 't' and paced then tat = math.max(tat, at) + interval end
      if index == cursor then cursor = cursor + 1 end
    end
  end
  if code ~= 1 then
    -- Spread the refused of a flow at its share of the rate, so that they do not all
    -- come back at once and find the line busy again.
    if dues[key] == nil then dues[key] = tonumber(redis.call('HGET', KEYS[4], key)) or 0 end
    value = math.max(value, dues[key], now + 1000)
    dues[key] = value + grid * everyone
  end
  out[#out + 1] = code
  out[#out + 1] = value
end
for key, due in pairs(dues) do redis.call('HSET', KEYS[4], key, fmt(due)) end
redis.call('HSET', KEYS[1], 'grid', fmt(grid), 'after', fmt(after), 'tat', fmt(tat))
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
return out
"""


_SCRIPT_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()


def _keys(bucket: str) -> list[str]:
    # One hash tag per bucket: its keys stay together on a Redis Cluster node.
    base = f"{_KEYS}{{{bucket}}}:"
    return [base + "state", base + "taken", base + "flows", base + "dues", EPOCH_KEY]


@dataclass
class Limiter:
    """Slots for hand-offs, per bucket, shared through Redis by every process."""

    redis: redis.Redis
    settings: Settings
    max_wait: float = MAX_WAIT
    #: Tests pin Redis's clock (µs); None: the script reads Redis's TIME.
    redis_clock: Callable[[], int] | None = None
    monotonic: Callable[[], float] = time.monotonic
    #: The script's SHA1: loaded (SCRIPT LOAD) on the first NOSCRIPT answer, which a
    #: new, restarted or flushed Redis gives.
    _sha: str = field(init=False, repr=False, default=_SCRIPT_SHA)

    @property
    def share(self) -> float:
        return self.settings.send_rate_transactional_share

    def rate_of(self, message: Paced) -> SendRate:
        return rate_in_force(
            message.line_id,
            message.line_address,
            message.line_rate,
            message.group_id,
            message.group_rate,
            self.settings,
        )

    def reach(self, rate: SendRate) -> float:
        """Seconds ahead a slot may lie at this rate, at most."""
        found = horizons(rate.per_second, self.share, self.max_wait)
        return max(found.bulk, found.transactional) / _US

    def pace(self, messages: Sequence[Paced]) -> list[Answer]:
        """For each message, in order: a ``Slot`` (hand it over at ``slot.at``) or
        ``Later`` (give its claim back). One Redis round trip for the lot; earlier
        messages of a bucket get earlier slots."""
        if not messages:
            return []
        buckets: dict[str, tuple[SendRate, list[int]]] = {}
        for position, message in enumerate(messages):
            rate = self.rate_of(message)
            # A bucket whose rate two messages disagree on (changed between reads) uses
            # the first one's; the next batch reads the new one.
            buckets.setdefault(rate.bucket, (rate, []))[1].append(position)
        try:
            replies = self._run(messages, buckets)
        except self._redis_errors() as error:
            retry = self.monotonic() + UNAVAILABLE_RETRY
            log.warning(
                "send rates: Redis did not answer (%s); %d messages wait %g s",
                type(error).__name__,
                len(messages),
                UNAVAILABLE_RETRY,
            )
            return [Later(m.message_id, retry, "unavailable") for m in messages]
        received = self.monotonic()
        found: dict[int, Answer] = {}
        for (rate, positions), reply in zip(buckets.values(), replies, strict=True):
            redis_now = int(reply[0])
            for index, position in enumerate(positions):
                code, value = int(reply[1 + 2 * index]), int(reply[2 + 2 * index])
                message = messages[position]
                # Counted from when the answer arrived, which the script's TIME
                # preceded: the local time can only be later than the slot, never earlier.
                when = received + (value - redis_now) / _US
                if code == 1:
                    member = f"{value}|{self._class(message)}|{message.flow}"
                    found[position] = Slot(message.message_id, when, rate, value, member)
                else:
                    found[position] = Later(message.message_id, when, _REASONS[code], value)
        return [found[position] for position in range(len(messages))]

    def release(self, slots: Iterable[Slot]) -> None:
        """Give back slots that will not be used; the next ask may take them."""
        by_bucket: dict[str, list[str]] = {}
        for slot in slots:
            by_bucket.setdefault(slot.rate.bucket, []).append(slot.member)
        if not by_bucket:
            return
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for bucket, members in by_bucket.items():
                    pipe.zrem(_keys(bucket)[1], *members)
                pipe.execute()
        except self._redis_errors() as error:
            # Unreturned slots only go unused: the rate is never exceeded.
            log.warning("send rates: could not give back slots (%s)", type(error).__name__)

    def _class(self, message: Paced) -> str:
        return "t" if message.kind is MessageKind.TRANSACTIONAL and self.share > 0 else "b"

    def _run(
        self, messages: Sequence[Paced], buckets: dict[str, tuple[SendRate, list[int]]]
    ) -> list[list[int]]:
        import redis as redis_module

        now = self.redis_clock() if self.redis_clock else 0
        calls = []
        for bucket, (rate, positions) in buckets.items():
            found = horizons(rate.per_second, self.share, self.max_wait)
            args: list[str | int] = [
                found.grid, found.bulk, found.transactional, found.reserve,
                round(ACTIVE * _US), now, found.interval,
            ]  # fmt: skip
            for position in positions:
                args += [self._class(messages[position]), messages[position].flow]
            calls.append((_keys(bucket), args))
        for attempt in (1, 2):
            try:
                # EVALSHA in a plain pipeline: redis-py's script pipelines ask SCRIPT
                # EXISTS first, a second round trip on every call.
                with self.redis.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        pipe.evalsha(self._sha, len(keys), *keys, *args)
                    replies: list[list[int]] = pipe.execute()
                return replies
            except redis_module.exceptions.NoScriptError:
                # A restarted or flushed Redis forgot the script: load it, once.
                if attempt == 2:
                    raise
                self._sha = self.redis.script_load(_SCRIPT)
        raise AssertionError("unreachable")

    @staticmethod
    def _redis_errors() -> tuple[type[Exception], ...]:
        import redis as redis_module

        return (redis_module.exceptions.ConnectionError, redis_module.exceptions.TimeoutError)


@dataclass
class SendPacer:
    """What the sender calls (see the contract in the module doc)."""

    limiter: Limiter
    database: Database
    sleep: Callable[[float], None] = time.sleep

    def reserve(self, message_ids: Sequence[int]) -> dict[int, Answer]:
        """A slot or a ``Later`` for each of ``message_ids`` (claimed, ``sending``)."""
        with self.database.reads() as session:
            rows = session.execute(
                sa.select(
                    Message.id,
                    Message.kind,
                    Message.campaign_id,
                    Line.id,
                    Line.address,
                    Line.send_rate,
                    Line.group_id,
                    LineGroup.send_rate,
                )
                .join(Line, Line.id == Message.line_id)
                .outerjoin(LineGroup, LineGroup.id == Line.group_id)
                .where(Message.id.in_(list(message_ids)))
                .order_by(Message.id)
            ).all()
        paced = []
        for message_id, raw_kind, campaign, line_id, address, line_rate, group, group_rate in rows:
            kind = raw_kind or MessageKind.TRANSACTIONAL  # as the sender reads a kind-less row
            paced.append(
                Paced(message_id, line_id, address, kind, flow_of(campaign, kind), group,
                      line_rate, group_rate)
            )  # fmt: skip
        return {answer.message_id: answer for answer in self.limiter.pace(paced)}

    def give_back(self, slots: Iterable[Slot]) -> None:
        self.limiter.release(slots)

    def wait_for(self, slot: Slot) -> None:
        """Sleep until the slot's time (never wakes before it)."""
        while (left := slot.at - self.limiter.monotonic()) > 0:
            self.sleep(left)

    def send_at(self, later: Later, now: datetime) -> datetime:
        """The wall-clock ``send_at`` for a message given back: ``now`` plus the wait."""
        wait = max(0.0, later.retry_at - self.limiter.monotonic())
        return now + timedelta(seconds=wait)
