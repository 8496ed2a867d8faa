"""Exports, snapshots and imports at scale, against a bare read or write of the same rows.

On SQLite and PostgreSQL, in one process, each with a baseline from the same run:

- export:   reports.iter_events + csv_chunks over every event, vs. a bare
            streamed SELECT of the same columns written with csv.writer.
            Peak Python memory (tracemalloc) for a tenth of the events and
            for all of them: a stream's peak does not grow with the rows.
- snapshot: Snapshot.rows on 2 lines, vs. a bare SELECT of the records it reads.
- import:   imports.run over a CSV of new numbers' opt-outs, vs. ledger.apply
            of the same changes in transactions of the same size (the ledger
            without the CSV, the savepoints and the report).

Usage: python bench/reports.py [--events N] [--imports N] [--postgres URL]
(The PostgreSQL case creates and drops a database of its own.)
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import scratch
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import imports, ledger, reports
from app.consent.queries import EVENT_COLUMNS
from app.consent.values import Scope, Source, Status
from app.data.db import Database
from app.data.models import ConsentEvent, ConsentRecord, ContactAddress, Line, Organization
from app.lines import add_line, get_or_create_organization


def seed(database: Database, events: int) -> tuple[Organization, list[Line]]:
    """``events`` events on events/2 numbers: a record each, on a line or the organisation."""
    with database.transaction() as session:
        org = get_or_create_organization(session, "bench")
        lines = [add_line(session, normalize(f"+1415555010{i}"), org)[0] for i in range(2)]
    numbers = events // 2
    now = datetime.now(UTC)
    chunk = 20_000
    for start in range(0, numbers, chunk):
        ids = range(start + 1, min(start + chunk, numbers) + 1)
        with database.transaction() as session:
            session.execute(
                sa.insert(ContactAddress),
                [
                    {"id": i, "organization_id": org.id, "value": f"+1212{i:07d}", "kind": "phone",
                     "head_seq": 2, "head_hash": "0" * 64, "created_at": now}
                    for i in ids
                ],
            )  # fmt: skip
            session.execute(
                sa.insert(ConsentRecord),
                [
                    {"address_id": i, "scope": f"line:{lines[0].id}" if i % 2 else "organization",
                     "line_id": lines[0].id if i % 2 else None, "channel": "sms", "topic": "",
                     "status": "opted_out" if i % 3 else "opted_in", "source": "keyword",
                     "actor": "bench", "seq": 2, "updated_at": now}
                    for i in ids
                ],
            )  # fmt: skip
            session.execute(
                sa.insert(ConsentEvent),
                [
                    {"organization_id": org.id, "address_id": i, "seq": seq,
                     "address": f"+1212{i:07d}", "subject": "consent", "scope": "organization",
                     "channel": "sms", "topic": "", "old_value": "not_defined",
                     "new_value": "opted_out", "source": "keyword", "actor": "bench",
                     "reason": "texted 'STOP'", "created_at": now, "prev_hash": "0" * 64,
                     "hash": "0" * 64}
                    for i in ids
                    for seq in (1, 2)
                ],
            )  # fmt: skip
    if database.engine.dialect.name == "postgresql":
        # The rows above chose their ids: move the sequence past them.
        with database.transaction() as session:
            session.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('addresses', 'id'), max(id)) "
                        "FROM addresses")
            )  # fmt: skip
    # Statistics, as autovacuum would have gathered them after so many rows: without
    # them PostgreSQL plans the export's batches as if the table were empty.
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    return org, lines


def timed(work: Callable[[], int]) -> float:
    """Items per second of ``work`` (which returns how many items it handled)."""
    began = time.perf_counter()
    count = work()
    return count / (time.perf_counter() - began)


def peak_memory(work: Callable[[], int]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def drain(chunks: Iterator[str]) -> int:
    return sum(chunk.count("\n") for chunk in chunks) - 1


def bench(database: Database, events: int, import_rows: int) -> list[tuple[str, str, str]]:
    org, lines = seed(database, events)
    wanted = reports.EventFilter(org.id)
    columns = reports.EVENT_FIELDS

    def bare_export() -> int:
        out = io.StringIO()
        writer = csv.writer(out)
        count = 0
        with database.reads() as session:
            result = session.execute(
                sa.select(*columns).where(ConsentEvent.organization_id == org.id),
                execution_options={"yield_per": 5000},
            )
            for row in result:
                writer.writerow(row)
                count += 1
                if count % 1000 == 0:
                    out.seek(0)
                    out.truncate()
        return count

    def export(limit: reports.EventFilter = wanted) -> int:
        return drain(reports.csv_chunks(EVENT_COLUMNS, reports.iter_events(database.reads, limit)))

    def bare_snapshot() -> int:
        with database.reads() as session:
            result = session.execute(
                sa.select(ConsentRecord, ContactAddress.value)
                .join(ContactAddress, ContactAddress.id == ConsentRecord.address_id)
                .where(ContactAddress.organization_id == org.id),
                execution_options={"yield_per": 2000},
            )
            return len({value for _record, value in result})

    def snapshot() -> int:
        report = reports.Snapshot(org.id, lines)
        for _row in report.rows(database.reads):
            pass
        return report.numbers

    rows: list[tuple[str, str, str]] = []
    base = timed(bare_export)
    ours = timed(export)
    rows.append(("export: bare SELECT + csv.writer", f"{base:,.0f} rows/s", "1.00"))
    rows.append(("export: iter_events + csv_chunks", f"{ours:,.0f} rows/s", f"{ours / base:.2f}"))

    def export_a_tenth() -> int:
        rows = _first(reports.iter_events(database.reads, wanted), events // 10)
        return drain(reports.csv_chunks(EVENT_COLUMNS, rows))

    small = peak_memory(export_a_tenth)
    full = peak_memory(export)
    rows.append((f"export peak memory, {events // 10:,} rows", f"{small / 2**20:.1f} MiB", ""))
    rows.append((f"export peak memory, {events:,} rows", f"{full / 2**20:.1f} MiB",
                 f"{full / small:.2f} (x{10} rows)"))  # fmt: skip
    base = timed(bare_snapshot)
    ours = timed(snapshot)
    rows.append(("snapshot: bare SELECT of the records", f"{base:,.0f} numbers/s", "1.00"))
    rows.append(("snapshot: Snapshot.rows on 2 lines", f"{ours:,.0f} numbers/s",
                 f"{ours / base:.2f}"))  # fmt: skip

    def plain_ledger() -> int:
        for start in range(0, import_rows, imports.BATCH):
            with database.transaction() as session:
                structure = ledger.load_structure(session, org.id)
                for i in range(start, min(start + imports.BATCH, import_rows)):
                    ledger.apply(
                        session,
                        ledger.Change(org.id, normalize(f"+1646{i:07d}"), Scope.line(lines[1].id),
                                      Status.OPTED_OUT, Source.IMPORT, "bench"),
                        structure,
                    )  # fmt: skip
        return import_rows

    def import_csv() -> int:
        text = "address,status,line\n" + "".join(
            f"+1718{i:07d},opted_out,{lines[1].address}\n" for i in range(import_rows)
        )
        totals = imports.run(database, org, imports.read_rows(io.StringIO(text)), actor="bench",
                             region="US", report=lambda _result: None)  # fmt: skip
        assert totals["applied"] == import_rows, totals
        return import_rows

    base = timed(plain_ledger)
    ours = timed(import_csv)
    rows.append(("import: ledger.apply, 500 a transaction", f"{base:,.0f} rows/s", "1.00"))
    rows.append(("import: imports.run of a CSV", f"{ours:,.0f} rows/s", f"{ours / base:.2f}"))
    return rows


def _first(items: Iterator[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    for number, item in enumerate(items):
        if number >= count:
            return
        yield item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--imports", type=int, default=5000)
    parser.add_argument("--postgres", default=scratch.DEFAULT_POSTGRES)
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.events:,} events, "
          f"{args.imports:,} import rows\n")  # fmt: skip
    print("| database | case | rate | ratio to baseline |\n|---|---|---|---|")
    for label, url in scratch.both(args.postgres):
        database = Database(url)
        report(label, bench(database, args.events, args.imports))
        database.dispose()


def report(label: str, rows: list[tuple[str, str, str]]) -> None:
    for case, value, ratio in rows:
        print(f"| {label} | {case} | {value} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
