"""``optgate db``: schema migrations."""

from __future__ import annotations

import click

from app.cli import Context, pass_context
from app.data import migrate


@click.group()
def db() -> None:
    """Create and migrate the database schema."""


@db.command()
@pass_context
def upgrade(context: Context) -> None:
    """Bring the database to the newest schema (creates it on first run)."""
    settings = context.settings
    migrate.upgrade(settings.database_url)
    click.echo(f"database {settings.safe_database_url()} is at {migrate.head_revision()}")


@db.command()
@pass_context
def check(context: Context) -> None:
    """Fail when the models and the migrations have drifted apart."""
    engine = context.database.engine
    current = migrate.current_revision(engine)
    if current != migrate.head_revision():
        raise click.ClickException(
            f"the database is at {current or 'no revision'}, not {migrate.head_revision()}: "
            "run `optgate db upgrade` first"
        )
    differences = migrate.drift(engine)
    if differences:
        raise click.ClickException(
            f"the models differ from the migrations ({differences[0]!r}, ...): "
            "write a migration with `optgate db revision -m '...'`"
        )
    click.echo("models and migrations agree")


@db.command()
@click.option("-m", "--message", required=True, help="What the migration does.")
@pass_context
def revision(context: Context, message: str) -> None:
    """Write a new migration from the models (for developers)."""
    migrate.revision(context.settings.database_url, message)
