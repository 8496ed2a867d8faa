"""How fast the matcher reads texts, with 10 and with 10,000 custom responders.

The messages are the intent table of tests/keywords/cases.py (every class of
text: keywords in many forms, topic commands, plain-language opt-outs, review
cases, ordinary sentences) plus texts that hit a responder. Both configs are
the shipped keywords.yaml with N responders added; both are measured in the
same run, so the ratio is what matters: lookups, not a loop over responders,
keep it near 1.

Usage: python bench/keywords.py [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.keywords import Matcher, parse  # noqa: E402
from tests.keywords.cases import CASES  # noqa: E402


def config_with(responders: int) -> str:
    """The shipped keywords.yaml with ``responders`` more responders."""
    lines = [f"  deal{n:05d}:\n    keywords: [DEAL{n:05d}]\n    reply: \"{{brand}}: Deal {n}.\"\n"
             for n in range(responders)]  # fmt: skip
    shipped = (ROOT / "keywords.yaml").read_text()
    return shipped.replace("responders:\n", "responders:\n" + "".join(lines), 1)


def rate(matcher: Matcher, texts: list[str], seconds: float) -> float:
    """Median texts per second over 5 rounds of about ``seconds`` / 5 each."""
    rounds = []
    for _ in range(5):
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds / 5:
            for text in texts:
                matcher.match(text)
            done += len(texts)
        rounds.append(done / (time.perf_counter() - began))
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per configuration")
    args = parser.parse_args()
    texts = [case.text for case in CASES] + [f"deal{n:05d}" for n in (1, 7, 9)]

    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(texts)} texts, median of 5 rounds\n")
    print("| responders | load + validate (ms) | texts/s | ratio to 10 |\n|---|---|---|---|")
    base = None
    for count in (10, 10_000):
        text = config_with(count)
        began = time.perf_counter()
        matcher = Matcher(parse(text))
        loaded = (time.perf_counter() - began) * 1000
        assert matcher.match("DEAL00007").responder == "deal00007"
        measured = rate(matcher, texts, args.seconds)
        base = base or measured
        print(f"| {count:,} | {loaded:,.0f} | {measured:,.0f} | {measured / base:.2f} |")


if __name__ == "__main__":
    main()
