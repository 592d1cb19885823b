"""RSS 2.0, RSS 1.0 and Atom 1.0 feeds, read with feedparser, leniently.

feedparser normalises the formats (links, dates, categories, summaries) and recovers feeds
that are not well-formed XML (``&nbsp;``, a bare ``&`` in a link), as every feed reader
does: such a feed imports its items with a warning, and only ``--strict`` refuses it. An
item that cannot be an article (no link, no date) is skipped and reported by position.
"""

from __future__ import annotations

import re
from calendar import timegm
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from xml.sax import SAXParseException

import feedparser

from newsletter.config import Settings
from newsletter.content.articles import ArticleIn
from newsletter.content.intake.fields import (
    MAX_SUMMARY,
    MAX_TITLE,
    TITLE_FROM_SUMMARY,
    ItemError,
    bounded,
    checked_length,
    checked_url,
    in_range,
    language,
    parse_time,
    raw_text,
    split_categories,
)
from newsletter.content.intake.media import Image, entry_image, media_images
from newsletter.content.intake.problems import Problem, Problems
from newsletter.content.intake.text import (
    collapse,
    html_to_text,
    one_line,
    shorten,
    strip_read_more,
)

SUMMARY_FROM_CONTENT = 300  # characters kept when only the full content can serve as summary

# Warnings that do not make a feed unreliable: a wrong charset label or content type.
HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


def read_feed(path: Path, settings: Settings, problems: Problems) -> list[ArticleIn]:
    """Articles of a feed file, in feed order (duplicates not yet merged)."""
    return parse_feed(path.read_bytes(), settings, problems, source=str(path))


def parse_feed(
    body: bytes,
    settings: Settings,
    problems: Problems | None = None,
    *,
    headers: dict[str, str] | None = None,
    source: str = "",
) -> list[ArticleIn]:
    problems = problems if problems is not None else Problems()
    try:
        parsed = feedparser.parse(body, response_headers=headers or {})
    except (RecursionError, LookupError, ValueError) as exc:
        raise ValueError(f"not a readable feed: {one_line(exc)}") from None
    problem = parsed.get("bozo_exception")
    damaged = bool(parsed.get("bozo")) and not isinstance(problem, HARMLESS)
    if not parsed.get("version"):
        if damaged:
            raise ValueError(f"not a well-formed feed: {_describe(problem)}")
        raise ValueError("not an RSS or Atom feed")
    if damaged:
        if not parsed.entries:
            raise ValueError(f"not a well-formed feed: {_describe(problem)}")
        problems.recovered(f"not a well-formed feed, read leniently: {_describe(problem)}")
    images = media_images(body, len(parsed.entries))
    try:
        fallback = _entry_time(parsed.feed, settings)
    except ItemError as exc:
        problems.warn(Problem(f"channel: {exc}"))
        fallback = None
    feed_lang = parsed.feed.get("language")
    # feedparser resolves relative links against xml:base and the URL it was fetched from;
    # a saved file has neither, so the site's own address serves as the base.
    base = parsed.feed.get("link") or ""
    found = []
    for index, entry in enumerate(parsed.entries):
        position = index + 1
        link = collapse(raw_text(entry.get("link")))[:300] or None
        guid = collapse(raw_text(entry.get("id")))[:300] or None
        warn = problems.warner(position, guid, link)
        try:
            article = _article(entry, images[index], fallback, settings, source, warn)
            article.lang = _language(entry, feed_lang, warn)
            _link_translations(article, entry, base)
            # Resolved first: a relative link is fine, a urn: or javascript: one is not.
            article.url = checked_url(urljoin(base, article.url), article.title)
        except ItemError as exc:
            problems.skip(Problem(str(exc), position, guid, link))
            continue
        if article.image:
            article.image = urljoin(base, article.image)
        found.append(article)
    return found


def _link_translations(article: ArticleIn, entry: Any, base: str) -> None:
    """Atom ``<link rel="alternate" hreflang>`` lists a story's language versions.

    The version in the entry's own language is its link, and every version gets the same
    key (the smallest of their addresses), which is what ``translation_of`` links by.
    """
    versions: dict[str, str] = {}
    for link in entry.get("links", [])[:20]:
        href, hreflang = link.get("href"), link.get("hreflang")
        if link.get("rel") == "alternate" and href and hreflang:
            code = language(hreflang)[0] or collapse(str(hreflang)).lower()
            versions.setdefault(code, urljoin(base, collapse(href)))
    if len(versions) < 2:
        return
    if article.lang in versions:
        article.url = versions[article.lang]
    article.translation_of = min(versions.values())[:1000]


def _describe(problem: object) -> str:
    if isinstance(problem, SAXParseException):
        where = f"line {problem.getLineNumber()}, column {problem.getColumnNumber() + 1}"
        return f"{problem.getMessage()} at {where}"
    return one_line(problem)[:200]


def _article(
    entry: Any,
    image: Image | None,
    fallback: datetime | None,
    settings: Settings,
    source: str,
    warn: Callable[[str], None],
) -> ArticleIn:
    title = html_to_text(raw_text(entry.get("title")))
    summary = _summary(entry)
    if not title and summary:
        title = shorten(summary, TITLE_FROM_SUMMARY)
    url = checked_length(collapse(raw_text(entry.get("link"))))
    if not title:
        raise ItemError(f"{url or 'an item'} has no title")
    if not url:
        raise ItemError(f"{shorten(title, 80)!r} has no link")
    published = _entry_time(entry, settings) or fallback
    if published is None:
        raise ItemError(f"{shorten(title, 80)!r} has no date")
    category, topics = split_categories(
        (
            (raw_text(tag.get("term") or tag.get("label"))[:MAX_TITLE], tag.get("scheme"))
            for tag in entry.get("tags", [])[:100]
        ),
        settings,
    )
    image = entry_image(entry, image)
    return ArticleIn(
        url=url,
        title=bounded(title, MAX_TITLE, "title", warn),
        summary=bounded(summary, MAX_SUMMARY, "summary", warn),
        published=published,
        guid=collapse(raw_text(entry.get("id")))[:1000],
        category=category,
        topics=topics,
        image=image.url[:2048] if image else None,
        image_alt=image.alt[:MAX_TITLE] if image and image.alt else None,
        source=source or None,
    )


def _summary(entry: Any) -> str:
    summary = strip_read_more(html_to_text(raw_text(entry.get("summary"))))
    if summary:
        return summary
    # Only full content (content:encoded, atom:content) is left: its opening serves.
    for content in entry.get("content", []):
        if content.get("type") in ("text/html", "application/xhtml+xml", "text/plain"):
            text = strip_read_more(html_to_text(raw_text(content.get("value"))))
            return shorten(text, SUMMARY_FROM_CONTENT)
    return ""


def _language(entry: Any, feed_lang: str | None, warn: Callable[[str], None]) -> str | None:
    """dc:language of the item, else its xml:lang, else the channel's language."""
    details = [entry.get(key) or {} for key in ("title_detail", "summary_detail")]
    details += list(entry.get("content", []))
    declared = entry.get("language") or next(
        (d.get("language") for d in details if d.get("language")), None
    )
    lang, problem = language(declared or feed_lang)
    if problem:
        warn(problem)
    return lang


def _entry_time(entry: Any, settings: Settings) -> datetime | None:
    """The item's own time, keeping its UTC offset: feedparser's parsed form is UTC only."""
    for key in ("published", "updated", "created"):
        # dict.get: feedparser's own get() maps a missing "updated" to "published", with a
        # deprecation warning; both are looked at here anyway.
        raw = dict.get(entry, key)
        if not raw:
            continue
        try:
            return parse_time(raw, settings.tz)
        except ItemError:
            parsed = dict.get(entry, f"{key}_parsed")
            # feedparser reads formats we do not (other languages' month names), but it
            # also rolls impossible dates over (2025-13-45 becomes 2026-01-01): its answer
            # counts only if the year and day it found are written in the text.
            if not parsed or not _written_in(parsed, str(raw)):
                raise
            try:
                moment = datetime.fromtimestamp(timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError):
                raise ItemError(f"date out of range {str(raw)[:60]!r}") from None
            return in_range(moment, raw)
    return None


def _written_in(parsed: Any, raw: str) -> bool:
    """Whether feedparser's reading of ``raw`` is the date written there, not a rolled-over one."""
    if _NUMERIC_DATE.match(raw):  # our own parser is the judge of these: 2025-02-30 is no date
        return False
    numbers = {int(n) for n in "".join(c if c.isdigit() else " " for c in raw).split()[:12]}
    month_named = _WORD.search(raw) is not None
    return (
        parsed.tm_year in numbers
        and parsed.tm_mday in numbers
        and (month_named or parsed.tm_mon in numbers)
    )


_NUMERIC_DATE = re.compile(r"\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\.\d{1,2}\.\d{4})")
_WORD = re.compile(r"[^\W\d_]{3,}")  # a month's name, in whatever language
