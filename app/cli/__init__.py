"""The ``optgate`` command.

Every error ends the command with exit code 1 and one line on stderr that
says what is wrong and what would work; a traceback is printed only when
OPTGATE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING

import click

from app.errors import OptgateError

if TYPE_CHECKING:
    from app.data.db import Database
    from app.settings import Settings


class Context:
    """What commands share: the settings and the database, built on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        from app.settings import Settings

        return self._settings or Settings.from_env()

    @cached_property
    def database(self) -> Database:
        from app.data.db import Database

        return Database(self.settings.database_url)


pass_context = click.make_pass_decorator(Context, ensure=True)

#: Options several commands share.
organization_option = click.option(
    "--organization", help="Organization (default: the only one there is)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


class LazyGroup(click.Group):
    """A group whose commands' modules load only when one of them is used.

    ``optgate --help`` then imports none of them (nor SQLAlchemy, Alembic or
    Redis, which they need): it lists each command's one-line help from
    ``COMMANDS``. tests/test_cli.py checks those lines against the commands'.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            self.add_command(COMMANDS[cmd_name][0](), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (
                name,
                COMMANDS[name][1] if name in COMMANDS else self.commands[name].get_short_help_str(),
            )
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, name: str, limit: int) -> str:
        if name in self.commands:
            return self.commands[name].get_short_help_str(limit)
        # A stand-in with the command's first line, cut as click cuts it.
        return click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)


@click.group(cls=LazyGroup)
@click.version_option(package_name="optgate")
def cli() -> None:
    """optgate: the SMS consent gateway."""


def _command(where: str) -> Callable[[], click.Command]:
    """The command at ``module:name``, imported when called."""
    module, _, name = where.partition(":")

    def load() -> click.Command:
        command: click.Command = getattr(import_module(module), name)
        return command

    return load


def _consent() -> click.Command:
    from app.cli import consent, reports

    for command in (reports.export, reports.snapshot, reports.import_):
        if command.name not in consent.consent.commands:
            consent.consent.add_command(command)
    return consent.consent


#: Each command: how to load it, and its one-line help for ``optgate --help``.
COMMANDS: dict[str, tuple[Callable[[], click.Command], str]] = {
    "db": (_command("app.cli.db:db"), "Create and migrate the database schema."),
    "lines": (
        _command("app.cli.lines:lines"),
        "Add, move and list lines (our numbers and short codes).",
    ),
    "consent": (_consent, "Look up and change consent; read and verify its history."),
    "keywords": (
        _command("app.cli.keywords:keywords"),
        "Check keywords.yaml; try texts against it.",
    ),
    "users": (
        _command("app.cli.users:users"),
        "Add, list and disable console users; set their passwords.",
    ),
    "web": (
        _command("app.cli.run:web"),
        "Serve the web app (webhooks, API, health checks) with gunicorn.",
    ),
    "worker": (_command("app.cli.run:worker"), "Run an RQ worker on optgate's queues."),
    "dev": (
        _command("app.cli.run:dev"),
        "Run everything locally: database schema, Redis, web app and a worker.",
    ),
    "send": (
        _command("app.cli.outbound:send"),
        "Queue one message; a worker decides at send time whether it may go.",
    ),
    "requeue": (
        _command("app.cli.outbound:requeue"),
        "Enqueue again what Redis lost; settle messages that dead workers left mid-send.",
    ),
}


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(
            args=args, prog_name="optgate", standalone_mode=False, obj=Context(settings)
        )
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        return _fail("aborted")
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "optgate"
        return _fail(f"{error.format_message()} (see `{command} --help`)")
    except click.ClickException as error:
        return _fail(error.format_message())
    except Exception as error:
        return _explained(error)
    # Without standalone mode, click returns ctx.exit(code) as the result.
    return result if isinstance(result, int) else 0


def _explained(error: Exception) -> int:
    """Say what went wrong in one line (keywords.yaml: one line per problem); exit code 1.

    The library types are looked up only where their module was loaded: an error
    of a library that was never imported cannot have happened, and importing it
    here would slow down every command.
    """
    config_error = _loaded("app.keywords.problems", "ConfigError")
    if config_error and isinstance(error, config_error):
        # keywords.yaml: every problem on its own line, as PATH:LINE: message.
        for problem in getattr(error, "problems", ()):
            click.echo(str(problem), err=True)
        return 1
    if isinstance(error, OptgateError):
        return _fail(error.message)
    operational = _loaded("sqlalchemy.exc", "OperationalError")
    if operational and isinstance(error, operational):
        return _fail(
            f"cannot use the database: {_first_line(getattr(error, 'orig', None) or error)}"
        )
    database_error = _loaded("sqlalchemy.exc", "SQLAlchemyError")
    if database_error and isinstance(error, database_error):
        return _fail(f"database error: {_first_line(error)}")
    redis_error = _loaded("redis", "RedisError")
    if redis_error and isinstance(error, redis_error):
        # A worker whose Redis went away: it stops after the job in hand (sends
        # live in the database), and its supervisor starts it again.
        return _fail(
            f"cannot use Redis: {_first_line(error)} (check OPTGATE_REDIS_URL; once Redis "
            "is back, `optgate requeue` enqueues what it lost)"
        )
    return _fail(
        f"unexpected {type(error).__name__}: {_first_line(error)} "
        "(set OPTGATE_DEBUG=1 to see where)"
    )


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """``module.name`` if ``module`` is loaded, else None."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _fail(message: str) -> int:
    if os.environ.get("OPTGATE_DEBUG") == "1":
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    return 1


def _first_line(error: BaseException) -> str:
    # Masked: a worker's or web server's last words land in the service's logs,
    # and a database's or library's text may quote a number or a secret.
    from app.logs import mask_text  # only when something failed: it loads SQLAlchemy

    text = mask_text(str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
