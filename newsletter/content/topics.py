"""Topics: each has its own newsletter. Tags on articles create them; slugs identify them.

A topic has a name (the one it was created with) and optionally a name and description per
language (``topic_names``); readers see the one of their language, else the plain name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.config import LANGUAGES
from newsletter.errors import NewsletterError, NotFound
from newsletter.store.db import immediate


@dataclass(frozen=True)
class Topic:
    id: int
    slug: str
    name: str
    # (lang, name) and (lang, description) pairs; tuples keep the topic hashable
    names: tuple[tuple[str, str], ...] = ()
    descriptions: tuple[tuple[str, str], ...] = ()

    def name_for(self, lang: str | None) -> str:
        """The name readers of ``lang`` see: their language's, else the topic's own."""
        return dict(self.names).get(lang or "", "") or self.name

    def description_for(self, lang: str | None) -> str:
        return dict(self.descriptions).get(lang or "", "")

    def localized(self, lang: str | None) -> Topic:
        """This topic with ``name`` in ``lang`` (for pages and mails that show ``.name``)."""
        return replace(self, name=self.name_for(lang))


def localize(found: Iterable[Topic], lang: str | None) -> list[Topic]:
    return [t.localized(lang) for t in found]


def slugify(name: str) -> str:
    """Lower-case ASCII fold with hyphens: ``Yhteisövaikuttavuus`` -> ``yhteisovaikuttavuus``."""
    folded = unicodedata.normalize("NFKD", name.strip())
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    ascii_only = ascii_only.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")


def with_names(db: Database, rows: list[tuple]) -> list[Topic]:
    """Topics from ``(id, slug, name)`` rows, with their per-language names."""
    if not rows:
        return []
    marks = ", ".join("?" for _ in rows)
    names: dict[int, list[tuple[str, str, str]]] = {}
    for topic_id, lang, name, description in db.execute(
        f"SELECT topic_id, lang, name, description FROM topic_names WHERE topic_id IN ({marks})"
        " ORDER BY lang",
        [r[0] for r in rows],
    ):
        names.setdefault(topic_id, []).append((lang, name, description))
    return [
        Topic(
            id=r[0],
            slug=r[1],
            name=r[2],
            names=tuple((lang, n) for lang, n, _ in names.get(r[0], []) if n),
            descriptions=tuple((lang, d) for lang, _, d in names.get(r[0], []) if d),
        )
        for r in rows
    ]


def get_by_slug(db: Database, slug: str) -> Topic | None:
    row = db.execute("SELECT id, slug, name FROM topics WHERE slug = ?", [slug]).fetchone()
    return with_names(db, [row])[0] if row else None


def get(db: Database, topic_id: int) -> Topic | None:
    row = db.execute("SELECT id, slug, name FROM topics WHERE id = ?", [topic_id]).fetchone()
    return with_names(db, [row])[0] if row else None


def find(db: Database, text: str) -> Topic | None:
    """The topic whose slug or name is ``text``, ignoring case and diacritics; slugs first.

    A topic added as ``topics add impact --name "Vaikuttavuus ja arviointi"`` must answer to
    its name too, and the name's slug differs from the topic's.
    """
    slug = slugify(text)
    if not slug:
        return None
    found = get_by_slug(db, slug)
    if found is None:
        found = next(
            (
                t
                for t in all_topics(db)
                if slug in {slugify(t.name), *(slugify(n) for _, n in t.names)}
            ),
            None,
        )
    return found


def ensure_topic(db: Database, name: str, lang: str | None = None, *, listed: bool = True) -> Topic:
    """The topic for a tag, created on first sight; case and diacritics do not matter.

    ``listed=False`` creates it hidden from the public sign-up page (a feed's tags, until
    staff run ``topics unhide``); an existing topic keeps its visibility. A topic created
    from an article in ``lang`` has the tag as its name in that language too: a Swedish
    feed's tag is the topic's Swedish name.
    """
    slug = slugify(name)
    if not slug:
        raise NewsletterError(f"topic name {name!r} has no letters or digits")
    existing = find(db, name)
    if existing:
        return existing
    db.execute(
        "INSERT INTO topics (slug, name, created, listed) VALUES (?, ?, ?, ?)",
        [slug, name.strip(), now_iso(), int(listed)],
    )
    found = get_by_slug(db, slug)
    assert found is not None
    if lang in LANGUAGES:
        _store_names(db, found.id, {lang: name.strip()}, {})
        found = get_by_slug(db, slug)
        assert found is not None
    return found


def _check_languages(values: Mapping[str, str | None], what: str) -> None:
    for lang, value in values.items():
        if lang not in LANGUAGES:
            raise NewsletterError(f"unknown language {lang!r} for a topic {what}")
        if value is not None and any(ch in value for ch in "\r\n\0"):
            raise NewsletterError(f"a topic {what} must be one line")


def _store_names(
    db: Database,
    topic_id: int,
    names: Mapping[str, str | None],
    descriptions: Mapping[str, str | None],
) -> None:
    """Set (or, with an empty value, clear) names and descriptions by language."""
    for lang in LANGUAGES:
        name, description = names.get(lang), descriptions.get(lang)
        if name is None and description is None:
            continue
        db.execute(
            "INSERT OR IGNORE INTO topic_names (topic_id, lang, name) VALUES (?, ?, '')",
            [topic_id, lang],
        )
        if name is not None:
            db.execute(
                "UPDATE topic_names SET name = ? WHERE topic_id = ? AND lang = ?",
                [name.strip(), topic_id, lang],
            )
        if description is not None:
            db.execute(
                "UPDATE topic_names SET description = ? WHERE topic_id = ? AND lang = ?",
                [description.strip(), topic_id, lang],
            )
    db.execute(
        "DELETE FROM topic_names WHERE topic_id = ? AND name = '' AND description = ''",
        [topic_id],
    )


def add_topic(
    db: Database,
    slug: str,
    name: str | None,
    *,
    names: Mapping[str, str | None] | None = None,
    descriptions: Mapping[str, str | None] | None = None,
) -> Topic:
    """Create a topic with an explicit slug, or rename an existing one.

    ``names``/``descriptions`` map a language to its text (an empty text removes it). A new
    topic without ``name`` takes the name of the first language given.
    """
    names, descriptions = dict(names or {}), dict(descriptions or {})
    _check_languages(names, "name")
    _check_languages(descriptions, "description")
    clean = slugify(slug)
    if not clean or clean != slug.strip().lower():
        raise NewsletterError(f"invalid slug {slug!r}: use lower-case letters, digits, hyphens")
    if name is not None and (not name.strip() or any(ch in name for ch in "\r\n\0")):
        raise NewsletterError("a topic needs a name on one line")
    with immediate(db):  # it reads before it writes (see newsletter.store.db.immediate)
        existing = get_by_slug(db, clean)
        if existing is None:
            first = name or next((n for n in names.values() if n and n.strip()), None)
            if not first:
                raise NewsletterError("a topic needs a name: --name or a name in one language")
            db.execute(
                "INSERT INTO topics (slug, name, created) VALUES (?, ?, ?)",
                [clean, first.strip(), now_iso()],
            )
        elif name is not None:
            db.execute("UPDATE topics SET name = ? WHERE slug = ?", [name.strip(), clean])
        found = get_by_slug(db, clean)
        assert found is not None
        _store_names(db, found.id, names, descriptions)
    found = get_by_slug(db, clean)
    assert found is not None
    return found


def resolve(db: Database, text: str) -> Topic:
    """A topic named by slug or name, in any case, with or without diacritics."""
    found = find(db, text)
    if found is None:
        known = ", ".join(t.slug for t in all_topics(db)) or "none yet"
        raise NotFound(f"unknown topic {text!r} (known topics: {known})")
    return found


def resolve_many(db: Database, texts: list[str] | None) -> list[Topic]:
    seen: dict[int, Topic] = {}
    for text in texts or []:
        topic = resolve(db, text)
        seen.setdefault(topic.id, topic)
    return list(seen.values())


def all_topics(db: Database, *, listed_only: bool = False) -> list[Topic]:
    """Every topic by slug; ``listed_only``: those the public sign-up page may offer."""
    where = " WHERE listed = 1" if listed_only else ""
    rows = db.execute(f"SELECT id, slug, name FROM topics{where} ORDER BY slug").fetchall()
    return with_names(db, rows)


def set_listed(db: Database, text: str, listed: bool) -> Topic:
    """Offer a topic on the public sign-up page, or stop offering it (subscribers keep it)."""
    topic = resolve(db, text)
    db.execute("UPDATE topics SET listed = ? WHERE id = ?", [int(listed), topic.id])
    return topic


def remove_topic(db: Database, text: str) -> Topic:
    """Delete a topic nobody subscribes to and no edition used (e.g. a stray feed tag).

    Subscriptions, even ended ones, are the consent trail, and editions the record of what
    was sent: a topic with either is hidden (``set_listed``), never deleted.
    """
    with immediate(db):
        topic = resolve(db, text)
        used = db.execute(
            "SELECT (SELECT COUNT(*) FROM subscriptions WHERE topic_id = :id),"
            " (SELECT COUNT(*) FROM edition_topics WHERE topic_id = :id)",
            {"id": topic.id},
        ).fetchone()
        if used[0] or used[1]:
            raise NewsletterError(
                f"topic {topic.slug} has {used[0]} subscriptions and {used[1]} editions:"
                f" hide it from the sign-up page instead (newsletter topics hide {topic.slug})"
            )
        db.execute("DELETE FROM topics WHERE id = ?", [topic.id])  # article tags cascade
    return topic
