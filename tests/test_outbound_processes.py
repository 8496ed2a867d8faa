"""The outbound guarantees with real processes: gunicorn answering STOPs while several
`optgate worker` processes send a campaign, and a worker killed with -9 mid-send.

The provider is the local stub (tests/twilio_stub.py) in this process: it stamps
each send with the moment it arrived, on the same clock as the STOP answers.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from app.addresses import normalize_line
from app.db import Database
from app.handoff import INTERRUPTED
from app.lines import add_line, get_or_create_organization
from app.models import Message, MessageStatus
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN, free_port
from tests.test_processes import OPTGATE, cleaned_up, environment, output, run, start, wait_ready
from tests.twilio_stub import TwilioStub, running_stub
from workers.queue import Outbox

LINE = "+14155550100"


def recipients(count: int) -> list[str]:
    return [f"+1415{2000000 + n:07d}" for n in range(count)]


def prepare(database_url: str, redis_url: str, stub: TwilioStub, public_url: str) -> Settings:
    settings = Settings(keywords_path=SHIPPED_KEYWORDS).replace(
        database_url=database_url,
        redis_url=redis_url,
        twilio_api_url=stub.url,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        public_url=public_url,
        quiet_hours="off",
    )
    database = Database(database_url)
    with database.transaction() as session:
        add_line(session, normalize_line(LINE), get_or_create_organization(session, "default"))
    database.dispose()
    return settings


def env_for(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    return environment(
        tmp_path,
        OPTGATE_DATABASE_URL=settings.database_url,
        OPTGATE_REDIS_URL=settings.redis_url,
        OPTGATE_TWILIO_API_URL=settings.twilio_api_url or "",
        OPTGATE_PUBLIC_URL=settings.public_url or "",
        OPTGATE_QUIET_HOURS="off",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        **extra,
    )


def final_states(database_url: str) -> list[Message]:
    database = Database(database_url)
    with database.sessions() as session:
        rows = list(session.scalars(sa.select(Message).where(Message.direction == "outbound")))
    database.dispose()
    return rows


def post_stop(base: str, number: str, sid: str) -> int:
    url = f"{base}/webhooks/twilio/messages"
    params = {"MessageSid": sid, "AccountSid": TWILIO_SID, "From": number, "To": LINE,
              "Body": "STOP"}  # fmt: skip
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={
            "X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return int(response.status)


@pytest.fixture
def workers_dir(tmp_path: Path) -> Iterator[Path]:
    with cleaned_up(tmp_path):
        yield tmp_path


@pytest.mark.slow
@pytest.mark.redis
def test_no_message_reaches_the_provider_after_its_stop_was_answered(
    clean_database_url: str, redis_url: str, redis_client: object, workers_dir: Path
) -> None:
    size, stops, worker_count = 1500, 150, 3
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_stub(free_port(), delay=0.02) as stub:
        settings = prepare(clean_database_url, redis_url, stub, base)
        numbers = recipients(size)
        Outbox(settings).campaign(LINE, numbers, "Prices drop today. Reply STOP to opt out")
        env = env_for(settings, workers_dir, OPTGATE_SEND_CONCURRENCY="8")
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env, workers_dir)
        wait_ready(base, web, workers_dir, timeout=20)

        # STOPs while the workers send, four at a time: half to numbers whose
        # message a worker has claimed (the STOP must wait for the hand-off), half to
        # the next ones still queued (the worker must see the STOP).
        answered: dict[str, float] = {}
        taken: set[str] = set()
        lock = threading.Lock()
        watch = Database(clean_database_url)

        def candidates(status: MessageStatus) -> list[str]:
            with watch.sessions() as session:
                return list(
                    session.scalars(
                        sa.select(Message.address)
                        .where(Message.status == status)
                        .order_by(Message.id)
                        .limit(20)
                    )
                )

        def texter(seed: int) -> None:
            rnd = random.Random(seed)
            while len(taken) < stops and len(stub.received) < size - 100:
                pool = candidates(
                    MessageStatus.SENDING if rnd.random() < 0.5 else MessageStatus.QUEUED
                )
                if not pool:
                    if not candidates(MessageStatus.SENDING) and not candidates(
                        MessageStatus.QUEUED
                    ):
                        return  # the campaign is over (STOPs blocked many): nothing to race
                    continue
                number = rnd.choice(pool)
                with lock:
                    if number in taken:
                        continue
                    taken.add(number)
                assert post_stop(base, number, f"SM{int(number[1:]):032d}") == 200
                answered[number] = time.monotonic()

        workers = [
            subprocess.Popen(
                [OPTGATE, "worker", "--burst"],
                env=env,
                cwd=workers_dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(worker_count)
        ]
        texters = [threading.Thread(target=texter, args=(seed,), daemon=True) for seed in range(4)]
        for thread in texters:
            thread.start()
        for thread in texters:
            thread.join(120)
        for worker in workers:
            assert worker.wait(180) == 0, output(workers_dir)
        web.send_signal(signal.SIGTERM)
        web.wait(15)
        watch.dispose()
        received = list(stub.received)

    late = [
        (seen.to, seen.at - answered[seen.to])
        for seen in received
        if seen.to in answered and seen.at > answered[seen.to]
    ]
    assert late == [], "messages reached the provider after their STOP was answered"
    assert max(Counter(seen.to for seen in received).values()) == 1, "a number got two"
    rows = final_states(clean_database_url)
    states = Counter((row.status, row.block_reason) for row in rows)
    assert set(states) <= {(MessageStatus.SENT, None), (MessageStatus.BLOCKED, "opted_out")}
    assert sum(states.values()) == size
    assert states[(MessageStatus.SENT, None)] == len(received)
    # The race was run, not dodged: STOPs landed both before and after their message left.
    blocked = states[(MessageStatus.BLOCKED, "opted_out")]
    assert len(answered) >= 50, "too few STOPs raced the campaign"
    assert 0 < blocked < len(answered), states


@pytest.mark.slow
@pytest.mark.redis
def test_a_worker_killed_mid_send_hands_nothing_over_twice(
    clean_database_url: str, redis_url: str, redis_client: object, workers_dir: Path
) -> None:
    size = 60
    with running_stub(free_port(), delay=1.0) as stub:
        settings = prepare(clean_database_url, redis_url, stub, "https://sms.example.com")
        numbers = recipients(size)
        Outbox(settings).campaign(LINE, numbers, "Hello")
        env = env_for(settings, workers_dir, OPTGATE_SEND_CONCURRENCY="8")

        doomed = start(["worker"], env, workers_dir)
        deadline = time.monotonic() + 30
        while len(stub.received) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(stub.received) == 8, output(workers_dir)
        doomed.send_signal(signal.SIGKILL)  # eight sends are in flight
        doomed.wait(10)
        in_flight = {seen.to for seen in stub.received}

        requeued = run(["requeue", "--older-than", "0", "--interrupted-after", "0"], env,
                       workers_dir)  # fmt: skip
        assert requeued.returncode == 0, requeued.stderr
        assert "settled 8 interrupted sends" in requeued.stdout
        drained = run(["worker", "--burst"], env, workers_dir)
        assert drained.returncode == 0, drained.stderr
        received = list(stub.received)

    assert max(Counter(seen.to for seen in received).values()) == 1, "a number got two"
    rows = final_states(clean_database_url)
    assert len(rows) == size
    interrupted = {row.address for row in rows if row.error_code == INTERRUPTED}
    assert interrupted == in_flight
    assert all(row.status is MessageStatus.FAILED for row in rows if row.address in in_flight)
    sent = {row.address for row in rows if row.status is MessageStatus.SENT}
    assert sent | interrupted == set(numbers) and not sent & interrupted
