"""RSS 2.0 and Atom 1.0 feeds, from a file or an http(s) URL, read with feedparser.

feedparser normalises the two formats (links, dates, categories, summaries). It folds
``media:description`` into the entry content, though, losing which image it describes, so
images and their alt texts are read from the XML itself (Media RSS namespace).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from xml.sax import SAXParseException

import feedparser

from newsletter import __version__
from newsletter.config import Settings
from newsletter.content.articles import ArticleIn
from newsletter.content.intake.fields import (
    TITLE_FROM_SUMMARY,
    ItemError,
    checked_url,
    parse_time,
    split_categories,
)
from newsletter.content.intake.text import collapse, html_to_text, one_line, shorten

FETCH_TIMEOUT = 30.0  # seconds for connecting and for each read
MAX_BYTES = 20 * 1024 * 1024  # a feed larger than this is a mistake, not news
SUMMARY_FROM_CONTENT = 300  # characters kept when only the full content can serve as summary

MEDIA = "{http://search.yahoo.com/mrss/}"
ITEM_TAGS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg")

# Warnings that do not make a feed unreliable: a wrong charset label or content type.
HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


@dataclass(frozen=True)
class Image:
    url: str
    alt: str | None


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an http(s) URL; failures are ValueError with a short reason."""
    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": f"newsletter/{__version__} (feed intake)",
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
            headers = {k.lower(): v for k, v in response.headers.items()}
            final_url = response.geturl()
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"cannot fetch: {exc.reason}") from None
    except TimeoutError:
        raise ValueError(f"no answer within {timeout:g} seconds") from None
    except (http.client.HTTPException, OSError) as exc:  # cut off mid-answer
        raise ValueError(f"cannot fetch: {one_line(exc)}") from None
    if len(body) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    expected = headers.get("content-length", "")
    # read(n) returns what arrived when the server hangs up early; a cut-off feed could still
    # parse as a shorter one, so compare with what the server announced.
    if expected.isdigit() and len(body) < int(expected) and not headers.get("content-encoding"):
        raise ValueError(f"cannot fetch: cut off after {len(body)} of {expected} bytes")
    headers.setdefault("content-location", final_url)
    return body, headers


def read_feed(path: Path, settings: Settings) -> list[ArticleIn]:
    """Articles of a feed file, in feed order (duplicates not yet merged)."""
    return parse_feed(path.read_bytes(), settings, source=str(path))


def parse_feed(
    body: bytes, settings: Settings, *, headers: dict[str, str] | None = None, source: str = ""
) -> list[ArticleIn]:
    parsed = feedparser.parse(body, response_headers=headers or {})
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, HARMLESS):
        raise ValueError(f"not a well-formed feed: {_describe(problem)}")
    if not parsed.get("version"):
        raise ValueError("not an RSS or Atom feed")
    images = _images(body, len(parsed.entries))
    try:
        fallback = _entry_time(parsed.feed, settings)
    except ItemError as exc:
        raise ValueError(f"channel: {exc}") from None
    # feedparser resolves relative links against xml:base and the URL it was fetched from;
    # a saved file has neither, so the site's own address serves as the base.
    base = parsed.feed.get("link") or ""
    articles = []
    for index, entry in enumerate(parsed.entries):
        try:
            article = _article(entry, images[index], fallback, settings, source)
            # Resolved first: a relative link is fine, a urn: or javascript: one is not.
            article.url = checked_url(urljoin(base, article.url), article.title)
        except ItemError as exc:
            raise ValueError(f"item {index + 1}: {exc}") from None
        if article.image:
            article.image = urljoin(base, article.image)
        articles.append(article)
    return articles


def _describe(problem: object) -> str:
    if isinstance(problem, SAXParseException):
        where = f"line {problem.getLineNumber()}, column {problem.getColumnNumber() + 1}"
        return f"{problem.getMessage()} at {where}"
    return one_line(problem)


def _article(
    entry: Any, image: Image | None, fallback: datetime | None, settings: Settings, source: str
) -> ArticleIn:
    title = html_to_text(entry.get("title"))
    summary = _summary(entry)
    if not title and summary:
        title = shorten(summary, TITLE_FROM_SUMMARY)
    url = collapse(entry.get("link") or "")
    if not title:
        raise ItemError(f"{url or 'an item'} has no title")
    if not url:
        raise ItemError(f"{title!r} has no link")
    published = _entry_time(entry, settings) or fallback
    if published is None:
        raise ItemError(f"{title!r} has no date")
    category, topics = split_categories(
        (
            (tag.get("term") or tag.get("label") or "", tag.get("scheme"))
            for tag in entry.get("tags", [])
        ),
        settings,
    )
    image = image or _enclosure_image(entry)
    return ArticleIn(
        url=url,
        title=title,
        summary=summary,
        published=published,
        guid=collapse(entry.get("id") or ""),
        category=category,
        topics=topics,
        image=image.url if image else None,
        image_alt=image.alt if image else None,
        source=source or None,
    )


def _summary(entry: Any) -> str:
    summary = html_to_text(entry.get("summary"))
    if summary:
        return summary
    # Only full content (content:encoded, atom:content) is left: its opening serves.
    for content in entry.get("content", []):
        if content.get("type") in ("text/html", "application/xhtml+xml"):
            return shorten(html_to_text(content.get("value")), SUMMARY_FROM_CONTENT)
    return ""


def _entry_time(entry: Any, settings: Settings) -> datetime | None:
    """The item's own time, keeping its UTC offset: feedparser's parsed form is UTC only."""
    for key in ("published", "updated", "created"):
        raw = entry.get(key)
        if not raw:
            continue
        try:
            return parse_time(raw, settings.tz)
        except ItemError:
            parsed = entry.get(f"{key}_parsed")
            if not parsed:  # a typo must not quietly become some other date
                raise
            return datetime.fromtimestamp(timegm(parsed), UTC)  # a format only it reads
    return None


def _enclosure_image(entry: Any) -> Image | None:
    for link in entry.get("links", []):
        if link.get("rel") == "enclosure" and _looks_like_image(link.get("href"), link.get("type")):
            return Image(collapse(link["href"]), None)
    return None


def _looks_like_image(url: str | None, mime: str | None, medium: str | None = None) -> bool:
    if not url:
        return False
    if medium or mime:
        return medium == "image" or (mime or "").startswith("image/")
    return url.lower().split("?")[0].endswith(IMAGE_SUFFIXES)


def _images(body: bytes, count: int) -> list[Image | None]:
    """The Media RSS image of each item, by position; Nones when the XML disagrees."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return [None] * count
    items = [el for el in root.iter() if el.tag in ITEM_TAGS]
    if len(items) != count:  # cannot pair items with entries safely
        return [None] * count
    return [_media_image(item) for item in items]


def _media_image(item: ET.Element) -> Image | None:
    item_alt = _text(item.find(f"{MEDIA}description"))
    candidates = [*item.findall(f"{MEDIA}content"), *item.findall(f"{MEDIA}group/{MEDIA}content")]
    for content in candidates:
        url = content.get("url")
        if _looks_like_image(url, content.get("type"), content.get("medium")):
            alt = _text(content.find(f"{MEDIA}description")) or item_alt
            return Image(collapse(url or ""), alt)
    thumb = item.find(f"{MEDIA}thumbnail")
    if thumb is not None and thumb.get("url"):
        return Image(collapse(thumb.get("url") or ""), item_alt)
    return None


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    raw = "".join(element.itertext())
    # Media RSS marks HTML descriptions with type="html"; plain is the default.
    text = html_to_text(raw) if element.get("type") == "html" else collapse(raw)
    return text or None
