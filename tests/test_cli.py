"""The ``optgate`` command line: what it prints, and that every error is one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.addresses import normalize
from app.cli import main
from app.consent import ledger
from app.consent.values import Scope, Source, Status
from app.data.db import Database
from app.data.models import ConsentEvent, Line, Organization
from tests.conftest import free_port


class Run:
    """Runs ``optgate`` in-process against one database and keeps what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.code = 0
        self.out = ""
        self.err = ""

    def __call__(self, *args: str) -> Run:
        self.code = main(list(args))
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return self

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
        assert "Traceback" not in self.err
        return lines[0]


@pytest.fixture
def optgate(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    return cli_on(clean_database_url, monkeypatch, capsys)


def cli_on(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    """``optgate`` on ``database_url``, with no default region from the environment."""
    monkeypatch.setenv("OPTGATE_DATABASE_URL", database_url)
    monkeypatch.delenv("OPTGATE_DEFAULT_REGION", raising=False)
    return Run(capsys)


def test_lines_add_and_list(optgate: Run) -> None:
    assert optgate("lines", "add", "(415) 555-0101", "--group", "MG1", "--name", "Sales").code == 0
    assert optgate.out == "added line +14155550101 in organization 'default', group 'MG1'\n"
    assert optgate("lines", "add", "+14155550101", "--group", "MG1").code == 0
    assert optgate.out.startswith("already there:")

    optgate("lines", "list", "--json")
    assert optgate.json() == [
        {
            "line": "+14155550101",
            "name": "Sales",
            "organization": "default",
            "group": "MG1",
            "provider_group": None,
            "added": optgate.json()[0]["added"],
            "send_rate": 1.0,
            "send_rate_source": "long code default",
        }
    ]


def test_adding_a_line_that_belongs_elsewhere_is_one_line_error(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101", "--organization", "acme")
    assert optgate("lines", "add", "+14155550101", "--organization", "other").code == 1
    assert optgate.error_line == ("error: line +14155550101 already belongs to organization 'acme'")


def test_a_change_on_an_unknown_line_is_refused_with_a_hint_to_add_it(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    code = optgate(
        "consent", "set", "+14155550199", "--line", "+14155550111",
        "--status", "opted_out", "--actor", "alice",
    ).code  # fmt: skip
    assert code == 1
    assert "add it first with `optgate lines add +14155550111`" in optgate.error_line
    optgate("lines", "list", "--json")
    assert [row["line"] for row in optgate.json()] == ["+14155550101"]


def test_set_show_and_history(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    optgate("lines", "add", "+14155550102")
    optgate(
        "consent", "set", "415 555 0199", "--line", "+14155550101", "--status", "opted_out",
        "--topic", "price_drop", "--actor", "alice", "--reason", "asked by phone",
    )  # fmt: skip
    assert optgate.code == 0
    assert optgate.out.startswith("changed: +14155550199 opted_out for topic price_drop")

    shown = optgate("consent", "show", "+14155550199", "--json").json()
    assert shown["address"] == "+14155550199"
    assert [(e["line"], e["channel"]) for e in shown["lines"]] == [
        ("+14155550101", "sms"),
        ("+14155550102", "sms"),
    ]
    entry = shown["lines"][0]
    assert {"line", "channel", "status", "source", "topics"} <= set(entry)
    assert (entry["line"], entry["channel"], entry["status"]) == (
        "+14155550101",
        "sms",
        "not_defined",
    )
    assert entry["topics"]["price_drop"]["status"] == "opted_out"
    assert entry["topics"]["price_drop"]["source"] == "manual"
    assert shown["flags"]["do_not_contact"]["set"] is False

    [event] = optgate("consent", "history", "+14155550199", "--json").json()
    assert (event["old"], event["new"], event["actor"], event["reason"]) == (
        "not_defined",
        "opted_out",
        "alice",
        "asked by phone",
    )
    assert optgate("consent", "history", "+14155550199").out.startswith("#1 ")
    assert "price_drop" in optgate("consent", "show", "+14155550199").out


def test_show_gives_one_entry_a_line_for_the_channel_asked(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    optgate("consent", "set", "+14155550199", "--organization", "default", "--status",
            "opted_out", "--channel", "voice", "--actor", "alice")  # fmt: skip
    sms = optgate("consent", "show", "+14155550199", "--json").json()["lines"]
    voice = optgate("consent", "show", "+14155550199", "--channel", "voice", "--json").json()
    assert [(e["channel"], e["status"]) for e in sms] == [("sms", "not_defined")]
    assert [(e["channel"], e["status"], e["scope"]) for e in voice["lines"]] == [
        ("voice", "opted_out", "organization")
    ]


def test_show_for_an_email_address_gives_its_organization_wide_email_status(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    optgate("consent", "set", " Jane@Example.com ", "--organization", "default",
            "--status", "opted_in", "--actor", "alice")  # fmt: skip
    shown = optgate("consent", "show", "jane@example.com", "--json").json()
    assert shown["address"] == "jane@example.com"
    assert [(e["line"], e["channel"], e["status"]) for e in shown["lines"]] == [
        (None, "email", "opted_in")
    ]
    assert optgate("consent", "show", "jane@example.com", "--channel", "sms").code == 1
    assert "channel sms does not apply to jane@example.com" in optgate.error_line


def test_a_change_that_changes_nothing_says_so(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    args = ("consent", "set", "+14155550199", "--organization", "default",
            "--status", "opted_out", "--actor", "alice")  # fmt: skip
    optgate(*args)
    assert optgate(*args).out.startswith("unchanged:")
    assert len(optgate("consent", "history", "+14155550199", "--json").json()) == 1


def test_staff_cannot_lift_a_keyword_stop_from_the_cli(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550101")
    with db.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        line = session.scalars(sa.select(Line)).one()
        ledger.apply(
            session,
            ledger.Change(
                org.id, normalize("+14155550199"), Scope.line(line.id), Status.OPTED_OUT,
                Source.KEYWORD, "+14155550199", via_line_id=line.id,
            ),
        )  # fmt: skip

    code = optgate(
        "consent", "set", "+14155550199", "--line", "+14155550101",
        "--status", "opted_in", "--actor", "bob",
    ).code  # fmt: skip

    assert code == 1
    assert optgate.error_line.endswith(
        "only the contact can opt back in, by texting START to +14155550101."
    )
    assert len(optgate("consent", "history", "+14155550199", "--json").json()) == 1


def test_do_not_contact_cannot_be_cleared(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101")
    optgate("consent", "flag", "+14155550199", "do_not_contact", "--set", "--actor", "alice")
    assert optgate.out.startswith("changed: do_not_contact set")
    assert (
        optgate(
            "consent", "flag", "+14155550199", "do_not_contact", "--clear", "--actor", "bob"
        ).code
        == 1
    )
    assert "permanent" in optgate.error_line


def test_verify_history_passes_then_names_the_tampered_event(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550101")
    for status in ("opted_out", "opted_in"):
        optgate("consent", "set", "+14155550199", "--line", "+14155550101",
                "--status", status, "--actor", "alice")  # fmt: skip
    assert optgate("consent", "verify-history").code == 0
    assert optgate.out == (
        "history verified: 2 events, every chain intact, state matches, every line in the "
        "group its history says\n"
    )

    with db.transaction() as session:
        session.execute(sa.update(ConsentEvent).where(ConsentEvent.seq == 1).values(actor="eve"))
        event_id = session.scalars(sa.select(ConsentEvent.id).where(ConsentEvent.seq == 1)).one()

    assert optgate("consent", "verify-history").code == 1
    assert optgate.error_line == (
        f"error: event {event_id} of +14155550199: does not match its hash: "
        "it was changed after it was written"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("consent", "show", "hello"), "'hello' is not a valid address"),
        (("consent", "set", "+14155550199", "--organization", "default", "--status",
          "opted_out"), "Missing option '--actor'"),
        (("consent", "set", "+14155550199", "--status", "opted_out", "--actor", "a"),
         "say where the change applies: --line, --group or --organization"),
        (("consent", "set", "+14155550199", "--group", "nope", "--status", "opted_out",
          "--actor", "a"), "has no line group 'nope'"),
        (("consent", "set", "+14155550199", "--organization", "default", "--status",
          "maybe", "--actor", "a"), "'maybe' is not one of"),
        (("consent", "show", "+14155550199", "--organization", "nope"),
         "there is no organization 'nope' (known: default)"),
        (("nonsense",), "No such command 'nonsense'"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_errors(optgate: Run, args: tuple[str, ...], says: str) -> None:
    optgate("lines", "add", "+14155550101")
    assert optgate(*args).code == 1
    assert optgate.error_line.startswith("error: ")
    assert says in optgate.error_line


def test_several_organizations_need_one_to_be_named(optgate: Run) -> None:
    optgate("lines", "add", "+14155550101", "--organization", "acme")
    optgate("lines", "add", "+14155550102", "--organization", "globex")
    assert optgate("consent", "show", "+14155550199").code == 1
    assert "there are several organizations (acme, globex)" in optgate.error_line
    assert optgate("consent", "show", "+14155550199", "--organization", "acme").code == 0


def test_a_bad_setting_stops_the_command_with_one_line(
    optgate: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTGATE_DEFAULT_REGION", "USA")
    assert optgate("lines", "list").code == 1
    assert optgate.error_line.startswith("error: OPTGATE_DEFAULT_REGION: expected a two-letter")


def test_an_unreachable_database_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "OPTGATE_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/optgate"
    )
    run = Run(capsys)("lines", "list")
    assert run.code == 1
    assert run.error_line.startswith("error: cannot use the database: ")


def test_a_worker_that_cannot_reach_redis_is_one_line_that_says_what_to_do(
    optgate: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTGATE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert optgate("worker", "--burst").code == 1
    assert optgate.error_line.startswith("error: cannot use Redis: ")
    assert "`optgate requeue`" in optgate.error_line


def test_db_upgrade_and_check(optgate: Run) -> None:
    assert optgate("db", "upgrade").code == 0
    assert optgate("db", "check").code == 0
    assert optgate.out == "models and migrations agree\n"


def test_db_check_fails_on_an_unmigrated_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPTGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    run = Run(capsys)("db", "check")
    assert run.code == 1
    assert "run `optgate db upgrade` first" in run.error_line


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "optgate"
    env = {"PATH": "/usr/bin:/bin", "OPTGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    subprocess.run([command, "db", "upgrade"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [command, "consent", "set", "+14155550199", "--line", "+14155550101",
         "--status", "opted_out", "--actor", "alice"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: there is no line +14155550101: add it first with "
        "`optgate lines add +14155550101` (a typo must not create a line)"
    ]


# -- send and requeue ---------------------------------------------------------------------


@pytest.fixture
def sending(
    optgate: Run, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: Any
) -> Run:
    from tests.conftest import SHIPPED_KEYWORDS

    monkeypatch.setenv("OPTGATE_REDIS_URL", redis_url)
    monkeypatch.setenv("OPTGATE_KEYWORDS", str(SHIPPED_KEYWORDS))
    assert optgate("lines", "add", "+14155550100").code == 0
    return optgate


def test_send_queues_a_message_and_says_its_id(
    sending: Run, db: Database, redis_client: Any
) -> None:
    from rq import Queue

    from app.data.models import Message

    assert sending("send", "--line", "+14155550100", "--to", "(415) 555-0123",
                   "--body", "Your order shipped").code == 0  # fmt: skip
    assert sending.out == "queued message 1\n"
    assert sending("send", "--line", "+14155550100", "--to", "+14155550124", "--body", "Sale",
                   "--kind", "marketing", "--topic", "price_drop", "--json").code == 0  # fmt: skip
    assert sending.json() == {"id": 2, "status": "queued"}
    with db.sessions() as session:
        rows = session.scalars(sa.select(Message).order_by(Message.id)).all()
    assert [(m.address, m.kind, m.topic, m.status) for m in rows] == [
        ("+14155550123", "transactional", None, "queued"),
        ("+14155550124", "marketing", "price_drop", "queued"),
    ]
    assert len(Queue("outbound", connection=redis_client).get_jobs()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "+1415"], "'+1415' is not a valid address"),
        (["--to", "+14155550123", "--line", "+14155550999"], "optgate lines add +14155550999"),
        (["--to", "+14155550123", "--topic", "pricedrop"], "there is no topic 'pricedrop'"),
        (["--to", "+14155550123", "--kind", "promo"], "Invalid value for '--kind'"),
    ],
)
def test_send_refuses_what_can_never_be_sent_in_one_line(
    sending: Run, args: list[str], message: str
) -> None:
    base = {"--line": "+14155550100", "--body": "Hi"}
    for name, value in zip(args[::2], args[1::2], strict=True):
        base[name] = value
    argv = [item for pair in base.items() for item in pair]

    assert sending("send", *argv).code == 1
    assert message in sending.error_line


def test_requeue_reports_what_it_did(sending: Run) -> None:
    assert sending("requeue", "--older-than", "0").code == 0
    assert sending.out == (
        "enqueued 0 queued messages, scheduled 0 for later, settled 0 interrupted sends as failed\n"
    )


# -- the command list loads nothing it does not run --------------------------------------


def test_the_help_lists_each_command_with_its_own_first_line() -> None:
    # `optgate --help` shows COMMANDS' lines without importing the commands; they
    # must stay what each command says of itself.
    import click

    from app.cli import COMMANDS, cli

    context = click.Context(cli)
    for name, (load, line) in COMMANDS.items():
        assert load().get_short_help_str(limit=1_000) == line, name
        assert cli.get_command(context, name) is not None
    assert "consent" in cli.list_commands(context)


def test_the_consent_group_has_its_report_commands_once_however_often_it_is_loaded() -> None:
    from app.cli import COMMANDS

    load = COMMANDS["consent"][0]
    group = load()
    load()
    assert {"export", "snapshot", "import"} <= set(group.commands)  # type: ignore[attr-defined]


def test_help_loads_no_database_queue_or_web_library() -> None:
    program = (
        "import sys\nfrom app.cli import main\nmain(['--help'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'redis', 'rq', 'flask', 'alembic', 'phonenumbers'}))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_help_looks_as_click_would_lay_it_out() -> None:
    import click

    from app.cli import COMMANDS, cli

    lazy = cli.get_help(click.Context(cli))
    for name in COMMANDS:
        cli.get_command(click.Context(cli), name)  # every command loaded now
    assert cli.get_help(click.Context(cli)) == lazy
