"""Consent imports: a CSV file, row by row, through the ledger with source ``import``.

Each row is one change, decided by the same rules as any other: an import
records opt-outs, opt-ins where nothing is in force against them, and
do-not-contact — and never lifts an opt-out (the ledger refuses it, and the
row says why and what would work). Every row gets a result:

- ``applied``: it changed something (``events`` history events);
- ``unchanged``: it was already so;
- ``refused``: the rules forbid it (``message`` and ``hint``);
- ``invalid``: the row cannot be read (``message`` names the field).

Rows are applied in batches, one transaction each, every row in a savepoint
of its own; results are reported only once their batch is committed, so a
result never claims what a failed commit lost. The file is read as it
arrives: memory does not grow with its length.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy.orm import Session

from app import lines as line_store
from app.addresses import Address, normalize
from app.consent import ledger
from app.consent.values import Channel, Flag, Scope, Source, Status, default_channel
from app.db import Database
from app.errors import ConsentRefused, InvalidAddress, InvalidChange, NotFound, OptgateError
from app.models import Line, Organization

#: The columns a file may have; ``address`` and ``status`` are required.
COLUMNS = ("address", "status", "line", "group", "channel", "topic", "reason")
REQUIRED = ("address", "status")
#: ``status`` values: a consent status, or do-not-contact (a permanent flag).
DO_NOT_CONTACT = "do_not_contact"
STATUSES = (Status.OPTED_IN.value, Status.OPTED_OUT.value, DO_NOT_CONTACT)
#: Rows per transaction.
BATCH = 500
#: Longest field accepted (a reason); csv's own limit is 128 KiB.
_MAX_FIELD = 4000


class BadFile(OptgateError):
    """The file cannot be imported at all (its header); nothing was applied."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.problem = message


@dataclass(frozen=True)
class RowResult:
    #: The row's line in the file (the header is line 1).
    row: int
    address: str
    result: str
    message: str | None = None
    hint: str | None = None
    events: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "address": self.address,
            "result": self.result,
            "message": self.message,
            "hint": self.hint,
            "events": self.events,
        }


RESULTS = ("applied", "unchanged", "refused", "invalid")


@dataclass(frozen=True)
class Row:
    #: Its line in the file (the header is line 1).
    line: int
    fields: dict[str, str]
    #: Why it cannot be read, if it cannot.
    problem: str | None = None

    def get(self, name: str) -> str:
        return self.fields.get(name, "").strip()


def read_rows(stream: TextIO) -> Iterator[Row]:
    """Each data row of a CSV file with a header, as it is read.

    Raises:
        BadFile: no header, an unknown or repeated column, a required one missing.
    """
    # strict: a broken quote is an error on its row, not a field that swallows the
    # next rows into itself (they would vanish from the results).
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise BadFile(
            1, f"the file is empty; expected a header such as {','.join(COLUMNS)}"
        ) from None
    except csv.Error as error:
        raise BadFile(1, f"not CSV: {error}") from None
    names = [name.strip().lower().lstrip("\ufeff") for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise BadFile(1, f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}")
    repeated = sorted(name for name in set(names) if names.count(name) > 1)
    if repeated:
        raise BadFile(1, f"column {repeated[0]!r} appears twice")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise BadFile(1, f"the header has no {missing[0]!r} column (required: address, status)")
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # One broken row (a stray quote) must not cost the rest of the file.
            yield Row(line, {}, f"not CSV: {error}")
            continue
        if not any(value.strip() for value in values):
            continue  # blank lines are not rows
        problem = None
        if any("\ufffd" in value for value in values):
            problem = "not UTF-8 text (save the file as CSV UTF-8)"
        elif len(values) != len(names):
            problem = f"{len(values)} fields where the header has {len(names)}"
        yield Row(line, dict(zip(names, values, strict=False)), problem)


class _Resolver:
    """Lines and groups by name, looked up once per import."""

    def __init__(
        self,
        session: Session,
        organization: Organization,
        region: str,
        topics: Collection[str] | None,
    ) -> None:
        self.organization = organization
        self.region = region
        self.topics = topics
        self.lines: dict[str, Line] = {}
        self.groups: dict[str, int] = {}
        self.use(session)

    def use(self, session: Session) -> None:
        """Work in ``session`` (a batch's) from now on, with the organisation's lines as
        they are now."""
        self._session = session
        self.structure = ledger.load_structure(session, self.organization.id)

    def line(self, raw: str) -> Line:
        if raw not in self.lines:
            line = line_store.find_line(self._session, raw, self.region)
            if line.organization_id != self.organization.id:
                raise InvalidChange(
                    f"line {line.address} belongs to another organization than "
                    f"{self.organization.name!r}"
                )
            self.lines[raw] = line
        return self.lines[raw]

    def group(self, name: str) -> int:
        if name not in self.groups:
            self.groups[name] = line_store.find_group(self._session, self.organization, name).id
        return self.groups[name]


def _change(
    row: Row, resolver: _Resolver, actor: str, address: Address
) -> ledger.Change | ledger.FlagChange:
    status = row.get("status").lower()
    if status not in STATUSES:
        raise InvalidChange(f"status {row.get('status')!r}: expected one of {', '.join(STATUSES)}")
    reason = row.get("reason") or None
    if reason is not None and len(reason) > _MAX_FIELD:
        raise InvalidChange(f"reason: longer than {_MAX_FIELD} characters")
    line, group = row.get("line"), row.get("group")
    channel, topic = row.get("channel").lower(), row.get("topic")
    if topic and resolver.topics is not None and topic not in resolver.topics:
        known = ", ".join(sorted(resolver.topics)) or "none in keywords.yaml"
        raise InvalidChange(f"topic {topic!r} is not a topic of keywords.yaml (known: {known})")
    organization_id = resolver.organization.id
    if status == DO_NOT_CONTACT:
        if line or group or channel or topic:
            raise InvalidChange(
                "do_not_contact is organisation-wide, every channel: leave line, group, "
                "channel and topic empty"
            )
        return ledger.FlagChange(
            organization_id, address, Flag.DO_NOT_CONTACT, True, Source.IMPORT, actor, reason
        )
    if line and group:
        raise InvalidChange("give a line or a group, not both (neither: the whole organization)")
    scope = (
        Scope.line(resolver.line(line).id)
        if line
        else Scope.group(resolver.group(group))
        if group
        else Scope.organization()
    )
    default = default_channel(address)
    try:
        chosen = Channel(channel) if channel else default
    except ValueError:
        raise InvalidChange(
            f"channel {channel!r}: expected one of {', '.join(c.value for c in Channel)}"
        ) from None
    return ledger.Change(
        organization_id=organization_id,
        address=address,
        scope=scope,
        status=Status(status),
        source=Source.IMPORT,
        actor=actor,
        channel=chosen,
        topic=topic or None,
        reason=reason,
    )


def _apply_row(session: Session, row: Row, resolver: _Resolver, actor: str) -> RowResult:
    number, raw = row.line, row.get("address")
    if row.problem is not None:
        return RowResult(number, raw, "invalid", row.problem)
    try:
        if not raw:
            raise InvalidChange("address: empty")
        address = normalize(raw, resolver.region)
        change = _change(row, resolver, actor, address)
        with session.begin_nested():
            if isinstance(change, ledger.FlagChange):
                outcome = ledger.set_flag(session, change)
            else:
                outcome = ledger.apply(session, change, resolver.structure)
    except ConsentRefused as refused:
        return RowResult(number, raw, "refused", refused.reason, refused.hint)
    except (InvalidAddress, InvalidChange, NotFound) as error:
        return RowResult(number, raw, "invalid", error.message)
    if not outcome.changed:
        return RowResult(number, address.value, "unchanged")
    return RowResult(number, address.value, "applied", events=len(outcome.events))


def run(
    database: Database,
    organization: Organization,
    rows: Iterable[Row],
    *,
    actor: str,
    region: str,
    report: Callable[[RowResult], None],
    topics: Collection[str] | None = None,
    batch: int = BATCH,
) -> Counter[str]:
    """Apply every row; ``report`` gets each row's result once its batch is committed.

    Args:
        topics: the topics a row may name (keywords.yaml's); None: any well-formed id.

    Returns:
        how many rows had each result.

    Raises:
        InvalidChange: no actor.
        BadFile: from ``read_rows``, before anything is applied.
    """
    if not actor.strip():
        raise InvalidChange("actor: say who imports the file (it is recorded on every change)")
    totals: Counter[str] = Counter({result: 0 for result in RESULTS})
    pending: list[Row] = []
    resolver: _Resolver | None = None

    def flush() -> None:
        nonlocal resolver
        with database.transaction() as session:
            if resolver is None:
                resolver = _Resolver(session, organization, region, topics)
            else:
                resolver.use(session)
            results = [_apply_row(session, row, resolver, actor) for row in pending]
        pending.clear()
        for result in results:
            totals[result.result] += 1
            report(result)

    for row in rows:
        pending.append(row)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return totals
