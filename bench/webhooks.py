"""Webhook throughput: signed Twilio webhooks through gunicorn, measured with wrk.

Each case is gunicorn with 2 sync workers on 127.0.0.1 (as ``optgate web``
runs in production) and ``wrk -t1 -c16`` (Debian's wrk) sending prepared,
signed requests, after a warm-up. Cases, in one run:

- ceiling: a bare Flask endpoint (bench/ceiling.py) that reads the same form
  and answers the same empty TwiML; no signature check, no database;
- floor: the ceiling plus the signature check and one INSERT + COMMIT of the
  message row on the same database (bench/floor.py): the least that "commit
  before answer" can cost; optgate's cases are given as ratios to it too;
- ordinary: optgate's ``/webhooks/twilio/messages``, texts from 2,000 numbers, none
  a keyword ("Thanks, see you at 5");
- keywords: the same, every text a keyword of the shipped keywords.yaml (STOP,
  START, HELP, STOP PRICE DROP, UNSUBSCRIBE): consent changes, history, replies and
  the STOP's wait for hand-offs in flight;
- inbound: the same, 90 % ordinary texts and 10 % keywords;
- peer: Twilio's own sample app on the same stack (bench/peer/, vendored with its
  licence), the same 90/10 stream with its keywords (subscribe, unsubscribe);
- status: optgate's ``/webhooks/twilio/status?message=ID``, receipts (sent,
  delivered, undelivered with carrier errors, failed) for seeded outbound messages;

inbound and status on SQLite (WAL) and on PostgreSQL, each database fresh, with
the ceiling measured again before each database so that every ratio compares
figures taken minutes apart. In every stream 5 % of the requests are Twilio's
retries: the same MessageSid, body and signature again. Every run must end with
no socket error, no non-2xx answer, and every MessageSid stored once.

Usage: python bench/webhooks.py [--seconds 10] [--runs 3] [--postgres URL] [--redis URL]
Needs wrk on the PATH (Debian: apt-get install wrk), and Flask-SQLAlchemy for the
peer (a dev dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import scratch
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.addresses import normalize_line
from app.data.db import Database
from app.data.models import Direction, Message, MessageKind, MessageStatus
from app.lines import add_line, get_or_create_organization
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, free_port

BENCH = Path(__file__).resolve().parent
OPTGATE = str(Path(sys.executable).parent / "optgate")
LINE = "+14155550100"
CONTACTS = [f"+1312555{n:04d}" for n in range(2_000)]
#: What contacts text: about one in ten is a keyword of the shipped keywords.yaml.
KEYWORD_TEXTS = ["STOP"] * 4 + ["START"] * 3 + ["HELP", "stop price drop", "Unsubscribe"]
#: The peer's keywords (bench/peer/marketing_notifications.py).
PEER_KEYWORDS = ["subscribe", "unsubscribe"]
ORDINARY_TEXTS = [
    "Thanks, see you at 5",
    "Is the store open on Sunday?",
    "Ok 👍",
    "Can you call me back about my order #4411",
    "Where is my package? It said delivered but nothing here",
    "yes please, the blue one",
    "Running 10 min late, sorry!",
    "Merci, à demain",
    "What's the price of the large one",
    "Great service, thank you so much",
]
#: Receipts as Twilio sends them, with the error codes of undelivered messages.
RECEIPTS = (
    [("delivered", None)] * 60
    + [("sent", None)] * 30
    + [("undelivered", "30003"), ("undelivered", "30005"), ("undelivered", "30006")] * 2
    + [("undelivered", "30007"), ("undelivered", "30008")]
    + [("failed", "30005"), ("failed", "21610")]
)
RETRY_SHARE = 0.05
#: One prepared request: (path with query, form body, X-Twilio-Signature).
Request = tuple[str, str, str]
WRK_SCRIPT = BENCH / "wrk_requests.lua"


@dataclass(frozen=True)
class Measured:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


# -- the requests ------------------------------------------------------------------------


def signed(base: str, path: str, params: dict[str, str]) -> Request:
    """(path, form body, X-Twilio-Signature) of one request, as Twilio would sign it."""
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(base + path, params)
    return path, urllib.parse.urlencode(params), signature


def with_retries(requests: list[Request], rnd: random.Random) -> list[Request]:
    """The stream with 5 % of its requests sent again, soon after the first (Twilio's retry)."""
    stream: list[Request] = []
    for request in requests:
        stream.append(request)
        if len(stream) > 20 and rnd.random() < RETRY_SHARE / (1 - RETRY_SHARE):
            stream.append(stream[-rnd.randint(2, 20)])
    return stream


def inbound_stream(
    base: str,
    tag: str,
    count: int,
    rnd: random.Random,
    keywords: float = 0.10,
    *,
    path: str = "/webhooks/twilio/messages",
    keyword_texts: list[str] = KEYWORD_TEXTS,
) -> list[Request]:
    """Texts from the contacts, a share ``keywords`` of them keywords, signed for ``path``."""
    requests = []
    for n in range(count):
        body = rnd.choice(keyword_texts if rnd.random() < keywords else ORDINARY_TEXTS)
        params = {
            "ToCountry": "US", "ToState": "CA", "SmsMessageSid": f"SM{tag}{n:024x}",
            "NumMedia": "0", "ToCity": "SAN FRANCISCO", "FromZip": "60601",
            "SmsSid": f"SM{tag}{n:024x}", "FromState": "IL", "SmsStatus": "received",
            "FromCity": "CHICAGO", "Body": body, "FromCountry": "US", "To": LINE,
            "ToZip": "94105", "NumSegments": "1", "MessageSid": f"SM{tag}{n:024x}",
            "AccountSid": TWILIO_SID, "From": rnd.choice(CONTACTS), "ApiVersion": "2010-04-01",
        }  # fmt: skip
        requests.append(signed(base, path, params))
    return with_retries(requests, rnd)


def status_stream(
    base: str, sent: list[tuple[int, str, str]], count: int, rnd: random.Random
) -> list[Request]:
    requests = []
    for n in range(count):
        message_id, sid, to = sent[n % len(sent)]
        status, code = rnd.choice(RECEIPTS)
        params = {
            "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": to,
            "MessageSid": sid, "AccountSid": TWILIO_SID, "From": LINE,
            "ApiVersion": "2010-04-01",
        }  # fmt: skip
        if code:
            params["ErrorCode"] = code
        requests.append(signed(base, f"/webhooks/twilio/status?message={message_id}", params))
    return with_retries(requests, rnd)


def write_requests(path: Path, stream: list[Request]) -> None:
    """A Lua file returning the requests (all of ASCII: paths, form bodies, base64)."""
    with path.open("w") as out:
        out.write("return {\n")
        for request in stream:
            out.write("{" + ",".join(json.dumps(part) for part in request) + "},\n")
        out.write("}\n")


# -- wrk ---------------------------------------------------------------------------------


def wrk(base: str, requests: Path, seconds: float) -> Measured:
    """One wrk run of the prepared requests; raises if it sent more than were prepared."""
    result = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(WRK_SCRIPT),
         base],
        env={**os.environ, "BENCH_REQUESTS": str(requests)},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["wrapped"]:
        raise SystemExit(f"{requests.name}: wrk sent more requests than prepared; add more")
    return Measured(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=summary["connect"] + summary["read"] + summary["write"] + summary["timeout"],
        non_2xx=summary["status"],
    )


@contextmanager
def serving(command: list[str], env: dict[str, str], base: str) -> Iterator[None]:
    process = subprocess.Popen(
        command, env=env, cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # a 404 or 405: it answers
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read() if process.stderr else ""
                    raise SystemExit(f"{command[0]} did not start: {stderr}") from error
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(30)


def measure(
    base: str, label: str, make: Callable[[str], list[Request]], seconds: float, runs: int
) -> Measured:
    """Median run of ``runs`` (by rate), each on requests it has not seen, after a warm-up."""
    with tempfile.TemporaryDirectory() as folder:
        results = []
        for run in range(runs + 1):  # run 0 warms up
            path = Path(folder) / f"{label}{run}.lua"
            write_requests(path, make(f"{run:02d}"))
            measured = wrk(base, path, 3 if run == 0 else seconds)
            if measured.errors or measured.non_2xx:
                raise SystemExit(f"{label}: {measured.errors} socket errors, "
                                 f"{measured.non_2xx} non-2xx answers")  # fmt: skip
            if run:
                results.append(measured)
    return sorted(results, key=lambda m: m.rps)[len(results) // 2]


# -- the cases ---------------------------------------------------------------------------


def ceiling(args: argparse.Namespace, rnd: random.Random) -> Measured:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "ceiling:app"]  # fmt: skip
    with serving(command, dict(os.environ), base):
        return measure(
            # The bare endpoint answers faster: prepare more, so that no request repeats.
            base, "ceiling", lambda tag: inbound_stream(base, "c" + tag, 2 * args.prepare, rnd),
            args.seconds, args.runs,
        )  # fmt: skip


def floor(args: argparse.Namespace, url: str, rnd: random.Random) -> Measured:
    """The floor on ``url`` (seeded already: its line 1 exists)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FLOOR_DATABASE_URL": url, "FLOOR_PUBLIC_URL": base}
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "floor:app"]  # fmt: skip
    with serving(command, env, base):
        return measure(
            base, "floor", lambda tag: inbound_stream(base, "f" + tag, args.prepare, rnd),
            args.seconds, args.runs,
        )  # fmt: skip


def seed_sent(url: str, count: int) -> list[tuple[int, str, str]]:
    """The line, and ``count`` outbound messages handed to Twilio: (id, MessageSid, to)."""
    database = Database(url)
    with database.transaction() as session:
        line, _ = add_line(session, normalize_line(LINE), get_or_create_organization(session, "b"))
        rows = [
            {"organization_id": line.organization_id, "line_id": line.id,
             "direction": Direction.OUTBOUND, "address": f"+1646555{n % 10_000:04d}",
             "body": "Your order shipped", "kind": MessageKind.TRANSACTIONAL,
             "status": MessageStatus.SENT, "provider": "twilio",
             "provider_message_id": f"SMout{n:027x}", "require_opt_in": False, "attempts": 1,
             "needs_review": False}
            for n in range(count)
        ]  # fmt: skip
        session.execute(sa.insert(Message), rows)
    with database.transaction() as session:
        sent = [
            (id_, sid, to)
            for id_, sid, to in session.execute(
                sa.select(Message.id, Message.provider_message_id, Message.address).order_by(
                    Message.id
                )
            )
        ]
    database.dispose()
    return sent


def check_stored(url: str) -> tuple[int, int]:
    """(inbound texts stored, receipts stored); exits if a MessageSid was stored twice."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        twice = connection.exec_driver_sql(
            "SELECT count(*) FROM (SELECT provider_message_id FROM messages "
            "GROUP BY provider, provider_message_id HAVING count(*) > 1) AS t"
        ).scalar_one()
        texts = connection.exec_driver_sql(
            "SELECT count(*) FROM messages WHERE direction = 'inbound'"
        ).scalar_one()
        receipts = connection.exec_driver_sql("SELECT count(*) FROM receipts").scalar_one()
    engine.dispose()
    if twice:
        raise SystemExit(f"{twice} MessageSids were stored twice")
    return int(texts), int(receipts)


@dataclass(frozen=True)
class Optgate:
    ordinary: Measured
    keywords: Measured
    inbound: Measured
    status: Measured
    texts: int
    receipts: int


def optgate_cases(args: argparse.Namespace, url: str, rnd: random.Random) -> Optgate:
    sent = seed_sent(url, args.prepare)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = scratch.optgate_env(url, args.redis, OPTGATE_PUBLIC_URL=base)
    command = [OPTGATE, "web", "--bind", f"127.0.0.1:{port}", "--workers", "2"]

    def texts(label: str, share: float) -> Measured:
        return measure(
            base, label,
            lambda tag: inbound_stream(base, label[0] + tag, args.prepare, rnd, share),
            args.seconds, args.runs,
        )  # fmt: skip

    with serving(command, env, base):
        ordinary = texts("ordinary", 0.0)
        keywords = texts("keywords", 1.0)
        inbound = texts("inbound", 0.10)
        status = measure(
            base, "status", lambda tag: status_stream(base, sent, args.prepare, rnd),
            args.seconds, args.runs,
        )  # fmt: skip
    return Optgate(ordinary, keywords, inbound, status, *check_stored(url))


def peer(args: argparse.Namespace, url: str, rnd: random.Random) -> Measured:
    """Twilio's sample (bench/peer/) on ``url``, with the same 90/10 stream."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PEER_DATABASE_URL": url}
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
               "--chdir", str(BENCH / "peer"), "--bind", f"127.0.0.1:{port}",
               "--access-logfile", "-", "marketing_notifications:app"]  # fmt: skip
    # Its table first, once: two workers creating it at once would race on PostgreSQL.
    subprocess.run([sys.executable, "-c", "import marketing_notifications"],
                   cwd=BENCH / "peer", env=env, check=True)  # fmt: skip
    with serving(command, env, base):
        return measure(
            base, "peer",
            lambda tag: inbound_stream(base, "p" + tag, args.prepare, rnd, 0.10,
                                       path="/message", keyword_texts=PEER_KEYWORDS),
            args.seconds, args.runs,
        )  # fmt: skip


def row(case: str, measured: Measured, ceiling: Measured, floor: Measured) -> str:
    return (
        f"| {case} | {measured.rps:,.0f} | {measured.p50_ms:.1f} ms | {measured.p99_ms:.1f} ms "
        f"| {measured.rps / ceiling.rps:.2f} | {measured.rps / floor.rps:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (the median is kept)")
    parser.add_argument(
        "--prepare", type=int, default=30_000, help="signed requests prepared per run"
    )
    parser.add_argument("--postgres", default=os.environ.get("OPTGATE_TEST_POSTGRES_URL",
                                                            scratch.DEFAULT_POSTGRES))  # fmt: skip
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    rnd = random.Random(7)
    print(f"# webhooks · gunicorn 2 sync workers · wrk -t1 -c16 -d{args.seconds:g}s · "
          f"median of {args.runs} · {RETRY_SHARE:.0%} retries, ~10 % keyword texts")  # fmt: skip
    print("| case | requests/s | p50 | p99 | ratio to ceiling | ratio to floor |")
    print("|---|---|---|---|---|---|")
    for label, url in scratch.both(args.postgres):
        if (args.sqlite_only and label != "SQLite (WAL)") or (
            args.postgres_only and label == "SQLite (WAL)"
        ):
            continue
        top = ceiling(args, rnd)
        ours = optgate_cases(args, url, rnd)
        least = floor(args, url, rnd)
        sample = peer(args, url, rnd)
        print(row(f"{label}: ceiling, bare Flask endpoint", top, top, least))
        print(row(f"{label}: floor, signature + one INSERT and COMMIT", least, top, least))
        print(row(f"{label}: ordinary texts", ours.ordinary, top, least))
        print(row(f"{label}: keyword texts", ours.keywords, top, least))
        print(row(f"{label}: inbound, 90 % ordinary, 10 % keywords", ours.inbound, top, least))
        print(row(f"{label}: status callbacks", ours.status, top, least))
        print(row(f"{label}: peer, Twilio's sample (90/10; no signature, dedupe, history)",
                  sample, top, least))  # fmt: skip
        print(f"<!-- {label}: {ours.texts:,} texts and {ours.receipts:,} receipts stored, "
              f"no MessageSid twice -->", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
