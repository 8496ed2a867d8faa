"""Every benchmark, one after the other, as one report in Markdown: the figures of
docs/performance.md.

It states the machine, the date, the commit and this command, then runs
webhooks.py (gunicorn + wrk), keywords.py (the matcher), ledger.py (consent
changes), outbound.py (the send gate and enqueueing), rates.py (per-line send rates
across processes), reports.py (exports,
snapshots, imports), startup.py (how fast commands start) and console.py (the admin
console's contact page at a million consent records), each in its own
process, one at a time so that none measures another's load. Every table
carries its own baseline from the same run.

Usage: python bench/run.py [--quick] [--output FILE]
  --quick   smaller sizes (a few minutes instead of about half an hour), for a
            check that every benchmark still runs, not for figures to publish.
Needs PostgreSQL and Redis on 127.0.0.1 (as the tests do) and wrk on the PATH.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version as installed
from pathlib import Path

import sqlalchemy as sa
from scratch import DEFAULT_POSTGRES

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: (script, arguments for the report, arguments with --quick)
BENCHMARKS = [
    ("webhooks.py", [], ["--seconds", "3", "--runs", "1", "--prepare", "12000"]),
    ("keywords.py", ["--seconds", "5"], ["--seconds", "1"]),
    ("ledger.py", ["--count", "1000"], ["--count", "200"]),
    ("outbound.py", ["--messages", "3000", "--recipients", "1000000"],
     ["--messages", "600", "--recipients", "20000"]),
    ("rates.py", ["--seconds", "6"], ["--seconds", "3"]),
    ("reports.py", ["--events", "1000000", "--imports", "5000"],
     ["--events", "20000", "--imports", "500"]),
    ("startup.py", ["--rounds", "15"], ["--rounds", "3"]),
    ("console.py", ["--records", "1000000", "--requests", "2000"],
     ["--records", "20000", "--requests", "200"]),
]  # fmt: skip

#: The benchmarks that need no PostgreSQL.
NO_POSTGRES = {"keywords.py", "startup.py", "rates.py"}


def version(command: list[str], pattern: str = r"\d+(\.\d+)+") -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not found"
    found = re.search(pattern, out.stdout + out.stderr)
    return found.group(0) if found else "unknown"


def machine(postgres: str) -> list[str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for text in info:
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    os_name = platform.platform()
    if Path("/etc/debian_version").exists():
        os_name = f"Debian {Path('/etc/debian_version').read_text().strip()}"
    engine = sa.create_engine(postgres)
    with engine.connect() as connection:
        pg = connection.exec_driver_sql("SHOW server_version").scalar_one()
    engine.dispose()
    return [
        f"- Machine: {os.cpu_count()} × {cpu}, {memory:.0f} GiB, {os_name}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg.split()[0]}, Redis {version(['redis-server', '--version'])}, "
        f"Flask {installed('flask')}, gunicorn {installed('gunicorn')}, "
        f"wrk {version(['wrk', '--version'])}",
        "- PostgreSQL, Redis, the app, the provider stub and the load tool all share the "
        "machine, as in the tests",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--postgres", default=os.environ.get("OPTGATE_TEST_POSTGRES_URL",
                                                            DEFAULT_POSTGRES))  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    report = [
        "# Benchmark report",
        "",
        f"- Command: `{command}` (commit {commit or 'unknown'})",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        *machine(args.postgres),
        "",
    ]
    print("\n".join(report), flush=True)
    for script, full, quick in BENCHMARKS:
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(BENCH / script), *(quick if args.quick else full),
             *([] if script in NO_POSTGRES else ["--postgres", args.postgres])],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"bench/{script} failed:\n{result.stdout}\n{result.stderr}")
        section = [
            f"## bench/{script} {' '.join(quick if args.quick else full)}",
            "",
            result.stdout.strip(),
            "",
            f"({time.monotonic() - began:.0f} s)",
            "",
        ]
        print("\n".join(section), flush=True)
        report += section
    if args.output:
        args.output.write_text("\n".join(report))


if __name__ == "__main__":
    main()
