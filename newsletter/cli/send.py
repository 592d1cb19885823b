"""``newsletter send``: deliver an edition (``newsletter status`` shows how far it got)."""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Annotated

import typer
from sqlite_utils import Database

from newsletter.audience import languages, subscribers
from newsletter.cli.common import check_base_url, print_json, state, stderr_is_tty, warn
from newsletter.cli.status import counts_line, status_json
from newsletter.delivery import bounces, checks, pipeline
from newsletter.mail import smtp

if TYPE_CHECKING:
    from newsletter.config import Settings


def _progress_bar(total: int, done: int) -> tuple[AbstractContextManager, pipeline.Progress | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not stderr_is_tty():
        return nullcontext(), None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("sending", total=total, completed=done, counts="", rate="")

    started = time.monotonic()

    def update(report: pipeline.SendReport) -> None:
        # This run's own average: rich's speed needs several updates before it has one.
        elapsed = max(time.monotonic() - started, 1e-3)
        speed = (report.sent_now + report.failed_now) / elapsed
        bar.update(
            task,
            total=report.total,
            completed=report.sent + report.failed,
            counts=f"sent {report.sent} failed {report.failed}",
            rate=f"{speed:.1f} msg/s",
        )

    return bar, update


def _summary(report: pipeline.SendReport) -> str:
    return (
        f"{counts_line(report.as_dict())}"
        f" (this run: {report.sent_now} sent, {report.failed_now} failed)"
    )


def _test_copies(
    ctx: typer.Context,
    edition: int,
    to: list[str],
    *,
    dry_run: bool,
    as_json: bool,
    lang: str | None = None,
) -> None:
    db = state(ctx).db
    if dry_run:
        info = pipeline.load_edition(db, edition)
        addresses = pipeline.check_test_addresses(db, info, to)
        copies: list[tuple[str, str | None]] = [(address, None) for address in addresses]
    else:
        copies = list(pipeline.send_test(db, state(ctx).settings, edition, to, lang=lang))
    if as_json:
        print_json([{"to": address, "message_id": message_id} for address, message_id in copies])
        return
    for address, message_id in copies:
        if message_id is None:
            typer.echo(f"a test copy would go to {address}")
        else:
            typer.echo(f"test copy sent to {address} {message_id}")


def _positive_rate(value: float | None) -> float | None:
    # Click's float type takes "nan" and "inf"; neither is a rate (and nan passes ``<= 0``).
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number of messages per second")
    return value


def _plan_languages(db: Database, info: pipeline.Edition) -> dict[str, int]:
    """Who a send would mail, by language: the list for a draft, else the pending rows."""
    if info.status == "draft":
        return languages.recipient_language_counts(db, info.topic_ids)
    found = pipeline.language_counts(db, info.id)
    return {lang: n["pending"] for lang, n in found.items() if n["pending"]}


def _print_plan(
    edition: int,
    count: int,
    first: list[subscribers.Recipient],
    *,
    as_json: bool,
    by_lang: dict[str, int] | None = None,
) -> None:
    if as_json:
        print_json({"edition": edition, "recipients": count, "first": [p.email for p in first],
                    "languages": by_lang or {}})  # fmt: skip
        return
    typer.echo(f"edition {edition}: {count} recipients would be mailed")
    if by_lang:
        typer.echo("  by language: " + ", ".join(f"{k} {n}" for k, n in by_lang.items()))
    for person in first:
        typer.echo(f"  {person.email}")
    if count > len(first):
        typer.echo(f"  ... and {count - len(first)} more")


def _smtp_line(settings: Settings) -> str:
    who = f", as {settings.smtp_username}" if settings.smtp_username else ""
    return f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}{who})"


def _confirm(
    info: pipeline.Edition, settings: Settings, numbers: dict, count: int, include_new: bool
) -> None:
    """Everything the send is about to do, so a wrong config is seen before anyone is mailed."""
    fresh = count if info.status == "draft" else count - numbers["pending"]
    typer.echo(f"Subject:    {info.subject}")
    typer.echo(f"From:       {settings.from_addr}")
    if len(info.variants) > 1:  # each reader gets their language's, with its own subject
        typer.echo("Variants:   " + "; ".join(f"{v.lang}: {v.subject}" for v in info.variants))
    typer.echo(f"Topic(s):   {', '.join(info.topic_names)}")
    typer.echo(f"SMTP:       {_smtp_line(settings)}")
    typer.echo(f"Links to:   {settings.base_url}")
    typer.echo(
        f"Recipients: {count} to mail now (already sent {numbers['sent']},"
        f" failed {numbers['failed']}, pending {numbers['pending']}, new {fresh})"
    )
    if info.status != "draft" and not include_new:
        typer.echo("            (people who subscribed since the first send: --include-new)")
    if not typer.confirm("Send now?", default=False):
        typer.echo("not sent", err=True)
        raise typer.Exit(1)


def send(
    ctx: typer.Context,
    edition: Annotated[int, typer.Argument(help="Edition id (printed by `newsletter build`)")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the recipient count and the first ones")
    ] = False,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="Send a test copy to this address only (repeatable)"),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="With --to: the variant in this language (default: main)"),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", callback=_positive_rate, help="Messages per second, all connections"
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Parallel SMTP connections")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Recipients claimed at a time")
    ] = None,
    max_errors: Annotated[
        int | None, typer.Option("--max-errors", min=1, help="Errors in a row before pausing")
    ] = None,
    include_new: Annotated[
        bool, typer.Option("--include-new", help="Also mail people who subscribed since")
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Try again the failed recipients whose failure was not about the address",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: the final status, or the test copies")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Send despite what `newsletter check` marks STOPS (example values, no postal"
            " address, clipped by Gmail); never without an unsubscribe link",
        ),
    ] = False,
) -> None:
    """Send an edition to its topic's subscribers; run it again to resume.

    The blocking part of `newsletter check` runs first and refuses with the list.
    Temporary refusals (greylisting, 4xx) are retried in the same run with back-off; a
    refusal by the relay itself pauses the send with everyone still pending.

    Example: newsletter send 3 --rate 20 --concurrency 4
    """
    current = state(ctx)
    db, settings = current.db, current.settings
    check_base_url(settings)  # every mail links there: refuse what `serve` would refuse
    if lang is not None and not to:
        raise typer.BadParameter("--lang chooses a test copy's variant: use it with --to")
    if to:
        _test_copies(ctx, edition, to, dry_run=dry_run, as_json=as_json, lang=lang)
        # After the copies: an address refused above stays a one-line error.
        for line in checks.test_copy_warnings(settings):
            warn(line)
        return
    subscribers.recover_imports(db)  # before the plan: a dead import's half is not consent
    info = pipeline.load_edition(db, edition)
    reputation = bounces.last_edition_warning(db, edition)
    if reputation:
        warn(reputation)
    count, first = pipeline.plan(db, edition, include_new=include_new)
    if retry_failed:
        count += pipeline.retryable(db, edition)
    if dry_run:
        # Newcomers (--include-new) have no row yet: counts by language would not add up.
        by_lang = None if include_new and info.status != "draft" else _plan_languages(db, info)
        _print_plan(edition, count, first, as_json=as_json, by_lang=by_lang)
        return
    if count == 0 and info.status == "draft":
        raise pipeline.no_recipients(info)
    checks.before_send(db, settings, edition, force=force)
    numbers = pipeline.status(db, edition)
    if not yes:
        _confirm(info, settings, numbers, count, include_new)
    # ``count`` already holds the pending rows (plus newcomers): total is done + count.
    done = numbers["sent"] + numbers["failed"]
    bar, progress = _progress_bar(done + count, done)
    try:
        with bar:
            report = pipeline.send(
                db,
                settings,
                edition,
                rate=rate,
                concurrency=concurrency,
                batch_size=batch_size,
                max_errors=max_errors,
                include_new=include_new,
                progress=progress,
                retry_failed=retry_failed,
            )
    except smtp.ConnectionFailed:
        if as_json:  # a script still gets the counts; the error line follows on stderr
            print_json(status_json(db, edition))
        raise
    if as_json:
        print_json(
            {
                **report.as_dict(),
                **bounces.edition_counts(db, edition),
                "languages": pipeline.language_counts(db, edition),
            }
        )
    else:
        typer.echo(_summary(report))
    if report.message:
        typer.echo(report.message, err=True)
    if report.pending or report.status != "sent":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``send`` to the root app (``status`` lives in cli/status.py: it starts light)."""
    app.command("send")(send)
