"""``optgate web``, ``optgate worker`` and ``optgate dev``."""

from __future__ import annotations

import click

from app.cli import Context, pass_context


@click.command()
@click.option(
    "--bind",
    default="127.0.0.1:8000",
    show_default=True,
    help="Address to listen on (production: 0.0.0.0:$PORT).",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Web processes (default: WEB_CONCURRENCY or 2)."
)
@click.option(
    "--timeout",
    type=click.IntRange(2, 3600),
    default=30,
    show_default=True,
    help="Seconds a web process may go without progress before it is replaced "
    "(long exports and imports report progress as they go).",
)
@pass_context
def web(context: Context, bind: str, workers: int | None, timeout: int) -> None:
    """Serve the web app (webhooks, API, health checks) with gunicorn."""
    from app.runtime.serve import run_web

    run_web(context.settings, bind, workers, timeout=timeout)


@click.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
@pass_context
def worker(context: Context, burst: bool) -> None:
    """Run an RQ worker on optgate's queues."""
    from workers.run import leave, run_worker

    run_worker(context.settings, burst=burst)
    leave(0)


@click.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port for the web app (on 127.0.0.1).",
)
def dev(port: int) -> None:
    """Run everything locally: database schema, Redis, web app and a worker.

    Uses OPTGATE_DATABASE_URL (default: a SQLite file in var/) and
    OPTGATE_REDIS_URL; without a Redis URL it starts an embedded Redis.
    Ctrl-C stops it all.
    """
    from app.runtime.devrun import run_dev

    # Raise rather than ctx.exit(code): under standalone_mode=False click hands
    # the code back as a return value, which main() does not pass on.
    if run_dev(port) != 0:
        raise click.ClickException("stopped because a process exited (its output is above)")
