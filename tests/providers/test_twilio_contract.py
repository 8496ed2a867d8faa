"""Contract test: the sends TwilioProvider makes are requests the real Twilio API accepts.

``TwilioProvider.send`` goes through the real twilio client to Prism, which
serves Twilio's own published OpenAPI description of the 2010-04-01 API
(``twilio_api_v2010.json``, shipped in the npm package @twilio/cli-core). Prism
checks every request against that description: the path (our account SID's
format), basic auth, the content type (form-encoded), and the form fields (``To``
required; ``MessagingServiceSid`` 34 characters matching ``^MG[0-9a-f]{32}``;
``StatusCallback`` a URI). A request that breaks the contract is answered 422,
which ``send`` turns into a ProviderError, so a SID back means Prism found our
request valid. Prism answers a valid request with the spec's example message
(``SMaaaa…``), whatever we sent.

The negative controls show the mock really rejects bad requests: a form
without ``To`` (422), no credentials (401), and invalid fields sent through our
own adapter (422 → ProviderError).

What the spec does not say, Prism cannot check: it accepts any ``To``/``From``
text (the ``phone-number`` format is not enforced), any credentials, neither
``From`` nor ``MessagingServiceSid``, and a ``Body`` of any length (no
``maxLength``; Twilio's 1,600-character limit is in prose only).

Prism and the spec are installed once into ~/.cache/optgate-tests/prism (npm,
about 20 s) and reused by later runs. Without Node/npm, or if the install fails,
the tests are skipped, and under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from app.providers.base import Outgoing, ProviderError
from app.providers.twilio import TwilioProvider
from app.settings import Settings
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, free_port, unavailable

PRISM_CLI_VERSION = "5.14.2"
#: The npm package that ships Twilio's OpenAPI files, and the one file we serve.
TWILIO_CLI_CORE_VERSION = "9.0.0"
SPEC_MEMBER = "package/src/services/twilio-api/twilio_api_v2010.json"
SPEC_NAME = "twilio_api_v2010.json"

CACHE_ROOT = Path.home() / ".cache" / "optgate-tests" / "prism"
#: One directory per pair of versions: changing a version above installs afresh.
INSTALL_DIR = (
    CACHE_ROOT / f"prism-cli-{PRISM_CLI_VERSION}_twilio-cli-core-{TWILIO_CLI_CORE_VERSION}"
)
PRISM_PACKAGE = Path("node_modules", "@stoplight", "prism-cli")

INSTALL_TIMEOUT = 300
START_TIMEOUT = 30

MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
SERVICE_SID = "MG" + "0" * 32
STATUS_CALLBACK = "https://sms.example.com/webhooks/twilio/status?message=42"


# -- Prism ------------------------------------------------------------------------------


def _prism_entry(install_dir: Path) -> Path:
    """The JavaScript file npm's ``prism`` command runs (read from its package.json)."""
    package = install_dir / PRISM_PACKAGE
    manifest = json.loads((package / "package.json").read_text(encoding="utf-8"))
    bin_field = manifest["bin"]
    relative = bin_field if isinstance(bin_field, str) else bin_field["prism"]
    return package / relative


def _installed(install_dir: Path) -> bool:
    try:
        return (install_dir / SPEC_NAME).is_file() and _prism_entry(install_dir).is_file()
    except (OSError, ValueError, KeyError):
        return False


def _run(command: list[str], cwd: Path) -> None:
    subprocess.run(
        command,
        cwd=cwd,
        check=True,
        timeout=INSTALL_TIMEOUT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def _install(npm: str) -> None:
    """Install Prism and extract the spec into INSTALL_DIR, all or nothing.

    Everything is built in a scratch directory and renamed into place, so an
    interrupted install leaves nothing half-made, and two runs racing each other
    both end with one complete copy.
    """
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="installing-", dir=CACHE_ROOT))
    try:
        _run([npm, "pack", "--silent", f"@twilio/cli-core@{TWILIO_CLI_CORE_VERSION}"], staging)
        tarball = staging / f"twilio-cli-core-{TWILIO_CLI_CORE_VERSION}.tgz"
        with tarfile.open(tarball) as archive:
            member = archive.extractfile(SPEC_MEMBER)
            if member is None:
                raise KeyError(f"{SPEC_MEMBER} is not a file in {tarball.name}")
            spec = member.read()
        json.loads(spec)  # a truncated or wrong file fails here, not in Prism
        (staging / SPEC_NAME).write_bytes(spec)
        tarball.unlink()
        _run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
                str(staging),
                f"@stoplight/prism-cli@{PRISM_CLI_VERSION}",
            ],
            staging,
        )
        if not _installed(staging):
            raise FileNotFoundError(f"npm installed no prism entry point in {staging}")
        try:
            staging.rename(INSTALL_DIR)
        except OSError:
            if not _installed(INSTALL_DIR):  # not another run's complete copy: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="session")
def prism_install() -> Path:
    """The cached directory holding Prism and Twilio's spec (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("Prism", "node and npm are needed to install and run it")
    assert npm is not None
    if not _installed(INSTALL_DIR):
        try:
            _install(npm)
        except subprocess.CalledProcessError as error:
            output = (error.stderr or error.stdout or "").strip()[-2000:]
            unavailable("Prism", f"{' '.join(error.cmd)} failed ({error.returncode}): {output}")
        except subprocess.TimeoutExpired as error:
            unavailable("Prism", f"{' '.join(error.cmd)} took over {error.timeout} s")
        except (OSError, ValueError, KeyError, tarfile.TarError) as error:
            unavailable("Prism", f"installing into {CACHE_ROOT} failed: {error!r}")
    return INSTALL_DIR


@pytest.fixture(scope="session")
def prism_url(prism_install: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prism mock of Twilio's REST API on 127.0.0.1, stopped after the session."""
    node = shutil.which("node")
    assert node is not None
    port = free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    with log_path.open("wb") as log:
        # Its own process group: the kill below reaches node and anything it forks.
        process = subprocess.Popen(
            [
                node,
                str(_prism_entry(prism_install)),
                "mock",
                str(prism_install / SPEC_NAME),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, process, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            why = (
                f"it exited with {process.returncode}"
                if process.returncode is not None
                else f"port {port} not open after {START_TIMEOUT} s"
            )
            unavailable(
                "Prism",
                f"{why} (cached install: {INSTALL_DIR}; delete it to reinstall)\n{tail}",
            )
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


@pytest.fixture
def twilio(prism_url: str, make_settings: Callable[..., Settings]) -> TwilioProvider:
    return TwilioProvider(make_settings(twilio_api_url=prism_url))


def _assert_message_sid(sid: str) -> None:
    assert sid.startswith("SM")
    assert len(sid) == 34


# -- sends the contract accepts ---------------------------------------------------------


@pytest.mark.parametrize(
    "service_id", [None, SERVICE_SID], ids=["from a number", "through a messaging service"]
)
def test_a_send_is_valid_for_twilio(twilio: TwilioProvider, service_id: str | None) -> None:
    sid = twilio.send(
        Outgoing(
            sender="+14155550100",
            recipient="+14155550123",
            body="Your code is 1234",
            status_callback=STATUS_CALLBACK,
            service_id=service_id,
        )
    )

    _assert_message_sid(sid)


def test_a_1600_character_unicode_body_is_valid_for_twilio(twilio: TwilioProvider) -> None:
    body = ("Grüße, ¿qué tal? 你好 👋 Ελληνικά — " * 100)[:1600]
    assert len(body) == 1600

    sid = twilio.send(Outgoing(sender="+14155550100", recipient="+14155550123", body=body))

    _assert_message_sid(sid)


# -- negative controls: the mock does reject what breaks the contract -------------------


def test_mock_accepts_a_complete_raw_request(prism_url: str) -> None:
    """The baseline of the two controls below: each differs from this by one omission."""
    response = requests.post(
        prism_url + MESSAGES_PATH,
        data={"To": "+14155550123", "From": "+14155550100", "Body": "hi"},
        auth=(TWILIO_SID, TWILIO_TOKEN),
        timeout=10,
    )

    assert response.status_code == 201, response.text
    _assert_message_sid(response.json()["sid"])


def test_mock_rejects_a_message_without_to(prism_url: str) -> None:
    response = requests.post(
        prism_url + MESSAGES_PATH,
        data={"From": "+14155550100", "Body": "hi"},
        auth=(TWILIO_SID, TWILIO_TOKEN),
        timeout=10,
    )

    assert response.status_code == 422, response.text
    assert "'To'" in response.text


def test_mock_rejects_a_request_without_credentials(prism_url: str) -> None:
    response = requests.post(
        prism_url + MESSAGES_PATH,
        data={"To": "+14155550123", "From": "+14155550100", "Body": "hi"},
        timeout=10,
    )

    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    "outgoing",
    [
        pytest.param(
            Outgoing("+14155550100", "+14155550123", "hi", status_callback="not a url"),
            id="status-callback-not-a-uri",
        ),
        pytest.param(
            Outgoing("+14155550100", "+14155550123", "hi", service_id="MG123"),
            id="malformed-messaging-service-sid",
        ),
    ],
)
def test_an_invalid_send_through_the_adapter_is_refused(
    twilio: TwilioProvider, outgoing: Outgoing
) -> None:
    """What the tests above rely on: a request the spec rejects comes back a ProviderError."""
    with pytest.raises(ProviderError) as refused:
        twilio.send(outgoing)

    assert "(422" in str(refused.value)
    assert refused.value.permanent
    assert not refused.value.maybe_sent
