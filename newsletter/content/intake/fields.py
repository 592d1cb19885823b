"""What every source format shares: categories vs topics, times, languages, sizes, duplicates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter import i18n
from newsletter.config import LANGUAGES, Settings
from newsletter.content.articles import ArticleIn, is_web_address
from newsletter.content.intake.text import collapse, shorten
from newsletter.content.topics import slugify

TITLE_FROM_SUMMARY = 90  # characters of summary that stand in for a missing title
# Dates outside these years are typos or test data; beyond them time arithmetic overflows.
FIRST_YEAR, LAST_YEAR = 1900, 2200
MAX_TITLE = 300  # characters; longer titles are shortened with a warning
MAX_SUMMARY = 3000
MAX_URL = 2048  # a longer link is refused: mail clients and servers cut such links
MAX_RAW = 1_000_000  # characters of one field looked at, before markup is removed


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
        return in_range(value if value.tzinfo else value.replace(tzinfo=tz), value)
    if isinstance(value, date):
        return in_range(datetime.combine(value, time(0), tzinfo=tz), value)
    text = str(value).strip()[:200]
    moment = _iso(text) or _rfc822(text) or _finnish(text)
    if moment is None:
        raise ItemError(f"unreadable date {text!r}")
    return in_range(moment if moment.tzinfo else moment.replace(tzinfo=tz), text)


def in_range(moment: datetime, shown: object) -> datetime:
    """``moment`` when its year (also in UTC) is plausible; stored times are UTC."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ItemError(f"date out of range {str(shown)!r} (years {FIRST_YEAR}-{LAST_YEAR})")
    return moment


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None


def _finnish(text: str) -> datetime | None:
    """``15.8.2025`` as Finnish spreadsheets write a day."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        return datetime(int(parts[2]), int(parts[1]), int(parts[0]))
    except (ValueError, OverflowError):
        return None


def _rfc822(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
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
        value = value[:MAX_RAW]
        for sep in ";|":
            value = value.replace(sep, ",")
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        # Only plain values: a nested structure (a YAML alias bomb) would print as megabytes.
        if not all(isinstance(part, str | int | float) for part in value):
            raise ItemError("topics must be a list of names")
        return [str(part).strip()[:MAX_TITLE] for part in value[:100] if str(part).strip()]
    if isinstance(value, str | int | float):
        return [str(value).strip()]
    raise ItemError("topics must be a list of names")


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
    seen.lang = seen.lang or item.lang
    seen.translation_of = seen.translation_of or item.translation_of
    if not seen.image and item.image:
        seen.image, seen.image_alt = item.image, item.image_alt


def _name(title: str) -> str:
    return f"{title!r} " if title else "an item "


def language(value: object) -> tuple[str | None, str | None]:
    """(fi/sv/en or None, a warning or None) from ``fi-FI``, ``sv_FI``, ``Svenska``, ``en``..."""
    if value is None or not str(value).strip():
        return None, None
    text = collapse(str(value))[:40]
    code = i18n.supported_language(text)
    if code is not None:
        return code, None
    return None, f"language {text!r} is not one of {', '.join(LANGUAGES)}: default language used"


def bounded(text: str, limit: int, what: str, warn: Callable[[str], None]) -> str:
    """``text`` cut to ``limit`` characters, with a warning when it had to be cut."""
    if len(text) <= limit:
        return text
    warn(f"{what} shortened from {len(text)} to {limit} characters")
    return shorten(text, limit)


def raw_text(value: object) -> str:
    """A field's value as text, at most MAX_RAW characters (a bomb stays small)."""
    if value is None:
        return ""
    return str(value)[:MAX_RAW]


def checked_length(url: str) -> str:
    if len(url) > MAX_URL:
        raise ItemError(f"link longer than {MAX_URL} characters")
    return url
