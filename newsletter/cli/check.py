"""``newsletter check``: what would stop or worry a sender, before an edition goes out."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.common import print_json, state
from newsletter.delivery import checks

_MARKS = {checks.BLOCK: "BLOCKS", checks.FORCE: "STOPS", checks.WARN: "warning", checks.INFO: "ok"}


def check(
    ctx: typer.Context,
    edition: Annotated[int, typer.Argument(help="Edition id")],
    links: Annotated[
        bool, typer.Option("--links", help="Also fetch every article link over HTTP")
    ] = False,
    spam: Annotated[
        bool, typer.Option("--spam/--no-spam", help="Score with SpamAssassin when installed")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check an edition before sending: size, links, alt texts, footer, settings, spam score.

    Exit status 1 when something would stop `send` (STOPS: `send --force` overrides it;
    BLOCKS: nothing does).

    Example: newsletter check 3 --links
    """
    current = state(ctx)
    report = checks.check_edition(
        current.db, current.settings, edition, check_links=links, spamassassin=spam
    )
    if as_json:
        print_json(report.as_json())
    else:
        typer.echo(f"edition {report.edition}: HTML {report.html_bytes / 1024:.1f} KB")
        for finding in report.findings:
            typer.echo(f"  {_MARKS[finding.level]:8} {finding.message}")
            for detail in finding.details:
                typer.echo(f"           {detail}")
        if not report.blocking:
            typer.echo("nothing stops this edition from being sent")
    if report.blocking:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
