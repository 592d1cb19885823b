"""``newsletter build``, ``newsletter preview`` and ``newsletter editions``."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from newsletter.audience import languages, subscribers
from newsletter.cli.common import print_json, state, warn
from newsletter.cli.output import limited, local_time, print_json_rows, print_table
from newsletter.config import LANGUAGES
from newsletter.content import editions, topics, variants
from newsletter.delivery import checks
from newsletter.errors import NewsletterError

editions_app = typer.Typer(
    help="Stored editions: list, inspect and delete drafts.\n\nExample: newsletter editions show 3",
    no_args_is_help=True,
)

DEFAULT_OUT = Path("editions")


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def _read_file(path: str) -> str:
    from newsletter.content.intake.text import decode_text  # UTF-8/16 or Windows-1252

    try:
        return decode_text(Path(path).read_bytes(), path)
    except OSError as exc:
        raise NewsletterError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise NewsletterError(f"cannot read {exc}") from None


def _read_intro(intro: list[str] | None, intro_file: list[str] | None) -> variants.PerLanguage:
    """``--intro`` texts and ``--intro-file`` files, each plain or ``L=...`` per language."""
    if intro and intro_file:
        raise NewsletterError("use either --intro or --intro-file, not both")
    if not intro_file:
        return variants.parse_per_language(intro, "--intro")
    files = variants.parse_per_language(intro_file, "--intro-file")
    return variants.PerLanguage(
        _read_file(files.plain) if files.plain is not None else None,
        {lang: _read_file(path) for lang, path in files.by_lang.items()},
    )


def build_languages(ctx: typer.Context, topic: list[str], lang: list[str] | None) -> list[str]:
    """``--lang`` as given, else every language the topics' recipients read (and the
    default language, whose variant goes to anyone else)."""
    if lang:
        return variants.check_languages(lang)
    current = state(ctx)
    topic_ids = [t.id for t in topics.resolve_many(current.db, topic)]
    found = languages.recipient_languages(current.db, topic_ids)
    return [current.settings.default_lang, *(x for x in found if x in LANGUAGES)]


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
        list[str] | None,
        typer.Option(
            "--subject",
            help='Subject line (default: topic name and date); per language: sv="..."'
            " (repeatable; a language without one gets the plain or default-language one)",
        ),
    ] = None,
    intro: Annotated[
        list[str] | None,
        typer.Option("--intro", help='Introduction above the articles; per language: sv="..."'),
    ] = None,
    intro_file: Annotated[
        list[str] | None,
        typer.Option(
            "--intro-file", help="Read the introduction from a file; per language: sv=FILE"
        ),
    ] = None,
    lang: Annotated[
        list[str] | None,
        typer.Option(
            "--lang",
            help="Build a variant in this language: fi, sv or en (repeatable). Default: the"
            " default language and every language the topic's recipients read",
        ),
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
    subscribers.recover_imports(current.db)  # a dead import's half is nobody's consent
    result = editions.build(
        current.db,
        current.settings,
        topics=topic,
        since=since,
        until=until,
        limit=limit,
        subject=variants.parse_per_language(subject, "--subject"),
        intro=_read_intro(intro, intro_file),
        lang=build_languages(ctx, topic, lang),
        template=template,
        out=out,
    )
    for message in result.warnings:
        warn(message)
    for variant in result.variants:
        if variant.html_bytes > editions.SIZE_WARNING:
            warn(
                f"{variant.html_path} is {_kb(variant.html_bytes)} ({variant.html_bytes} bytes):"
                " Gmail clips messages above about 100 KB; use --limit to shorten it"
            )
    if as_json:
        print_json(result.as_json())
        return
    typer.echo(f"edition {result.edition_id} (draft): {result.subject}")
    typer.echo(f"  topics: {', '.join(result.topics)}")
    for variant in result.variants:
        typer.echo(
            f"  [{variant.lang}] {len(variant.articles)} articles: {variant.subject}\n"
            f"       HTML: {variant.html_path} ({_kb(variant.html_bytes)})\n"
            f"       text: {variant.text_path}"
        )


def preview(
    ctx: typer.Context,
    edition_id: Annotated[int, typer.Argument(help="Edition number")],
    text: Annotated[bool, typer.Option("--text", help="Print the plain-text part")] = False,
    open_: Annotated[bool, typer.Option("--open", help="Open the HTML in the web browser")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for edition-ID.html and .txt")
    ] = DEFAULT_OUT,
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="The variant in this language (default: the main one)"),
    ] = None,
) -> None:
    """Show an edition as a sample subscriber gets it: its HTML file, its text, or a browser.

    Example: newsletter preview 3 --lang sv --open
    """
    current = state(ctx)
    edition = editions.get(current.db, edition_id)
    if lang is not None and lang not in edition.languages:
        raise NewsletterError(
            f"edition {edition_id} has no {lang} variant (it has {', '.join(edition.languages)})"
        )
    variant = edition.variant(lang)
    html, plain = checks.sample_copy(current.settings, variant.html, variant.text)
    if text:
        typer.echo(plain, nl=False)
        return
    # Written from the database: the file may be gone or belong to another checkout.
    main = variant.lang == edition.languages[0]
    html_path, _ = editions.write_preview(
        out, edition.id, html, plain, None if main else variant.lang
    )
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
            "languages",
            ("articles", "right"),
            "topics",
            "subject",
        ],
        rows,
        lambda r: (
            r.id,
            r.status,
            local_time(r.created, tz),
            ",".join(r.languages),
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
    db, default = current.db, current.settings.default_lang
    edition = editions.get(db, edition_id)
    shown = editions.articles_of(db, edition)
    if as_json:
        data = edition.as_json()
        data["articles"] = [{"id": a.id, "title": a.title, "url": a.url} for a in shown]
        for variant in data["variants"]:
            variant["articles"] = [
                {"id": a.id, "title": a.title, "url": a.url, "lang": a.language(default)}
                for a in editions.articles_of(db, edition, variant["lang"])
            ]
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
    if not edition.variants:
        typer.echo(f"  articles ({len(shown)}):")
        for article in shown:
            typer.echo(f"    - {article.title}\n      {article.url}")
    for variant in edition.variants:
        in_variant = editions.articles_of(db, edition, variant.lang)
        typer.echo(f"  variant {variant.lang}: {variant.subject}")
        typer.echo(f"    preheader: {variant.preheader}")
        typer.echo(f"    size:      HTML {_kb(variant.html_bytes)}")
        typer.echo(f"    articles ({len(in_variant)}):")
        for article in in_variant:
            own = article.language(default)
            marked = f" [{own}]" if own != variant.lang else ""
            typer.echo(f"      - {article.title}{marked}\n        {article.url}")


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
