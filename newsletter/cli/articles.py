"""``newsletter articles``: import articles from feeds and files, list what is stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from newsletter.cli.common import print_json, state, stderr_is_tty
from newsletter.cli.output import print_json_rows, print_table
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
            help="RSS/Atom/JSON Feed file or http(s) URL, .json (also WordPress REST) or .csv"
            " file, or a folder of .md files",
            metavar="SOURCE",
            show_default=False,
        ),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic", "-t", help="Add this existing topic to every imported article (repeatable)"
        ),
    ] = None,
    create_topic: Annotated[
        bool, typer.Option("--create-topic", help="Create the --topic topics that do not exist")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Import a source only if every item is usable and the feed well-formed"
        ),
    ] = False,
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

    Each source is imported on its own: unusable items are skipped and reported as warnings,
    a source that cannot be read fails alone (exit status 1). Topics first seen in a feed are
    hidden from the sign-up page until `newsletter topics unhide`.

    Example: newsletter articles import https://www.example.fi/feed/ --topic Vaikuttavuus
    """
    st = state(ctx)
    if lang is not None:
        check_lang(lang)  # before the progress bar: a typo is a usage problem, not a source's
    with _progress(len(sources)) as tell:
        from newsletter.content import intake  # feed, YAML and Markdown parsers load only here

        report = intake.import_sources(
            st.db,
            st.settings,
            sources,
            topic or [],
            progress=tell,
            strict=strict,
            create_topics=create_topic,
            default_lang=lang,
        )
    _print_report(report, as_json)
    if report.failed:
        raise typer.Exit(1)


def _print_report(report: intake.ImportReport, as_json: bool) -> None:
    """A line per source (and a total), warnings and errors on stderr naming their source."""
    if as_json:
        print_json(report.as_json())
    for line in report.sources:
        if not as_json:
            typer.echo(line.summary())
        for warning in line.warnings():
            typer.echo(f"warning: {warning}", err=True)
        if line.error:
            typer.echo(f"error: {line.error}", err=True)
    if len(report.sources) > 1 and not as_json:
        skipped = f", skipped {report.skipped}" if report.skipped else ""
        failed = sum(1 for s in report.sources if s.error)
        typer.echo(
            f"total: imported {report.imported}, updated {report.updated},"
            f" unchanged {report.unchanged}{skipped}"
            + (f"; {failed} of {len(report.sources)} sources failed" if failed else "")
        )


SHOW_AFTER = 1.0  # seconds: a quick import needs no bar


@contextmanager
def _progress(count: int) -> Iterator[intake.Progress | None]:
    """A rich progress bar on stderr when a person is watching and the import takes a while.

    It appears only after a second (so quick imports print just their report) and is
    transient: once done only the report remains.
    """
    if not stderr_is_tty():
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    overall = bar.add_task("sources", total=count) if count > 1 else None
    current = bar.add_task("", total=None)
    lock = threading.Lock()
    shown = False

    def show() -> None:
        nonlocal shown
        with lock:
            if not shown:
                shown = True
                bar.start()

    def tell(source: str, done: int, total: int, finished: bool) -> None:
        bar.update(current, description=source, completed=done, total=total or None)
        if finished and overall is not None:
            bar.advance(overall)

    timer = threading.Timer(SHOW_AFTER, show)
    timer.daemon = True
    timer.start()
    try:
        yield tell
    finally:
        timer.cancel()
        with lock:
            if shown:
                bar.stop()
            shown = True  # a timer that fires now must not start it


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
        print_json_rows({**a.as_json(tz), "lang": a.language(default)} for a in found)
        return
    print_table(
        ["published", "type", "title", "topics", "language"],
        found,
        lambda a: (
            format_date(a.published, default, tz),
            a.category or "-",
            a.title,
            ", ".join(a.topics),
            a.language(default),
        ),
        empty="no articles match",
    )


def register(root: typer.Typer) -> None:
    """Add the ``articles`` sub-app to the root app."""
    root.add_typer(app, name="articles")
