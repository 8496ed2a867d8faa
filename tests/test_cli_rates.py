"""``optgate lines rate`` and the rate column of ``optgate lines list``: what they print,
what they store, and that every mistake is one line, exit 1, with nothing changed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.data.db import Database
from app.data.models import Line, LineGroup
from tests.test_cli import Run, cli_on


@pytest.fixture
def optgate(
    clean_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    return cli_on(clean_database_url, monkeypatch, capsys)


def stored_rates(db: Database) -> dict[str, float | None]:
    """Every line's and group's own rate as stored, e.g. ``{"+14155550100": 30.0,
    "group 1/MG1": None}``."""
    with db.sessions() as session:
        lines = {line.address: line.send_rate for line in session.scalars(sa.select(Line))}
        groups = {
            f"group {group.organization_id}/{group.name}": group.send_rate
            for group in session.scalars(sa.select(LineGroup))
        }
    return lines | groups


def line_rate(db: Database, address: str) -> float | None:
    with db.sessions() as session:
        return session.scalars(sa.select(Line.send_rate).where(Line.address == address)).one()


def listed(optgate: Run) -> dict[str, tuple[float, str]]:
    """``lines list --json``: each line's rate in force and its source."""
    assert optgate("lines", "list", "--json").code == 0
    return {row["line"]: (row["send_rate"], row["send_rate_source"]) for row in optgate.json()}


# -- showing the rate in force ------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("+14155550100", "line +14155550100: 1/s (long code default)\n"),
        ("+18885550100", "line +18885550100: 3/s (toll-free default)\n"),
        ("12345", "line 12345: 100/s (short code default)\n"),
    ],
)
def test_a_fresh_line_sends_at_the_default_of_its_kind(
    optgate: Run, db: Database, number: str, says: str
) -> None:
    assert optgate("lines", "add", number).code == 0
    assert optgate("lines", "rate", number).code == 0
    assert (optgate.out, optgate.err) == (says, "")
    assert line_rate(db, number) is None  # showing stores nothing


def test_lines_list_shows_each_lines_rate_and_where_it_comes_from(optgate: Run) -> None:
    for number in ("+14155550100", "+18885550100", "12345"):
        optgate("lines", "add", number)
    assert optgate("lines", "list").code == 0
    assert optgate.out == (
        "+14155550100     default              rate=1/s (long code default)\n"
        "+18885550100     default              rate=3/s (toll-free default)\n"
        "12345            default              rate=100/s (short code default)\n"
    )
    assert listed(optgate) == {
        "+14155550100": (1.0, "long code default"),
        "+18885550100": (3.0, "toll-free default"),
        "12345": (100.0, "short code default"),
    }


def test_a_line_written_another_way_is_the_same_line(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550100")
    assert optgate("lines", "rate", "(415) 555-0100", "30").code == 0
    assert optgate.out == "line +14155550100: 30/s (its own), was 1/s (long code default)\n"
    assert line_rate(db, "+14155550100") == 30.0


# -- a line's own rate --------------------------------------------------------------------


def test_setting_a_line_rate_says_new_and_old_and_is_stored_and_listed(
    optgate: Run, db: Database
) -> None:
    optgate("lines", "add", "+14155550100", "--name", "Sales")

    assert optgate("lines", "rate", "+14155550100", "30").code == 0
    assert (optgate.out, optgate.err) == (
        "line +14155550100: 30/s (its own), was 1/s (long code default)\n",
        "",
    )
    assert line_rate(db, "+14155550100") == 30.0

    assert optgate("lines", "rate", "+14155550100").out == "line +14155550100: 30/s (its own)\n"
    assert optgate("lines", "list").out == (
        "+14155550100     default              rate=30/s (its own)  name=Sales\n"
    )
    [row] = optgate("lines", "list", "--json").json()
    assert (row["send_rate"], row["send_rate_source"]) == (30.0, "line")
    assert isinstance(row["send_rate"], float)


def test_a_rate_may_have_decimals_and_clear_goes_back_to_the_default(
    optgate: Run, db: Database
) -> None:
    optgate("lines", "add", "+18885550100")

    assert optgate("lines", "rate", "+18885550100", "0.5").code == 0
    assert optgate.out == "line +18885550100: 0.5/s (its own), was 3/s (toll-free default)\n"
    assert line_rate(db, "+18885550100") == 0.5
    assert listed(optgate) == {"+18885550100": (0.5, "line")}

    assert optgate("lines", "rate", "+18885550100", "--clear").code == 0
    assert optgate.out == "line +18885550100: 3/s (toll-free default), was 0.5/s (its own)\n"
    assert line_rate(db, "+18885550100") is None
    assert listed(optgate) == {"+18885550100": (3.0, "toll-free default")}


def test_clear_on_a_line_without_a_rate_changes_nothing_and_says_so(
    optgate: Run, db: Database
) -> None:
    optgate("lines", "add", "+14155550100")
    assert optgate("lines", "rate", "+14155550100", "--clear").code == 0
    assert (optgate.out, optgate.err) == (
        "unchanged: line +14155550100 has no rate of its own; it sends at "
        "1/s (long code default)\n",
        "",
    )
    assert line_rate(db, "+14155550100") is None


def test_setting_the_same_rate_again_changes_nothing_and_says_so(
    optgate: Run, db: Database
) -> None:
    optgate("lines", "add", "+14155550100")
    optgate("lines", "rate", "+14155550100", "30")
    # The same rate written another way is the same rate.
    for again in ("30", "30.0", "+30", " 30 "):
        assert optgate("lines", "rate", "+14155550100", again).code == 0
        assert optgate.out == "unchanged: line +14155550100 sends at 30/s (its own) already\n"
    assert line_rate(db, "+14155550100") == 30.0

    assert optgate("lines", "rate", "+14155550100", "31").code == 0
    assert optgate.out == "line +14155550100: 31/s (its own), was 30/s (its own)\n"
    assert line_rate(db, "+14155550100") == 31.0


def test_a_rate_set_on_one_line_leaves_the_others_alone(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    optgate("lines", "add", "+14155550101", "--group", "MG1")
    optgate("lines", "add", "+14155550102")

    assert optgate("lines", "rate", "+14155550101", "7").code == 0

    assert stored_rates(db) == {
        "+14155550100": None,
        "+14155550101": 7.0,
        "+14155550102": None,
        "group 1/MG1": None,
    }
    assert listed(optgate) == {
        "+14155550100": (1.0, "long code default"),
        "+14155550101": (7.0, "line"),
        "+14155550102": (1.0, "long code default"),
    }


# -- a group's shared rate ----------------------------------------------------------------


def test_a_group_rate_is_shared_by_its_lines(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    optgate("lines", "add", "+14155550101", "--group", "MG1")
    optgate("lines", "add", "+14155550102")

    assert optgate("lines", "rate", "--group", "MG1").out == (
        "group 'MG1' has no rate: each of its 2 lines sends at its own, or its kind's default\n"
    )
    assert optgate("lines", "rate", "--group", "MG1", "50").code == 0
    assert (optgate.out, optgate.err) == (
        "group 'MG1': 50/s shared by its 2 lines (had none)\n",
        "",
    )
    assert stored_rates(db) == {
        "+14155550100": None,
        "+14155550101": None,
        "+14155550102": None,
        "group 1/MG1": 50.0,
    }

    assert optgate("lines", "rate", "--group", "MG1").out == (
        "group 'MG1': 50/s shared by its 2 lines\n"
    )
    assert optgate("lines", "rate", "+14155550101").out == (
        "line +14155550101: 50/s (group MG1, shared)\n"
    )
    assert optgate("lines", "list").out == (
        "+14155550100     default              rate=50/s (group MG1, shared)  group=MG1\n"
        "+14155550101     default              rate=50/s (group MG1, shared)  group=MG1\n"
        "+14155550102     default              rate=1/s (long code default)\n"
    )
    assert listed(optgate) == {
        "+14155550100": (50.0, "group"),
        "+14155550101": (50.0, "group"),
        "+14155550102": (1.0, "long code default"),
    }

    assert optgate("lines", "rate", "--group", "MG1", "50").out == (
        "unchanged: group 'MG1' has 50/s already, shared by its 2 lines\n"
    )
    assert optgate("lines", "rate", "--group", "MG1", "60").out == (
        "group 'MG1': 60/s shared by its 2 lines (was 50/s)\n"
    )


def test_a_lines_own_rate_beats_its_groups(optgate: Run, db: Database) -> None:
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    optgate("lines", "add", "+14155550101", "--group", "MG1")
    optgate("lines", "rate", "+14155550100", "30")

    assert optgate("lines", "rate", "--group", "MG1", "50").code == 0
    assert optgate.out == (
        "group 'MG1': 50/s shared by its 2 lines; 1 of them has a rate of their own, "
        "which beats it (had none)\n"
    )
    assert "1 of them has a rate of their own" in optgate("lines", "rate", "--group", "MG1").out
    assert optgate("lines", "rate", "+14155550100").out == "line +14155550100: 30/s (its own)\n"
    assert optgate("lines", "rate", "+14155550101").out == (
        "line +14155550101: 50/s (group MG1, shared)\n"
    )
    assert listed(optgate) == {"+14155550100": (30.0, "line"), "+14155550101": (50.0, "group")}

    # Clearing the line's own rate puts it back on its group's.
    assert optgate("lines", "rate", "+14155550100", "--clear").code == 0
    assert optgate.out == "line +14155550100: 50/s (group MG1, shared), was 30/s (its own)\n"
    assert stored_rates(db) == {"+14155550100": None, "+14155550101": None, "group 1/MG1": 50.0}


def test_clearing_a_groups_rate_puts_its_lines_back_on_their_own(
    optgate: Run, db: Database
) -> None:
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    optgate("lines", "add", "+18885550100", "--group", "MG1")
    optgate("lines", "rate", "+14155550100", "30")
    optgate("lines", "rate", "--group", "MG1", "50")

    assert optgate("lines", "rate", "--group", "MG1", "--clear").code == 0
    assert optgate.out == (
        "group 'MG1': no rate now (was 50/s); each of its 2 lines sends at its own, or its "
        "kind's default\n"
    )
    assert stored_rates(db) == {"+14155550100": 30.0, "+18885550100": None, "group 1/MG1": None}
    assert listed(optgate) == {
        "+14155550100": (30.0, "line"),
        "+18885550100": (3.0, "toll-free default"),
    }

    assert optgate("lines", "rate", "--group", "MG1", "--clear").code == 0
    assert optgate.out == "unchanged: group 'MG1' has no rate\n"
    assert stored_rates(db)["group 1/MG1"] is None


def test_a_group_of_one_line_says_line(optgate: Run) -> None:
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    assert optgate("lines", "rate", "--group", "MG1", "5").out == (
        "group 'MG1': 5/s shared by its 1 line (had none)\n"
    )


# -- mistakes: one line, exit 1, nothing changed --------------------------------------------


@pytest.fixture
def rated(optgate: Run, db: Database) -> dict[str, float | None]:
    """Two lines of group MG1, one with a rate of its own, and the group's rate: a mistake
    that set or cleared anything would show. Returns the rates as stored."""
    optgate("lines", "add", "+14155550100", "--group", "MG1")
    optgate("lines", "add", "+14155550101", "--group", "MG1")
    optgate("lines", "add", "+18885550100")
    assert optgate("lines", "rate", "+14155550100", "30").code == 0
    assert optgate("lines", "rate", "--group", "MG1", "50").code == 0
    before = stored_rates(db)
    assert before == {
        "+14155550100": 30.0,
        "+14155550101": None,
        "+18885550100": None,
        "group 1/MG1": 50.0,
    }
    return before


NOT_A_RATE = "is not a number of messages per second (e.g. 30, or 0.5 for one every 2 seconds)"
BACK = "; --clear goes back to the group's rate or the default"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("0", f"error: a send rate must be above 0 messages per second, got 0{BACK}"),
        ("0.0", f"error: a send rate must be above 0 messages per second, got 0.0{BACK}"),
        ("-5", f"error: a send rate must be above 0 messages per second, got -5{BACK}"),
        ("-.5", f"error: a send rate must be above 0 messages per second, got -.5{BACK}"),
        ("10001", "error: a send rate is at most 10000 messages per second, got 10001"),
        ("10000.5", "error: a send rate is at most 10000 messages per second, got 10000.5"),
        (
            "0.0000001",
            "error: a send rate is at least 0.01 messages per second (one every 100 seconds), "
            "got 0.0000001",
        ),
        ("abc", f"error: 'abc' {NOT_A_RATE}"),
        ("1e3", f"error: '1e3' {NOT_A_RATE}"),
        ("inf", f"error: 'inf' {NOT_A_RATE}"),
        ("nan", f"error: 'nan' {NOT_A_RATE}"),
        ("1_000", f"error: '1_000' {NOT_A_RATE}"),
        ("30/s", f"error: '30/s' {NOT_A_RATE}"),
        ("", f"error: '' {NOT_A_RATE}"),
        (" ", f"error: ' ' {NOT_A_RATE}"),
        ("3\x00", f"error: '3\\x00' {NOT_A_RATE}"),
        ("\u0663", f"error: '\u0663' {NOT_A_RATE}"),  # ٣, an Arabic-Indic 3
        ("\u0663\u0660", f"error: '\u0663\u0660' {NOT_A_RATE}"),  # ٣٠
    ],
)
def test_a_rate_that_is_not_one_is_a_one_line_error_that_changes_nothing(
    optgate: Run, db: Database, rated: dict[str, float | None], raw: str, says: str
) -> None:
    for target in (("+18885550100",), ("--group", "MG1")):
        assert optgate("lines", "rate", *target, raw).code == 1
        assert optgate.error_line == says
        assert optgate.out == ""
        assert stored_rates(db) == rated


USAGE = "(see `optgate lines rate --help`)"
WHICH = (
    "give the line's NUMBER and a RATE, e.g. `optgate lines rate +14155550100 30` "
    "(or --group NAME RATE)"
)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("+14155550100", "5", "--clear"), f"error: give a RATE or --clear, not both {USAGE}"),
        (("--group", "MG1", "5", "--clear"), f"error: give a RATE or --clear, not both {USAGE}"),
        ((), f"error: {WHICH} {USAGE}"),
        (("--clear",), f"error: {WHICH} {USAGE}"),
        (("+14155550100", "5", "6"), f"error: {WHICH} {USAGE}"),
        (
            ("--group", "MG1", "5", "6"),
            "error: with --group, give only the RATE, e.g. `optgate lines rate --group MG1 50` "
            f"{USAGE}",
        ),
        (("+14155550100", "5", "--bogus"), f"error: no such option: --bogus {USAGE}"),
        (("+14155550100", "-x"), f"error: no such option: -x {USAGE}"),
        (
            ("+14155550199", "5"),
            "error: there is no line +14155550199: add it first with "
            "`optgate lines add +14155550199` (a typo must not create a line)",
        ),
        (
            ("+14155550199",),
            "error: there is no line +14155550199: add it first with "
            "`optgate lines add +14155550199` (a typo must not create a line)",
        ),
        (
            ("+14155550199", "--clear"),
            "error: there is no line +14155550199: add it first with "
            "`optgate lines add +14155550199` (a typo must not create a line)",
        ),
        (
            ("--group", "nope", "5"),
            "error: organization 'default' has no line group 'nope': `optgate lines list` "
            "shows each line's group (a group is created by "
            "`optgate lines add NUMBER --group NAME`)",
        ),
        (
            ("--group", "MG1", "--organization", "nope", "5"),
            "error: there is no organization 'nope' (known: default)",
        ),
        (
            ("+14155550100", "--organization", "nope", "5"),
            "error: there is no organization 'nope' (known: default)",
        ),
        (
            ("+1415", "5"),
            "error: '+1415' is not a valid address: too short: include the area code "
            "(numbers without a country code are read as US numbers)",
        ),
    ],
)
def test_mistaken_words_are_one_line_errors_that_change_nothing(
    optgate: Run,
    db: Database,
    rated: dict[str, float | None],
    args: tuple[str, ...],
    says: str,
) -> None:
    assert optgate("lines", "rate", *args).code == 1
    assert optgate.error_line == says
    assert optgate.out == ""
    assert stored_rates(db) == rated


def test_a_mistake_leaves_the_listing_as_it_was(
    optgate: Run, rated: dict[str, float | None]
) -> None:
    before = listed(optgate)
    for args in (("+14155550100", "0"), ("+14155550100", "--clear", "5"), ("--group", "MG1", "")):
        assert optgate("lines", "rate", *args).code == 1
    assert (
        listed(optgate)
        == before
        == {
            "+14155550100": (30.0, "line"),
            "+14155550101": (50.0, "group"),
            "+18885550100": (3.0, "toll-free default"),
        }
    )


# -- several organizations ----------------------------------------------------------------


@pytest.fixture
def two_organizations(optgate: Run) -> Run:
    """Group MG1 in acme (+14155550100) and another MG1 in globex (+14155550200)."""
    optgate("lines", "add", "+14155550100", "--organization", "acme", "--group", "MG1")
    optgate("lines", "add", "+14155550200", "--organization", "globex", "--group", "MG1")
    return optgate


def test_a_group_name_in_two_organizations_needs_one_named(
    two_organizations: Run, db: Database
) -> None:
    optgate = two_organizations
    before = stored_rates(db)
    for args in (("--group", "MG1", "50"), ("--group", "MG1", "--clear"), ("--group", "MG1")):
        assert optgate("lines", "rate", *args).code == 1
        assert optgate.error_line == (
            "error: there are several organizations (acme, globex): name one with --organization"
        )
        assert stored_rates(db) == before

    assert optgate("lines", "rate", "--group", "MG1", "--organization", "acme", "50").code == 0
    assert optgate.out == "group 'MG1': 50/s shared by its 1 line (had none)\n"
    assert listed(optgate) == {
        "+14155550100": (50.0, "group"),
        "+14155550200": (1.0, "long code default"),
    }
    assert optgate("lines", "rate", "--group", "MG1", "--organization", "globex").out == (
        "group 'MG1' has no rate: each of its 1 line sends at its own, or its kind's default\n"
    )


def test_a_line_needs_no_organization_but_is_looked_for_only_in_the_one_named(
    two_organizations: Run, db: Database
) -> None:
    optgate = two_organizations
    # A number belongs to one organization: naming none is enough.
    assert optgate("lines", "rate", "+14155550200", "5").code == 0
    assert optgate.out == "line +14155550200: 5/s (its own), was 1/s (long code default)\n"

    # Another organization's line, named with the wrong one, is not set.
    before = stored_rates(db)
    assert optgate("lines", "rate", "+14155550200", "--organization", "acme", "7").code == 1
    assert optgate.error_line == (
        "error: there is no line +14155550200: add it first with "
        "`optgate lines add +14155550200` (a typo must not create a line)"
    )
    assert stored_rates(db) == before

    assert optgate("lines", "rate", "+14155550200", "--organization", "globex", "7").code == 0
    assert optgate.out == "line +14155550200: 7/s (its own), was 5/s (its own)\n"
    [row] = optgate("lines", "list", "--organization", "globex", "--json").json()
    assert (row["line"], row["send_rate"], row["send_rate_source"]) == (
        "+14155550200",
        7.0,
        "line",
    )
