"""The README stays true: two Quickstart commands, CI runs the test one, the
configuration table is the settings the code reads, the Procfile's commands exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from app.cli import cli
from app.settings import SETTINGS

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _quickstart_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", _section("Quickstart"), re.S)
    assert block
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quickstart_is_two_commands_run_then_test() -> None:
    assert _quickstart_commands() == ["make run", "make test"]


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _quickstart_commands()[1] in ci


def test_the_configuration_table_is_the_settings_the_code_reads() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.*) \|$", _section("Configuration"), re.M)
    assert rows == [(setting.variable, setting.description) for setting in SETTINGS]


def test_every_procfile_process_runs_an_optgate_command_that_exists() -> None:
    processes = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(processes) == {"release", "web", "worker"}
    for command in processes.values():
        program, *words = shlex.split(command.replace("${PORT:-8000}", "8000"))
        assert program == "optgate"
        found: click.Command = cli
        while words and isinstance(found, click.Group) and not words[0].startswith("-"):
            name = words.pop(0)
            sub = found.get_command(click.Context(found), name)
            assert sub is not None, f"{command!r}: no command {name!r}"
            found = sub
        assert not isinstance(found, click.Group), f"{command!r} names a group, not a command"
        found.make_context(command, words)  # raises on an unknown option
