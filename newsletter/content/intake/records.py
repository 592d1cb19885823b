"""Flat records (JSON objects, CSV rows, Markdown front matter) into articles.

Field names match ``articles list --json`` so its output imports back; the alternatives
people use in English, Finnish and Swedish are accepted too (``docs/articles.md`` lists
them). Case, spaces and hyphens in a name do not matter: ``Image alt`` is ``image_alt``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
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
from newsletter.content.intake.text import collapse, html_to_text, shorten, strip_read_more

# Accepted names of each field, the first being the one ``articles list --json`` writes.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "url": ("url", "link", "permalink", "linkki", "osoite", "verkko_osoite", "länk", "adress"),
    "title": ("title", "otsikko", "titel", "rubrik", "headline"),
    "summary": (
        "summary", "description", "excerpt", "ingressi", "tiivistelmä", "kuvaus",
        "ingress", "sammanfattning", "beskrivning",
    ),
    "published": (
        "published", "date", "pubdate", "julkaistu", "päivämäärä", "pvm", "julkaisupäivä",
        "publicerad", "datum", "publiceringsdatum",
    ),
    "category": ("category", "type", "kategoria", "tyyppi", "luokka", "kategori", "typ"),
    "topics": (
        "topics", "tags", "categories", "aiheet", "aihe", "tagit", "avainsanat", "ämnen",
        "ämne", "taggar", "nyckelord",
    ),
    "image": ("image", "image_url", "kuva", "kuvan_osoite", "bild", "bildens_adress"),
    "image_alt": (
        "image_alt", "alt", "alt_text", "kuvan_alt", "kuvan_alt_teksti", "alt_teksti",
        "bildens_alt", "alt_text_för_bild",
    ),
    "guid": ("guid", "id", "tunniste", "tunnus", "identifierare"),
    "lang": ("lang", "language", "kieli", "språk"),
    "translation_of": (
        "translation_of", "translation_key", "translationkey", "käännös", "käännösavain",
        "översättning_av", "översättningsnyckel",
    ),
}  # fmt: skip


def field_key(name: object) -> str:
    """A header or key as the tables above spell it: ``Image Alt`` -> ``image_alt``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().casefold())


def accepted(field: str) -> str:
    return ", ".join(FIELD_NAMES[field])


def names_a_link(keys: Iterable[object]) -> bool:
    """Whether any of ``keys`` (a CSV header, an object's keys) is a name for the link."""
    return any(field_key(k) in FIELD_NAMES["url"] for k in keys)


def missing_link_error(keys: Iterable[object]) -> str:
    shown = ", ".join(str(k) for k in list(keys)[:20] if str(k).strip()) or "none"
    return f"no field names the article's link (accepted: {accepted('url')}; found: {shown})"


def value(record: Mapping[str, Any], field: str) -> Any:
    """The first non-empty value among the accepted names of ``field``."""
    for name in FIELD_NAMES[field]:
        found = record.get(name)
        if found not in (None, "", [], {}):
            return found
    return None


def scalar(record: Mapping[str, Any], field: str) -> str:
    """A field that must be one value; a list or mapping there is a mistake, not text."""
    found = value(record, field)
    if found is None:
        return ""
    if isinstance(found, bool) or not isinstance(found, str | int | float | date):
        raise ItemError(f"field {field!r} must be a single value, not {type(found).__name__}")
    return raw_text(found)


def article_from_record(
    record: Mapping[str, Any],
    settings: Settings,
    warn: Callable[[str], None],
    *,
    body_summary: str = "",
    body_title: str = "",
) -> ArticleIn:
    """An article from one record; ItemError when it cannot be one, ``warn`` for the rest."""
    record = {field_key(k): v for k, v in record.items()}
    url = collapse(scalar(record, "url"))
    title = html_to_text(scalar(record, "title")) or body_title
    summary = strip_read_more(html_to_text(scalar(record, "summary")) or body_summary)
    if not title and summary:
        title = shorten(summary, TITLE_FROM_SUMMARY)
    if not url:
        raise ItemError(f"{_name(title)}has no link (accepted names: {accepted('url')})")
    if not title:
        raise ItemError(f"{url} has no title (accepted names: {accepted('title')})")
    checked_url(checked_length(url), title)
    published = parse_time(value(record, "published"), settings.tz)
    if published is None:
        raise ItemError(f"{url} has no date (accepted names: {accepted('published')})")
    explicit = scalar(record, "category")
    tagged = [(v, None) for v in text_list(value(record, "topics"))]
    category, topics = split_categories(tagged, settings)
    image = collapse(scalar(record, "image"))
    alt = collapse(scalar(record, "image_alt"))
    lang, problem = language(scalar(record, "lang"))
    if problem:
        warn(problem)
    return ArticleIn(
        url=url,
        title=bounded(title, MAX_TITLE, "title", warn),
        summary=bounded(summary, MAX_SUMMARY, "summary", warn),
        published=published,
        guid=collapse(scalar(record, "guid"))[:1000],
        category=collapse(explicit)[:MAX_TITLE] if explicit else category,
        topics=topics,
        image=image[:2048] or None,
        image_alt=alt[:MAX_TITLE] if alt and image else None,
        lang=lang,
        translation_of=collapse(scalar(record, "translation_of"))[:1000] or None,
    )


def _name(title: str) -> str:
    return f"{title!r} " if title else "an item "
