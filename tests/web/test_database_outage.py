"""The database goes away and comes back: webhooks answer 503, nothing is half-written, and
the service recovers by itself.

The app reaches PostgreSQL through a TCP proxy that the test can cut (every
connection dropped, new ones refused) and restore, in the middle of a request
if it likes. Twilio retries a webhook that did not get a 2xx, so "recovered"
means: the retried STOP is applied exactly once, by the same app, without a
restart.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from app.addresses import normalize
from app.consent import queries
from app.data.db import Database
from app.data.models import ConsentEvent, Message, Organization
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, truncate

MESSAGES = "/webhooks/twilio/messages"
LINE = "+14155550100"


class CuttableProxy:
    """127.0.0.1:<port> → the database, until ``cut()``; again after ``restore()``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a database that died would."""
        assert self._listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def through_proxy(postgres_url: str) -> Iterator[tuple[str, CuttableProxy]]:
    url = make_url(postgres_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxied, proxy
    with contextlib.suppress(AssertionError):
        proxy.cut()
    truncate(postgres_url)


def stop(client: Any, number: str, message_id: str) -> Any:
    params = {
        "MessageSid": message_id,
        "AccountSid": TWILIO_SID,
        "From": number,
        "To": LINE,
        "Body": "STOP",
    }
    url = "http://localhost" + MESSAGES
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, MultiDict(params))
    return client.post(MESSAGES, data=params, headers={"X-Twilio-Signature": signature})


def stored(postgres_url: str, number: str) -> tuple[int, int, str]:
    """(messages from ``number``, its history events, its status on the line)."""
    database = Database(postgres_url)
    with database.sessions() as session:
        messages = session.scalar(
            sa.select(sa.func.count()).select_from(Message).where(Message.address == number)
        )
        events = session.scalar(
            sa.select(sa.func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.address == number)
        )
        org = session.scalars(sa.select(Organization)).one()
        status = queries.address_status(session, org, normalize(number)).entries[0].overall
    database.dispose()
    return int(messages or 0), int(events or 0), status.status.value


@pytest.mark.postgres
def test_webhooks_answer_503_while_the_database_is_gone_and_recover_by_themselves(
    make_settings: Callable[..., Settings],
    postgres_url: str,
    through_proxy: tuple[str, CuttableProxy],
) -> None:
    proxied, proxy = through_proxy
    app = create_app(make_settings(database_url=proxied))
    client = app.test_client()
    assert stop(client, "+14155550101", "SM" + "1" * 32).status_code == 200

    proxy.cut()
    gone = stop(client, "+14155550102", "SM" + "2" * 32)
    ready = client.get("/readyz")
    proxy.restore()

    assert gone.status_code == 503
    assert gone.get_json()["error"] == "ServiceUnavailable"
    assert ready.status_code == 503
    assert stored(postgres_url, "+14155550102") == (0, 0, "not_defined")
    # Twilio retries; the same app, not restarted, applies it once.
    assert stop(client, "+14155550102", "SM" + "2" * 32).status_code == 200
    assert stop(client, "+14155550102", "SM" + "2" * 32).status_code == 200
    assert stored(postgres_url, "+14155550102") == (1, 1, "opted_out")
    assert client.get("/readyz").status_code == 200
    app.extensions["optgate.database"].dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "after", ["INSERT INTO messages", "INSERT INTO consent_records", "INSERT INTO consent_events"]
)
def test_a_database_lost_in_the_middle_of_a_stop_leaves_nothing_half_written(
    make_settings: Callable[..., Settings],
    postgres_url: str,
    through_proxy: tuple[str, CuttableProxy],
    after: str,
) -> None:
    proxied, proxy = through_proxy
    app = create_app(make_settings(database_url=proxied))
    engine = app.extensions["optgate.database"].engine
    client = app.test_client()
    assert stop(client, "+14155550101", "SM" + "1" * 32).status_code == 200  # connections warm
    cut: list[str] = []

    def cut_after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not cut and statement.startswith(after):
            cut.append(statement)
            proxy.cut()

    sa.event.listen(engine, "after_cursor_execute", cut_after)
    try:
        lost = stop(client, "+14155550103", "SM" + "3" * 32)
    finally:
        sa.event.remove(engine, "after_cursor_execute", cut_after)
        proxy.restore()

    assert cut, f"the request never ran {after}"
    assert lost.status_code == 503, lost.get_data(as_text=True)
    assert stored(postgres_url, "+14155550103") == (0, 0, "not_defined")
    assert stop(client, "+14155550103", "SM" + "3" * 32).status_code == 200
    assert stored(postgres_url, "+14155550103") == (1, 1, "opted_out")
    app.extensions["optgate.database"].dispose()


@pytest.mark.postgres
def test_a_stop_to_a_read_only_database_answers_503_and_its_retry_is_applied(
    make_settings: Callable[..., Settings], postgres_url: str
) -> None:
    """A standby after a failover (here: default_transaction_read_only) refuses writes with
    SQLSTATE 25006, which psycopg raises as InternalError: still 503, so Twilio retries."""
    name = make_url(postgres_url).database
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def read_only(setting: str) -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" {setting}')

    app = create_app(make_settings(database_url=postgres_url))
    client = app.test_client()
    try:
        read_only("SET default_transaction_read_only = on")
        app.extensions["optgate.database"].engine.dispose()  # new connections: read-only
        refused = stop(client, "+14155550104", "SM" + "4" * 32)
        read_only("RESET default_transaction_read_only")
        app.extensions["optgate.database"].engine.dispose()

        assert refused.status_code == 503, refused.get_data(as_text=True)
        assert refused.get_json()["error"] == "ServiceUnavailable"
        assert stop(client, "+14155550104", "SM" + "4" * 32).status_code == 200
        assert stored(postgres_url, "+14155550104") == (1, 1, "opted_out")
    finally:
        read_only("RESET default_transaction_read_only")
        admin.dispose()
        app.extensions["optgate.database"].dispose()
