"""``newsletter articles``: import articles from feeds and files, list what is stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from newsletter.cli.common import print_json, state, stderr_is_tty
from newsletter.content import articles, topics
from newsletter.dates import format_date
from newsletter.i18n import check_lang

if TYPE_CHECKING:
    from newsletter.content import intake

app = typer.Typer(
    help="Articles: import from feeds and files, list by topic.\n\n"
    "Example: newsletter articles list --topic Vaikuttavuus --since 30d",
    no_args_is_help=True,
)


@app.command("import")
def import_(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            help="RSS/Atom file or http(s) URL, .json or .csv file, or a folder of .md files",
            metavar="SOURCE",
            show_default=False,
        ),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Add this topic to every imported article (repeatable)"),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="Language (fi, sv, en) of articles whose source does not say;"
            " default: the default language",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Import articles; the same article (by guid, else URL) is updated, never duplicated.

    Example: newsletter articles import sample/articles.xml --topic Vaikuttavuus
    """
    st = state(ctx)
    if lang is not None:
        check_lang(lang)  # before the progress bar: a typo is a usage problem, not a source's
    with _progress(len(sources)) as tell:
        from newsletter.content import intake  # feed, YAML and Markdown parsers load only here

        report = intake.import_sources(
            st.db, st.settings, sources, topic or [], progress=tell, lang=lang
        )
    if as_json:
        print_json(report.as_json())
    else:
        typer.echo(
            f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}"
        )
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.errors:
        raise typer.Exit(1)


@contextmanager
def _progress(count: int) -> Iterator[intake.Progress | None]:
    """A rich progress bar on stderr when a person is watching (downloads can be slow).

    It is transient: once done only the summary line remains.
    """
    if not stderr_is_tty():
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    overall = bar.add_task("sources", total=count) if count > 1 else None
    current = bar.add_task("", total=None)

    def tell(source: str, done: int, total: int, finished: bool) -> None:
        bar.update(current, description=source, completed=done, total=total or None)
        if finished and overall is not None:
            bar.advance(overall)

    with bar:
        yield tell


@app.command("list")
def list_(
    ctx: typer.Context,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic", "-t", help="Only articles with this topic, slug or name (repeatable)"
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this day on: YYYY-MM-DD, or Nd / Nw ago")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to and including this day: YYYY-MM-DD")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N articles")] = None,
    lang: Annotated[
        str | None,
        typer.Option("--lang", help="Only articles in this language: fi, sv or en"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List stored articles, newest first; days count in the organisation's time zone.

    Example: newsletter articles list --topic Yhteisövaikuttavuus --since 2025-06-01 --json
    """
    st = state(ctx)
    tz = st.settings.tz
    chosen = topics.resolve_many(st.db, topic)
    start, end = articles.window(since, until, tz)
    default = st.settings.default_lang
    found = articles.select(
        st.db,
        topic_ids=[t.id for t in chosen] or None,
        since=start,
        until=end,
        limit=limit,
        lang=check_lang(lang) if lang is not None else None,
        default_lang=default,
    )
    if as_json:
        # The language each article is in: an article without one is in the default language.
        print_json([{**a.as_json(tz), "lang": a.language(default)} for a in found])
        return
    if not found:
        typer.echo("no articles match", err=True)
    for a in found:
        day = format_date(a.published, default, tz)
        tags = f"  [{', '.join(a.topics)}]" if a.topics else ""
        lang = f"  ({a.lang})" if a.language(default) != default else ""
        typer.echo(f"{day}  {(a.category or '-'):8} {a.title}{tags}{lang}")


def register(root: typer.Typer) -> None:
    """Add the ``articles`` sub-app to the root app."""
    root.add_typer(app, name="articles")
