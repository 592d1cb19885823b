"""``newsletter serve`` (the web service) and ``newsletter unsubscribes import``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import Progress

from newsletter.cli.common import check_base_url, print_json, state, stderr_is_tty
from newsletter.delivery import mailbox_unsubscribe

unsubscribes = typer.Typer(
    help="Unsubscribe requests that arrived by mail.\n\n"
    "Example: newsletter unsubscribes import unsubscribe.mbox",
    no_args_is_help=True,
)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on", min=0, max=65535)] = 8080,
    threads: Annotated[int, typer.Option("--threads", help="Worker threads", min=1, max=64)] = 4,
    trusted_proxy: Annotated[
        str | None,
        typer.Option(
            "--trusted-proxy",
            help="Address of your reverse proxy; its X-Forwarded-For then names the client",
        ),
    ] = None,
    access_log: Annotated[
        str | None,
        typer.Option(
            "--access-log",
            help="Request log: - for stderr, a file to append to, or off"
            " (default: web.access_log, else stderr). Tokens and addresses are left out",
        ),
    ] = None,
) -> None:
    """Run the web service: one-click unsubscribe, sign-up with confirmation, preferences.

    Links in emails point at base_url from the config (https; plain http only on loopback).
    Put it behind your usual reverse proxy. Stop with Ctrl+C.

    Example: newsletter serve --host 127.0.0.1 --port 8080 --trusted-proxy 127.0.0.1
    """
    # Flask loads only for this command, so every other command starts faster.
    from newsletter.delivery.bounces.webhooks import check_ses_settings
    from newsletter.web import make_server

    current = state(ctx)
    settings = current.settings
    check_base_url(settings)
    check_ses_settings(settings)  # refused per request too; said here before serving
    current.note_link_key()  # a changed link key is said here, once, before serving
    log = _open_log(settings.access_log if access_log is None else access_log)
    server = make_server(
        settings,
        host=host,
        port=port,
        threads=threads,
        trusted_proxy=trusted_proxy,
        access_log=log,
    )
    typer.echo(
        f"serving on http://{host}:{server.effective_port} (public address {settings.base_url});"
        " stop with Ctrl+C"
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if log is not None and log is not sys.stderr:
            log.close()


def _open_log(where: str) -> TextIO | None:
    """stderr for "-", nothing for "" or "off", else the file (appended, private)."""
    if where == "-":
        return sys.stderr
    if where in ("", "off"):
        return None
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


@unsubscribes.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A Maildir folder or an mbox file")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Apply unsubscribe requests mailed to the List-Unsubscribe address.

    Each message's subject (else body) must carry the signed token of the mailto: link.
    Running it again on the same mailbox changes nothing.

    Example: newsletter unsubscribes import ~/Maildir/.unsubscribe --json
    """
    current = state(ctx)
    total = mailbox_unsubscribe.count_messages(path)
    if stderr_is_tty() and not as_json and total > 200:
        with Progress(transient=True) as bar:
            task = bar.add_task("reading requests", total=total)
            report = mailbox_unsubscribe.import_unsubscribes(
                current.db, current.settings, path, progress=lambda n: bar.advance(task, n)
            )
    else:
        report = mailbox_unsubscribe.import_unsubscribes(current.db, current.settings, path)
    if as_json:
        print_json(report.as_dict())
        return
    typer.echo(
        f"{report.messages} messages: {report.applied} applied, "
        f"{report.already_unsubscribed} already unsubscribed, {report.unknown} unknown "
        f"(erased), {report.invalid} invalid"
    )
    for problem in report.problems:
        label = problem["message_id"] or f"message {problem['message']}"
        typer.echo(f"  invalid: {label}: {problem['reason']}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``unsubscribes`` to the root app."""
    app.command("serve")(serve)
    app.add_typer(unsubscribes, name="unsubscribes")
