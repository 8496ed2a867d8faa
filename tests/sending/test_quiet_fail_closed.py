"""Quiet hours fail closed (app/sending/quiet.py): with zones missing from the tz database a
marketing text waits, never goes at once, and the services refuse to start.

A missing database is made for real: zoneinfo is pointed at a folder holding only the
zone files a test keeps (copied from the tzdata package), and the tzdata package is
made unimportable, in this process or, for the commands, in theirs (an empty
``tzdata`` package first on PYTHONPATH).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from phonenumbers.tzdata import TIMEZONE_DATA

from app import create_app
from app.data.models import MessageStatus
from app.sending import quiet
from app.sending.quiet import (
    DECIDE_AGAIN_AFTER,
    Window,
    ZoneDataMissing,
    next_allowed,
    require_zone_data,
    whereabouts,
)
from app.settings import Settings
from tests.conftest import free_port
from tests.processes.test_processes import cleaned_up, environment, output, run, start
from tests.workers.conftest import Outbound
from tests.workers.conftest import outbound as outbound  # the fixture, shared

ROOT = Path(__file__).resolve().parents[2]
FEDERAL = Window.parse("08:00-21:00")
NEW_YORK = "+12125550100"
LOS_ANGELES = "+14155550123"
FLORIDA = "+13055551234"
IDAHO = "+12085550100"  # America/Boise and America/Los_Angeles
TOLL_FREE = "+18005550100"
LONDON = "+442079460123"
AMERICAN_SAMOA_MOBILE = "+16847331234"
#: Every zone phonenumbers can give a number.
NAMED = sorted({name for names in TIMEZONE_DATA.values() for name in names} - {"Etc/Unknown"})
#: 2026-11-22 03:00 UTC: 22:00 in New York, 17:00 in Honolulu, 03:00 in London.
NIGHT = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
#: 18:00 UTC: 08:00 in Hawaii, the first moment of +1's strictest window.
HAWAII_MORNING = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)

ZoneDatabase = Callable[[Iterable[str]], None]


def clear_zone_caches() -> None:
    zoneinfo.ZoneInfo.clear_cache()
    quiet._numbering.cache_clear()
    quiet._unloadable_zones.cache_clear()


@pytest.fixture
def zone_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoneDatabase]:
    """``zone_database(names)``: from then on this process's tz database has only those."""
    package = resources.files("tzdata") / "zoneinfo"
    original_path = zoneinfo.TZPATH

    def only(names: Iterable[str]) -> None:
        folder = tmp_path / "zoneinfo"
        folder.mkdir()
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            with (package / name).open("rb") as source, (folder / name).open("wb") as copy:
                shutil.copyfileobj(source, copy)
        for module in [name for name in sys.modules if name.split(".")[0] == "tzdata"]:
            monkeypatch.delitem(sys.modules, module)
        monkeypatch.setitem(sys.modules, "tzdata", None)  # import tzdata: ImportError
        zoneinfo.reset_tzpath([str(folder)])
        clear_zone_caches()

    yield only
    zoneinfo.reset_tzpath(original_path)
    monkeypatch.undo()
    clear_zone_caches()


# --- the dependency ------------------------------------------------------------------------


def test_tzdata_is_declared_in_pyproject_and_in_the_installed_metadata() -> None:
    """Not a package another one happens to pull in: ours, so an install always has it."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = importlib.metadata.requires("optgate") or []
    for requirements in (declared, installed):
        # (packaging would parse these, but it is not ours to rely on either.)
        tzdata = [text for text in requirements if re.match(r"tzdata\b(?![.-])", text)]
        assert len(tzdata) == 1, requirements
        assert ";" not in tzdata[0]  # no marker: every platform, every extra
    assert importlib.metadata.version("tzdata")


# --- a number's window without the zones ---------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "line"),
    [
        pytest.param(NEW_YORK, NEW_YORK, id="New York"),
        pytest.param(FLORIDA, NEW_YORK, id="Florida"),
        pytest.param(IDAHO, NEW_YORK, id="Idaho"),
        pytest.param(LOS_ANGELES, NEW_YORK, id="Los Angeles from a New York line"),
        pytest.param(TOLL_FREE, NEW_YORK, id="toll-free from a New York line"),
        pytest.param(AMERICAN_SAMOA_MOBILE, "12345", id="American Samoa mobile"),
    ],
)
def test_without_a_zone_database_a_plus_one_number_gets_the_strictest_window(
    zone_database: ZoneDatabase, recipient: str, line: str
) -> None:
    """+1's strictest window needs no tz database: at 22:00 EST the text waits for
    08:00 in Hawaii, and inside it (14:00 EST, 09:00 HST) it goes."""
    zone_database([])
    place = whereabouts(recipient, line, FEDERAL)

    assert next_allowed(place, NIGHT) == HAWAII_MORNING
    assert next_allowed(place, HAWAII_MORNING.replace(hour=19)) is None


@pytest.mark.parametrize("line", [LONDON, NEW_YORK, "12345"])
def test_without_a_zone_database_a_number_elsewhere_waits_and_is_decided_again(
    zone_database: ZoneDatabase, line: str
) -> None:
    zone_database([])
    place = whereabouts(LONDON, line, FEDERAL)

    for hour in (3, 12):  # 03:00 and noon in London: neither can be told apart
        now = NIGHT.replace(hour=hour)
        assert next_allowed(place, now) == now + DECIDE_AGAIN_AFTER


def test_a_zone_that_cannot_be_loaded_closes_its_numbers_window(
    zone_database: ZoneDatabase,
) -> None:
    """America/Los_Angeles missing: Idaho's Boise alone would open an hour early, and
    the New York line's zone would open at 05:00 in Los Angeles."""
    zone_database(name for name in NAMED if name != "America/Los_Angeles")
    boise_eight = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # 08:00 MST, 07:00 PST
    new_york_eight = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)  # 08:00 EST, 05:00 PST

    assert next_allowed(whereabouts(IDAHO, NEW_YORK, FEDERAL), boise_eight) == HAWAII_MORNING
    assert next_allowed(whereabouts(LOS_ANGELES, NEW_YORK, FEDERAL), new_york_eight) == (
        HAWAII_MORNING
    )
    # A number whose zones load is placed as ever.
    assert next_allowed(whereabouts(NEW_YORK, NEW_YORK, FEDERAL), new_york_eight) is None


@pytest.mark.redis
def test_a_marketing_text_at_night_waits_in_the_real_sender_without_a_zone_database(
    zone_database: ZoneDatabase, outbound: Outbound
) -> None:
    zone_database([])
    message_id = outbound.queue(NEW_YORK, kind="marketing")
    sender = outbound.sender(clock=lambda: NIGHT, quiet_hours="08:00-21:00")

    assert sender.send_one(message_id) == "deferred"

    row = outbound.message(message_id)
    assert (row.status, row.send_at) == (MessageStatus.QUEUED, HAWAII_MORNING)
    assert outbound.scheduled == [(message_id, HAWAII_MORNING)]
    assert outbound.stub.received == []


# --- the services refuse to start ----------------------------------------------------------


def test_the_start_check_names_what_is_missing_and_what_to_install(
    zone_database: ZoneDatabase,
) -> None:
    require_zone_data(FEDERAL)  # the real database: nothing to say

    zone_database(name for name in NAMED if name != "America/Los_Angeles")
    with pytest.raises(ZoneDataMissing) as one_missing:
        require_zone_data(FEDERAL)
    assert str(one_missing.value) == (
        f"quiet hours cannot be applied: the time-zone database lacks 1 of the {len(NAMED)} "
        "zones phonenumbers uses (America/Los_Angeles); install the tzdata package "
        "(pip install --upgrade tzdata) or the system's tzdata"
    )
    require_zone_data(None)  # quiet hours off: no zone is needed


def test_the_start_check_without_any_zone(zone_database: ZoneDatabase) -> None:
    zone_database([])
    with pytest.raises(ZoneDataMissing) as none:
        require_zone_data(FEDERAL)
    message = str(none.value)
    assert f"lacks {len(NAMED)} of the {len(NAMED)} zones" in message
    assert f"({', '.join(NAMED[:3])}, ...)" in message
    assert "\n" not in message


def test_create_app_refuses_to_start_without_the_zones(
    zone_database: ZoneDatabase, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'optgate.db'}")
    zone_database([])

    with pytest.raises(ZoneDataMissing):
        create_app(settings)

    app = create_app(settings.replace(quiet_hours="off"))
    app.extensions["optgate.database"].dispose()


def without_zones(tmp_path: Path, *, system_zones: bool = False) -> dict[str, str]:
    """The command's environment: tzdata not importable; no system zones either unless
    ``system_zones``."""
    shadow = tmp_path / "shadow" / "tzdata"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")  # a tzdata with no zoneinfo inside
    empty = tmp_path / "no-zones"
    empty.mkdir()
    values = {"PYTHONPATH": str(shadow.parent)}
    if not system_zones:
        values["PYTHONTZPATH"] = str(empty)
    return values


def test_worker_refuses_to_start_without_the_zones_with_one_line(tmp_path: Path) -> None:
    # A Redis that is not there: a worker that wrongly started fails fast, touching no one's.
    env = environment(
        tmp_path, OPTGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **without_zones(tmp_path)
    )

    with cleaned_up(tmp_path):
        result = run(["worker", "--burst"], env, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: quiet hours cannot be applied: ")
    assert "pip install --upgrade tzdata" in result.stderr


@pytest.mark.redis
def test_worker_starts_on_the_systems_zones_without_the_tzdata_package(
    tmp_path: Path, redis_url: str
) -> None:
    """The check asks for the zones, not for a package: the system's database does."""
    env = environment(
        tmp_path, OPTGATE_REDIS_URL=redis_url, **without_zones(tmp_path, system_zones=True)
    )

    with cleaned_up(tmp_path):
        result = run(["worker", "--burst"], env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_web_refuses_to_start_without_the_zones(tmp_path: Path) -> None:
    env = environment(tmp_path, **without_zones(tmp_path))

    with cleaned_up(tmp_path):
        web = start(["web", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"], env, tmp_path)
        try:
            code = web.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"optgate web kept running without zone data\n{output(tmp_path)}")

    # Checked before gunicorn starts: exit 1 and one line.
    assert code == 1, output(tmp_path)
    lines = (tmp_path / "stderr.txt").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: quiet hours cannot be applied: "), lines
