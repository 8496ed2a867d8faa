"""Consent imports: a CSV file, row by row, through the ledger with source ``import``.

Each row is one change, decided by the same rules as any other: an import
records opt-outs, opt-ins where nothing is in force against them, and
do-not-contact — and never lifts an opt-out (the ledger refuses it, and the
row says why and what would work). Every row gets a result:

- ``applied``: it changed something (``events`` history events);
- ``unchanged``: it was already so;
- ``refused``: the rules forbid it (``message`` and ``hint``);
- ``invalid``: the row cannot be read (``message`` names the field).

A row is one line of the file. A quoted field may hold commas and quotes but not
a line break: a quote that is not closed on its own line makes that line
invalid, and the next line is a row of its own. So every line after the header
gets exactly one result, under its line number, whatever stray quote a file
has — but blank lines (every field empty or spaces), which are no rows. (Read
as plain CSV, an opening quote runs on over the following lines and takes them
into its field, where they vanish from the results — ``csv``'s strict mode does
not catch it.)

A value is checked against what the database can store before anything is
written: a NUL (PostgreSQL refuses it in text) or a value longer than its
column makes its row invalid, and should the database still refuse a row, only
that row's savepoint is lost, never its batch.

Rows are applied in batches, one transaction each, every row in a savepoint
of its own; results are reported only once their batch is committed, so a
result never claims what a failed commit lost. The file is read as it
arrives: memory does not grow with its length.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from app import lines as line_store
from app.addresses import Address, normalize
from app.consent import ledger
from app.consent.values import Channel, Flag, Scope, Source, Status, default_channel
from app.data.db import Database
from app.data.models import Line, Organization
from app.errors import ConsentRefused, InvalidAddress, InvalidChange, NotFound, OptgateError
from app.sending import handoff

#: The columns a file may have; ``address`` and ``status`` are required.
COLUMNS = ("address", "status", "line", "group", "channel", "topic", "reason")
REQUIRED = ("address", "status")
#: ``status`` values: a consent status, or do-not-contact (a permanent flag).
DO_NOT_CONTACT = "do_not_contact"
STATUSES = (Status.OPTED_IN.value, Status.OPTED_OUT.value, DO_NOT_CONTACT)
#: ``status`` values that stop sending: their rows wait for hand-offs in flight.
_STOPS = (Status.OPTED_OUT.value, DO_NOT_CONTACT)
#: Longest actor (the column holds 200).
MOST_ACTOR = 200
#: Rows per transaction.
BATCH = 500
#: The longest value of each column. Where the value is stored, the database's limit
#: (models: ContactAddress.value and LineGroup.name; a reason is ours), which PostgreSQL
#: enforces with an error; where it is only looked up, a bound well past any real value,
#: so that a message quoting it stays readable.
LONGEST = {
    "address": 320,
    "status": 32,
    "line": 64,
    "group": 100,
    "channel": 16,
    "topic": 64,
    "reason": 4000,
}
#: The longest line read whole: every column at its longest fits several times over. A
#: longer line is skipped a piece at a time, so memory does not grow with it.
MAX_LINE = 64 * 1024
#: Characters no database can store as text: the replacement for bytes that were not
#: UTF-8, and lone surrogates (only a caller's own text stream can hold them).
_NOT_TEXT = re.compile("[\ufffd\ud800-\udfff]")
#: C0 control characters and DEL, refused as the API refuses them in its fields: they
#: would reach terminals (`optgate consent history`) and spreadsheets. A reason may
#: hold a tab (a line of the file holds no line break).
_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
_CONTROL_IN_REASON = re.compile(r"[\x01-\x08\x0a-\x1f\x7f]")
#: Stored in a row's result instead of PostgreSQL's own message, which quotes the
#: statement and its parameters (phone numbers).
DATABASE_REFUSED = (
    "the database cannot store a value of this row (too long, or a character it refuses); "
    "nothing of it was applied"
)


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
    """Each data row of a CSV file with a header, as it is read: one a line.

    ``stream`` is text opened with ``newline=""``, so that \\r\\n, \\n and \\r each end
    a line, as they end a CSV row. Blank lines (every field empty or spaces) are no rows.

    Raises:
        BadFile: no header, an unknown or repeated column, a required one missing.
    """
    lines = _lines(stream)
    try:
        first = next(lines)
    except StopIteration:
        raise BadFile(
            1, f"the file is empty; expected a header such as {','.join(COLUMNS)}"
        ) from None
    if first is None:
        raise BadFile(1, f"not CSV: the line is longer than {MAX_LINE} characters")
    try:
        header = _fields(first.removeprefix("\ufeff"))
    except csv.Error as error:
        raise BadFile(1, str(error)) from None
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise BadFile(1, f"unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}")
    repeated = sorted(name for name in set(names) if names.count(name) > 1)
    if repeated:
        raise BadFile(1, f"column {repeated[0]!r} appears twice")
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise BadFile(1, f"the header has no {missing[0]!r} column (required: address, status)")
    for number, text in enumerate(lines, start=2):
        if text is None:
            yield Row(number, {}, f"not CSV: the line is longer than {MAX_LINE} characters")
            continue
        try:
            values = _fields(text)
        except csv.Error as error:
            # Read leniently too, only to say which address the broken line was about.
            leniently = next(csv.reader([text]))
            yield Row(number, dict(zip(names, leniently, strict=False)), str(error))
            continue
        if not any(value.strip() for value in values):
            continue  # blank lines are not rows
        yield Row(number, dict(zip(names, values, strict=False)), _problem(names, values))


def _lines(stream: TextIO) -> Iterator[str | None]:
    """Each line of ``stream`` without its end, or None for a line longer than MAX_LINE
    (read past a piece at a time, never held whole)."""
    piece = MAX_LINE + 2  # the longest line and its \r\n
    after_return = False
    while True:
        chunk = stream.readline(piece)
        if after_return and chunk == "\n":
            # A \r\n that readline's limit cut after the \r: one line end, as in csv.
            chunk = stream.readline(piece)
        if not chunk:
            return
        text: str | None = chunk
        while len(chunk) == piece and not chunk.endswith(("\n", "\r")):
            text = None
            chunk = stream.readline(piece)
        after_return = chunk.endswith("\r")
        if text is not None:
            text = text.removesuffix("\n").removesuffix("\r")
        yield None if text is None or len(text) > MAX_LINE else text


def _fields(text: str) -> list[str]:
    """The fields of one line.

    Raises:
        csv.Error: with a message a person can act on.
    """
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as error:
        if str(error) == "unexpected end of data":  # the line ended inside quotes
            raise csv.Error(
                "not CSV: a quote is not closed on its line (a field cannot hold a line "
                'break; a quote inside a quoted field is written twice: "")'
            ) from None
        raise csv.Error(
            f'not CSV: {error} (a quote inside a quoted field is written twice: "")'
        ) from None


def _problem(names: list[str], values: list[str]) -> str | None:
    """Why a row's values cannot be stored, if they cannot: checked before any is written,
    since a value the database refuses would fail the whole batch."""
    if any(_NOT_TEXT.search(value) for value in values):
        return "not UTF-8 text (save the file as CSV UTF-8)"
    if len(values) != len(names):
        return f"{len(values)} fields where the header has {len(names)}"
    for name, value in zip(names, values, strict=True):
        if "\x00" in value:
            return f"{name}: contains a NUL character, which cannot be stored"
        control = (_CONTROL_IN_REASON if name == "reason" else _CONTROL).search(value.strip())
        if control is not None:
            return f"{name}: holds the control character U+{ord(control.group()):04X}; remove it"
        if len(value.strip()) > LONGEST[name]:
            return f"{name}: longer than {LONGEST[name]} characters"
    return None


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
            # Another organisation's line is one this import cannot see.
            self.lines[raw] = line_store.find_line(
                self._session, raw, self.region, self.organization.id
            )
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
        # As much of the address as it may hold: enough to find the row.
        return RowResult(number, raw[: LONGEST["address"]], "invalid", row.problem)
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
    except DataError:
        # A value the checks let through (NFKC can lengthen an address) and the database
        # refused: only the row's savepoint is rolled back, its batch goes on.
        return RowResult(number, raw, "invalid", DATABASE_REFUSED)
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
    progress: Callable[[], None] | None = None,
) -> Counter[str]:
    """Apply every row; ``report`` gets each row's result once its batch is committed.

    Args:
        topics: the topics a row may name (keywords.yaml's); None: any well-formed id.
        progress: called after each row is applied (the web layer checks in with gunicorn).

    Returns:
        how many rows had each result.

    Raises:
        InvalidChange: no actor.
        BadFile: from ``read_rows``, before anything is applied.
    """
    if not actor.strip():
        raise InvalidChange("actor: say who imports the file (it is recorded on every change)")
    if len(actor) > MOST_ACTOR or any(ord(c) < 32 or ord(c) == 127 for c in actor):
        raise InvalidChange(
            f"actor: at most {MOST_ACTOR} characters, without control characters "
            "(it is recorded on every change)"
        )
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
            results = []
            for row in pending:
                results.append(_apply_row(session, row, resolver, actor))
                if progress is not None:
                    progress()  # a web server may kill a request silent for long
        # Committed. Before any row is reported, nothing may still be on its way to
        # a number the batch opted out, as after a texted STOP (app/sending/handoff.py):
        # whether the row changed anything or the number had stopped already.
        stopping = [
            result.address
            for row, result in zip(pending, results, strict=True)
            if result.result in ("applied", "unchanged") and row.get("status").lower() in _STOPS
        ]
        handoff.wait_for_hand_offs_to_all(database, organization.id, stopping)
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
