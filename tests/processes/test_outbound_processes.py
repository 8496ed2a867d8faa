"""The outbound guarantees with real processes: gunicorn answering STOPs while several
`optgate worker` processes send a campaign, and a worker killed with -9 mid-campaign.

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
import redis
import sqlalchemy as sa
from rq import Worker
from twilio.request_validator import RequestValidator

from app.addresses import normalize_line
from app.data.db import Database
from app.data.models import Message, MessageStatus, utcnow
from app.lines import add_line, get_or_create_organization
from app.providers.twilio import SEND_TIMEOUT
from app.sending.handoff import INTERRUPTED
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN, free_port
from tests.processes.test_processes import (
    OPTGATE,
    cleaned_up,
    environment,
    output,
    run,
    start,
    wait_ready,
)
from tests.twilio_stub import Answer, TwilioStub, running_stub
from workers.queue import JOB_SIZE, redis_outbox

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


def burst_workers(count: int, env: dict[str, str], folder: Path) -> list[subprocess.Popen[bytes]]:
    """``count`` processes of ``optgate worker --burst``, each in a session of its own,
    writing to ``worker-N.log`` in ``folder`` (``worker_logs`` reads them)."""
    started = []
    for number in range(count):
        with (folder / f"worker-{number}.log").open("wb") as log:
            started.append(
                subprocess.Popen(
                    [OPTGATE, "worker", "--burst"],
                    env=env,
                    cwd=folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return started


def worker_logs(folder: Path, most: int = 40) -> str:
    """What the burst workers said of messages, warnings and errors (not RQ's job lines),
    for a failing assertion's message."""
    said = []
    for log in sorted(folder.glob("worker-*.log")):
        lines = log.read_text(errors="replace").splitlines()
        said.append(f"--- {log.name}")
        said += [line for line in lines if "message " in line or "WARNING" in line
                 or "ERROR" in line or "Error" in line][-most:]  # fmt: skip
    return "\n".join(said)


@pytest.fixture
def workers_dir(tmp_path: Path) -> Iterator[Path]:
    with cleaned_up(tmp_path):
        yield tmp_path


@pytest.mark.slow
@pytest.mark.redis
def test_no_message_reaches_the_provider_after_its_stop_was_answered(
    clean_database_url: str, redis_url: str, redis_client: object, workers_dir: Path
) -> None:
    size, stops, worker_count, texter_count = 10_000, 500, 2, 12
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The provider takes 50 ms to answer: a claimed message stays "sending" long enough
    # for STOPs to find it so. Every tenth number's send spends 0.3 s on its way (a slow
    # network): a STOP to it waits that long, and a second STOP sent meanwhile -- Twilio
    # delivering the same one again, or the contact texting STOP again -- changes
    # nothing in the ledger yet must not be answered before the hand-off is done.
    with running_stub(free_port(), delay=0.05) as stub:
        settings = prepare(clean_database_url, redis_url, stub, base)
        numbers = recipients(size)
        slow = set(numbers[::10])
        stub.holds.update(dict.fromkeys(slow, 0.3))
        redis_outbox(settings).campaign(LINE, numbers, "Prices drop today. Reply STOP to opt out")
        env = env_for(settings, workers_dir)  # each worker sends 16 at a time (the default)
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "4"], env, workers_dir)
        wait_ready(base, web, workers_dir, timeout=20)

        # STOPs while the workers send, from twelve texters at once: half to numbers whose
        # message a worker has claimed (the STOP must wait for the hand-off), half to the
        # next ones still queued (the worker must see the STOP). One poller reads the
        # candidates for all of them, so the texters' reads do not load the database.
        posted: dict[str, float] = {}
        #: When the first answer to a STOP to each number came (of one or two STOPs).
        answered: dict[str, float] = {}
        #: Numbers that got a second STOP (a redelivery or a repeat), and how.
        repeated: dict[str, str] = {}
        errors: list[BaseException] = []
        taken: set[str] = set()
        lock = threading.Lock()
        over = threading.Event()
        candidates: dict[MessageStatus, list[str]] = {
            MessageStatus.SENDING: [],
            MessageStatus.QUEUED: [],
        }
        watch = Database(clean_database_url)

        def poller() -> None:
            try:
                while not over.is_set():
                    # A read-only transaction: on SQLite it does not take the write lock.
                    with watch.reads() as session:
                        for status in candidates:
                            candidates[status] = list(
                                session.scalars(
                                    sa.select(Message.address)
                                    .where(Message.status == status)
                                    .order_by(Message.id)
                                    .limit(40)
                                )
                            )
                    if not any(candidates.values()):
                        return  # the campaign is over: nothing left to race
                    time.sleep(0.01)
            except BaseException as error:
                errors.append(error)
            finally:
                over.set()

        def stop(number: str, sid: str) -> None:
            try:
                status_code = post_stop(base, number, sid)
            except BaseException as error:
                errors.append(error)
                return
            at = time.monotonic()
            with lock:
                answered[number] = min(answered.get(number, at), at)
            if status_code != 200:
                errors.append(AssertionError(f"STOP from {number}: {status_code}"))

        def texter(seed: int) -> None:
            rnd = random.Random(seed)
            while not over.is_set():
                status = MessageStatus.SENDING if rnd.random() < 0.5 else MessageStatus.QUEUED
                with lock:
                    if len(taken) >= stops:
                        return
                    fresh = [n for n in candidates[status] if n not in taken]
                    # A slow hand-off in flight is where a repeated STOP can go wrong.
                    slow_ones = [n for n in fresh if n in slow]
                    pool = slow_ones if slow_ones and rnd.random() < 0.5 else fresh
                    number = rnd.choice(pool) if pool else None
                    if number is not None:
                        taken.add(number)
                if number is None:
                    time.sleep(0.005)
                    continue
                posted[number] = time.monotonic()
                sid = f"SM{int(number[1:]):032d}"
                second = None
                if number in slow:
                    how = "redelivered" if rnd.random() < 0.5 else "repeated"
                    repeated[number] = how
                    again = sid if how == "redelivered" else f"SN{int(number[1:]):032d}"
                    # Sent while the first is being answered (it waits for the hand-off).
                    second = threading.Timer(rnd.uniform(0.02, 0.1), stop, (number, again))
                    second.start()
                stop(number, sid)
                if second is not None:
                    second.join()

        workers = burst_workers(worker_count, env, workers_dir)
        watcher = threading.Thread(target=poller, daemon=True)
        watcher.start()
        texters = [
            threading.Thread(target=texter, args=(seed,), daemon=True)
            for seed in range(texter_count)
        ]
        for thread in texters:
            thread.start()
        deadline = time.monotonic() + 300
        for thread in texters:
            thread.join(max(deadline - time.monotonic(), 0))
        texted_by = len(stub.received)
        for worker in workers:
            assert worker.wait(300) == 0, output(workers_dir)
        over.set()
        watcher.join(10)
        # On a loaded machine a send may not connect in time (CONNECT_TIMEOUT): it is
        # retried after a backoff, which burst workers do not wait for. Such messages
        # must say so (an attempt counted); they are sent once due, and checked too.
        retried = drain_retries(clean_database_url, env, workers_dir)
        web.send_signal(signal.SIGTERM)
        web.wait(15)
        watch.dispose()
        received = list(stub.received)

    assert errors == []
    assert not any(thread.is_alive() for thread in texters), "a texter hung"
    late = [
        (seen.to, seen.at - answered[seen.to])
        for seen in received
        if seen.to in answered and seen.at > answered[seen.to]
    ]
    assert late == [], "messages reached the provider after their STOP was answered"
    arrived = {seen.to: seen.at for seen in received}
    assert len(arrived) == len(received), "a number got two"
    rows = final_states(clean_database_url)
    states = Counter((row.status, row.block_reason) for row in rows)
    left = [(row.address, row.attempts, (row.meta or {}).get("error")) for row in rows
            if row.status is MessageStatus.QUEUED][:5]  # fmt: skip
    assert set(states) <= {(MessageStatus.SENT, None), (MessageStatus.BLOCKED, "opted_out")}, (
        f"{left}\n{worker_logs(workers_dir)}"
    )
    assert sum(states.values()) == size
    assert states[(MessageStatus.SENT, None)] == len(received)
    blocked = {row.address for row in rows if row.status is MessageStatus.BLOCKED}
    assert blocked <= set(answered), "blocked without a STOP"
    # The race was run, not dodged: STOPs landed both before and after their message
    # left, and before the campaign was nearly over.
    assert len(answered) >= stops, f"only {len(answered)} STOPs raced the campaign"
    assert 0 < len(blocked) < len(answered), states
    assert texted_by < size - len(blocked), "the STOPs came after the campaign"
    # STOPs whose message reached the provider while they were being answered: the
    # webhook held their answer until the hand-off was done.
    held = [n for n in answered if n in arrived and posted[n] <= arrived[n] <= answered[n]]
    # Second STOPs that were answered only after their number's slow hand-off was done:
    # without the wait for every opt-out, these are the ones that answer early.
    held_twice = [n for n in held if n in repeated]
    assert len(repeated) >= 30, f"only {len(repeated)} numbers got a second STOP"
    assert held_twice, "no second STOP raced a hand-off in flight"
    print(
        f"\n{size} messages, {len(answered)} numbers STOPped: {len(blocked)} blocked, "
        f"{len(answered) - len(blocked)} sent before the answer, {len(held)} of them while "
        f"the STOP was in flight; {retried} were retried; {len(repeated)} got a second STOP "
        f"({Counter(repeated.values())}), {len(held_twice)} of them raced a hand-off; the "
        f"texters were done after {texted_by} sends"
    )


@pytest.mark.slow
@pytest.mark.redis
def test_a_worker_killed_mid_campaign_hands_nothing_over_twice(
    clean_database_url: str, redis_url: str, redis_client: redis.Redis, workers_dir: Path
) -> None:
    size, concurrency, hung_at = 2_000, 8, 3 * JOB_SIZE
    numbers = recipients(size)
    # The provider holds one batch of eight (the first of the campaign's fourth job)
    # for longer than the test takes to kill the worker sending it, and past the
    # worker's read timeout, so that only the kill can end those sends.
    hung = numbers[hung_at : hung_at + concurrency]
    with running_stub(free_port(), delay=0.02) as stub:
        for number in hung:
            stub.answers[number] = Answer(201, delay=SEND_TIMEOUT + 15)
        settings = prepare(clean_database_url, redis_url, stub, "https://sms.example.com")
        redis_outbox(settings).campaign(LINE, numbers, "Hello")
        env = env_for(settings, workers_dir, OPTGATE_SEND_CONCURRENCY=str(concurrency))
        workers = {process.pid: process for process in burst_workers(2, env, workers_dir)}

        def arrived() -> set[str]:
            return {seen.to for seen in list(stub.received)}

        # Whichever worker took the fourth job now has eight sends in flight.
        deadline = time.monotonic() + 60
        while not set(hung) <= arrived() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(hung) <= arrived(), output(workers_dir)
        stuck_at = time.monotonic()
        hung_ids = message_ids(clean_database_url, hung)
        [busy] = [
            worker
            for worker in Worker.all(connection=redis_client)
            if (job := worker.get_current_job()) is not None and hung_ids <= set(job.args[0])
        ]
        doomed = workers[busy.pid or 0]
        [survivor] = [process for process in workers.values() if process is not doomed]

        # Kill it once the other worker has been seen sending on its own.
        before = len(stub.received)
        while len(stub.received) < before + 100 and time.monotonic() < stuck_at + 10:
            time.sleep(0.02)
        assert survivor.poll() is None, "the other worker was done before the kill"
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert doomed.wait(10) == -signal.SIGKILL
        assert killed_at < stuck_at + SEND_TIMEOUT, "the hung sends may have timed out"
        assert survivor.wait(300) == 0, output(workers_dir)

        # What the dead worker left: its eight sends still "sending", the rest of its
        # job still queued (its job died with it).
        stranded = {
            row.address: row.status
            for row in final_states(clean_database_url)
            if row.status is not MessageStatus.SENT
        }
        left = Counter(stranded.values())
        assert {n for n, s in stranded.items() if s is MessageStatus.SENDING} == set(hung)
        queued = {n for n, s in stranded.items() if s is MessageStatus.QUEUED}
        assert queued <= set(numbers[hung_at + concurrency : hung_at + JOB_SIZE]), left
        assert len(stranded) == len(hung) + len(queued), left

        # No worker runs now, so --interrupted-after 0 is safe.
        requeued = run(["requeue", "--older-than", "0", "--interrupted-after", "0"], env,
                       workers_dir)  # fmt: skip
        assert requeued.returncode == 0, requeued.stderr
        assert f"enqueued {len(queued)} queued messages" in requeued.stdout, requeued.stdout
        assert f"settled {len(hung)} interrupted sends" in requeued.stdout, requeued.stdout
        drained = run(["worker", "--burst"], env, workers_dir)
        assert drained.returncode == 0, drained.stderr
        received = list(stub.received)

    # Every message ends in exactly one final state: sent, or failed as interrupted
    # for exactly the eight the dead worker was handing over (which reached the
    # provider, before the kill, and were never handed over again).
    rows = final_states(clean_database_url)
    assert len(rows) == size
    states = Counter((row.status, row.error_code) for row in rows)
    assert set(states) == {(MessageStatus.SENT, None), (MessageStatus.FAILED, INTERRUPTED)}
    interrupted = {row.address for row in rows if row.error_code == INTERRUPTED}
    assert interrupted == set(hung)
    counts = Counter(seen.to for seen in received)
    assert max(counts.values()) == 1, "a number got two"
    assert all(seen.at < killed_at for seen in received if seen.to in interrupted)
    sent = {row.address for row in rows if row.status is MessageStatus.SENT}
    assert sent == set(counts) - interrupted
    assert len(sent) == len(received) - len(interrupted) == size - len(hung)
    print(
        f"\n{size} messages, a worker killed with {len(hung)} sends in flight, "
        f"{before} sends in: {len(queued)} of its job requeued; {len(sent)} sent, "
        f"{len(interrupted)} failed as interrupted, none handed over twice"
    )


def drain_retries(database_url: str, env: dict[str, str], folder: Path) -> int:
    """Send what waits for a retry once it is due (``requeue`` and a burst worker); how
    many. Fails, naming what the workers said, if a queued message was never tried."""
    waiting = [row for row in final_states(database_url) if row.status is MessageStatus.QUEUED]
    untried = [(row.id, row.attempts, row.send_at, row.claimed_at, row.updated_at)
               for row in waiting if not (row.attempts >= 1 and row.send_at)]  # fmt: skip
    assert not untried, f"{len(untried)} never tried: {untried[:5]}\n{worker_logs(folder, 200)}"
    if not waiting:
        return 0
    due = max(row.send_at for row in waiting if row.send_at)
    time.sleep(max((due - utcnow()).total_seconds(), 0) + 0.5)
    assert run(["requeue", "--older-than", "0"], env, folder).returncode == 0
    assert run(["worker", "--burst"], env, folder).returncode == 0
    return len(waiting)


def message_ids(database_url: str, addresses: list[str]) -> set[int]:
    database = Database(database_url)
    with database.sessions() as session:
        ids = set(session.scalars(sa.select(Message.id).where(Message.address.in_(addresses))))
    database.dispose()
    return ids
