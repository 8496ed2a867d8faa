"""How long commands take to start, as multiples of a bare ``python -c pass``.

Every optgate process pays its imports before it does anything: a CLI command
an operator types, a worker restarted by its supervisor, a cron'd ``requeue``.
Measured in the same run, in interleaved rounds (the machine's state affects
every case alike), each case as the median wall time of its rounds:

- ``python -c pass``: the interpreter itself, the baseline;
- ``optgate --help``: the command line with no command loaded;
- ``optgate consent show NUMBER``: one real look-up in a fresh SQLite database;
- ``import app.keywords.matcher`` and ``import workers.outbound``: what domain
  code and the worker's job module load;
- ``import app.web.factory``: the web stack, for comparison.

Usage: python bench/startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPTGATE = str(BIN / "optgate")
NUMBER = "+14155550123"


def cases() -> dict[str, list[str]]:
    python = sys.executable
    return {
        "python -c pass": [python, "-c", "pass"],
        "optgate --help": [OPTGATE, "--help"],
        "optgate consent show": [OPTGATE, "consent", "show", NUMBER],
        "import app.keywords.matcher": [python, "-c", "import app.keywords.matcher"],
        "import workers.outbound": [python, "-c", "import workers.outbound"],
        "import app.web.factory": [python, "-c", "import app.web.factory"],
    }


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTGATE_")}
        env["OPTGATE_DATABASE_URL"] = f"sqlite:///{folder}/optgate.sqlite3"
        subprocess.run([OPTGATE, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(
            [OPTGATE, "lines", "add", "+14155550100", "--organization", "acme"],
            env=env,
            check=True,
            capture_output=True,
        )
        measured: dict[str, list[float]] = {name: [] for name in cases()}
        for command in cases().values():
            timed(command, env)  # warm the file cache and the bytecode once
        for _ in range(args.rounds):
            for name, command in cases().items():
                measured[name].append(timed(command, env))
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, {args.rounds} rounds; median wall time")  # fmt: skip
    base = statistics.median(measured["python -c pass"])
    print(f"{'case':32} {'seconds':>8} {'× python -c pass':>18}")
    for name, times in measured.items():
        median = statistics.median(times)
        print(f"{name:32} {median:8.3f} {median / base:18.1f}")


if __name__ == "__main__":
    main()
