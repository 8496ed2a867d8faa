"""Outbound throughput: messages per second through the gate into a provider that
answers after 50 ms, and the time to enqueue a campaign of a million recipients.

Cases, all against PostgreSQL and Redis on this host, with the local Twilio stub
(tests/twilio_stub.py) answering every send after ``--latency`` seconds:

- baseline (provider bound): the same twilio client, the same concurrency, sends
  straight from a thread pool — no queue, no database, no gate. The ceiling.
- gated, 1 and 2 workers: a campaign of ``--messages`` enqueued, then that many
  ``optgate worker --burst`` processes; the rate is counted at the stub, from
  its first send to its last (worker start-up excluded).
- enqueue: ``enqueue_campaign`` of ``--recipients`` numbers (check, bulk insert,
  jobs), against its baseline, a bare bulk insert of as many rows.

Usage: python bench/outbound.py [--messages 4000] [--recipients 1000000] [--postgres URL]
       [--redis URL]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import redis
import scratch
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.addresses import normalize_line
from app.data.db import Database
from app.data.models import Direction, Message, MessageKind, MessageStatus
from app.lines import add_line, get_or_create_organization
from app.providers.base import Outgoing
from app.providers.twilio import TwilioProvider
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN, free_port
from tests.twilio_stub import running_stub
from workers.queue import redis_outbox

LINE = "+14155550100"
OPTGATE = str(Path(sys.executable).parent / "optgate")


def numbers(count: int, area: str = "415") -> list[str]:
    # +1 AREA NXX-XXXX, canonical and distinct; a few exchanges are not in the
    # numbering plan (N11), which enqueueing reports as invalid rows.
    return [f"+1{area}{2_000_000 + n:07d}" for n in range(count)]


def baseline_rate(settings: Settings, count: int, concurrency: int) -> float:
    provider = TwilioProvider(settings.replace(send_concurrency=concurrency))
    outgoing = [Outgoing(LINE, to, "Hello") for to in numbers(count, "212")]
    provider.send(outgoing[0])  # connect once, as a running worker has
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(provider.send, outgoing))
    return count / (time.perf_counter() - began)


def gated_rate(settings: Settings, stub_received: list, count: int, workers: int) -> float:
    redis_outbox(settings).campaign(
        LINE, numbers(count, ("646", "718")[workers - 1]), "Hello", kind="transactional"
    )
    before = len(stub_received)
    env = scratch.optgate_env(
        settings.database_url,
        settings.redis_url,
        OPTGATE_TWILIO_API_URL=settings.twilio_api_url or "",
        OPTGATE_QUIET_HOURS="off",
        OPTGATE_SEND_CONCURRENCY=str(settings.send_concurrency),
        # The sender's speed, pacing included, not a line's rate (bench/rates.py has that).
        OPTGATE_SEND_RATE_LONG_CODE="10000",
    )
    processes = [
        subprocess.Popen([OPTGATE, "worker", "--burst"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    for process in processes:
        if process.wait(600) != 0:
            raise SystemExit("a worker failed")
    arrivals = [seen.at for seen in stub_received[before:]]
    if len(arrivals) != count:
        raise SystemExit(f"expected {count} sends at the stub, saw {len(arrivals)}")
    return count / (max(arrivals) - min(arrivals))


def enqueue_time(settings: Settings, count: int) -> float:
    outbox = redis_outbox(settings)
    began = time.perf_counter()
    report = outbox.campaign(LINE, (n for n in numbers(count, "312")), "Hello")
    elapsed = time.perf_counter() - began
    assert report.queued + len(report.invalid) == count, report.queued
    return elapsed


def bare_insert_time(database: Database, count: int) -> float:
    with database.transaction() as session:
        line_id, org_id = session.execute(sa.text("SELECT id, organization_id FROM lines")).one()
    all_numbers = numbers(count, "305")
    began = time.perf_counter()
    for start in range(0, count, 5_000):
        rows = [
            {"organization_id": org_id, "line_id": line_id, "direction": Direction.OUTBOUND,
             "address": to, "body": "Hello", "kind": MessageKind.MARKETING,
             "status": MessageStatus.QUEUED, "require_opt_in": False, "attempts": 0,
             "needs_review": False}
            for to in all_numbers[start : start + 5_000]
        ]  # fmt: skip
        with database.transaction() as session:
            session.execute(sa.insert(Message), rows)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "OPTGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--enqueue-only", action="store_true", help="skip the sending cases")
    args = parser.parse_args()

    queue = redis.Redis.from_url(args.redis)
    queue.flushdb()
    with scratch.postgres_database(args.postgres) as url:
        try:
            database = Database(url)
            with database.transaction() as session:
                add_line(
                    session, normalize_line(LINE), get_or_create_organization(session, "bench")
                )
            with running_stub(free_port(), delay=args.latency) as stub:
                settings = Settings(keywords_path=SHIPPED_KEYWORDS).replace(
                    database_url=url,
                    redis_url=args.redis,
                    twilio_api_url=stub.url,
                    twilio_account_sid=TWILIO_SID,
                    twilio_auth_token=TWILIO_TOKEN,
                    quiet_hours="off",
                    send_concurrency=str(args.concurrency),
                )
                print(f"# {platform.node()} · {os.cpu_count()} CPU · "
                      f"Python {platform.python_version()} · {datetime.now(UTC):%Y-%m-%d} · "
                      f"provider latency {args.latency * 1000:.0f} ms · "
                      f"{args.concurrency} sends in flight per worker")  # fmt: skip
                print("| case | messages/s | ratio to baseline |")
                print("|---|---|---|")
                for workers in () if args.enqueue_only else (1, 2):
                    ceiling = baseline_rate(settings, args.messages, args.concurrency * workers)
                    gated = gated_rate(settings, stub.received, args.messages, workers)
                    print(f"| baseline: {args.concurrency * workers} sends in flight, no gate | "
                          f"{ceiling:,.0f} | 1.00 |")  # fmt: skip
                    print(f"| gated: {workers} worker process{'es' if workers > 1 else ''} | "
                          f"{gated:,.0f} | {gated / ceiling:.2f} |")  # fmt: skip
            queue.flushdb()
            if not args.recipients:
                return
            bare = bare_insert_time(database, args.recipients)
            with running_stub(free_port()) as stub:
                enqueue = enqueue_time(settings.replace(twilio_api_url=stub.url), args.recipients)
            print()
            print("| case | seconds | ratio to baseline |")
            print("|---|---|---|")
            print(f"| baseline: bulk insert of {args.recipients:,} rows | {bare:.1f} | 1.00 |")
            print(f"| enqueue_campaign of {args.recipients:,} recipients | {enqueue:.1f} | "
                  f"{enqueue / bare:.2f} |")  # fmt: skip
            database.dispose()
        finally:
            queue.flushdb()


if __name__ == "__main__":
    main()
