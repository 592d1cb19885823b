"""``newsletter digest``: import a topic's feeds, build and send when there is news."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import print_json, state, warn
from newsletter.delivery import digest


def _describe(result: digest.DigestResult) -> str:
    if result.dry_run:
        head = f"dry run, nothing done: {result.topic}: {result.action}"
        if result.feeds:
            head += f" (after importing {len(result.feeds)} feed(s))"
        if result.edition is not None:
            head += f"; edition {result.edition}"
        if result.action.startswith("would build"):
            head += f"; {result.new_articles} new articles stored now"
        if result.recipients:
            head += f"; {result.recipients} recipients"
        return head
    line = f"{result.topic}: imported {result.imported}, updated {result.updated}; {result.action}"
    if result.report is not None:
        r = result.report
        line += (
            f": edition {r.edition}, sent {r.sent}, failed {r.failed}, pending {r.pending}"
            f" (this run: {r.sent_now} sent)"
        )
    return line


def digest_command(
    ctx: typer.Context,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic slug or name")],
    feed: Annotated[
        list[str] | None,
        typer.Option("--feed", help="Also import this feed URL or file (repeatable)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; import and send nothing")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the edition's HTML and text files")
    ] = Path("editions"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Import a topic's feeds, build and send an edition when there is news.

    The feeds come from [digest.feeds] in the settings plus --feed. Running it again sends
    nothing new: safe under cron or a systemd timer (a second run at once stops at the lock).

    Example: newsletter digest --topic yhteisovaikuttavuus --dry-run
    """
    current = state(ctx)
    try:
        result = digest.run(
            current.db, current.settings, topic, feeds=feed or [], dry_run=dry_run, out=out
        )
    except digest.DigestBusy as exc:
        # The run before this one is still at work: under cron that is no failure.
        warn(str(exc))
        if as_json:
            print_json({"topic": topic, "action": "busy"})
        return
    if as_json:
        print_json(result.as_json())
    else:
        typer.echo(_describe(result))
    for line in result.warnings:
        warn(line)
    for error in result.errors:
        warn(error)
    if result.report is not None and result.report.message:
        typer.echo(result.report.message, err=True)
    if result.incomplete:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    root.command("digest")(digest_command)
