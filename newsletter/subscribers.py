"""Subscribers, their per-topic subscriptions, the consent trail and the suppression list.

The functions here are the single source of truth for who may be mailed: sending, export,
counts and the web service all go through ``recipients`` / ``mailable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.db import keyed_hash, meta_key
from newsletter.errors import InvalidEmail, NotFound

STATUSES = ("active", "bounced", "blocklisted")
SUBSCRIPTION_STATUSES = ("unconfirmed", "confirmed", "unsubscribed")


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    name: str
    lang: str
    topic_id: int  # the edition topic this person is mailed for (their unsubscribe link's)


def normalize_email(raw: str) -> str:
    """Trimmed, validated address; the domain lower-cased, the local part kept as given."""
    if raw is None:
        raise InvalidEmail("empty address")
    if any(ch in raw for ch in "\r\n\0"):
        raise InvalidEmail("line break in address")
    text = raw.strip()
    if not text:
        raise InvalidEmail("empty address")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return f"{checked.local_part}@{checked.domain.lower()}"


def email_key(email: str) -> str:
    """Uniqueness key: addresses are unique regardless of case."""
    return email.casefold()


def suppression_hash(db: Database, email: str) -> str:
    # Keyed with a key kept in the database (not NEWSLETTER_SECRET) so rotating the
    # link secret never forgets who asked to be erased.
    return keyed_hash(meta_key(db, "suppression_key"), email_key(email))


def is_suppressed(db: Database, email: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM suppressions WHERE hash = ?", [suppression_hash(db, email)]
    ).fetchone()
    return row is not None


def lift_suppression(db: Database, email: str) -> None:
    db.execute("DELETE FROM suppressions WHERE hash = ?", [suppression_hash(db, email)])


def find(db: Database, email: str) -> dict | None:
    """The subscriber row for an address (any case), or None."""
    try:
        key = email_key(normalize_email(email))
    except InvalidEmail:
        key = email_key(email.strip())
    rows = list(db.query("SELECT * FROM subscribers WHERE email_key = ?", [key]))
    return rows[0] if rows else None


def get(db: Database, subscriber_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM subscribers WHERE id = ?", [subscriber_id]))
    return rows[0] if rows else None


def require(db: Database, email: str) -> dict:
    row = find(db, email)
    if row is None:
        raise NotFound(f"no subscriber {email.strip()!r}")
    return row


def record_event(
    db: Database,
    subscriber_id: int,
    action: str,
    source: str,
    topic_id: int | None = None,
    detail: str | dict | None = None,
) -> None:
    if isinstance(detail, dict):
        detail = json.dumps(detail, ensure_ascii=False)
    db.execute(
        "INSERT INTO events (subscriber_id, time, action, topic_id, source, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [subscriber_id, now_iso(), action, topic_id, source, detail],
    )


def set_subscription(
    db: Database, subscriber_id: int, topic_id: int, status: str, source: str
) -> bool:
    """Set one subscription's status and log the change; False when nothing changed."""
    if status not in SUBSCRIPTION_STATUSES:
        raise ValueError(status)
    row = db.execute(
        "SELECT status FROM subscriptions WHERE subscriber_id = ? AND topic_id = ?",
        [subscriber_id, topic_id],
    ).fetchone()
    if row and row[0] == status:
        return False
    stamp = now_iso()
    with db.atomic():
        if row:
            db.execute(
                "UPDATE subscriptions SET status = ?, updated = ?"
                " WHERE subscriber_id = ? AND topic_id = ?",
                [status, stamp, subscriber_id, topic_id],
            )
        else:
            db.execute(
                "INSERT INTO subscriptions (subscriber_id, topic_id, status, created, updated)"
                " VALUES (?, ?, ?, ?, ?)",
                [subscriber_id, topic_id, status, stamp, stamp],
            )
        action = {"unconfirmed": "subscribe", "confirmed": "confirm"}.get(status, "unsubscribe")
        record_event(db, subscriber_id, action, source, topic_id)
    return True


@dataclass(frozen=True)
class AddResult:
    subscriber_id: int
    created: bool  # a new subscriber row
    changed: bool  # anything about the person or their subscriptions changed


def add(
    db: Database,
    email: str,
    *,
    name: str | None = None,
    lang: str | None = None,
    topic_ids: Sequence[int] = (),
    status: str = "confirmed",
    source: str = "cli",
    default_lang: str = "fi",
    lift_suppression_: bool = True,
) -> AddResult:
    """Create or update a subscriber and subscribe them to ``topic_ids`` with ``status``.

    With ``lift_suppression_`` (staff ``add``, a confirmed web sign-up) an erased address
    may come back; an unconfirmed web sign-up passes False and lifts it only on confirmation.
    Imports must check ``is_suppressed`` first and skip. A CR or LF in a name becomes a
    space so it can never reach a header.
    """
    address = normalize_email(email)
    clean_name = " ".join((name or "").split()) if name is not None else None
    if lang is not None and lang not in ("fi", "sv", "en"):
        raise InvalidEmail(f"unknown language {lang!r}: use fi, sv or en")
    stamp = now_iso()
    with db.atomic():
        row = find(db, address)
        created = row is None
        changed = created
        if created:
            if lift_suppression_ and is_suppressed(db, address):
                lift_suppression(db, address)
            cursor = db.execute(
                "INSERT INTO subscribers (email, email_key, name, lang, status, created, updated)"
                " VALUES (?, ?, ?, ?, 'active', ?, ?)",
                [address, email_key(address), clean_name or "", lang or default_lang, stamp, stamp],
            )
            subscriber_id = int(cursor.lastrowid)
            record_event(db, subscriber_id, "create", source)
        else:
            assert row is not None
            subscriber_id = row["id"]
            updates = {}
            if clean_name and clean_name != row["name"]:
                updates["name"] = clean_name
            if lang and lang != row["lang"]:
                updates["lang"] = lang
            if updates:
                db.execute(
                    f"UPDATE subscribers SET {', '.join(f'{k} = ?' for k in updates)},"
                    " updated = ? WHERE id = ?",
                    [*updates.values(), stamp, subscriber_id],
                )
                record_event(db, subscriber_id, "update", source, detail=updates)
                changed = True
        for topic_id in topic_ids:
            changed |= set_subscription(db, subscriber_id, topic_id, status, source)
    return AddResult(subscriber_id, created, changed)


def unsubscribe(db: Database, subscriber_id: int, topic_id: int | None, source: str) -> int:
    """Unsubscribe from one topic, or from all when ``topic_id`` is None. Idempotent."""
    if topic_id is None:
        topic_ids = [
            r[0]
            for r in db.execute(
                "SELECT topic_id FROM subscriptions WHERE subscriber_id = ?"
                " AND status != 'unsubscribed'",
                [subscriber_id],
            )
        ]
    else:
        topic_ids = [topic_id]
    changed = 0
    with db.atomic():
        for tid in topic_ids:
            exists = db.execute(
                "SELECT 1 FROM subscriptions WHERE subscriber_id = ? AND topic_id = ?",
                [subscriber_id, tid],
            ).fetchone()
            if exists and set_subscription(db, subscriber_id, tid, "unsubscribed", source):
                changed += 1
    return changed


def set_status(db: Database, subscriber_id: int, status: str, source: str) -> None:
    """Mark a subscriber active, bounced or blocklisted (logged as an event)."""
    if status not in STATUSES:
        raise ValueError(status)
    with db.atomic():
        db.execute(
            "UPDATE subscribers SET status = ?, updated = ? WHERE id = ?",
            [status, now_iso(), subscriber_id],
        )
        record_event(db, subscriber_id, f"status:{status}", source)


def erase(db: Database, email: str, source: str = "cli") -> None:
    """GDPR erasure: delete the person and their events; keep only a keyed hash.

    Pending deliveries are closed first so a running send cannot mail them.
    """
    row = require(db, email)
    with db.atomic():
        db.execute(
            "UPDATE deliveries SET status = 'failed', reason = 'erased', updated = ?"
            " WHERE subscriber_id = ? AND status = 'pending'",
            [now_iso(), row["id"]],
        )
        db.execute(
            "INSERT OR IGNORE INTO suppressions (hash, reason, created) VALUES (?, ?, ?)",
            [suppression_hash(db, row["email"]), f"erased:{source}", now_iso()],
        )
        db.execute("DELETE FROM subscribers WHERE id = ?", [row["id"]])
    # Move the WAL's copies of the deleted pages into the main file (where secure_delete
    # zeroed them) and truncate the WAL, so no readable trace of the address remains.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def recipients(
    db: Database, topic_ids: Sequence[int], *, after_id: int = 0, limit: int | None = None
) -> Iterator[Recipient]:
    """The recipients of the given topics: active subscribers with a confirmed subscription,
    each once, ordered by id. Sending, export and counts all use this."""
    if not topic_ids:
        return iter(())
    sql = (
        "SELECT s.id, s.email, s.name, s.lang, MIN(sub.topic_id)"
        " FROM subscribers s JOIN subscriptions sub ON sub.subscriber_id = s.id"
        f" WHERE sub.topic_id IN ({_placeholders(topic_ids)})"
        " AND sub.status = 'confirmed' AND s.status = 'active' AND s.id > ?"
        " GROUP BY s.id ORDER BY s.id"
    )
    params: list[object] = [*topic_ids, after_id]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return (Recipient(*row) for row in db.execute(sql, params))


def count_recipients(db: Database, topic_ids: Sequence[int]) -> int:
    if not topic_ids:
        return 0
    row = db.execute(
        "SELECT COUNT(DISTINCT s.id) FROM subscribers s"
        " JOIN subscriptions sub ON sub.subscriber_id = s.id"
        f" WHERE sub.topic_id IN ({_placeholders(topic_ids)})"
        " AND sub.status = 'confirmed' AND s.status = 'active'",
        list(topic_ids),
    ).fetchone()
    return int(row[0])


def mailable(db: Database, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of (subscriber_id, topic_id) pairs, those that may be mailed right now."""
    pairs = list(pairs)
    if not pairs:
        return set()
    ok: set[tuple[int, int]] = set()
    for start in range(0, len(pairs), 400):
        chunk = pairs[start : start + 400]
        clause = " OR ".join("(sub.subscriber_id = ? AND sub.topic_id = ?)" for _ in chunk)
        params = [value for pair in chunk for value in pair]
        for row in db.execute(
            "SELECT sub.subscriber_id, sub.topic_id FROM subscriptions sub"
            " JOIN subscribers s ON s.id = sub.subscriber_id"
            f" WHERE ({clause}) AND sub.status = 'confirmed' AND s.status = 'active'",
            params,
        ):
            ok.add((row[0], row[1]))
    return ok
