"""What every source format shares: categories vs topics, times, required fields, duplicates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.config import Settings
from newsletter.content.articles import ArticleIn, is_web_address
from newsletter.content.intake.text import collapse, html_to_text, shorten
from newsletter.content.topics import slugify

TITLE_FROM_SUMMARY = 90  # characters of summary that stand in for a missing title


class ItemError(ValueError):
    """One item of a source cannot be used; the message says which and why."""


def checked_url(url: str, title: str) -> str:
    """``url`` if it is an absolute http(s) address; otherwise the item is unusable.

    Checked at import rather than at build: an ``urn:`` id standing in for a missing Atom
    link, or a ``javascript:`` link, would otherwise sit in the database until a build
    refused the whole edition because of it.
    """
    if not is_web_address(url):
        raise ItemError(f"{_name(title)}has a link that is not an http(s) address: {url!r}")
    return url


def split_categories(
    tags: Iterable[tuple[str, str | None]], settings: Settings
) -> tuple[str | None, list[str]]:
    """(category, topics) from (value, domain/scheme) pairs.

    A value listed in ``article_types`` (any case) or marked with domain/scheme ``type`` is the
    article's category (the first one wins); every other value is a topic.
    """
    types = {t.casefold(): t for t in settings.article_types}
    category: str | None = None
    found: list[str] = []
    for raw_value, scheme in tags:
        value = collapse(raw_value or "")
        if not value:
            continue
        is_type = value.casefold() in types or (scheme or "").strip().casefold() == "type"
        if is_type:
            category = category or types.get(value.casefold(), value)
        elif slugify(value) and slugify(value) not in {slugify(t) for t in found}:
            found.append(value)
    return category, found


def parse_time(value: Any, tz: ZoneInfo) -> datetime | None:
    """An aware datetime from RFC 822, ISO 8601, a date or a datetime; naive means ``tz``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=tz)
    text = str(value).strip()
    moment = _iso(text) or _rfc822(text) or _finnish(text)
    if moment is None:
        raise ItemError(f"unreadable date {text!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _finnish(text: str) -> datetime | None:
    """``15.8.2025`` as Finnish spreadsheets write a day."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        return datetime(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None


def _rfc822(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 5322: "-0000" is UTC with no statement about local time; Python returns it naive.
    if moment.tzinfo is None and text.rstrip().endswith("-0000"):
        return moment.replace(tzinfo=UTC)
    return moment


def text_list(value: Any) -> list[str]:
    """Topics given as a list, or as one string separated by commas, semicolons or bars."""
    if value is None:
        return []
    if isinstance(value, str):
        for sep in ";|":
            value = value.replace(sep, ",")
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(part).strip() for part in value if str(part).strip()]
    return [str(value).strip()]


def first(record: Mapping[str, Any], *names: str) -> Any:
    """The first non-empty value among alternative field names."""
    for name in names:
        value = record.get(name)
        if value not in (None, "", []):
            return value
    return None


def article_from_record(
    record: Mapping[str, Any], settings: Settings, *, body_summary: str = "", body_title: str = ""
) -> ArticleIn:
    """An article from a flat record (JSON object, CSV row, Markdown front matter).

    Field names match ``articles list --json``, so its output can be imported again; common
    alternatives (link, id, description, date, tags, type) are accepted too.
    """
    record = {str(k).strip().lower(): v for k, v in record.items()}
    url = collapse(str(first(record, "url", "link") or ""))
    title = html_to_text(str(first(record, "title") or "")) or body_title
    summary = html_to_text(str(first(record, "summary", "description") or "")) or body_summary
    if not title and summary:
        title = shorten(summary, TITLE_FROM_SUMMARY)
    if not url:
        raise ItemError(f"{_name(title)}has no url")
    if not title:
        raise ItemError(f"{url} has no title")
    checked_url(url, title)
    published = parse_time(first(record, "published", "date", "pubdate"), settings.tz)
    if published is None:
        raise ItemError(f"{url} has no published date")
    explicit = first(record, "category", "type")
    tagged = [(v, None) for v in text_list(first(record, "topics", "tags", "categories"))]
    category, topics = split_categories(tagged, settings)
    image = first(record, "image", "image_url")
    alt = first(record, "image_alt", "alt")
    return ArticleIn(
        url=url,
        title=title,
        summary=summary,
        published=published,
        guid=collapse(str(first(record, "guid", "id") or "")),
        category=collapse(str(explicit)) if explicit else category,
        topics=topics,
        image=collapse(str(image)) if image else None,
        image_alt=collapse(str(alt)) if alt and image else None,
    )


def _name(title: str) -> str:
    return f"{title!r} " if title else "an item "


def merge_duplicates(items: Iterable[ArticleIn]) -> list[ArticleIn]:
    """One article per stored identity, in first-seen order.

    A feed that lists an item twice must not count it twice; the first copy wins and later
    copies only add topics and fill fields the first left empty. Copies are matched as
    ``articles.upsert`` matches stored ones: by guid, and a copy without a guid by URL.
    Otherwise each copy would overwrite the other and every re-import would be "updated".
    """
    kept: list[ArticleIn] = []
    by_guid: dict[str, ArticleIn] = {}
    by_url: dict[str, ArticleIn] = {}
    for item in items:
        seen = _same(item, by_guid, by_url)
        if seen is None:
            kept.append(item)
            seen = item
        else:
            _fill(seen, item)
        if seen.guid:
            by_guid.setdefault(seen.guid, seen)
        by_url.setdefault(seen.url, seen)
    return kept


def _same(
    item: ArticleIn, by_guid: dict[str, ArticleIn], by_url: dict[str, ArticleIn]
) -> ArticleIn | None:
    if not item.guid:
        return by_url.get(item.url)
    if item.guid in by_guid:
        return by_guid[item.guid]
    # A copy without a guid met first: this one names it (upsert adopts a guid the same way).
    earlier = by_url.get(item.url)
    return earlier if earlier is not None and not earlier.guid else None


def _fill(seen: ArticleIn, item: ArticleIn) -> None:
    """A later copy adds topics and fills what the first copy left empty."""
    known = {slugify(t) for t in seen.topics}
    seen.topics.extend(t for t in item.topics if slugify(t) not in known)
    seen.guid = seen.guid or item.guid
    seen.summary = seen.summary or item.summary
    seen.category = seen.category or item.category
    if not seen.image and item.image:
        seen.image, seen.image_alt = item.image, item.image_alt
