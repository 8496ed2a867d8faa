"""The ``optgate`` command.

Every error ends the command with exit code 1 and one line on stderr that
says what is wrong and what would work; a traceback is printed only when
OPTGATE_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from functools import cached_property

import click
import redis
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.db import Database
from app.errors import OptgateError
from app.keywords.config import ConfigError
from app.logs import mask_text
from app.settings import Settings


class Context:
    """What commands share: the settings and the database, built on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        return self._settings or Settings.from_env()

    @cached_property
    def database(self) -> Database:
        return Database(self.settings.database_url)


pass_context = click.make_pass_decorator(Context, ensure=True)

#: Options several commands share.
organization_option = click.option(
    "--organization", help="Organization (default: the only one there is)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
@click.version_option(package_name="optgate")
def cli() -> None:
    """optgate: the SMS consent gateway."""


def _register() -> None:
    from app.cli import consent, db, keywords, lines, outbound, reports, run

    cli.add_command(db.db)
    cli.add_command(lines.lines)
    cli.add_command(consent.consent)
    consent.consent.add_command(reports.export)
    consent.consent.add_command(reports.snapshot)
    consent.consent.add_command(reports.import_)
    cli.add_command(keywords.keywords)
    cli.add_command(run.web)
    cli.add_command(run.worker)
    cli.add_command(run.dev)
    cli.add_command(outbound.send)
    cli.add_command(outbound.requeue)


_register()


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
    except ConfigError as error:
        # keywords.yaml: every problem on its own line, as PATH:LINE: message.
        for problem in error.problems:
            click.echo(str(problem), err=True)
        return 1
    except OptgateError as error:
        return _fail(error.message)
    except OperationalError as error:
        return _fail(f"cannot use the database: {_first_line(error.orig or error)}")
    except SQLAlchemyError as error:
        return _fail(f"database error: {_first_line(error)}")
    except redis.RedisError as error:
        # A worker whose Redis went away: it stops after the job in hand (sends
        # live in the database), and its supervisor starts it again.
        return _fail(
            f"cannot use Redis: {_first_line(error)} (check OPTGATE_REDIS_URL; once Redis "
            "is back, `optgate requeue` enqueues what it lost)"
        )
    except Exception as error:
        return _fail(
            f"unexpected {type(error).__name__}: {_first_line(error)} "
            "(set OPTGATE_DEBUG=1 to see where)"
        )
    # Without standalone mode, click returns ctx.exit(code) as the result.
    return result if isinstance(result, int) else 0


def _fail(message: str) -> int:
    if os.environ.get("OPTGATE_DEBUG") == "1":
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    return 1


def _first_line(error: BaseException) -> str:
    # Masked: a worker's or web server's last words land in the service's logs,
    # and a database's or library's text may quote a number or a secret.
    text = mask_text(str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
