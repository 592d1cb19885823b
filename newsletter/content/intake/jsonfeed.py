"""JSON Feed 1.0/1.1 and WordPress REST API posts (``/wp-json/wp/v2/posts``).

A WordPress post keeps its texts as ``{"rendered": "<p>...</p>"}``, its dates in
``date_gmt`` (UTC without an offset) and its categories and tags as ids; their names (and
the featured image with its alt text) are present only in ``_embedded``, which WordPress adds
when asked with ``?_embed``. Without it, the ids are left out with one warning: numbers
must never become public topics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

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
    language,
    parse_time,
    raw_text,
    split_categories,
    text_list,
)
from newsletter.content.intake.media import Image, alt_in_content
from newsletter.content.intake.problems import Problem, Problems
from newsletter.content.intake.text import (
    collapse,
    content_images,
    html_to_text,
    shorten,
    strip_read_more,
)

SUMMARY_FROM_CONTENT = 300
Warn = Callable[[str], None]


def is_json_feed(data: object) -> bool:
    return isinstance(data, Mapping) and str(data.get("version", "")).startswith(
        ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
    )


def is_wordpress_post(record: object) -> bool:
    return isinstance(record, Mapping) and (
        isinstance(record.get("title"), Mapping) and "rendered" in record["title"]
    )


def parse_json_feed(
    data: Mapping[str, Any], settings: Settings, problems: Problems
) -> list[ArticleIn]:
    items = data.get("items")
    if not isinstance(items, list):
        raise ValueError("JSON Feed without an items list")
    feed_lang = data.get("language")
    found = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            problems.skip(Problem("not an object", position))
            continue
        link = _text(item.get("url") or item.get("external_url"))[:300] or None
        guid = _text(item.get("id"))[:300] or None
        warn = problems.warner(position, guid, link)
        try:
            found.append(_json_feed_item(item, feed_lang, settings, warn))
        except ItemError as exc:
            problems.skip(Problem(str(exc), position, guid, link))
    return found


def _json_feed_item(
    item: Mapping[str, Any], feed_lang: object, settings: Settings, warn: Warn
) -> ArticleIn:
    url = collapse(_text(item.get("url") or item.get("external_url")))
    html = _text(item.get("content_html"))
    summary = strip_read_more(html_to_text(_text(item.get("summary"))))
    if not summary:
        body = html_to_text(html) or collapse(_text(item.get("content_text")))
        summary = shorten(strip_read_more(body), SUMMARY_FROM_CONTENT)
    title = html_to_text(_text(item.get("title"))) or shorten(summary, TITLE_FROM_SUMMARY)
    published = parse_time(item.get("date_published") or item.get("date_modified"), settings.tz)
    _require(url, title, published)
    category, topics = split_categories(((t, None) for t in text_list(item.get("tags"))), settings)
    image = _text(item.get("image") or item.get("banner_image"))
    alt = alt_in_content(image, html) if image else None
    if not image:
        image, alt = next(
            ((s, a) for s, a in content_images(html) if s.startswith("http")), ("", None)
        )
    lang, problem = language(item.get("language") or feed_lang)
    if problem:
        warn(problem)
    assert published is not None
    return ArticleIn(
        url=checked_url(checked_length(url), title),
        title=bounded(title, MAX_TITLE, "title", warn),
        summary=bounded(summary, MAX_SUMMARY, "summary", warn),
        published=published,
        guid=collapse(_text(item.get("id")))[:1000],
        category=category,
        topics=topics,
        image=image[:2048] or None,
        image_alt=alt or None,
        lang=lang,
    )


def wordpress_post(record: Mapping[str, Any], settings: Settings, warn: Warn) -> ArticleIn:
    url = collapse(_text(record.get("link")))
    title = html_to_text(_rendered(record.get("title")))
    summary = strip_read_more(html_to_text(_rendered(record.get("excerpt"))))
    content = _rendered(record.get("content"))
    if not summary:
        summary = shorten(strip_read_more(html_to_text(content)), SUMMARY_FROM_CONTENT)
    title = title or shorten(summary, TITLE_FROM_SUMMARY)
    if record.get("date_gmt"):  # UTC, written without an offset
        published = parse_time(record["date_gmt"], UTC)  # type: ignore[arg-type]
    else:
        published = parse_time(record.get("date"), settings.tz)
    _require(url, title, published)
    assert published is not None
    category, topics = split_categories(_terms(record, warn), settings)
    image = _featured(record, content)
    lang, problem = language(record.get("lang") or _locale(record))
    if problem:
        warn(problem)
    return ArticleIn(
        url=checked_url(checked_length(url), title),
        title=bounded(title, MAX_TITLE, "title", warn),
        summary=bounded(summary, MAX_SUMMARY, "summary", warn),
        published=published,
        guid=collapse(_rendered(record.get("guid")))[:1000],
        category=category,
        topics=topics,
        image=image.url[:2048] if image else None,
        image_alt=image.alt[:MAX_TITLE] if image and image.alt else None,
        lang=lang,
        translation_of=_translation_key(record, url),
    )


def _require(url: str, title: str, published: object) -> None:
    if not url:
        raise ItemError(f"{shorten(title, 80)!r} has no link" if title else "an item has no link")
    if not title:
        raise ItemError(f"{url} has no title")
    if published is None:
        raise ItemError(f"{shorten(title, 80)!r} has no date")


def _terms(record: Mapping[str, Any], warn: Warn) -> list[tuple[str, str | None]]:
    embedded = record.get("_embedded")
    groups = embedded.get("wp:term") if isinstance(embedded, Mapping) else None
    if isinstance(groups, list):
        return [
            (_text(term.get("name"))[:MAX_TITLE], None)
            for group in groups
            if isinstance(group, list)
            for term in group
            if isinstance(term, Mapping) and term.get("taxonomy") in ("category", "post_tag")
        ]
    if record.get("categories") or record.get("tags"):
        warn("category and tag ids without names left out: export with ?_embed to get the names")
    return []


def _featured(record: Mapping[str, Any], content: str) -> Image | None:
    embedded = record.get("_embedded")
    media = embedded.get("wp:featuredmedia") if isinstance(embedded, Mapping) else None
    if isinstance(media, list) and media and isinstance(media[0], Mapping):
        url = collapse(_text(media[0].get("source_url")))
        alt = collapse(_text(media[0].get("alt_text")))
        if url:
            return Image(url, alt or alt_in_content(url, content))
    url = collapse(_text(record.get("jetpack_featured_media_url")))
    return Image(url, alt_in_content(url, content)) if url else None


def _locale(record: Mapping[str, Any]) -> str | None:
    locale = record.get("wpml_current_locale")
    return locale if isinstance(locale, str) else None


def _translation_key(record: Mapping[str, Any], url: str) -> str | None:
    """Polylang lists a post's translations by language: the lowest post id names the story."""
    translations = record.get("translations")
    if not isinstance(translations, Mapping):
        return None
    ids = [v for v in translations.values() if isinstance(v, int) and not isinstance(v, bool)]
    own = record.get("id")
    if isinstance(own, int) and not isinstance(own, bool):
        ids.append(own)
    if not ids:
        return None
    site = url.split("/")[2] if url.count("/") >= 2 else ""
    return f"wordpress:{site}:{min(ids)}"


def _rendered(value: object) -> str:
    if isinstance(value, Mapping):
        value = value.get("rendered")
    return _text(value)


def _text(value: object) -> str:
    """A scalar as text; a list or object where text belongs counts as missing."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return raw_text(value)
    return ""
