"""A local stand-in for Twilio's Messages API: the network edge, and nothing more.

It answers ``POST /2010-04-01/Accounts/<sid>/Messages.json`` the way Twilio
does (201 and a message resource with a fresh SID), after an optional delay,
and records every request with the moment it arrived. Per-recipient answers
(an error code, a 5xx, a hang) let tests drive every branch of the worker.
The worker tests, the process tests and bench/outbound.py all use it.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Received:
    """A send the stub received."""

    to: str
    sender: str
    body: str
    status_callback: str | None
    #: time.monotonic() when the request arrived (before any delay).
    at: float
    form: dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | None = None
    #: Seconds to wait before answering.
    delay: float = 0.0


def twilio_error(code: int, message: str, status: int = 400) -> Answer:
    return Answer(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


@dataclass
class TwilioStub:
    url: str = ""
    #: Seconds every send waits before it is answered (a real provider's latency).
    delay: float = 0.0
    #: Answers for particular recipients (the rest get 201).
    answers: dict[str, Answer] = field(default_factory=dict)
    #: Seconds a send to these recipients is held before it arrives (a slow network:
    #: the request is on its way, and counts as received only then).
    holds: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def sent_to(self, recipient: str) -> list[Received]:
        return [seen for seen in self.received if seen.to == recipient]

    def count_by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for seen in list(self.received):
            counts[seen.to] = counts.get(seen.to, 0) + 1
        return counts

    def _answer(self, form: dict[str, str]) -> Answer:
        arrived = time.monotonic()
        with self._lock:
            self.received.append(
                Received(
                    to=form.get("To", ""),
                    sender=form.get("From", form.get("MessagingServiceSid", "")),
                    body=form.get("Body", ""),
                    status_callback=form.get("StatusCallback"),
                    at=arrived,
                    form=form,
                )
            )
            sid = f"SMfeed{next(self._sids):028x}"  # never one of the tests' inbound SIDs
        answer = self.answers.get(form.get("To", ""))
        if answer is not None:
            return Answer(answer.status, answer.body, answer.delay or self.delay)
        return Answer(201, _created(sid, form), self.delay)


def _created(sid: str, form: dict[str, str]) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": "AC" + "0" * 32,
        "status": "queued",
        "to": form.get("To"),
        "from": form.get("From"),
        "body": form.get("Body"),
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/AC/Messages/{sid}.json",
    }


@contextmanager
def running_stub(port: int, delay: float = 0.0) -> Iterator[TwilioStub]:
    """A stub listening on 127.0.0.1:``port`` until the block ends."""
    stub = TwilioStub(url=f"http://127.0.0.1:{port}", delay=delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as api.twilio.com

        def setup(self) -> None:
            super().setup()
            # As a real server does: headers and body leave at once instead of
            # waiting out Nagle against the client's delayed ACK (~40 ms a send).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
            hold = stub.holds.get(form.get("To", ""))
            if hold:
                time.sleep(hold)
            answer = stub._answer(form)
            if answer.delay:
                time.sleep(answer.delay)
            payload = json.dumps(answer.body or {}).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (a timeout test, a killed worker)

    server = Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
