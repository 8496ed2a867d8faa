"""A bad keywords.yaml edit while gunicorn is busy: no request fails, the last good rules stay.

Real gunicorn (2 workers) answers signed HELP texts from four threads without a
pause while the file is edited the way people and tools edit it: truncated and
written in two steps, broken YAML, a rule that does not validate, removed for a
moment (an editor's save by rename), and finally a good edit. Every request must
be answered 200 with the reply of a config that was good; the bad versions never
answer anything; the good edit is in force in both workers within seconds.
"""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN, free_port
from tests.processes.test_processes import (
    cleaned_up,
    environment,
    output,
    run,
    start,
    twilio_request,
    wait_ready,
)

SHORT_CODE = "12345"  # optgate answers HELP itself on a short code
OLD, NEW = "Acme Motors", "Acme Cars"


def help_text(base: str, number: int) -> tuple[int, str]:
    url = f"{base}/webhooks/twilio/messages"
    params = {
        "MessageSid": f"SM{number:032x}",
        "AccountSid": TWILIO_SID,
        "From": f"+1415600{number % 10000:04d}",
        "To": SHORT_CODE,
        "Body": "HELP",
    }
    request = twilio_request(url, params)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def brand_of(answer: str) -> str | None:
    found = re.search(r"<Message>([^:<]+): For help", answer)
    return found.group(1) if found else None


@pytest.mark.slow
@pytest.mark.redis
def test_a_bad_keywords_edit_under_load_fails_no_request_and_keeps_the_last_good_rules(
    redis_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "keywords.yaml"
    shutil.copy(SHIPPED_KEYWORDS, rules)
    good = rules.read_text(encoding="utf-8")
    assert f"brand: {OLD}" in good
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(
        tmp_path,
        OPTGATE_DATABASE_URL=f"sqlite:///{tmp_path}/load.sqlite3",
        OPTGATE_REDIS_URL=redis_url,
        OPTGATE_KEYWORDS=str(rules),
        # Texts go to a line nobody added: it is registered here (tests/test_new_lines.py).
        OPTGATE_DEFAULT_ORGANIZATION="default",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
    )
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    answers: list[tuple[float, int, str | None]] = []
    failures: list[str] = []
    stopping = threading.Event()
    numbers = iter(range(1, 10**9))
    lock = threading.Lock()

    def load() -> None:
        while not stopping.is_set():
            with lock:
                number = next(numbers)
            try:
                status, body = help_text(base, number)
            except OSError as error:  # a refused or dropped connection is a failed request
                failures.append(repr(error))
                continue
            answers.append((time.monotonic(), status, brand_of(body)))
            if status != 200:
                failures.append(f"{status}: {body[:200]}")

    with cleaned_up(tmp_path):
        web = start(["web", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env, tmp_path)
        wait_ready(base, web, tmp_path, timeout=20)
        threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        # An editor's non-atomic save: truncated, then half written, then broken YAML.
        rules.write_text("", encoding="utf-8")
        time.sleep(0.5)
        rules.write_text(good[: len(good) // 2], encoding="utf-8")
        time.sleep(1.5)
        rules.write_text(good.replace("brand: Acme Motors", "brand: [Acme"), encoding="utf-8")
        time.sleep(1.5)
        # Valid YAML, invalid rules: an opt-out keyword that is also an opt-in one.
        rules.write_text(
            good.replace(f"brand: {OLD}", f"brand: {NEW}") + "\nopt_in:\n  keywords: [STOP]\n",
            encoding="utf-8",
        )
        time.sleep(1.5)
        rules.unlink()  # an editor saving by rename: gone for a moment
        time.sleep(1.5)
        bad_until = time.monotonic()
        (tmp_path / "keywords.yaml.new").write_text(
            good.replace(f"brand: {OLD}", f"brand: {NEW}"), encoding="utf-8"
        )
        (tmp_path / "keywords.yaml.new").rename(rules)
        time.sleep(4)
        stopping.set()
        for thread in threads:
            thread.join(15)
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=15)

    assert failures == [], f"{len(failures)} failed, first: {failures[:3]}\n{output(tmp_path)}"
    brands = Counter(brand for _at, _status, brand in answers)
    assert set(brands) == {OLD, NEW}, brands  # every answer from a good config
    assert all(brand == OLD for at, _status, brand in answers if at < bad_until)
    # The good edit is in force in both workers: the last answers are all new.
    last = [brand for _at, _status, brand in answers[-40:]]
    assert last == [NEW] * len(last), last
    assert len(answers) > 200, f"only {len(answers)} requests: not much of a load"
