"""A running service picks up an edited keywords.yaml; a bad edit keeps the last good rules."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.keywords import ConfigError
from app.keywords.intent import Action
from app.keywords.store import KeywordStore
from app.settings import Settings
from tests.conftest import SHIPPED_KEYWORDS


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def keywords_file(tmp_path: Path) -> Path:
    path = tmp_path / "keywords.yaml"
    shutil.copy(SHIPPED_KEYWORDS, path)
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(keywords_file: Path, clock: Clock) -> KeywordStore:
    return KeywordStore(keywords_file, clock=clock)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_good_edit_is_used_after_the_next_look(
    store: KeywordStore, keywords_file: Path, clock: Clock
) -> None:
    assert store.matcher.match("OPENING").action is Action.NONE
    edit(keywords_file, "    keywords: [HOURS]", "    keywords: [HOURS, OPENING]")
    clock.tick()
    assert store.matcher.match("OPENING").responder == "hours"
    assert store.status() == "ok"


def test_it_looks_at_the_file_at_most_once_a_second(
    store: KeywordStore, keywords_file: Path, clock: Clock
) -> None:
    edit(keywords_file, "    keywords: [HOURS]", "    keywords: [HOURS, OPENING]")
    clock.tick(0.5)
    assert store.matcher.match("OPENING").action is Action.NONE
    clock.tick(0.5)
    assert store.matcher.match("OPENING").responder == "hours"


def test_two_quick_saves_of_the_same_size_are_both_seen(
    store: KeywordStore, keywords_file: Path, clock: Clock
) -> None:
    # Modification times can be too coarse to tell two saves apart; contents are not.
    edit(keywords_file, "brand: Acme Motors", "brand: Acme Motorz")
    clock.tick()
    assert store.matcher.match("STOP").reply.startswith("Acme Motorz:")  # type: ignore[union-attr]
    edit(keywords_file, "brand: Acme Motorz", "brand: Acme Motorx")
    clock.tick()
    assert store.matcher.match("STOP").reply.startswith("Acme Motorx:")  # type: ignore[union-attr]


def test_a_bad_edit_keeps_the_last_good_rules_and_says_why(
    store: KeywordStore, keywords_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    edit(keywords_file, "    keywords: [HOURS]", "    keywords: [HOURS, OPENING]")
    clock.tick()
    assert store.matcher.match("OPENING").responder == "hours"

    # A marketer removes STOP and misspells a key in one save.
    edit(keywords_file, "  keywords: [STOP, STOPALL,", "  keywords: [STOPALL,")
    edit(keywords_file, '    reply: "{brand}: Open', '    repy: "{brand}: Open')
    clock.tick()
    caplog.clear()  # what the good edit logged (when an earlier test let INFO through)
    with caplog.at_level(logging.ERROR, logger="optgate.keywords"):
        matcher = store.matcher

    assert matcher.match("STOP").action is Action.OPT_OUT
    assert matcher.match("OPENING").responder == "hours"
    assert store.problem is not None
    lines = keywords_file.read_text().splitlines()
    where = [lines.index(line) + 1 for line in lines if "[STOPALL," in line or "repy:" in line]
    hours = lines.index("  hours:") + 1
    assert [str(p).split(": ")[0] for p in store.problem.problems] == [
        f"{keywords_file}:{where[0]}",  # STOP removed
        f"{keywords_file}:{hours}",  # the responder now has no reply
        f"{keywords_file}:{where[1]}",  # the misspelt key
    ]
    status = store.status()
    assert status.startswith(f"{keywords_file} has 3 errors; the config loaded at ")
    assert "stays in force. First: " in status and "STOP is missing" in status
    [record] = caplog.records
    assert "STOP is missing" in record.getMessage()

    # Looking again at the same bad file logs nothing new.
    clock.tick()
    with caplog.at_level(logging.ERROR, logger="optgate.keywords"):
        store.matcher.match("STOP")
    assert len(caplog.records) == 1


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_reverting_a_bad_edit_to_the_identical_good_bytes_clears_the_problem(
    store: KeywordStore, keywords_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    good = keywords_file.read_bytes()
    edit(keywords_file, "  keywords: [START, UNSTOP, YES]", "  keywords: [UNSTOP, YES]")
    clock.tick()
    assert "START is missing" in store.status()

    keywords_file.write_bytes(good)  # what `git checkout keywords.yaml` or an editor's undo does
    clock.tick()  # one poll later

    with caplog.at_level(logging.INFO, logger="optgate.keywords"):
        assert store.status() == "ok"
    assert store.problem is None
    assert store.matcher.match("START").action is Action.OPT_IN
    assert any("back to the config in force" in r.getMessage() for r in caplog.records)
    # Said once: later polls of the same good file log nothing.
    caplog.clear()
    for _ in range(3):
        clock.tick()
        with caplog.at_level(logging.INFO, logger="optgate.keywords"):
            assert store.status() == "ok"
    assert caplog.records == []


def test_the_same_bad_edit_after_a_revert_is_degraded_again(
    store: KeywordStore, keywords_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # good → bad → good (same bytes) → the same bad bytes: the store must not remember
    # the bad file as "seen" once the good one came back.
    good = keywords_file.read_bytes()
    bad = good.replace(b"brand: Acme Motors", b"brand: [oops")
    with caplog.at_level(logging.ERROR, logger="optgate.keywords"):
        for _ in range(2):
            keywords_file.write_bytes(bad)
            clock.tick()
            assert store.status() != "ok"
            keywords_file.write_bytes(good)
            clock.tick()
            assert store.status() == "ok"
    assert len(errors_logged(caplog)) == 2


@pytest.mark.parametrize(
    ("bad", "brand"),
    [
        (("brand: Acme Motors", "brand: [oops"), "Acme Cars"),
        (("  keywords: [START, UNSTOP, YES]", "  keywords: [YES]"), "Acme Trucks"),
    ],
    ids=["fixing the file", "a different good edit"],
)
def test_a_bad_edit_then_a_good_one_clears_the_problem(
    store: KeywordStore, keywords_file: Path, clock: Clock, bad: tuple[str, str], brand: str
) -> None:
    good = keywords_file.read_text()
    keywords_file.write_text(good.replace(*bad))
    clock.tick()
    assert store.status() != "ok"
    keywords_file.write_text(good.replace("brand: Acme Motors", f"brand: {brand}"))
    clock.tick()
    assert store.status() == "ok"
    assert store.matcher.match("HELP").reply.startswith(f"{brand}:")  # type: ignore[union-attr]


def test_saving_the_same_bad_bytes_again_stays_degraded_and_logs_once(
    store: KeywordStore, keywords_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    bad = keywords_file.read_bytes().replace(
        b"  keywords: [START, UNSTOP,", b"  keywords: [UNSTOP,"
    )
    with caplog.at_level(logging.ERROR, logger="optgate.keywords"):
        for _ in range(5):  # saved again and again, looked at on every poll
            keywords_file.write_bytes(bad)
            clock.tick()
            assert "START is missing" in store.status()
            assert store.matcher.match("START").action is Action.OPT_IN  # the last good rules
    assert len(errors_logged(caplog)) == 1


def test_a_deleted_file_keeps_the_last_rules(
    store: KeywordStore, keywords_file: Path, clock: Clock
) -> None:
    keywords_file.unlink()
    clock.tick()
    assert store.matcher.match("STOP").action is Action.OPT_OUT
    assert "no such file (set OPTGATE_KEYWORDS to its path)" in store.status()


def test_a_service_does_not_start_without_good_rules(tmp_path: Path) -> None:
    bad = tmp_path / "keywords.yaml"
    bad.write_text("brand: Acme\n")
    with pytest.raises(ConfigError) as raised:
        KeywordStore(bad)
    assert str(raised.value).startswith(f"{bad}:1: opt_out: missing")


@pytest.fixture
def app(
    keywords_file: Path,
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
) -> Iterator[Flask]:
    application = create_app(
        make_settings(
            database_url=clean_database_url, redis_url=redis_url, keywords_path=keywords_file
        )
    )
    yield application
    application.extensions["optgate.database"].dispose()


@pytest.mark.redis
def test_readyz_reports_a_bad_edit_but_stays_ready(app: Flask, keywords_file: Path) -> None:
    client = app.test_client()
    assert client.get("/readyz").get_json()["status"] == "ready"

    edit(keywords_file, "  keywords: [START, UNSTOP, YES]", "  keywords: [UNSTOP, YES]")
    app.extensions["optgate.keywords"].refresh(force=True)

    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert "START is missing" in body["checks"]["keywords"]
    assert (body["checks"]["database"], body["checks"]["redis"]) == ("ok", "ok")


@pytest.mark.redis
def test_readyz_is_ready_again_after_a_bad_edit_is_reverted(
    app: Flask, keywords_file: Path
) -> None:
    # Through the service's own watcher thread (create_app starts it), not a forced look.
    store: KeywordStore = app.extensions["optgate.keywords"]
    store.check_every = 0.02
    client = app.test_client()
    good = keywords_file.read_bytes()

    def readyz_status(expected: str) -> dict[str, str]:
        deadline = time.monotonic() + 5
        while True:
            response = client.get("/readyz")
            assert response.status_code == 200
            body: dict[str, str] = response.get_json()
            if body["status"] == expected or time.monotonic() > deadline:
                return body
            time.sleep(0.02)

    assert readyz_status("ready")["status"] == "ready"
    keywords_file.write_bytes(good.replace(b"  keywords: [START, UNSTOP,", b"  keywords: [UNSTOP,"))
    assert readyz_status("degraded")["status"] == "degraded"
    keywords_file.write_bytes(good)
    body = readyz_status("ready")
    assert body["status"] == "ready", body
    assert body["checks"]["keywords"] == "ok"


def test_a_watching_store_reloads_by_itself(keywords_file: Path) -> None:
    store = KeywordStore(keywords_file, check_every=0.02)
    store.watch()
    edit(keywords_file, "brand: Acme Motors", "brand: Acme Watched")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if store.matcher.match("HELP").reply.startswith("Acme Watched:"):  # type: ignore[union-attr]
            break
        time.sleep(0.02)
    assert store.matcher.match("HELP").reply.startswith("Acme Watched:")  # type: ignore[union-attr]


def test_a_watched_store_does_not_reload_on_the_request_path(
    keywords_file: Path, clock: Clock
) -> None:
    store = KeywordStore(keywords_file, clock=clock, check_every=3600)
    store.watch()
    edit(keywords_file, "brand: Acme Motors", "brand: Acme Later")
    clock.tick(7200)
    # Only the watcher thread (here: not before an hour) reloads, never a caller.
    assert store.matcher.match("HELP").reply.startswith("Acme Motors:")  # type: ignore[union-attr]


def test_warnings_of_the_rules_are_logged_at_start_as_on_a_reload(
    keywords_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = keywords_file.read_text(encoding="utf-8")
    help_reply = 'visit acme.example/sms. Msg & data rates may apply. Reply STOP to unsubscribe."'
    assert help_reply in text
    keywords_file.write_text(text.replace(help_reply, 'visit acme.example/sms."'), encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="optgate"):
        KeywordStore(keywords_file)

    assert any("help.reply: should say how to opt out" in r.getMessage() for r in caplog.records)
