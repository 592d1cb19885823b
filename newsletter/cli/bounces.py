"""``newsletter bounces import``: bounces and complaints from the bounce mailbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import print_json, state
from newsletter.delivery import bounces as bouncing
from newsletter.errors import NewsletterError

bounces = typer.Typer(
    help="Bounces and complaints that arrive after a send.\n\n"
    "Example: newsletter bounces import --imap",
    no_args_is_help=True,
)


@bounces.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="A Maildir folder or an mbox file (or use --imap)")
    ] = None,
    imap: Annotated[
        bool, typer.Option("--imap", help="Read the IMAP folder set in [bounces] over TLS")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Read delivery status notifications (RFC 3464) and complaint reports (ARF, RFC 5965).

    Hard bounces count toward send.hard_bounce_limit, soft ones are counted, a complaint
    unsubscribes the person from everything. Reading the same mailbox again counts nothing
    twice; messages that are neither are left alone and listed. A report is acted on when it
    carries our VERP token or Message-ID; one naming only an address is listed as unmatched
    (a hard bounce still counts when mail.bounce_address is not set).

    Example: newsletter bounces import ~/Maildir/.bounces --json
    """
    if imap == (path is not None):
        raise NewsletterError("give either a Maildir/mbox path or --imap")
    current = state(ctx)
    items = bouncing.from_imap(current.settings) if imap else bouncing.from_mailbox(path)
    source = "imap" if imap else "mailbox"
    report = bouncing.process(current.db, current.settings, items, source)
    if as_json:
        print_json(report.as_dict())
        return
    typer.echo(
        f"{report.messages} messages: {report.hard} hard bounces, {report.soft} soft bounces,"
        f" {report.complaints} complaints, {report.duplicates} already counted,"
        f" {report.unmatched} about nobody on the list, {len(report.other)} not reports"
    )
    for other in report.other:
        # The reason always; the subject when the message had one (a garbage file has none).
        subject = other.get("subject") or ""
        typer.echo(
            f"  not a report: {other['message']}: {other['why']}"
            + (f" (subject: {subject})" if subject else "")
        )
    for unmatched in report.address_only:
        typer.echo(f"  unmatched {unmatched['kind']}: {unmatched['message']}: {unmatched['why']}")


def register(app: typer.Typer) -> None:
    app.add_typer(bounces, name="bounces")
