"""Article intake: feeds, JSON, CSV and Markdown folders into the articles table.

Each source is read completely first and then stored in one transaction, so a source that
fails (unreadable, malformed, an unusable item) leaves the database as it was; the other
sources are still imported and every failure is reported, naming its source.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml
from sqlite_utils import Database

from newsletter import i18n
from newsletter.config import Settings
from newsletter.content import articles
from newsletter.content.articles import ArticleIn
from newsletter.content.intake import feeds, markdown, tabular
from newsletter.content.intake.fields import merge_duplicates
from newsletter.content.intake.text import one_line
from newsletter.content.topics import slugify
from newsletter.errors import NewsletterError
from newsletter.store.db import immediate

# Told (source, articles stored, articles in the source, source finished) as work goes on:
# before a source is read (total 0), once it is read, after each article, and once when the
# source is done or failed.
Progress = Callable[[str, int, int, bool], None]


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_json(self) -> dict:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": list(self.errors),
        }


def read_source(source: str, settings: Settings) -> list[ArticleIn]:
    """Every article of one source, duplicates merged; NewsletterError names the source."""
    try:
        found = _dispatch(source, settings)
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
    except (OSError, ValueError, csv.Error, yaml.YAMLError) as exc:
        raise NewsletterError(f"{source}: {one_line(exc)}") from None
    for article in found:
        article.source = article.source or source
    return merge_duplicates(found)


def _dispatch(source: str, settings: Settings) -> list[ArticleIn]:
    if feeds.is_url(source):
        return _read_url(source, settings)
    path = Path(source)
    if path.is_dir():
        return markdown.read_folder(path, settings)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return tabular.read_json(path, settings)
    if suffix == ".csv":
        return tabular.read_csv(path, settings)
    if suffix in (".md", ".markdown"):
        return [markdown.read_file(path, settings)]
    return feeds.read_feed(path, settings)  # .xml, .rss, .atom or anything else


def _read_url(url: str, settings: Settings) -> list[ArticleIn]:
    """A feed, or a JSON or CSV file, over http(s): the URL's ending or content type decides."""
    body, headers = feeds.fetch(url, feeds.FETCH_TIMEOUT)
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if suffix == ".json" or kind == "application/json":
        return tabular.parse_json(body.decode("utf-8-sig"), settings)
    if suffix == ".csv" or kind == "text/csv":
        return tabular.parse_csv(body.decode("utf-8-sig"), settings)
    return feeds.parse_feed(body, settings, headers=headers, source=url)


def import_sources(
    db: Database,
    settings: Settings,
    sources: Sequence[str],
    extra_topics: Sequence[str] = (),
    progress: Progress | None = None,
    lang: str | None = None,
) -> ImportReport:
    """Import each source in its own transaction; failures go to ``report.errors``.

    ``lang``: the language of articles whose source does not say (``articles import --lang``).
    """
    if lang is not None:
        lang = i18n.check_lang(lang)
    for name in extra_topics:
        if not slugify(name):
            raise NewsletterError(f"topic {name!r} has no letters or digits")
    report = ImportReport()
    tell = progress or _silent
    for source in sources:
        outcomes: list[str] = []
        tell(source, 0, 0, False)  # reading (a download may take a while)
        try:
            found = read_source(source, settings)
            for article in found:
                article.lang = article.lang or lang
            tell(source, 0, len(found), False)
            outcomes = _store(db, source, found, extra_topics, tell)
        except NewsletterError as exc:
            report.errors.append(str(exc))
        for outcome in outcomes:
            report.count(outcome)
        tell(source, len(outcomes), len(outcomes), True)
    return report


def _silent(source: str, done: int, total: int, finished: bool) -> None:
    return None


def _store(
    db: Database,
    source: str,
    found: list[ArticleIn],
    extra_topics: Sequence[str],
    tell: Progress,
) -> list[str]:
    outcomes = []
    try:
        # Upserts read before they write: take the write lock up front so a concurrent writer
        # (the web server, a send) makes this wait instead of failing half-way.
        with immediate(db):
            for done, article in enumerate(found, start=1):
                article.topics = [*article.topics, *extra_topics]
                outcomes.append(articles.upsert(db, article))
                tell(source, done, len(found), False)
    except sqlite3.Error as exc:
        raise NewsletterError(f"{source}: database error: {exc}") from None
    except NewsletterError as exc:
        raise NewsletterError(f"{source}: {exc}") from None
    return outcomes
