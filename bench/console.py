"""The console's contact page with a million consent records, against a bare query.

On SQLite and PostgreSQL, each seeded with ``--records`` consent records (one
per number, on 10 lines and the organisation), served by ``optgate web`` (one
gunicorn sync worker, so each request is timed alone), asked for by one client
over a kept-alive connection, one request at a time, each for another number
picked at random among those with a record. Every case is timed in the same
run, interleaved:

- ``bare query``: in this process, the one SELECT of a number's records
  (by organisation and number, through the addresses table) — the least any
  look-up must do;
- ``/healthz over HTTP``: the same gunicorn's cheapest answer — what HTTP, the
  WSGI server and Flask cost before any work;
- ``contact page``: ``GET /console/contacts/NUMBER``, signed in: the session,
  the user, the organisation, the number's consent on every line and channel,
  its flags, the forms and the page.

Usage: python bench/console.py [--records N] [--requests N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import requests
import scratch
import sqlalchemy as sa

from app.accounts import users
from app.addresses import normalize
from app.data.db import Database
from app.data.models import ConsentRecord, ContactAddress, Line
from app.lines import add_line, get_or_create_organization
from app.settings import Role

BENCH = Path(__file__).resolve().parent
OPTGATE = str(Path(sys.executable).parent / "optgate")
LINES = 10
PASSWORD = "bench password 123"
SECRET_KEY = "b" * 64


def seed(database: Database, records: int) -> list[str]:
    """``records`` numbers with one record each; the numbers."""
    with database.transaction() as session:
        org = get_or_create_organization(session, "bench")
        lines = [
            add_line(session, normalize(f"+1415555{i:04d}"), org, name=f"Line {i}")[0]
            for i in range(LINES)
        ]
        users.add_user(session, "bench", Role.MANAGER, org, PASSWORD, "bench")
    now = datetime.now(UTC)
    numbers = [f"+1212{i:07d}" for i in range(1, records + 1)]
    chunk = 20_000
    for start in range(0, records, chunk):
        ids = range(start + 1, min(start + chunk, records) + 1)
        with database.transaction() as session:
            session.execute(
                sa.insert(ContactAddress),
                [
                    {"id": i, "organization_id": org.id, "value": numbers[i - 1], "kind": "phone",
                     "head_seq": 1, "head_hash": "0" * 64, "created_at": now}
                    for i in ids
                ],
            )  # fmt: skip
            session.execute(
                sa.insert(ConsentRecord),
                [
                    {"address_id": i, "scope": f"line:{lines[i % LINES].id}" if i % 11 else
                     "organization", "line_id": lines[i % LINES].id if i % 11 else None,
                     "channel": "sms", "topic": "", "status": "opted_out" if i % 3 else "opted_in",
                     "source": "keyword", "actor": "bench", "seq": 1, "updated_at": now}
                    for i in ids
                ],
            )  # fmt: skip
    with database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == records
        assert session.scalar(sa.select(sa.func.count()).select_from(Line)) == LINES
    return numbers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(database_url: str) -> Iterator[str]:
    port = free_port()
    env = scratch.optgate_env(
        database_url, "inline", OPTGATE_SECRET_KEY=SECRET_KEY, OPTGATE_QUIET_HOURS="off"
    )
    command = [OPTGATE, "web", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    process = subprocess.Popen(
        command, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/healthz", timeout=1)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    raise SystemExit(f"optgate web did not start: {stderr}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def signed_in(base: str) -> requests.Session:
    client = requests.Session()
    page = client.get(f"{base}/console/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    answer = client.post(
        f"{base}/console/login",
        data={"name": "bench", "password": PASSWORD, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text[:500]
    return client


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--postgres", default=scratch.DEFAULT_POSTGRES)
    args = parser.parse_args()
    print(
        f"# console · contact page · {args.records:,} consent records · {LINES} lines · "
        f"{args.requests} requests per case, one at a time · gunicorn 1 sync worker · "
        f"{platform.python_implementation()} {platform.python_version()}\n"
    )
    print("| database | case | median ms | p99 ms | p99 × bare query |")
    print("|---|---|---|---|---|")
    rnd = random.Random(16)
    for label, url in scratch.both(args.postgres):
        for line in measure(label, url, args.records, args.requests, rnd):
            print(line)


def measure(label: str, url: str, records: int, count: int, rnd: random.Random) -> list[str]:
    """The table rows of one database: each case's median and p99 over ``count`` requests."""
    database = Database(url)
    numbers = seed(database, records)
    bare_query = (
        sa.select(ConsentRecord)
        .join(ContactAddress, ContactAddress.id == ConsentRecord.address_id)
        .where(ContactAddress.organization_id == 1, ContactAddress.value == sa.bindparam("v"))
    )
    with serving(url) as base:
        client = signed_in(base)
        health = requests.Session()

        def query(number: str) -> None:
            with database.engine.connect() as connection:
                connection.execute(bare_query, {"v": number}).all()

        def http_health(_number: str) -> None:
            assert health.get(f"{base}/healthz", timeout=10).status_code == 200

        def contact(number: str) -> None:
            answer = client.get(f"{base}/console/contacts/{number}", timeout=10)
            assert answer.status_code == 200 and "Opted" in answer.text, answer.status_code

        cases: dict[str, Callable[[str], None]] = {
            "bare query": query,
            "/healthz over HTTP": http_health,
            "contact page": contact,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for run in cases.values():  # warm up: connections, caches, imports
            for number in rnd.sample(numbers, 50):
                run(number)
        for _ in range(count):
            number = rnd.choice(numbers)
            for name, run in cases.items():
                started = time.perf_counter()
                run(number)
                times[name].append(time.perf_counter() - started)
    database.dispose()
    _, bare_p99 = percentiles(times["bare query"])
    rows = []
    for name, measured in times.items():
        median, p99 = percentiles(measured)
        rows.append(f"| {label} | {name} | {median:.2f} | {p99:.2f} | {p99 / bare_p99:.1f} × |")
    return rows


if __name__ == "__main__":
    main()
