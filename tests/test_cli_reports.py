"""``optgate consent export | snapshot | import``: the reports and imports on the command line.

The CLI runs the same code as the HTTP API, so these tests check what is the CLI's own:
files and stdout, the progress bar on a terminal (and none elsewhere), `FILE:LINE: message`
for rows and headers, the exit codes, and the counts on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.addresses import normalize
from app.consent import ledger, queries
from app.consent.values import Scope, Source, Status, default_channel
from app.data.db import Database
from app.data.models import ConsentEvent, Line, Organization
from tests.test_cli import Run, cli_on

LINE_A, LINE_B = "+14155550100", "+14155550101"


@pytest.fixture
def optgate(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    run = cli_on(clean_database_url, monkeypatch, capsys)
    assert run("lines", "add", LINE_A).code == 0
    assert run("lines", "add", LINE_B, "--group", "MG1").code == 0
    return run


def keyword_stop(url: str, number: str, line: str = LINE_A) -> None:
    database = Database(url)
    with database.transaction() as session:
        found = session.scalars(sa.select(Line).where(Line.address == line)).one()
        ledger.apply(
            session,
            ledger.Change(found.organization_id, normalize(number), Scope.line(found.id),
                          Status.OPTED_OUT, Source.KEYWORD, number, via_line_id=found.id),
        )  # fmt: skip
    database.dispose()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- import ---------------------------------------------------------------------------------


def test_import_applies_rows_reports_refused_and_invalid_ones_by_line_and_exits_1(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    keyword_stop(clean_database_url, "+14155550123")
    source = write(
        tmp_path / "list.csv",
        "address,status,line\n"
        "+14155550124,opted_out,\n"  # line 2: applied
        "+14155550123,opted_in,+14155550100\n"  # line 3: refused (keyword STOP)
        "not a number,opted_out,\n"  # line 4: invalid
        "+14155550124,opted_out,\n",  # line 5: unchanged
    )
    results = tmp_path / "results.jsonl"

    optgate("consent", "import", str(source), "--actor", "jane", "--results", str(results))

    assert optgate.code == 1
    lines = optgate.err.strip().splitlines()
    assert lines[0].startswith(f"{source}:3: refused: +14155550123 opted out on line +14155550100")
    assert "texting START to +14155550100" in lines[0]
    assert lines[1].startswith(f"{source}:4: invalid: 'not a number' is not a valid address")
    assert lines[2] == f"{source}: 4 rows: 1 applied, 1 unchanged, 1 refused, 1 invalid"
    assert "Traceback" not in optgate.err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(row["row"], row["result"]) for row in rows] == [
        (2, "applied"), (3, "refused"), (4, "invalid"), (5, "unchanged"),
    ]  # fmt: skip


def test_import_of_valid_rows_exits_0_and_records_source_import_with_the_actor(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    source = write(tmp_path / "ok.csv", "address,status\n+14155550124,opted_out\n")
    assert optgate("consent", "import", str(source), "--actor", "jane").code == 0
    assert optgate.err.strip() == f"{source}: 1 rows: 1 applied, 0 unchanged, 0 refused, 0 invalid"
    database = Database(clean_database_url)
    with database.transaction() as session:
        event = session.scalars(sa.select(ConsentEvent)).one()
        assert (event.source, event.actor, event.new_value) == (Source.IMPORT, "jane", "opted_out")
    database.dispose()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("address,state\n+14155550124,opted_out\n", "unknown column 'state'"),
        ("status\nopted_out\n", "the header has no 'address' column"),
    ],
    ids=["empty", "unknown-column", "no-address"],
)
def test_import_with_a_bad_header_is_one_line_naming_file_and_line_and_applies_nothing(
    optgate: Run, clean_database_url: str, tmp_path: Path, text: str, message: str
) -> None:
    source = write(tmp_path / "bad.csv", text)
    assert optgate("consent", "import", str(source), "--actor", "jane").code == 1
    assert optgate.error_line.startswith(f"error: {source}:1: {message}")
    database = Database(clean_database_url)
    with database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == 0
    database.dispose()


def events(url: str) -> list[ConsentEvent]:
    database = Database(url)
    with database.transaction() as session:
        found = list(session.scalars(sa.select(ConsentEvent).order_by(ConsentEvent.id)))
    database.dispose()
    return found


def test_import_reports_every_line_whatever_its_quotes_as_file_line_and_exits_1(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    # A BOM, CRLF line ends, blank lines, a quote a CSV reader would carry over the next
    # lines, and one on the last line, which has no line end.
    source = tmp_path / "quotes.csv"
    source.write_bytes(
        b"\xef\xbb\xbfaddress,status,reason\r\n"  # 1
        b'+14155550401,opted_out,"moved\r\n'  # 2: invalid
        b"+14155550402,opted_out,\r\n"  # 3
        b"\r\n"  # 4: blank
        b"+14155550403,opted_out,ok\r\n"  # 5
        b'+14155550404,opted_out,"no end'  # 6: invalid
    )
    results = tmp_path / "results.jsonl"

    optgate("consent", "import", str(source), "--actor", "jane", "--results", str(results))

    assert optgate.code == 1
    unclosed = "invalid: not CSV: a quote is not closed on its line (a field cannot hold a line"
    first, last, summary = optgate.err.strip().splitlines()
    assert first.startswith(f"{source}:2: {unclosed}")
    assert last.startswith(f"{source}:6: {unclosed}")
    assert summary == f"{source}: 4 rows: 2 applied, 0 unchanged, 0 refused, 2 invalid"
    assert "Traceback" not in optgate.err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(row["row"], row["address"], row["result"]) for row in rows] == [
        (2, "+14155550401", "invalid"),
        (3, "+14155550402", "applied"),
        (5, "+14155550403", "applied"),
        (6, "+14155550404", "invalid"),
    ]
    assert [event.address for event in events(clean_database_url)] == [
        "+14155550402",
        "+14155550403",
    ]


def test_import_of_nul_and_overlong_values_reports_them_and_loses_no_row(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "odd.csv",
        "address,status,reason\n"
        "+14155550401,opted_out,\x00\n"  # 2: PostgreSQL cannot store a NUL
        f"jo@{'a' * 400}.com,opted_out,\n"  # 3: longer than the column
        "+14155550403,opted_out,ok\n",  # 4
    )

    assert optgate("consent", "import", str(source), "--actor", "jane").code == 1

    assert optgate.err.strip().splitlines() == [
        f"{source}:2: invalid: reason: contains a NUL character, which cannot be stored",
        f"{source}:3: invalid: address: longer than 320 characters",
        f"{source}: 3 rows: 1 applied, 0 unchanged, 0 refused, 2 invalid",
    ]
    assert [event.address for event in events(clean_database_url)] == ["+14155550403"]


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        ("j" * 201, "at most 200 characters"),
        ("jane\x1b[2J", "holds the control character U+001B; remove it"),
    ],
    ids=["too-long", "terminal-escape"],
)
def test_import_with_an_actor_no_change_could_record_applies_nothing(
    optgate: Run, clean_database_url: str, tmp_path: Path, actor: str, message: str
) -> None:
    source = write(tmp_path / "ok.csv", "address,status\n+14155550124,opted_out\n")

    assert optgate("consent", "import", str(source), "--actor", actor).code == 1

    assert f"Invalid value for --actor: {message}" in optgate.error_line
    assert events(clean_database_url) == []


def test_import_of_a_missing_file_is_a_usage_error(optgate: Run, tmp_path: Path) -> None:
    assert optgate("consent", "import", str(tmp_path / "nope.csv"), "--actor", "x").code == 1
    assert "does not exist" in optgate.error_line


# -- export and snapshot ------------------------------------------------------------------


def test_export_writes_every_event_with_the_historys_columns_and_values(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    keyword_stop(clean_database_url, "+14155550123")
    assert (
        optgate("consent", "flag", "+14155550123", "silenced", "--set", "--actor", "=x").code == 0
    )
    target = tmp_path / "events.csv"

    assert optgate("consent", "export", "-o", str(target)).code == 0

    assert optgate.err.strip() == f"exported 2 events to {target}"
    rows = list(csv.DictReader(target.open(encoding="utf-8", newline="")))
    assert tuple(rows[0]) == queries.EVENT_COLUMNS
    database = Database(clean_database_url)
    with database.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        history = queries.address_history(session, org, normalize("+14155550123"))
    database.dispose()
    expected = [{k: "" if v is None else str(v) for k, v in event.items()} for event in history]
    expected[1]["actor"] = "'=x"  # a formula-looking cell is defused
    assert rows == expected


def test_export_and_snapshot_write_no_cell_a_spreadsheet_would_run(
    optgate: Run, clean_database_url: str
) -> None:
    database = Database(clean_database_url)
    with database.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        for address, actor in (("=1+2@example.com", "+x"), ("+14155550123", "@bob")):
            contact = normalize(address)
            ledger.apply(
                session,
                ledger.Change(org.id, contact, Scope.organization(), Status.OPTED_OUT,
                              Source.MANUAL, actor, default_channel(contact), reason="-x"),
            )  # fmt: skip
    database.dispose()

    assert optgate("consent", "export").code == 0
    exported = list(csv.DictReader(io.StringIO(optgate.out, newline="")))
    assert optgate("consent", "snapshot", "--line", LINE_A).code == 0
    snapshot = list(csv.DictReader(io.StringIO(optgate.out, newline="")))

    assert [(row["address"], row["actor"], row["reason"]) for row in exported] == [
        ("'=1+2@example.com", "'+x", "'-x"),
        ("+14155550123", "'@bob", "'-x"),
    ]
    assert [(row["address"], row["line"], row["actor"]) for row in snapshot] == [
        ("+14155550123", LINE_A, "'@bob")
    ]


def test_export_to_stdout_with_since_after_everything_gives_only_the_header(
    optgate: Run, clean_database_url: str
) -> None:
    keyword_stop(clean_database_url, "+14155550123")
    assert optgate("consent", "export", "--since", "2999-01-01").code == 0
    assert optgate.out == ",".join(queries.EVENT_COLUMNS) + "\n"
    assert optgate.err.strip() == "exported 0 events"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "Invalid value for --since: 'yesterday' is not a day"),
        (["--until", "2026-11-01T09:00"], "has no time zone offset"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "must be before --until"),
        (["--line", "+14155559999"], "there is no line +14155559999"),
    ],
    ids=["since-words", "until-naive", "since-after-until", "unknown-line"],
)
def test_export_refuses_bad_options_with_one_line(
    optgate: Run, args: list[str], message: str
) -> None:
    assert optgate("consent", "export", *args).code == 1
    assert message in optgate.error_line


def test_snapshot_lists_each_number_per_line_and_prints_the_counts(
    optgate: Run, clean_database_url: str
) -> None:
    keyword_stop(clean_database_url, "+14155550123")
    assert optgate("consent", "set", "+14155550124", "--organization", "default",
                   "--status", "opted_in", "--actor", "jane").code == 0  # fmt: skip

    assert optgate("consent", "snapshot").code == 0

    rows = list(csv.DictReader(io.StringIO(optgate.out)))
    assert [(r["address"], r["line"], r["status"]) for r in rows] == [
        ("+14155550123", LINE_A, "opted_out"),
        ("+14155550124", LINE_A, "opted_in"),
        ("+14155550124", LINE_B, "opted_in"),
    ]
    assert optgate.err.strip().splitlines() == [
        f"{LINE_A}: 1 opted in, 1 opted out",
        f"{LINE_B}: 1 opted in, 0 opted out",
        "2 numbers listed",
    ]
    assert optgate("consent", "snapshot", "--status", "opted_out", "--format", "json").code == 0
    assert [row["address"] for row in json.loads(optgate.out)] == ["+14155550123"]


# -- the progress bar ---------------------------------------------------------------------


def run_with_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run optgate with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    out, _ = process.communicate(timeout=60)
    os.close(leader)
    return process.returncode, out.decode(), terminal.decode(errors="replace")


def test_a_long_run_draws_a_progress_bar_on_a_terminal_and_none_in_a_pipe(
    optgate: Run, clean_database_url: str, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "many.csv",
        "address,status\n" + "".join(f"+1415556{n:04d},opted_out\n" for n in range(600)),
    )
    env = {**os.environ, "OPTGATE_DATABASE_URL": clean_database_url}
    env.pop("OPTGATE_DEFAULT_REGION", None)
    code, _out, terminal = run_with_terminal(
        ["consent", "import", str(source), "--actor", "jane"], env
    )
    assert code == 0, terminal
    assert "importing many.csv" in terminal
    assert "600/600" in terminal and "100%" in terminal, terminal[-600:]

    code, _out, terminal = run_with_terminal(["consent", "export", "-o", os.devnull], env)
    assert code == 0, terminal
    assert "exporting consent events" in terminal and "600/600" in terminal

    piped = subprocess.run(
        [sys.executable, "-m", "app.cli", "consent", "export", "-o", os.devnull],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert piped.returncode == 0
    assert piped.stderr == "exported 600 events to /dev/null\n"
