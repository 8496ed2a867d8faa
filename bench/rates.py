"""Send rates across processes: 10 lines at 100 messages per second each, paced by the
Redis limiter of app/sending/rates.py from several worker processes at once.

Each process is a worker as the sender is one: it takes batches of 16 messages of
one line (the lines in turn), reserves their slots in one round trip, and hands
each over at its slot's time from a pool of threads (here the hand-off only notes
the time: the provider is not what is measured). A message refused a slot is
dropped, as if it went back to the queue; every line always has more waiting, so
the limiter, not the demand, sets the pace.

Reported, from the same run:
- the total rate against the lines' combined rate (10 x 100 = 1,000/s): the ratio is
  how much of what the carriers allow the workers actually use;
- for each line, the most hand-offs in any one-second window (sliding, every
  start): it must never be above 100;
- the limiter's own ceiling: the same processes with each line at 10,000/s, so the
  lines' rate is no limit — how far the 1,000/s target is from what it can grant.

Usage: python bench/rates.py [--seconds 6] [--processes 2] [--lines 10] [--rate 100]
Needs Redis on 127.0.0.1 (database 13 is emptied).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count, cycle
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from app.data.models import MessageKind
from app.sending.rates import EPOCH_KEY, MARGIN, Limiter, Paced, Slot
from app.settings import Settings

BATCH = 16
THREADS = 64


def line_address(line: int) -> str:
    return f"+1415555{1000 + line:04d}"


def work(
    redis_url: str, lines: int, rate: float, start: float, seconds: float, process: int
) -> tuple[dict[int, list[float]], int]:
    """One worker process: the hand-off times (monotonic) it kept, by line, and how
    many slots it woke too late for."""
    client = redis.Redis.from_url(redis_url)
    limiter = Limiter(client, Settings())
    times: dict[int, list[float]] = {line: [] for line in range(lines)}
    lock = threading.Lock()
    late = [0]
    ids = count(process * 10**9)

    def hand_off(line: int, slot: Slot) -> None:
        while (left := slot.at - time.monotonic()) > 0:
            time.sleep(left)
        now = time.monotonic()
        with lock:
            if now - slot.at > MARGIN:
                # As the sender does: too late for the slot to keep the rate; the
                # message would ask again (here: one more waiting message does).
                late[0] += 1
            else:
                times[line].append(now)

    end = start + seconds
    while time.monotonic() < start:
        time.sleep(0.001)
    with ThreadPoolExecutor(THREADS) as pool:
        for line in cycle(range(lines)):
            if time.monotonic() >= end:
                break
            batch = [
                Paced(next(ids), line + 1, line_address(line), MessageKind.MARKETING,
                      f"campaign:{line}", line_rate=rate)
                for _ in range(BATCH)
            ]  # fmt: skip
            answers = limiter.pace(batch)
            slots = [answer for answer in answers if isinstance(answer, Slot)]
            for slot in slots:
                pool.submit(hand_off, line, slot)
            if not slots:
                # Every line's slots are taken for the next second: ask again soon,
                # as refused messages come back (a worker would take other jobs).
                time.sleep(0.005)
    client.close()
    return times, late[0]


def most_in_a_second(times: list[float]) -> int:
    """The most of ``times`` in any closed one-second window, wherever it starts."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] > 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def run(redis_url: str, processes: int, lines: int, rate: float, seconds: float) -> dict:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(EPOCH_KEY, 0)  # a Redis that has not lost state: no fresh-start delay
    client.close()
    start = time.monotonic() + 1.0
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(
            work, [(redis_url, lines, rate, start, seconds, p) for p in range(processes)]
        )
    by_line: dict[int, list[float]] = {line: [] for line in range(lines)}
    for result, _ in results:
        for line, times in result.items():
            by_line[line].extend(times)
    # The first second fills the lines' reach; count from then.
    settled = start + 1.0
    steady = [t for times in by_line.values() for t in times if settled <= t < start + seconds]
    return {
        "total": len(steady) / (seconds - 1.0),
        "per_line_most": {line: most_in_a_second(times) for line, times in by_line.items()},
        "handed": sum(len(times) for times in by_line.values()),
        "late": sum(late for _, late in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    target = args.lines * args.rate
    paced = run(args.redis, args.processes, args.lines, args.rate, args.seconds)
    ceiling = run(args.redis, args.processes, args.lines, 10_000.0, min(args.seconds, 4.0))
    worst = max(paced["per_line_most"].values())
    print(f"## Send rates: {args.lines} lines at {args.rate:g}/s, {args.processes} processes\n")
    print("| case | hand-offs/s | ratio |")
    print("|---|---|---|")
    print(f"| target: the lines' combined rate | {target:,.0f} | 1.00 |")
    print(f"| paced by the limiter | {paced['total']:,.0f} | {paced['total'] / target:.2f} |")
    print(
        f"| the limiter's ceiling (lines at 10,000/s) | {ceiling['total']:,.0f} "
        f"| {ceiling['total'] / target:.2f} |"
    )
    print(
        f"\nMost hand-offs of one line in any one-second window: {worst} "
        f"(rate {args.rate:g}; every line: {sorted(paced['per_line_most'].values())}); "
        f"slots woken for too late (> {MARGIN * 1000:.0f} ms) and asked for again: "
        f"{paced['late']} of {paced['late'] + paced['handed']}"
    )
    if worst > int(args.rate):
        raise SystemExit(f"a line went above its rate: {worst} in one second")


if __name__ == "__main__":
    main()
