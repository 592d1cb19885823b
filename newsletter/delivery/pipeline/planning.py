"""Planning the delivery log: the edition to send, who gets it, and where the send stands.

Every recipient is a row in ``deliveries`` fixed when the first send starts, so a crash, a
Ctrl-C or a pause never loses anyone: a later ``send`` continues with the rows still
``pending``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.delivery.pipeline.jobs import SendReport
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import message
from newsletter.store.db import immediate

FIX_CHUNK = 5000  # recipients copied into the delivery log per statement batch


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
    )


def edition_message(
    settings: Settings, edition: Edition, *, test: bool = False
) -> message.EditionMessage:
    """The edition encoded once; ``test`` marks the subject of a test copy."""
    subject = f"[TEST] {edition.subject}" if test else edition.subject
    return message.EditionMessage(
        settings,
        subject=subject,
        html=edition.html,
        text=edition.text,
        list_id=message.list_id(settings, list(edition.topic_slugs)),
    )


def no_recipients(edition: Edition) -> NewsletterError:
    """The error for an edition nobody may receive (the caller raises it)."""
    return NewsletterError(
        f"edition {edition.id} has no recipients: nobody in topic(s)"
        f" {', '.join(edition.topic_slugs)} is active and confirmed"
    )


# --- where a send stands -------------------------------------------------------------------


def counts(db: Database, edition_id: int) -> dict[str, int]:
    result = {"pending": 0, "sent": 0, "failed": 0}
    for state, number in db.execute(
        "SELECT status, COUNT(*) FROM deliveries WHERE edition_id = ? GROUP BY status",
        [edition_id],
    ):
        result[state] = number
    return result


def status(db: Database, edition_id: int) -> dict:
    """``{"edition", "status", "total", "sent", "failed", "pending"}`` for one edition."""
    row = db.execute("SELECT status FROM editions WHERE id = ?", [edition_id]).fetchone()
    if row is None:
        raise NotFound(f"no edition {edition_id}")
    return SendReport.from_counts(edition_id, row[0], counts(db, edition_id)).as_dict()


def failures(db: Database, edition_id: int) -> Iterator[dict]:
    """The edition's failed deliveries, by delivery id: who, why, and the server's last reply.

    An erased person's row has no address any more (and its reply was cleared with them).
    """
    status(db, edition_id)  # NotFound for an unknown edition
    rows = db.execute(
        "SELECT s.email, d.reason, d.last_reply, d.attempts, d.updated FROM deliveries d"
        " LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'failed' ORDER BY d.id",
        [edition_id],
    )
    keys = ("email", "reason", "reply", "attempts", "time")
    return (dict(zip(keys, row, strict=True)) for row in rows)


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


def _fix_recipients(db: Database, edition: Edition) -> int:
    """Copy the edition's recipients into the delivery log (inside the caller's transaction)."""
    stamp = now_iso()
    added = 0
    for chunk in _recipient_chunks(db, edition):
        cursor = db.conn.executemany(
            "INSERT OR IGNORE INTO deliveries"
            " (edition_id, subscriber_id, topic_id, status, created, updated)"
            " VALUES (?, ?, ?, 'pending', ?, ?)",
            [(edition.id, p.id, p.topic_id, stamp, stamp) for p in chunk],
        )
        added += cursor.rowcount
    return added


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

    A first send that finds nobody raises inside the transaction, so the edition stays a
    draft: marking it ``sent`` would hide that nobody got it.
    """
    with immediate(db):
        current = db.execute("SELECT status FROM editions WHERE id = ?", [edition.id]).fetchone()
        if current[0] == "draft" or include_new:
            added = _fix_recipients(db, edition)
            if current[0] == "draft" and added == 0:
                raise no_recipients(edition)
        db.execute(
            "UPDATE editions SET status = 'sending', updated = ? WHERE id = ?",
            [now_iso(), edition.id],
        )
