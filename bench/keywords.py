"""How fast the matcher reads texts: with 10 and 10,000 responders, with one language
and with every language, and (given a copy of an older matcher) against that one.

The messages are the intent table of tests/keywords/cases.py (every class of
text: keywords in many forms, topic commands, plain-language opt-outs in every
language, look-alike letters, emoji, review cases, ordinary sentences) plus
texts that hit a responder. Everything compared is measured in the same run,
in interleaved rounds, so the ratios are what matters:

- 10,000 responders against 10: lookups, not a loop over responders;
- every language against English alone and against one more language: one
  tree of words for all languages, not a loop over them;
- ``--baseline DIR``: a copy of app/keywords from before a change, imported
  as the package named like DIR (its own imports renamed to it), e.g.

      cp -r app/keywords /tmp/kwbase/keywords_baseline
      sed -i 's/app\\.keywords/keywords_baseline/g' /tmp/kwbase/keywords_baseline/*.py

  then, after the change, ``python bench/keywords.py --baseline /tmp/kwbase/keywords_baseline``.

Usage: python bench/keywords.py [--seconds S] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.keywords import Matcher, parse  # noqa: E402
from app.keywords.languages import shipped  # noqa: E402
from tests.keywords.cases import CASES  # noqa: E402

SHIPPED = (ROOT / "keywords.yaml").read_text(encoding="utf-8")
#: The languages section of keywords.yaml, up to the next top-level key.
_LANGUAGES = re.compile(r"^languages:\n(?:(?:[ #].*)?\n)*", re.MULTILINE)


def config_with(responders: int, languages: list[str] | None = None, text: str = SHIPPED) -> str:
    """The shipped keywords.yaml with ``responders`` more responders and, when given, only
    these ``languages`` (English is always read)."""
    lines = [f"  deal{n:05d}:\n    keywords: [DEAL{n:05d}]\n    reply: \"{{brand}}: Deal {n}.\"\n"
             for n in range(responders)]  # fmt: skip
    text = text.replace("responders:\n", "responders:\n" + "".join(lines), 1)
    if languages is not None:
        section = "languages:\n" + "".join(f"  {code}:\n" for code in languages) + "\n"
        text = _LANGUAGES.sub(section if languages else "languages: {}\n\n", text, count=1)
    return text


#: Many short rounds, interleaved: on a shared machine a burst of other work then slows
#: every case alike instead of one of them.
ROUNDS = 25


def rates(matchers: dict[str, Callable[[str], Any]], texts: list[str], seconds: float) -> dict:
    """Median texts per second of each matcher over ``ROUNDS`` interleaved rounds."""
    rounds: dict[str, list[float]] = {name: [] for name in matchers}
    share = seconds / ROUNDS / len(matchers)
    for _ in range(ROUNDS):
        for name, match in matchers.items():
            done, began = 0, time.perf_counter()
            while time.perf_counter() - began < share:
                for text in texts:
                    match(text)
                done += len(texts)
            rounds[name].append(done / (time.perf_counter() - began))
    return {name: statistics.median(values) for name, values in rounds.items()}


def table(title: str, rows: dict[str, float], base: str, loads: dict[str, float]) -> None:
    print(f"\n{title}\n\n| case | load + validate (ms) | texts/s | ratio to {base} |")
    print("|---|---|---|---|")
    for name, rate in rows.items():
        print(f"| {name} | {loads[name]:,.0f} | {rate:,.0f} | {rate / rows[base]:.2f} |")


def build(text: str) -> tuple[Matcher, float]:
    began = time.perf_counter()
    matcher = Matcher(parse(text))
    return matcher, (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per table")
    parser.add_argument("--baseline", type=Path, help="a copy of an older app/keywords")
    args = parser.parse_args()
    texts = [case.text for case in CASES] + [f"deal{n:05d}" for n in (1, 7, 9)]
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(texts)} texts, "
        f"median of {ROUNDS} interleaved rounds"
    )

    loads: dict[str, float] = {}
    matchers: dict[str, Callable[[str], Any]] = {}
    for count in (10, 10_000):
        matcher, loads[f"{count:,} responders"] = build(config_with(count))
        assert matcher.match("DEAL00007").responder == "deal00007"
        matchers[f"{count:,} responders"] = matcher.match
    table("Responders", rates(matchers, texts, args.seconds), "10 responders", loads)

    matchers = {}
    others = [code for code in shipped() if code != "en"]
    for name, codes in (
        ("English only", []),
        ("English + es", ["es"]),
        (f"all {len(others) + 1} languages", others),
    ):
        matcher, loads[name] = build(config_with(10, codes))
        matchers[name] = matcher.match
    table("Languages", rates(matchers, texts, args.seconds), "English only", loads)

    if args.baseline is not None:
        sys.path.insert(0, str(args.baseline.resolve().parent))
        old = importlib.import_module(args.baseline.name)
        # The older parser knows no languages section.
        old_text = _LANGUAGES.sub("", config_with(10))
        began = time.perf_counter()
        baseline = old.Matcher(old.parse(old_text))
        loads["before"] = (time.perf_counter() - began) * 1000
        matchers = {"before": baseline.match}
        matcher, loads["now"] = build(config_with(10))
        matchers["now"] = matcher.match
        table("Before and after (10 responders)", rates(matchers, texts, args.seconds),
              "before", loads)  # fmt: skip


if __name__ == "__main__":
    main()
