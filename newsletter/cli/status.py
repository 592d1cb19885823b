"""``newsletter status``: how far an edition's send got, read-only and quick to start.

It loads only the read-only counts (delivery/counts.py), not the send pipeline, bounce
processing, MIME or SMTP: a status check answers within the start-up goal (issue 17).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import print_json, state
from newsletter.cli.output import limited, local_time, print_json_rows, print_table
from newsletter.delivery import counts
from newsletter.store import reader

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlite_utils import Database


def counts_line(numbers: dict) -> str:
    """``edition 3: sending; sent 10, failed 1, pending 5 of 16; hard bounces ...``"""
    line = (
        f"edition {numbers['edition']}: {numbers['status']}; sent {numbers['sent']},"
        f" failed {numbers['failed']}, pending {numbers['pending']} of {numbers['total']}"
    )
    if "complaints" in numbers:
        line += (
            f"; hard bounces {numbers['hard_bounces']}, soft bounces"
            f" {numbers['soft_bounces']}, complaints {numbers['complaints']}"
        )
    return line


def status_json(db: Database | sqlite3.Connection, edition: int) -> dict:
    """The counts, and the same counts by the language of the variant each person gets."""
    return {
        **counts.status(db, edition),
        **counts.bounce_counts(db, edition),
        "languages": counts.language_counts(db, edition),
    }


def status(
    ctx: typer.Context,
    edition: Annotated[int, typer.Argument(help="Edition id")],
    failed: Annotated[
        bool, typer.Option("--failed", help="List the failed recipients with the reasons")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="With --failed: at most N people")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show how far an edition's send got (and, with --failed, who was not reached and why).

    Example: newsletter status 3 --failed
    """
    current = state(ctx)
    conn = reader.read_only(current.settings.db)
    try:
        try:
            _report(conn or current.db, current.settings.tz, edition, failed, limit, as_json)
        except sqlite3.OperationalError as exc:
            if conn is None or not reader.schema_too_old(exc):
                raise
            # An older database: the full open migrates it (every query runs before output).
            _report(current.db, current.settings.tz, edition, failed, limit, as_json)
    finally:
        if conn is not None:
            conn.close()


def _report(
    db: Database | sqlite3.Connection,
    tz: ZoneInfo,
    edition: int,
    failed: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    if failed:
        _print_failures(db, tz, edition, limit, as_json)
        return
    if as_json:
        print_json(status_json(db, edition))
        return
    numbers = {**counts.status(db, edition), **counts.bounce_counts(db, edition)}
    by_lang = counts.language_counts(db, edition)
    typer.echo(counts_line(numbers))
    if len(by_lang) > 1:
        for lang, n in by_lang.items():
            typer.echo(
                f"  {lang}: sent {n['sent']}, failed {n['failed']}, pending {n['pending']}"
                f" of {n['total']}"
            )


def _print_failures(
    db: Database | sqlite3.Connection, tz: ZoneInfo, edition: int, limit: int | None, as_json: bool
) -> None:
    rows = limited(counts.failures(db, edition), limit)
    if as_json:
        print_json_rows(rows)
        return
    print_table(
        ["email", "reason", "server reply", ("attempts", "right"), "last try"],
        rows,
        lambda r: (
            r["email"] or "(erased)",
            r["reason"],
            r["reply"] or "",
            r["attempts"],
            local_time(r["time"], tz),
        ),
        empty=f"edition {edition}: no failed recipients",
        caption=lambda n: f"{n} failed" if limit is None else None,
    )


def register(app: typer.Typer) -> None:
    """Add ``status`` to the root app."""
    app.command("status")(status)
