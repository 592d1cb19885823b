"""``newsletter subscribers``: add, import, export, list, show, unsubscribe, remove."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from sqlite_utils import Database

from newsletter.audience import confirmations, consent, export, importer, people, subscribers
from newsletter.cli import import_report
from newsletter.cli.common import check_base_url, print_json, state, stderr_is_tty, warn
from newsletter.cli.output import limited, local_time, print_json_rows, print_table
from newsletter.content import topics
from newsletter.errors import NewsletterError

app = typer.Typer(
    help="Subscribers, their topics and consent.\n\n"
    "Example: newsletter subscribers show maija@example.fi",
    no_args_is_help=True,
)

TopicOption = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Topic slug or name (repeatable)")
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _send_confirmations(
    ctx: typer.Context, subscriber_ids: list[int], *, quiet: bool
) -> confirmations.Mailed:
    if not subscriber_ids:
        if not quiet:
            typer.echo("no confirmation requests to send")
        return confirmations.Mailed(0, 0)
    st = state(ctx)
    check_base_url(st.settings)
    return confirmations.send_confirmations(st.db, st.settings, subscriber_ids, source="cli")


def _mailed_line(mailed: confirmations.Mailed) -> str:
    line = f"confirmation requests mailed: {mailed.sent}"
    if mailed.skipped:
        line += f" ({mailed.skipped} already had a valid one)"
    return line


def _no_confirmed_with_send(confirmed: bool, send_confirmation: bool) -> None:
    if confirmed and send_confirmation:
        raise typer.BadParameter(
            "cannot be used with --confirmed (confirmation requests are for unconfirmed"
            " subscriptions)",
            param_hint="'--send-confirmation'",
        )


def _choice(allowed: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """An option callback that makes any other value a usage error (exit 2)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


@app.command("add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address")],
    name: Annotated[str | None, typer.Option("--name", help="Name as the person writes it")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="fi, sv or en")] = None,
    topic: TopicOption = None,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="Consent is already confirmed (else unconfirmed)")
    ] = False,
    send_confirmation: Annotated[
        bool, typer.Option("--send-confirmation", help="Mail a confirmation request")
    ] = False,
    override_opt_out: Annotated[
        bool,
        typer.Option(
            "--override-opt-out",
            help="Subscribe again someone who unsubscribed, was erased or bounced, because"
            " they asked you directly (recorded in their consent trail)",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a subscriber or update one (staff action).

    Someone who opted out comes back only by their own confirmation, or with
    --override-opt-out.

    Example: newsletter subscribers add maija@example.fi --name "Maija Mäkelä" --topic vaikuttavuus
    """
    _no_confirmed_with_send(confirmed, send_confirmation)
    st = state(ctx)
    found = topics.resolve_many(st.db, topic)
    result = consent.staff_add(
        st.db,
        email,
        name=name,
        lang=lang,
        topic_ids=[t.id for t in found],
        confirmed=confirmed,
        default_lang=st.settings.default_lang,
        override=override_opt_out,
    )
    if result.overridden:
        warn(
            f"opt-out overridden by staff ({', '.join(result.overridden)}): recorded as"
            f" {consent.OVERRIDE_EVENT} in their consent trail"
        )
    person = subscribers.get(st.db, result.subscriber_id)
    assert person is not None
    verb = "added" if result.created else ("updated" if result.changed else "unchanged")
    mailed = None
    if send_confirmation:
        mailed = _send_confirmations(ctx, [result.subscriber_id] if found else [], quiet=as_json)
    if as_json:
        print_json(
            {
                "email": person["email"],
                "result": verb,
                "topics": [t.slug for t in found],
                "confirmations_sent": mailed.sent if mailed else None,
                "confirmations_skipped": mailed.skipped if mailed else None,
            }
        )
        return
    where = f" ({', '.join(t.slug for t in found)})" if found else ""
    typer.echo(f"{verb}: {person['email']}{where}")
    if mailed is not None:
        typer.echo(_mailed_line(mailed))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV file (comma, semicolon or tab)")],
    topic: TopicOption = None,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="The file's people have confirmed consent")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report without writing")] = False,
    send_confirmation: Annotated[
        bool, typer.Option("--send-confirmation", help="Mail confirmation requests afterwards")
    ] = False,
    suppress: Annotated[
        bool,
        typer.Option(
            "--suppress",
            help="The file lists people who left (another tool's unsubscribed or cleaned"
            " export): unsubscribe them everywhere and keep them out of later imports",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Import subscribers from a spreadsheet or another tool's export (Mailchimp, listmonk,
    Sendy, Ghost, Substack, this tool's own export), keeping their consent and data.

    Example: newsletter subscribers import members.csv --topic Yhteisövaikuttavuus --dry-run
    """
    _no_confirmed_with_send(confirmed, send_confirmation)
    if suppress and (confirmed or send_confirmation or topic):
        raise typer.BadParameter(
            "cannot be used with --topic, --confirmed or --send-confirmation (it applies to"
            " every topic and subscribes nobody)",
            param_hint="'--suppress'",
        )
    _regular_file(file)
    st = state(ctx)
    found = topics.resolve_many(st.db, topic)
    progress = import_report.ImportProgress(file.name, show=stderr_is_tty() and not as_json)
    try:
        report = importer.import_file(
            st.db,
            file,
            topic_ids=[t.id for t in found],
            confirmed=confirmed,
            dry_run=dry_run,
            default_lang=st.settings.default_lang,
            suppress=suppress,
            progress=progress,
        )
    finally:
        progress.close()
    for source in report.recovered:
        warn(f"undid the unfinished {source.replace(':', ' of ', 1)} (its process had stopped)")
    if as_json:
        print_json(report.as_json())
    else:
        import_report.print_report(file, report, dry_run)
    if send_confirmation:
        # With --json stdout holds only the report; this line goes to stderr.
        if dry_run:
            count = len(report.pending_ids)
            typer.echo(f"dry run: would request confirmation from {count} people", err=as_json)
        else:
            mailed = _send_confirmations(ctx, report.pending_ids, quiet=False)
            typer.echo(_mailed_line(mailed), err=as_json)
    elif not dry_run:
        import_report.unconfirmed_notice(file, report, found)


def _export_to_stdout(db: Database, fmt: str, topic_id: int | None, status: str | None) -> None:
    # UTF-8 whatever the locale says, and no newline translation inside CSV records.
    sys.stdout.flush()
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        export.write_export(db, out, fmt=fmt, topic_id=topic_id, status=status)
        out.flush()
    except BrokenPipeError:
        raise typer.Exit(0) from None  # `export | head` is not an error
    finally:
        out.detach()


def _regular_file(path: Path) -> None:
    """Say truthfully why ``path`` cannot be imported: missing, a folder, or not a regular
    file (``/dev/null``, a pipe or a socket has no rows to read and no size to report)."""
    if path.is_file():
        return
    if path.is_dir():
        raise NewsletterError(f"{path}: is a folder: give the CSV file inside it")
    if path.exists():
        raise NewsletterError(
            f"{path}: not a regular file (a device, pipe or socket): save the list to a CSV"
            " file and import that"
        )
    raise NewsletterError(f"{path}: no such file")


def _private_file(path: Path):
    """A new file only its owner can read (0600 whatever the umask): it holds addresses."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@app.command("export")
def export_(
    ctx: typer.Context,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic",
            "-t",
            help="Only the recipients of this topic (with --status:"
            " people with a subscription to it)",
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            callback=_choice(export.EXPORT_STATUSES),
            help="active, bounced, blocklisted, or a subscription state: unconfirmed,"
            " confirmed, unsubscribed",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            callback=_choice(("csv", "json", "suppressions")),
            help="csv, json, or suppressions (the keyed hashes that keep erased and blocked"
            " people out, for `import --suppress` into a new database)",
        ),
    ] = "csv",
    excel: Annotated[
        bool,
        typer.Option("--excel", help="CSV that Excel opens as columns: UTF-8 BOM, ';', CRLF"),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
) -> None:
    """Export subscribers as CSV, Excel CSV or JSON (streamed; --topic gives exactly who
    would be mailed). The file is readable by its owner only.

    Example: newsletter subscribers export --topic vaikuttavuus --excel -o vaikuttavuus.csv
    """
    if excel and fmt != "csv":
        raise typer.BadParameter(f"cannot be used with --format {fmt}", param_hint="'--excel'")
    fmt = "excel" if excel else fmt
    st = state(ctx)
    topic_id = topics.resolve(st.db, topic).id if topic else None
    if output is None:
        _export_to_stdout(st.db, fmt, topic_id, status)
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with _private_file(partial) as out:
            export.write_export(st.db, out, fmt=fmt, topic_id=topic_id, status=status)
        partial.replace(output)  # never leave a half-written export under the real name
    except OSError as exc:
        raise NewsletterError(f"{output}: cannot write: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {output}", err=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Only people with a subscription to it")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            callback=_choice(subscribers.STATUSES + subscribers.SUBSCRIPTION_STATUSES),
            help="active, bounced, blocklisted, or a subscription state:"
            " unconfirmed, confirmed, unsubscribed",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N people (by id)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List subscribers with their subscriptions (streamed: a million rows need no more memory).

    Example: newsletter subscribers list --topic vaikuttavuus --status unconfirmed
    """
    st = state(ctx)
    topic_id = topics.resolve(st.db, topic).id if topic else None
    rows = limited(people.list_(st.db, topic_id=topic_id, status=status), limit)
    if as_json:
        print_json_rows(rows)
        return
    tz = st.settings.tz
    print_table(
        ["email", "name", "lang", "status", f"added ({st.settings.timezone})", "subscriptions"],
        rows,
        lambda r: (
            r["email"],
            r["name"],
            r["lang"],
            r["status"],
            local_time(r["created"], tz),
            ", ".join(f"{slug}:{state_}" for slug, state_ in r["subscriptions"].items()),
        ),
        empty="no subscribers match",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address (any case)")],
    as_json: JsonOption = False,
) -> None:
    """Show everything held about a person, with the consent trail (GDPR access).

    Example: newsletter subscribers show maija@example.fi --json
    """
    data = people.profile(state(ctx).db, email)
    if as_json:
        print_json(data)
        return
    for key in ("email", "name", "lang", "status", "created"):
        typer.echo(f"{key + ':':14}{data[key]}")
    attributes = data["attributes"] or {}
    typer.echo(f"{'attributes:':14}{'' if attributes else '-'}")
    for key, value in attributes.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        typer.echo(f"  {key}: {shown}")
    typer.echo("subscriptions:")
    for sub in data["subscriptions"] or [{"topic": "-", "status": "", "updated": ""}]:
        typer.echo(f"  {sub['topic']:30} {sub['status']:13} {sub['updated']}")
    typer.echo("events:")
    for event in data["events"]:
        topic = event["topic"] or ""
        typer.echo(f"  {event['time']}  {event['action']:18} {topic:30} {event['source']}")


@app.command("unsubscribe")
def unsubscribe(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address (any case)")],
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Only this topic (default: all)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Unsubscribe a person from one topic or from all of them.

    Example: newsletter subscribers unsubscribe maija@example.fi --topic vaikuttavuus
    """
    db = state(ctx).db
    person = subscribers.require(db, email)
    found = topics.resolve(db, topic) if topic else None
    changed = subscribers.unsubscribe(db, person["id"], found.id if found else None, "cli")
    if as_json:
        print_json(
            {"email": person["email"], "topic": found.slug if found else None, "changed": changed}
        )
        return
    scope = found.slug if found else "all topics"
    typer.echo(f"unsubscribed {person['email']} from {scope} ({changed} changed)")


@app.command("remove")
def remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address (any case)")],
    as_json: JsonOption = False,
) -> None:
    """Erase a person for good (GDPR): data, events and SMTP replies deleted.

    Only a keyed hash stays, on the suppression list, so no import can bring the address
    back; an explicit `subscribers add` by staff or the person's own confirmed sign-up can.

    Example: newsletter subscribers remove maija@example.fi
    """
    db = state(ctx).db
    person = subscribers.require(db, email)
    flushed = subscribers.erase(db, person["email"], source="cli")
    if as_json:
        print_json({"erased": True, "wal_clean": flushed})
    else:
        typer.echo("erased: the address is on the suppression list as a keyed hash only")
    if not flushed:
        warn(
            "another process (newsletter serve or send?) is reading the database: old copies"
            " of the erased data stay in its -wal file until that process stops"
        )


def _set_status(ctx: typer.Context, email: str, status: str, as_json: bool) -> None:
    db = state(ctx).db
    person = subscribers.find(db, email)
    if person is None:
        address, changed = _block_unknown(db, email, status)
    else:
        address, changed = person["email"], person["status"] != status
        if changed:
            subscribers.set_status(db, person["id"], status, "cli")
    if as_json:
        print_json({"email": address, "status": status, "changed": changed})
    else:
        typer.echo(f"{address}: {status}" + ("" if changed else " (unchanged)"))


def _block_unknown(db: Database, email: str, status: str) -> tuple[str, bool]:
    """Someone not on the list is blocked by the keyed hash of their address alone."""
    address = subscribers.normalize_email(email)
    if status == "blocklisted":
        return address, subscribers.suppress(db, address, "blocklisted:cli")
    if not subscribers.lift_suppression(db, address):
        subscribers.require(db, address)  # NotFound: nothing to unblock
    return address, True


@app.command("block")
def block(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address (any case)")],
    as_json: JsonOption = False,
) -> None:
    """Blocklist a person: never mailed again, subscriptions kept (e.g. after a spam complaint).

    A send in progress stops mailing them from its next batch. An address not on the list is
    kept as a keyed hash only, so no import can add it.

    Example: newsletter subscribers block maija@example.fi
    """
    _set_status(ctx, email, "blocklisted", as_json)


@app.command("unblock")
def unblock(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="E-mail address (any case)")],
    as_json: JsonOption = False,
) -> None:
    """Make a blocklisted or bounced person active again (their subscriptions still apply).

    Example: newsletter subscribers unblock maija@example.fi
    """
    _set_status(ctx, email, "active", as_json)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="subscribers")
