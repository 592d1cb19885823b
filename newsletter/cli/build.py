"""``newsletter build``, ``newsletter preview`` and ``newsletter editions``."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import print_json, state, warn
from newsletter.cli.output import limited, local_time, print_json_rows, print_table
from newsletter.content import editions
from newsletter.delivery import checks
from newsletter.errors import NewsletterError

editions_app = typer.Typer(
    help="Stored editions: list, inspect and delete drafts.\n\nExample: newsletter editions show 3",
    no_args_is_help=True,
)

DEFAULT_OUT = Path("editions")


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def _read_intro(intro: str | None, intro_file: Path | None) -> str | None:
    if intro is not None and intro_file is not None:
        raise NewsletterError("use either --intro or --intro-file, not both")
    if intro_file is None:
        return intro
    from newsletter.content.intake.text import decode_text  # UTF-8/16 or Windows-1252

    try:
        return decode_text(intro_file.read_bytes(), str(intro_file))
    except OSError as exc:
        raise NewsletterError(f"cannot read {intro_file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise NewsletterError(f"cannot read {exc}") from None


def build(
    ctx: typer.Context,
    topic: Annotated[
        list[str], typer.Option("--topic", "-t", help="Topic slug or name (repeatable)")
    ],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="First day (YYYY-MM-DD, or 14d / 2w back). Default: after the newest article"
            " of the topic's latest edition sent (drafts do not count), or the last 30 days",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last day included (YYYY-MM-DD)")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N articles")] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Subject line (default: topic name and date)"),
    ] = None,
    intro: Annotated[
        str | None, typer.Option("--intro", help="Introduction text above the articles")
    ] = None,
    intro_file: Annotated[
        Path | None, typer.Option("--intro-file", help="Read the introduction from a file")
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="fi, sv or en (default: from the settings)")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="Template name (in templates_dir) or .mjml.j2 path"),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for edition-ID.html and .txt")
    ] = DEFAULT_OUT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Build an edition from a topic's new articles and store it as a draft.

    Example: newsletter build --topic yhteisovaikuttavuus --since 14d --limit 8
    """
    current = state(ctx)
    result = editions.build(
        current.db,
        current.settings,
        topics=topic,
        since=since,
        until=until,
        limit=limit,
        subject=subject,
        intro=_read_intro(intro, intro_file),
        lang=lang,
        template=template,
        out=out,
    )
    for message in result.warnings:
        warn(message)
    if result.too_big:
        warn(
            f"{result.html_path} is {_kb(result.html_bytes)} ({result.html_bytes} bytes):"
            " Gmail clips messages above about 100 KB; use --limit to shorten it"
        )
    if as_json:
        print_json(result.as_json())
        return
    typer.echo(f"edition {result.edition_id} (draft): {result.subject}")
    typer.echo(f"  {len(result.articles)} articles, topics: {', '.join(result.topics)}")
    typer.echo(f"  HTML: {result.html_path} ({_kb(result.html_bytes)})")
    typer.echo(f"  text: {result.text_path}")


def preview(
    ctx: typer.Context,
    edition_id: Annotated[int, typer.Argument(help="Edition number")],
    text: Annotated[bool, typer.Option("--text", help="Print the plain-text part")] = False,
    open_: Annotated[bool, typer.Option("--open", help="Open the HTML in the web browser")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for edition-ID.html and .txt")
    ] = DEFAULT_OUT,
) -> None:
    """Show an edition as a sample subscriber gets it: its HTML file, its text, or a browser.

    Example: newsletter preview 3 --open
    """
    current = state(ctx)
    edition = editions.get(current.db, edition_id)
    html, plain = checks.sample_copy(current.settings, edition.html, edition.text)
    if text:
        typer.echo(plain, nl=False)
        return
    # Written from the database: the file may be gone or belong to another checkout.
    html_path, _ = editions.write_preview(out, edition.id, html, plain)
    typer.echo(str(html_path))
    if open_ and not webbrowser.open(html_path.resolve().as_uri()):
        raise NewsletterError(f"no web browser found to open {html_path}: open the file yourself")


@editions_app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N editions")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List editions, newest first (times in the organisation's time zone).

    Example: newsletter editions list --limit 5
    """
    current = state(ctx)
    rows = limited(editions.list_(current.db), limit)
    if as_json:
        print_json_rows(row.as_json() for row in rows)
        return
    tz = current.settings.tz
    print_table(
        [
            ("edition", "right"),
            "status",
            f"created ({current.settings.timezone})",
            "lang",
            ("articles", "right"),
            "topics",
            "subject",
        ],
        rows,
        lambda r: (
            r.id,
            r.status,
            local_time(r.created, tz),
            r.lang,
            r.article_count,
            " ".join(r.topics),
            r.subject,
        ),
        empty="no editions yet: run `newsletter build --topic TOPIC`",
    )


@editions_app.command("show")
def show(
    ctx: typer.Context,
    edition_id: Annotated[int, typer.Argument(help="Edition number")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show an edition's subject, topics, status and articles.

    Example: newsletter editions show 3
    """
    current = state(ctx)
    db = current.db
    edition = editions.get(db, edition_id)
    shown = editions.articles_of(db, edition)
    if as_json:
        data = edition.as_json()
        data["articles"] = [{"id": a.id, "title": a.title, "url": a.url} for a in shown]
        print_json(data)
        return
    typer.echo(f"edition {edition.id}: {edition.subject}")
    typer.echo(f"  status:    {edition.status}")
    created = local_time(edition.created, current.settings.tz)
    typer.echo(f"  created:   {created} ({current.settings.timezone})")
    typer.echo(f"  language:  {edition.lang}")
    typer.echo(f"  topics:    {', '.join(edition.topic_names)}")
    typer.echo(f"  preheader: {edition.preheader}")
    typer.echo(f"  template:  {edition.template}")
    typer.echo(f"  size:      HTML {_kb(edition.html_bytes)}")
    typer.echo(f"  articles ({len(shown)}):")
    for article in shown:
        typer.echo(f"    - {article.title}\n      {article.url}")


@editions_app.command("delete")
def delete(
    ctx: typer.Context,
    edition_id: Annotated[int, typer.Argument(help="Edition number (a draft)")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder of its edition-ID.html and .txt")
    ] = DEFAULT_OUT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Delete a draft edition and its files; editions that went out are kept.

    Example: newsletter editions delete 3
    """
    editions.delete(state(ctx).db, edition_id, out)
    if as_json:
        print_json({"deleted": edition_id})
        return
    typer.echo(f"deleted edition {edition_id}")


def register(root: typer.Typer) -> None:
    root.command("build")(build)
    root.command("preview")(preview)
    root.add_typer(editions_app, name="editions")
