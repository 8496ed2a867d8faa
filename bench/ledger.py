"""How fast the consent ledger writes and reads, against a plain insert on the same database.

Each case runs in one process, one transaction per operation (as a webhook
does), and reports operations per second and the ratio to the baseline taken
in the same run:

- baseline:      one INSERT of a row and COMMIT (SQLAlchemy Core)
- ledger STOP:   ledger.apply of a keyword STOP for a new number on a line
                 (lock/create the address, load its state, write the record and
                 one hash-chained event, COMMIT)
- ledger START:  the same number texts START (an existing address, a rewrite)
- status:        queries.address_status of one number on an organisation with 5 lines

Usage: python bench/ledger.py [--count N] [--postgres URL]
(The PostgreSQL case creates and drops a database of its own.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import scratch
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import ledger, queries
from app.consent.values import Scope, Source, Status
from app.data.db import Database
from app.data.models import Organization
from app.lines import add_line, get_or_create_organization


def rate(count: int, operation: Callable[[int], None], repeats: int = 3) -> float:
    """Median operations per second over ``repeats`` runs of ``count`` operations."""
    rates = []
    offset = 0
    for _ in range(repeats):
        began = time.perf_counter()
        for i in range(count):
            operation(offset + i)
        rates.append(count / (time.perf_counter() - began))
        offset += count
    return statistics.median(rates)


def bench(database: Database, count: int) -> dict[str, float]:
    with database.transaction() as session:
        org = get_or_create_organization(session, "bench")
        lines = [add_line(session, normalize(f"+1415555010{i}"), org)[0].id for i in range(5)]
        org_id = org.id
    line = lines[0]
    scratch = sa.Table(
        "bench_baseline",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.String(32)),
        sa.Column("at", sa.DateTime(timezone=True)),
    )
    scratch.create(database.engine)

    def baseline(i: int) -> None:
        with database.transaction() as session:
            session.execute(scratch.insert().values(value=str(i), at=datetime.now(UTC)))

    def number(i: int) -> str:
        return f"+1212{i:07d}"

    def change(status: Status) -> Callable[[int], None]:
        def run(i: int) -> None:
            with database.transaction() as session:
                ledger.apply(
                    session,
                    ledger.Change(org_id, normalize(number(i)), Scope.line(line), status,
                                  Source.KEYWORD, number(i), via_line_id=line),
                )  # fmt: skip

        return run

    def status(i: int) -> None:
        with database.transaction() as session:
            organization = session.get(Organization, org_id)
            assert organization is not None
            queries.address_status(session, organization, normalize(number(i))).as_dict()

    results = {"baseline": rate(count, baseline)}
    results["ledger STOP"] = rate(count, change(Status.OPTED_OUT))
    results["ledger START"] = rate(count, change(Status.OPTED_IN))
    results["status"] = rate(count, status)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--postgres", default=scratch.DEFAULT_POSTGRES)
    args = parser.parse_args()

    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.count} operations x 3 runs, median\n"
    )
    print("| database | case | ops/s | ratio to baseline |\n|---|---|---|---|")
    for label, url in scratch.both(args.postgres):
        database = Database(url)
        report(label, bench(database, args.count))
        database.dispose()


def report(label: str, results: dict[str, float]) -> None:
    base = results["baseline"]
    for case, value in results.items():
        print(f"| {label} | {case} | {value:,.0f} | {value / base:.2f} |")


if __name__ == "__main__":
    main()
