"""The layers hold in the running process, not only in the source.

Domain code imports no web framework, queue or provider SDK (docs/architecture.md).
A source-level rule is not enough: Python runs a package's ``__init__`` before any
submodule, so one import in ``app/__init__.py`` once loaded Flask, Werkzeug and the
Twilio SDK into every worker and CLI command. Each domain package is imported here
in a fresh interpreter, and what it loaded is checked.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parents[1]
#: What domain code must never load: the web stack, the queue, the provider SDKs.
FORBIDDEN = ("flask", "werkzeug", "rq", "twilio")
#: The domain: everything but the web layer, the adapters' SDK modules, the CLI's
#: web commands and the runtime (which starts the web server).
DOMAIN = ("app.addresses", "app.errors", "app.lines", "app.logs", "app.settings",
          "app.accounts", "app.consent", "app.data", "app.keywords", "app.messages",
          "app.sending", "app.providers")  # fmt: skip
#: Modules that may load them by design.
ALLOWED = {
    # The Twilio adapter is the one module allowed its SDK.
    "app.providers.twilio",
    # Alembic runs env.py inside a migration; importing it alone does nothing useful.
    "app.data.migrations.env",
}


def _modules(package: str) -> list[str]:
    module = __import__(package, fromlist=["_"])
    if not hasattr(module, "__path__"):
        return [package]
    found = [package]
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
        if info.name not in ALLOWED and ".migrations.versions" not in info.name:
            found.append(info.name)
    return found


def _loaded_by(modules: list[str]) -> list[str]:
    """The forbidden top-level packages a fresh interpreter has after importing ``modules``."""
    program = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("package", DOMAIN)
def test_a_domain_package_loads_no_web_framework_queue_or_provider_sdk(package: str) -> None:
    assert _loaded_by(_modules(package)) == []


def test_the_worker_job_and_the_cli_load_no_web_framework() -> None:
    # The worker needs RQ, of course; not Flask. The CLI loads Flask only for `web` and `dev`.
    assert set(_loaded_by(["workers.outbound", "app.cli"])) <= {"rq"}


def test_create_app_is_still_importable_from_app_and_builds_on_first_call() -> None:
    assert callable(app.create_app)
    assert _loaded_by(["app"]) == []


def test_the_test_itself_can_fail() -> None:
    # The check sees a forbidden import when there is one.
    assert {"flask", "werkzeug"} <= set(_loaded_by(["app.web.factory"]))
