"""The public web versions of sent editions and each topic's archive of them.

A web version is reached by a signed link (``/e/<token>``), not by the edition's number, so a
topic kept out of the archive does not put its editions on show to anyone counting ids. The
token is the same for every reader: it is not personal and opens nothing but the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from newsletter import tokens
from newsletter.config import Settings
from newsletter.content import contract
from newsletter.content.topics import Topic, resolve
from newsletter.errors import NotFound
from newsletter.store.db import token_key

WEB = "web"
# Editions that went out (in part): a draft is not public, its web link answers "not found".
PUBLIC_STATUSES = ("sending", "paused", "sent")


@dataclass(frozen=True)
class ArchivedEdition:
    id: int
    subject: str
    preheader: str
    lang: str
    sent_at: str  # ISO time of the send's start (or of its creation, for older rows)
    token: str


def web_token(key: bytes, edition_id: int) -> str:
    return tokens.make(key, WEB, edition_id)


def web_path(key: bytes, edition_id: int) -> str:
    return f"/e/{web_token(key, edition_id)}"


def web_url(settings: Settings, key: bytes, edition_id: int) -> str:
    return settings.base_url.rstrip("/") + web_path(key, edition_id)


def edition_of_token(keys: bytes | Sequence[bytes], token: str) -> int:
    """The edition a web-version link names; ``keys``: the current link key, then retired
    ones, so a link mailed before a key change still opens."""
    return tokens.check(keys, WEB, token, count=1).values[0]


def set_archived(db: Database, topic: str, archived: bool) -> Topic:
    """List a topic's sent editions on its public archive page and feed, or keep them off."""
    found = resolve(db, topic)
    db.execute("UPDATE topics SET archived = ? WHERE id = ?", [int(archived), found.id])
    return found


def is_archived(db: Database, topic_id: int) -> bool:
    """True when the topic's archive is public: archived, and offered on the sign-up page (a
    hidden topic, e.g. an internal one or a stray feed tag, shows nothing in public)."""
    row = db.execute("SELECT archived AND listed FROM topics WHERE id = ?", [topic_id]).fetchone()
    return bool(row and row[0])


def archived_topic(db: Database, slug: str) -> Topic:
    """The topic of an archive page; NotFound for an unknown one or one kept out."""
    found = resolve(db, slug)
    if not is_archived(db, found.id):
        raise NotFound(f"topic {found.slug} is kept out of the archive")
    return found


def editions_of(db: Database, key: bytes, topic_id: int, limit: int = 200) -> list[ArchivedEdition]:
    """The topic's editions that went out, newest first."""
    marks = ", ".join("?" for _ in PUBLIC_STATUSES)
    rows = db.execute(
        "SELECT e.id, e.subject, e.preheader, e.lang, COALESCE(e.sent_at, e.created)"
        " FROM editions e JOIN edition_topics et ON et.edition_id = e.id"
        f" WHERE et.topic_id = ? AND e.status IN ({marks})"
        " ORDER BY COALESCE(e.sent_at, e.created) DESC, e.id DESC LIMIT ?",
        [topic_id, *PUBLIC_STATUSES, limit],
    ).fetchall()
    return [ArchivedEdition(*row, token=web_token(key, row[0])) for row in rows]


def _variant_page(db: Database, edition_id: int, lang: str) -> str | None:
    """A language variant's web version (the reader's language), when the edition has one."""
    row = db.execute(
        "SELECT web_html FROM edition_variants WHERE edition_id = ? AND lang = ?",
        [edition_id, lang],
    ).fetchone()
    return row[0] if row and row[0] else None


@dataclass(frozen=True)
class WebVersion:
    id: int
    subject: str
    lang: str
    html: str
    topic_slugs: list[str]
    listed: bool  # one of its topics has a public archive (search engines may index it)


def web_version(
    db: Database, settings: Settings, edition_id: int, lang: str | None = None
) -> WebVersion:
    """The page of an edition that went out. Editions built before web versions existed
    get their email's HTML with the personal links pointing at the public sign-up page."""
    marks = ", ".join("?" for _ in PUBLIC_STATUSES)
    row = db.execute(
        f"SELECT id, subject, lang, web_html, html FROM editions WHERE id = ?"
        f" AND status IN ({marks})",
        [edition_id, *PUBLIC_STATUSES],
    ).fetchone()
    if row is None:
        raise NotFound(f"no published edition {edition_id}")
    topic_rows = db.execute(
        "SELECT t.slug, t.archived AND t.listed FROM edition_topics et"
        " JOIN topics t ON t.id = et.topic_id WHERE et.edition_id = ? ORDER BY t.slug",
        [edition_id],
    ).fetchall()
    slugs = [r[0] for r in topic_rows]
    html, shown_lang = row[3], row[2]
    variant = _variant_page(db, edition_id, lang) if lang and lang != row[2] else None
    if variant:
        html, shown_lang = variant, lang
    if not html:
        public = settings.base_url.rstrip("/") + "/subscribe"
        html = contract.fill_holes(
            row[4], {"UNSUBSCRIBE_URL": public, "PREFERENCES_URL": public, "NAME": ""}
        )
    return WebVersion(
        id=row[0],
        subject=row[1],
        lang=shown_lang,
        html=html,
        topic_slugs=slugs,
        listed=any(r[1] for r in topic_rows),
    )


@dataclass(frozen=True)
class EditionLinks:
    """The edition's public links (none of them personal): its web version, the topic's
    archive and sign-up pages. Empty strings where there is none (e.g. a topic kept out of
    the archive)."""

    web_url: str = ""
    archive_url: str = ""
    subscribe_url: str = ""


def public_links(
    db: Database, settings: Settings, edition_id: int, topics: Sequence[Topic]
) -> EditionLinks:
    """The edition's web version, its first topic's archive (when archived) and sign-up."""
    key = token_key(db, settings.secret)
    base = settings.base_url.rstrip("/")
    first = topics[0] if topics else None
    archive_url = ""
    if first is not None and is_archived(db, first.id):
        archive_url = f"{base}/archive/{first.slug}"
    subscribe_url = f"{base}/subscribe" + (f"?topic={first.slug}" if first else "")
    return EditionLinks(
        web_url=web_url(settings, key, edition_id),
        archive_url=archive_url,
        subscribe_url=subscribe_url,
    )
