"""Create the project's virtual environment on any machine with Python >= 3.11.

Debian and Ubuntu ship Python without ``ensurepip`` unless the python3-venv
package is installed, so ``python3 -m venv`` fails there. Then we create the
environment without pip and install pip from its wheel on PyPI, which needs
nothing but the standard library.

Usage: python3 scripts/make_venv.py .venv [--without-ensurepip]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PYPI_PIP = "https://pypi.org/pypi/pip/json"


def main(argv: list[str]) -> int:
    # This script runs under whatever python3 the machine has: say so plainly if it is too old.
    if sys.version_info < (3, 11):  # noqa: UP036
        found = ".".join(map(str, sys.version_info[:3]))
        print(
            f"optgate needs Python 3.11 or newer, and {sys.executable} is {found}: "
            "install python3.11 (or newer) and run `make PYTHON=python3.11 ...`",
            file=sys.stderr,
        )
        return 1
    target = Path(argv[0] if argv else ".venv")
    if "--without-ensurepip" not in argv:
        try:
            venv.create(target, with_pip=True, clear=True)
            return 0
        except (subprocess.CalledProcessError, OSError) as error:
            print(f"venv with pip failed ({error}); installing pip from PyPI", file=sys.stderr)
    venv.create(target, with_pip=False, clear=True)
    _install_pip(target / "bin" / "python")
    return 0


def _install_pip(python: Path) -> None:
    with urllib.request.urlopen(PYPI_PIP, timeout=60) as response:
        release = json.load(response)
    wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / wheel["filename"]
        # Mirrors may answer with a URL relative to the JSON document.
        url = urllib.parse.urljoin(PYPI_PIP, wheel["url"])
        with urllib.request.urlopen(url, timeout=120) as response:
            path.write_bytes(response.read())
        # A pip wheel can run itself: python pip.whl/pip install pip.whl
        subprocess.run([str(python), f"{path}/pip", "install", "--quiet", str(path)], check=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
