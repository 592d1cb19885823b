"""Where an edition's send stands, read-only: the counts ``newsletter status`` prints.

Kept apart from the send pipeline and bounce processing so that ``status`` starts fast: it
imports neither (nor MIME, SMTP, templates or the subscriber core), only reads SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from newsletter.errors import NotFound

if TYPE_CHECKING:
    import sqlite3

    from sqlite_utils import Database

    # status reads through a plain read-only sqlite3 connection; the pipeline through
    # sqlite-utils. Both have ``execute``.
    Reader = Database | sqlite3.Connection


def counts(db: Reader, edition_id: int) -> dict[str, int]:
    """``{"pending", "sent", "failed"}``: the edition's delivery rows by state."""
    result = {"pending": 0, "sent": 0, "failed": 0}
    for state, number in db.execute(
        "SELECT status, COUNT(*) FROM deliveries WHERE edition_id = ? GROUP BY status",
        [edition_id],
    ):
        result[state] = number
    return result


def _edition_row(db: Reader, edition_id: int, column: str) -> str:
    row = db.execute(f"SELECT {column} FROM editions WHERE id = ?", [edition_id]).fetchone()
    if row is None:
        raise NotFound(f"no edition {edition_id}")
    return row[0]


def status(db: Reader, edition_id: int) -> dict:
    """``{"edition", "status", "total", "sent", "failed", "pending"}`` for one edition."""
    state = _edition_row(db, edition_id, "status")
    numbers = counts(db, edition_id)
    return {
        "edition": edition_id,
        "status": state,
        "total": sum(numbers.values()),
        "sent": numbers["sent"],
        "failed": numbers["failed"],
        "pending": numbers["pending"],
    }


def language_counts(db: Reader, edition_id: int) -> dict[str, dict[str, int]]:
    """``{lang: {"total", "sent", "failed", "pending"}}``: the counts by the language of the
    variant each recipient gets (rows fixed before languages were kept count for the main
    variant's)."""
    main_lang = _edition_row(db, edition_id, "lang")
    found: dict[str, dict[str, int]] = {}
    for lang, state, number in db.execute(
        "SELECT COALESCE(lang, ?), status, COUNT(*) FROM deliveries WHERE edition_id = ?"
        " GROUP BY 1, 2 ORDER BY 1",
        [main_lang, edition_id],
    ):
        entry = found.setdefault(lang, {"total": 0, "sent": 0, "failed": 0, "pending": 0})
        entry[state] = number
        entry["total"] += number
    return found


def failures(db: Reader, edition_id: int) -> Iterator[dict]:
    """The edition's failed deliveries, by delivery id: who, why, and the server's last reply.

    An erased person's row has no address any more (and its reply was cleared with them).
    """
    _edition_row(db, edition_id, "id")  # NotFound for an unknown edition
    rows = db.execute(
        "SELECT s.email, d.reason, d.last_reply, d.attempts, d.updated FROM deliveries d"
        " LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.edition_id = ? AND d.status = 'failed' ORDER BY d.id",
        [edition_id],
    )
    keys = ("email", "reason", "reply", "attempts", "time")
    return (dict(zip(keys, row, strict=True)) for row in rows)


def bounce_counts(db: Reader, edition_id: int) -> dict[str, int]:
    """Bounces and complaints of one edition: refused during the send and reported after."""
    result = {"hard_bounces": 0, "soft_bounces": 0, "complaints": 0}
    names = {"hard": "hard_bounces", "soft": "soft_bounces", "complaint": "complaints"}
    for kind, number in db.execute(
        "SELECT kind, COUNT(DISTINCT subscriber_id) FROM bounce_reports WHERE edition_id = ?"
        " GROUP BY kind",
        [edition_id],
    ):
        result[names[kind]] = number
    during = db.execute(
        "SELECT COUNT(*) FROM deliveries d WHERE d.edition_id = ? AND d.reason = 'hard bounce'"
        " AND NOT EXISTS (SELECT 1 FROM bounce_reports b WHERE b.edition_id = d.edition_id"
        " AND b.kind = 'hard' AND b.subscriber_id = d.subscriber_id)",
        [edition_id],
    ).fetchone()[0]
    result["hard_bounces"] += during
    return result
