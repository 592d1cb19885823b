"""Article intake: feeds, JSON, CSV and Markdown folders into the articles table.

Each source is read completely first and then stored in its own transaction, so a source
that fails (unreadable, or under ``strict`` any unusable item) leaves the database as it
was, and the other sources are still imported. A lenient import stores a source's good
items and reports the others, and what it had to change, as warnings naming the item.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml
from sqlite_utils import Database

from newsletter.config import Settings
from newsletter.content import articles, topics
from newsletter.content.articles import ArticleIn
from newsletter.content.intake import download, feeds, markdown, tabular
from newsletter.content.intake.fields import language, merge_duplicates
from newsletter.content.intake.problems import Problems, StrictError
from newsletter.content.intake.report import ImportReport, SourceReport
from newsletter.content.intake.text import decode_text, one_line
from newsletter.errors import NewsletterError
from newsletter.store.db import immediate

__all__ = ["ImportReport", "Progress", "SourceReport", "import_sources", "read_source"]

# Told (source, articles stored, articles in the source, source finished) as work goes on:
# before a source is read (total 0), once it is read, after each article, and once when the
# source is done or failed.
Progress = Callable[[str, int, int, bool], None]


def read_source(
    source: str, settings: Settings, problems: Problems | None = None
) -> list[ArticleIn]:
    """Every article of one source, duplicates merged; NewsletterError names the source."""
    problems = problems if problems is not None else Problems()
    try:
        found = _dispatch(source, settings, problems)
    except NewsletterError as exc:
        raise NewsletterError(f"{source}: {exc}") from None
    except FileNotFoundError:
        raise NewsletterError(f"{source}: no such file or folder") from None
    except PermissionError:
        raise NewsletterError(f"{source}: permission denied") from None
    except IsADirectoryError:
        raise NewsletterError(f"{source}: is a folder") from None
    except UnicodeDecodeError:
        raise NewsletterError(f"{source}: not UTF-8 text") from None
    except StrictError as exc:
        raise NewsletterError(f"{source}: {exc} (--strict)") from None
    except RecursionError:
        raise NewsletterError(f"{source}: nested too deeply to read") from None
    except MemoryError:
        raise NewsletterError(f"{source}: too large to read") from None
    except (OSError, ValueError, csv.Error, yaml.YAMLError, LookupError) as exc:
        raise NewsletterError(f"{source}: {one_line(exc)[:500]}") from None
    except Exception as exc:  # a parser's bug must not become a traceback
        raise NewsletterError(
            f"{source}: cannot be read (internal error {type(exc).__name__}: please report it)"
        ) from None
    for article in found:
        article.source = article.source or source
    return merge_duplicates(found)


def _dispatch(source: str, settings: Settings, problems: Problems) -> list[ArticleIn]:
    if source.lower().startswith(("http://", "https://")):
        return _read_url(source, settings, problems)
    path = Path(source)
    if path.is_dir():
        return markdown.read_folder(path, settings, problems)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return tabular.read_json(path, settings, problems)
    if suffix == ".csv":
        return tabular.read_csv(path, settings, problems)
    if suffix in (".md", ".markdown"):
        return [markdown.read_file(path, settings, problems.warner(1, None, None, "file"))]
    return feeds.read_feed(path, settings, problems)  # .xml, .rss, .atom or anything else


def _read_url(url: str, settings: Settings, problems: Problems) -> list[ArticleIn]:
    """A feed, or a JSON or CSV file, over http(s): the URL's ending or content type decides."""
    max_bytes = int(settings.max_download_mb * 1024 * 1024)
    body, headers = download.fetch(url, settings.download_deadline, max_bytes)
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix == ".json" or kind in ("application/json", "application/feed+json"):
        return tabular.parse_json(decode_text(body, url), settings, problems)
    if suffix == ".csv" or kind == "text/csv":
        return tabular.parse_csv(decode_text(body, url), settings, problems)
    return feeds.parse_feed(body, settings, problems, headers=headers, source=url)


def import_sources(
    db: Database,
    settings: Settings,
    sources: Sequence[str],
    extra_topics: Sequence[str] = (),
    progress: Progress | None = None,
    *,
    strict: bool = False,
    create_topics: bool = False,
    default_lang: str | None = None,
) -> ImportReport:
    """Import each source in its own transaction; each gets its line in the report.

    ``extra_topics`` (``--topic``) must name existing topics unless ``create_topics``;
    ``default_lang`` is given to articles whose source names no language.
    """
    # Stored as a concrete language: an article does not change language if default_lang does.
    lang = _default_language(default_lang) or settings.default_lang
    wanted = _extra_topics(db, extra_topics, create_topics)
    report = ImportReport()
    tell = progress or _silent
    for source in sources:
        line = SourceReport(source)
        report.sources.append(line)
        problems = Problems(strict=strict)
        tell(source, 0, 0, False)  # reading (a download may take a while)
        try:
            found = read_source(source, settings, problems)
            for article in found:
                article.lang = article.lang or lang
            tell(source, 0, len(found), False)
            outcomes = _store(db, settings, source, found, wanted, tell)
        except NewsletterError as exc:
            line.error = str(exc)
            outcomes = []
        line.problems = list(problems.found)
        for outcome in outcomes:
            line.count(outcome)
        tell(source, len(outcomes), len(outcomes), True)
    return report


def _default_language(default_lang: str | None) -> str | None:
    if default_lang is None:
        return None
    lang, problem = language(default_lang)
    if problem:
        raise NewsletterError(problem.split(":")[0])
    return lang


def _extra_topics(db: Database, names: Sequence[str], create: bool) -> list[str]:
    """The topics named by ``--topic``: existing ones, or new ones with ``create``."""
    chosen = []
    for name in names:
        if not topics.slugify(name):
            raise NewsletterError(f"topic {name!r} has no letters or digits")
        found = topics.find(db, name)
        if found is None and not create:
            known = ", ".join(t.slug for t in topics.all_topics(db)) or "none yet"
            raise NewsletterError(
                f"unknown topic {name!r} (known topics: {known}); add --create-topic to create it"
            )
        chosen.append(found.name if found else name.strip())
    if create:
        with immediate(db):
            for name in chosen:
                topics.ensure_topic(db, name)  # made by staff on purpose: listed at once
    return chosen


def _silent(source: str, done: int, total: int, finished: bool) -> None:
    return None


def _store(
    db: Database,
    settings: Settings,
    source: str,
    found: list[ArticleIn],
    extra_topics: Sequence[str],
    tell: Progress,
) -> list[str]:
    outcomes = []
    listed = settings.new_topics == "listed"
    try:
        # Upserts read before they write: take the write lock up front so a concurrent writer
        # (the web server, a send) makes this wait instead of failing half-way.
        with immediate(db):
            for done, article in enumerate(found, start=1):
                article.topics = [*article.topics, *extra_topics]
                for name in article.topics:
                    topics.ensure_topic(db, name, article.lang, listed=listed)
                outcomes.append(articles.upsert(db, article))
                tell(source, done, len(found), False)
    except sqlite3.Error as exc:
        raise NewsletterError(f"{source}: database error: {exc}") from None
    except NewsletterError as exc:
        raise NewsletterError(f"{source}: {exc}") from None
    return outcomes
