"""Stored articles: idempotent upsert (by guid, else URL) and selection by topic and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from newsletter import dates, i18n
from newsletter.clock import from_iso, now_iso, to_iso
from newsletter.content import topics as topics_mod
from newsletter.errors import NewsletterError


@dataclass
class ArticleIn:
    """An article as read from a source, before it is stored."""

    url: str
    title: str
    published: datetime  # time-zone aware
    guid: str = ""
    summary: str = ""
    category: str | None = None
    topics: list[str] = field(default_factory=list)  # topic names as tagged
    image: str | None = None
    image_alt: str | None = None
    source: str | None = None
    lang: str | None = None  # fi/sv/en; None: the configured default language
    translation_of: str | None = None  # shared key linking one story's language versions

    @property
    def key(self) -> str:
        return self.guid or self.url


@dataclass(frozen=True)
class Article:
    id: int
    url: str
    title: str
    summary: str
    published: datetime
    category: str | None
    image: str | None
    image_alt: str | None
    topics: tuple[str, ...]  # slugs
    lang: str | None = None  # None: written in the default language
    translation_of: str | None = None
    guid: str = ""  # its key (the source's guid, else its URL); a translation may name it

    def language(self, default: str) -> str:
        return self.lang or default

    def as_json(self, tz: tzinfo | None = None) -> dict:
        """The shape of ``articles list --json``; ``published`` shown in ``tz`` when given."""
        published = self.published.astimezone(tz) if tz else self.published
        return {
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "published": published.isoformat(),
            "category": self.category,
            "topics": list(self.topics),
            "image": self.image,
            "image_alt": self.image_alt,
            "lang": self.lang,
            "translation_of": self.translation_of,
        }


_FIELDS = (
    "url",
    "title",
    "summary",
    "published",
    "category",
    "image",
    "image_alt",
    "lang",
    "translation_of",
)


def is_web_address(url: str | None) -> bool:
    """An absolute http(s) address with a host: what a mail client can open or fetch."""
    parts = urlsplit(url or "")
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def upsert(db: Database, art: ArticleIn) -> str:
    """Store one article; returns ``imported``, ``updated`` or ``unchanged``.

    The caller owns the transaction (one per source).
    """
    usable_image = is_web_address(art.image)
    values = {
        "url": art.url,
        "title": art.title,
        "summary": art.summary or "",
        "published": to_iso(art.published),
        "category": art.category,
        # An image the mail client could not fetch (a relative path, data: or javascript:)
        # is no image at all: the card then renders without one.
        "image": art.image if usable_image else None,
        "image_alt": art.image_alt if usable_image else None,
        # ``sv-FI`` and ``SV`` are Swedish: variants match languages by their code.
        "lang": i18n.language_code(art.lang),
        "translation_of": art.translation_of,
    }
    lang = values["lang"]
    topic_ids = sorted({topics_mod.ensure_topic(db, name, lang).id for name in art.topics})
    row = _find(db, art)
    if row is None:
        cursor = db.execute(
            "INSERT INTO articles (guid, url, title, summary, published, category, image,"
            " image_alt, lang, translation_of, source, created, updated)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [art.key, *values.values(), art.source, now_iso(), now_iso()],
        )
        article_id = cursor.lastrowid
        _add_topics(db, article_id, topic_ids)
        return "imported"
    article_id, stored_guid = row[0], row[1]
    stored = dict(zip(_FIELDS, row[2:], strict=True))
    adopted = bool(art.guid) and stored_guid != art.guid
    if adopted:
        # Stored earlier under its URL, before the source gave it a guid: adopt the guid.
        db.execute("UPDATE articles SET guid = ? WHERE id = ?", [art.guid, article_id])
    existing_topics = {
        r[0]
        for r in db.execute(
            "SELECT topic_id FROM article_topics WHERE article_id = ?", [article_id]
        )
    }
    if stored == values and set(topic_ids) <= existing_topics and not adopted:
        return "unchanged"
    db.execute(
        f"UPDATE articles SET {', '.join(f'{k} = ?' for k in values)}, updated = ? WHERE id = ?",
        [*values.values(), now_iso(), article_id],
    )
    # Topics only accumulate: a tag added by hand (--topic) must survive a re-import.
    _add_topics(db, article_id, topic_ids)
    return "updated"


def _find(db: Database, art: ArticleIn) -> tuple | None:
    """The stored row of an article: by guid, else by URL."""
    columns = f"id, guid, {', '.join(_FIELDS)}"
    row = db.execute(f"SELECT {columns} FROM articles WHERE guid = ?", [art.key]).fetchone()
    if row is not None:
        return row
    if art.guid:
        # Only an article stored under its URL (it had no guid then) is the same one.
        sql = f"SELECT {columns} FROM articles WHERE guid = url AND url = ?"
    else:
        # No guid to go by (e.g. a JSON export re-imported): the URL identifies it.
        sql = f"SELECT {columns} FROM articles WHERE url = ? ORDER BY id LIMIT 1"
    return db.execute(sql, [art.url]).fetchone()


def _add_topics(db: Database, article_id: int, topic_ids: Sequence[int]) -> None:
    for tid in topic_ids:
        db.execute(
            "INSERT OR IGNORE INTO article_topics (article_id, topic_id) VALUES (?, ?)",
            [article_id, tid],
        )


# The columns ``_article`` reads, with the article's topic slugs space-separated.
_SELECT = (
    "SELECT a.id, a.url, a.title, a.summary, a.published, a.category, a.image, a.image_alt,"
    " a.lang, a.translation_of, (SELECT group_concat(t.slug, ' ') FROM article_topics at"
    "  JOIN topics t ON t.id = at.topic_id WHERE at.article_id = a.id) AS slugs, a.guid"
    " FROM articles a"
)


def window(
    since: str | None, until: str | None, tz: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """The ``--since``/``--until`` options as (start, exclusive end).

    A window that ends before it starts is refused: "no articles match" would send staff
    looking for missing articles instead of at the swapped dates.
    """
    start = dates.start_of(since, tz) if since else None
    end = dates.end_of(until, tz) if until else None
    if start is not None and end is not None and start >= end:
        raise NewsletterError(f"--since {since} is later than --until {until}")
    return start, end


def select(
    db: Database,
    topic_ids: Sequence[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    *,
    since_exclusive: bool = False,
    lang: str | None = None,
    default_lang: str = "fi",
) -> list[Article]:
    """Articles newest first; ``since``/``until`` are aware datetimes (until exclusive).

    ``lang``: only articles in that language (those without one are in ``default_lang``).
    """
    where: list[str] = []
    params: list[object] = []
    if lang is not None:
        where.append("(a.lang = ? OR (a.lang IS NULL AND ? = ?))")
        params.extend([lang, lang, default_lang])
    if topic_ids:
        marks = ", ".join("?" for _ in topic_ids)
        where.append(f"a.id IN (SELECT article_id FROM article_topics WHERE topic_id IN ({marks}))")
        params.extend(topic_ids)
    if since is not None:
        where.append("a.published > ?" if since_exclusive else "a.published >= ?")
        params.append(to_iso(since))
    if until is not None:
        where.append("a.published < ?")
        params.append(to_iso(until))
    sql = _SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY a.published DESC, a.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_article(row) for row in db.execute(sql, params)]


def by_ids(db: Database, ids: Sequence[int]) -> list[Article]:
    """Articles in the order of ``ids``."""
    if not ids:
        return []
    found = {a.id: a for a in _all_with_ids(db, ids)}
    return [found[i] for i in ids if i in found]


def _all_with_ids(db: Database, ids: Sequence[int]) -> list[Article]:
    marks = ", ".join("?" for _ in ids)
    sql = f"{_SELECT} WHERE a.id IN ({marks})"
    return [_article(row) for row in db.execute(sql, list(ids))]


def _article(row: tuple) -> Article:
    slugs = tuple(sorted((row[10] or "").split()))
    return Article(
        id=row[0],
        url=row[1],
        title=row[2],
        summary=row[3],
        published=from_iso(row[4]),
        category=row[5],
        image=row[6],
        image_alt=row[7],
        topics=slugs,
        lang=row[8],
        translation_of=row[9],
        guid=row[11] or "",
    )
