"""``optgate keywords``: check keywords.yaml, and see what it does with a text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from app.addresses import normalize_line
from app.cli import Context, json_option, pass_context
from app.errors import InvalidAddress
from app.keywords import Config, Intent, Matcher, load


@click.group()
def keywords() -> None:
    """Check keywords.yaml; try texts against it."""


@keywords.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@pass_context
def check(context: Context, path: Path | None) -> None:
    """Validate PATH (default: OPTGATE_KEYWORDS, else ./keywords.yaml).

    Exit 0 with a summary (and any warnings), or exit 1 with every error as
    PATH:LINE: message.
    """
    config = load(path or context.settings.keywords_path, context.settings.default_region)
    click.echo(_summary(config))
    for warning in config.warnings:
        click.echo(str(warning), err=True)


def _summary(config: Config) -> str:
    rules = config.defaults
    organization = config.organization

    def listed(items: Any) -> str:
        return ", ".join(keyword.text for keyword in items)

    lines = [
        f"{config.path}: OK" + (f" ({len(config.warnings)} warnings)" if config.warnings else ""),
        f"  brand:       {rules.brand}",
        f"  opt-out:     {listed(rules.opt_out.keywords)}",
        f"  opt-in:      {listed(rules.opt_in.keywords)}",
        f"  help:        {listed(rules.help.keywords)}",
        "  topics:      "
        + ("; ".join(f"{t.id} ({listed(t.phrases)})" for t in config.topics.values()) or "none"),
        "  responders:  "
        + (
            "; ".join(
                f"{r.id} ({listed(r.keywords)}"
                + (f" -> {r.action}" + (f" {r.topic}" if r.topic else "") if r.action else "")
                + ")"
                for r in rules.responders.values()
            )
            or "none"
        ),
        f"  overrides:   {len(config.overrides)}"
        + "".join(
            f"; {', '.join(sorted(o.lines | o.groups))} (line {o.line})" for o in config.overrides
        ),
        f"  opt-out scope: {organization.opt_out_scope}; provider confirms defaults: "
        f"{'yes' if organization.provider_confirms_defaults else 'no'}; topic opt-out "
        f"revokes all: {'yes' if organization.topic_opt_out_revokes_all else 'no'}",
    ]
    return "\n".join(lines)


@keywords.command()
@click.argument("texts", nargs=-1)
@click.option(
    "--config",
    "path",
    type=click.Path(path_type=Path),
    help="keywords.yaml to use (default: OPTGATE_KEYWORDS, else ./keywords.yaml).",
)
@click.option("--line", help="The line the text is sent to (its overrides apply).")
@click.option("--group", help="The line group (e.g. Messaging Service SID) of the line.")
@json_option
@click.option("--jsonl", is_flag=True,
              help='Read JSON Lines from stdin, each {"text": "...", "line": "+1..."}, and write '
                   "one JSON object per line, in order.")  # fmt: skip
@pass_context
def test(
    context: Context,
    texts: tuple[str, ...],
    path: Path | None,
    line: str | None,
    group: str | None,
    as_json: bool,
    jsonl: bool,
) -> None:
    """Print the intent of each TEXT (with --json: one JSON object per line)."""
    region = context.settings.default_region
    matcher = Matcher(load(path or context.settings.keywords_path, region))
    line_value = normalize_line(line, region).value if line else None
    if jsonl:
        if texts:
            raise click.UsageError("give texts as arguments or with --jsonl on stdin, not both")
        failed = _jsonl(matcher, sys.stdin, sys.stdout, region, line_value, group)
        if failed:
            raise click.exceptions.Exit(1)
        return
    if not texts:
        raise click.UsageError('give one or more texts, e.g. optgate keywords test "stop please"')
    for text in texts:
        intent = matcher.match(text, line=line_value, group=group)
        click.echo(json.dumps(intent.as_dict(text)) if as_json else _describe(text, intent))


def _describe(text: str, intent: Intent) -> str:
    parts = [intent.action.value]
    if intent.topics:
        parts.append("topic " + ", ".join(intent.topics))
    if intent.responder:
        parts.append(f"responder {intent.responder}")
    if intent.needs_review:
        parts.append("NEEDS REVIEW by a person")
    answer = f'\n    reply: "{intent.reply}"' if intent.reply else "\n    no reply"
    return f"{text!r}: {'; '.join(parts)}{answer}"


def _jsonl(
    matcher: Matcher,
    source: TextIO,
    out: TextIO,
    region: str,
    default_line: str | None,
    group: str | None,
) -> int:
    """Answer each JSON line of ``source`` on ``out``; returns how many lines were bad.

    A bad line still gets its object (with an "error" key) so the output stays
    aligned with the input; the problem also goes to stderr as <stdin>:N: message.
    """
    failed = 0
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON: {error}") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise ValueError('expected an object with a "text" string')
            line = item.get("line")
            if line is not None and not isinstance(line, str):
                raise ValueError('"line" must be a string such as "+14155550100"')
            line_value = normalize_line(line, region).value if line else default_line
        except (ValueError, InvalidAddress) as error:
            failed += 1
            message = str(error).splitlines()[0]
            click.echo(f"<stdin>:{number}: {message}", err=True)
            out.write(json.dumps({"text": None, "error": message}) + "\n")
            continue
        intent = matcher.match(item["text"], line=line_value, group=group)
        out.write(json.dumps(intent.as_dict(item["text"])) + "\n")
    out.flush()
    return failed
