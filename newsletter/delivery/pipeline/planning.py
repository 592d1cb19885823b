"""Planning the delivery log: the edition to send, who gets it, and where the send stands.

Every recipient is a row in ``deliveries`` fixed when the first send starts, so a crash, a
Ctrl-C or a pause never loses anyone: a later ``send`` continues with the rows still
``pending``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.content import topics as topics_mod
from newsletter.content.editions import Variant, load_variants
from newsletter.delivery import counts as counts_mod
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import message, placeholders
from newsletter.store.db import immediate

FIX_CHUNK = 50_000  # subscriber ids whose recipients are copied into the log per transaction


@dataclass(frozen=True)
class Edition:
    id: int
    subject: str
    html: str
    text: str
    status: str
    topic_ids: tuple[int, ...]
    topic_slugs: tuple[str, ...]
    topic_names: tuple[str, ...]
    hole_marker: str | None = None  # None: built before holes were sealed (legacy form)
    lang: str = ""  # the main variant's
    variants: tuple[Variant, ...] = field(default=())  # one per language, the main one first


# --- the edition ---------------------------------------------------------------------------


def load_edition(db: Database, edition_id: int) -> Edition:
    rows = list(db.query("SELECT * FROM editions WHERE id = ?", [edition_id]))
    if not rows:
        raise NotFound(f"no edition {edition_id}: `newsletter build` creates editions")
    row = rows[0]
    topics = db.execute(
        "SELECT t.id, t.slug, t.name FROM edition_topics et JOIN topics t ON t.id = et.topic_id"
        " WHERE et.edition_id = ? ORDER BY t.id",
        [edition_id],
    ).fetchall()
    if not topics:
        raise NewsletterError(f"edition {edition_id} has no topic, so it has no recipients")
    return Edition(
        id=row["id"],
        subject=row["subject"],
        html=row["html"],
        text=row["text"],
        status=row["status"],
        topic_ids=tuple(t[0] for t in topics),
        topic_slugs=tuple(t[1] for t in topics),
        topic_names=tuple(t[2] for t in topics),
        hole_marker=row.get("hole_marker"),
        lang=row["lang"],
        variants=tuple(load_variants(db, edition_id, row["lang"])),
    )


def edition_message(
    settings: Settings,
    edition: Edition,
    *,
    test: bool = False,
    variant: Variant | None = None,
    topic_names: tuple[str, ...] = (),
) -> message.EditionMessage:
    """The edition (or one language ``variant``) encoded once; ``test`` marks the subject of
    a test copy. ``topic_names`` (in the variant's language) name the list in List-Id."""
    base = variant.subject if variant else edition.subject
    return message.EditionMessage(
        settings,
        subject=f"[TEST] {base}" if test else base,
        html=variant.html if variant else edition.html,
        text=variant.text if variant else edition.text,
        list_id=message.list_id(settings, list(edition.topic_slugs), list(topic_names)),
        holes=placeholders.Holes(edition.hole_marker),
    )


class EditionMessages:
    """The edition encoded once per language variant; a reader whose language has no
    variant gets the main one."""

    def __init__(self, by_lang: dict[str, message.EditionMessage], main: str) -> None:
        self.by_lang = by_lang
        self.main = main

    def for_lang(self, lang: str | None) -> message.EditionMessage:
        return self.by_lang.get(lang or "") or self.by_lang[self.main]


def edition_messages(
    db: Database, settings: Settings, edition: Edition, *, test: bool = False
) -> EditionMessages:
    if not edition.variants:  # built before editions had variants
        return EditionMessages({edition.lang: edition_message(settings, edition, test=test)},
                               edition.lang)  # fmt: skip
    found = [t for t in map(lambda i: topics_mod.get(db, i), edition.topic_ids) if t]
    by_lang = {}
    for v in edition.variants:
        names = tuple(t.name_for(v.lang) for t in found)
        by_lang[v.lang] = edition_message(
            settings, edition, test=test, variant=v, topic_names=names
        )
    return EditionMessages(by_lang, edition.variants[0].lang)


def no_recipients(edition: Edition) -> NewsletterError:
    """The error for an edition nobody may receive (the caller raises it)."""
    return NewsletterError(
        f"edition {edition.id} has no recipients: nobody in topic(s)"
        f" {', '.join(edition.topic_slugs)} is active and confirmed"
    )


# --- where a send stands -------------------------------------------------------------------


# The read-only counts live in delivery/counts.py (``status`` loads them without the
# pipeline); the pipeline's own names for them stay.
counts = counts_mod.counts
status = counts_mod.status
language_counts = counts_mod.language_counts
failures = counts_mod.failures


# --- fixing the delivery log ---------------------------------------------------------------


def _new_recipients(db: Database, edition: Edition) -> Iterator[subscribers.Recipient]:
    """Current recipients of the edition's topics without a delivery row yet."""
    for chunk in _recipient_chunks(db, edition):
        have = {
            r[0]
            for r in db.execute(
                "SELECT subscriber_id FROM deliveries WHERE edition_id = ?"
                " AND subscriber_id BETWEEN ? AND ?",
                [edition.id, chunk[0].id, chunk[-1].id],
            )
        }
        yield from (person for person in chunk if person.id not in have)


def _recipient_chunks(db: Database, edition: Edition) -> Iterator[list[subscribers.Recipient]]:
    """The edition's recipients (``subscribers.recipients``, the one definition of who may
    be mailed) in chunks of ``FIX_CHUNK``, by id."""
    after = 0
    while chunk := list(
        subscribers.recipients(db, edition.topic_ids, after_id=after, limit=FIX_CHUNK)
    ):
        yield chunk
        after = chunk[-1].id


def _fix_recipients(db: Database, edition: Edition) -> None:
    """Copy the edition's recipients into the delivery log, ``FIX_CHUNK`` ids at a time.

    One INSERT ... SELECT per range of subscriber ids, each its own short transaction: the
    work is linear in the list, and an opt-out arriving meanwhile waits a fraction of a
    second, not the whole fix. A crash part-way leaves a draft with part of its log, which
    the next ``send`` completes (rows already there are kept as they are).
    """
    top = db.execute("SELECT MAX(id) FROM subscribers").fetchone()[0] or 0
    with _parents_checked_per_chunk(db):
        for low in range(0, top, FIX_CHUNK):
            select, params = subscribers.recipients_sql(
                edition.topic_ids, after_id=low, upto_id=low + FIX_CHUNK
            )
            stamp = now_iso()
            with immediate(db), _pending_rows_unchecked(db):
                _require_parents(db, edition)
                db.execute(
                    "INSERT OR IGNORE INTO deliveries"
                    " (edition_id, subscriber_id, topic_id, lang, status, created, updated)"
                    f" SELECT ?, r.id, r.topic_id, r.lang, 'pending', ?, ? FROM ({select}) r",
                    [edition.id, stamp, stamp, *params],
                )


@contextlib.contextmanager
def _parents_checked_per_chunk(db: Database) -> Iterator[None]:
    """Foreign keys off while the log is fixed: ``_require_parents`` checks them once per
    chunk instead of SQLite once per row (three lookups a row, a quarter of the work).

    A log row's parents are its edition, its topic and its person. The person comes out of
    ``subscribers`` in the same statement; the edition and its topics are checked in the
    same transaction, under the write lock, so none can go before the commit. SQLite
    ignores the pragma inside a transaction: a caller already in one keeps the row checks.
    """
    if db.conn.in_transaction or not db.execute("PRAGMA foreign_keys").fetchone()[0]:
        yield
        return
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def _require_parents(db: Database, edition: Edition) -> None:
    topics = sorted(set(edition.topic_ids))
    found = db.execute(
        "SELECT (SELECT COUNT(*) FROM editions WHERE id = ?),"
        f" (SELECT COUNT(*) FROM topics WHERE id IN ({subscribers.sql_marks(topics)}))",
        [edition.id, *topics],
    ).fetchone()
    if tuple(found) != (1, len(topics)):
        raise NewsletterError(f"edition {edition.id} or one of its topics was deleted")


# The one CHECK constraint of ``deliveries``, which ``_fix_recipients`` skips.
DELIVERY_CHECKS = ("CHECK (status IN ('pending', 'sent', 'failed'))",)


@contextlib.contextmanager
def _pending_rows_unchecked(db: Database) -> Iterator[None]:
    """CHECK constraints off for the statements inside (NOT NULL and UNIQUE stay on).

    SQLite evaluates the CHECK on ``status`` by building a temporary table of its three
    values for every row inserted, about as much work as the rest of the insert put
    together. The log's rows are written with the literal ``'pending'``, so that CHECK
    (``DELIVERY_CHECKS``, the only one on the table) holds by construction.
    """
    db.execute("PRAGMA ignore_check_constraints = ON")
    try:
        yield
    finally:
        db.execute("PRAGMA ignore_check_constraints = OFF")


def plan(
    db: Database, edition_id: int, *, include_new: bool = False, first: int = 10
) -> tuple[int, list[subscribers.Recipient]]:
    """How many people a ``send`` would mail now, and the first of them (for --dry-run)."""
    edition = load_edition(db, edition_id)
    if edition.status == "draft":
        count = subscribers.count_recipients(db, edition.topic_ids)
        return count, list(subscribers.recipients(db, edition.topic_ids, limit=first))
    rows = db.execute(
        "SELECT s.id, s.email, s.name, s.lang, d.topic_id FROM deliveries d"
        " JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'pending' ORDER BY d.id LIMIT ?",
        [edition_id, first],
    ).fetchall()
    people = [subscribers.Recipient(*row) for row in rows]
    count = counts(db, edition_id)["pending"]
    if include_new:
        fresh = list(_new_recipients(db, edition))
        count += len(fresh)
        people += fresh[: max(0, first - len(people))]
    return count, people


def start(db: Database, edition: Edition, include_new: bool) -> None:
    """Fix the recipients on the first send (or add newcomers); mark the edition sending.

    A first send that finds nobody raises, so the edition stays a draft: marking it
    ``sent`` would hide that nobody got it.
    """
    current = db.execute("SELECT status FROM editions WHERE id = ?", [edition.id]).fetchone()
    if current[0] == "draft" or include_new:
        _fix_recipients(db, edition)
    with immediate(db):
        if current[0] == "draft" and not _has_log(db, edition.id):
            raise no_recipients(edition)
        db.execute(
            "UPDATE editions SET status = 'sending', updated = ? WHERE id = ?",
            [now_iso(), edition.id],
        )


def _has_log(db: Database, edition_id: int) -> bool:
    row = db.execute("SELECT 1 FROM deliveries WHERE edition_id = ? LIMIT 1", [edition_id])
    return row.fetchone() is not None
