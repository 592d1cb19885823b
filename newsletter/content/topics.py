"""Topics: each has its own newsletter. Tags on articles create them; slugs identify them."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.errors import NewsletterError, NotFound
from newsletter.store.db import immediate


@dataclass(frozen=True)
class Topic:
    id: int
    slug: str
    name: str


def slugify(name: str) -> str:
    """Lower-case ASCII fold with hyphens: ``Yhteisövaikuttavuus`` -> ``yhteisovaikuttavuus``."""
    folded = unicodedata.normalize("NFKD", name.strip())
    ascii_only = "".join(ch for ch in folded if not unicodedata.combining(ch))
    ascii_only = ascii_only.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")


def _row(row: tuple) -> Topic:
    return Topic(id=row[0], slug=row[1], name=row[2])


def get_by_slug(db: Database, slug: str) -> Topic | None:
    row = db.execute("SELECT id, slug, name FROM topics WHERE slug = ?", [slug]).fetchone()
    return _row(row) if row else None


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
        found = next((t for t in all_topics(db) if slugify(t.name) == slug), None)
    return found


def ensure_topic(db: Database, name: str, *, listed: bool = True) -> Topic:
    """The topic for a tag, created on first sight; case and diacritics do not matter.

    ``listed=False`` creates it hidden from the public sign-up page (a feed's tags, until
    staff run ``topics unhide``); an existing topic keeps its visibility.
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
    return found


def add_topic(db: Database, slug: str, name: str) -> Topic:
    """Create a topic with an explicit slug, or rename an existing one."""
    clean = slugify(slug)
    if not clean or clean != slug.strip().lower():
        raise NewsletterError(f"invalid slug {slug!r}: use lower-case letters, digits, hyphens")
    if not name.strip():
        raise NewsletterError("a topic needs a name")
    with immediate(db):  # it reads before it writes (see newsletter.store.db.immediate)
        if get_by_slug(db, clean):
            db.execute("UPDATE topics SET name = ? WHERE slug = ?", [name.strip(), clean])
        else:
            db.execute(
                "INSERT INTO topics (slug, name, created) VALUES (?, ?, ?)",
                [clean, name.strip(), now_iso()],
            )
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
    return [_row(r) for r in db.execute(f"SELECT id, slug, name FROM topics{where} ORDER BY slug")]


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
