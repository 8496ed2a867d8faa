"""``optgate send`` and ``optgate requeue``."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from app.cli import Context, json_option, pass_context
from app.data.models import MessageKind


@click.command()
@click.option("--line", required=True, help="The sending line (number or short code).")
@click.option("--to", "to", required=True, help="The recipient's phone number.")
@click.option("--body", required=True, help="The text.")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in MessageKind]),
    default=MessageKind.TRANSACTIONAL.value,
    show_default=True,
    help="Decides which checks apply at send time (marketing: topics, opt-in, quiet hours).",
)
@click.option("--topic", help="Marketing topic (a topic id of keywords.yaml).")
@click.option("--require-opt-in", is_flag=True, help="Send only if the recipient opted in.")
@json_option
@pass_context
def send(
    context: Context,
    line: str,
    to: str,
    body: str,
    kind: str,
    topic: str | None,
    require_opt_in: bool,
    as_json: bool,
) -> None:
    """Queue one message; a worker decides at send time whether it may go."""
    from workers.queue import redis_outbox

    outbox = redis_outbox(context.settings, context.database)
    message_id = outbox.message(line, to, body, kind, topic, require_opt_in, created_by="cli")
    if as_json:
        click.echo(json.dumps({"id": message_id, "status": "queued"}))
    else:
        click.echo(f"queued message {message_id}")


@click.command()
@click.option(
    "--older-than",
    type=click.IntRange(0),
    default=60,
    show_default=True,
    help="Seconds a message must have waited in 'queued' to be enqueued again.",
)
@click.option(
    "--interrupted-after",
    type=click.IntRange(0),
    default=300,
    show_default=True,
    help="Seconds a message may stay 'sending' before it counts as cut off by a dead worker "
    "(use less than 20 only while no worker runs).",
)
@pass_context
def requeue(context: Context, older_than: int, interrupted_after: int) -> None:
    """Enqueue again what Redis lost; settle messages that dead workers left mid-send.

    Run it after Redis lost data (a restart without persistence) or after
    workers were killed. Safe to run any time: a message in two jobs is still
    sent once, and one whose hand-off was cut off is never sent again.
    """
    from workers.queue import redis_outbox

    done = redis_outbox(context.settings, context.database).requeue(
        timedelta(seconds=older_than), timedelta(seconds=interrupted_after)
    )
    click.echo(
        f"enqueued {done.queued} queued messages, scheduled {done.scheduled} for later, "
        f"settled {done.interrupted} interrupted sends as failed"
    )
