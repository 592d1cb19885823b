"""Subscribers, their per-topic subscriptions, the consent trail and the suppression list.

Who may be mailed is decided in ``audience/recipients.py`` (``recipients`` / ``mailable``),
re-exported here: sending, export, counts and the web service all go through it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

# Send, digest, serve and build call it first: a dead import's half is undone (cheaply).
from newsletter.audience.import_undo import recover as recover_imports  # noqa: F401
from newsletter.audience.recipients import (  # noqa: F401  (the names callers use here)
    MAILABLE,
    Recipient,
    count_recipients,
    mailable,
    recipient_condition,
    recipients,
    recipients_sql,
    sql_marks,
)
from newsletter.clock import now_iso
from newsletter.errors import InvalidEmail, NotFound
from newsletter.store.db import immediate, keyed_hash, meta_get, meta_key

STATUSES = ("active", "bounced", "blocklisted")
SUBSCRIPTION_STATUSES = ("unconfirmed", "confirmed", "unsubscribed")
# The consent-trail event of "unsubscribe from everything" (future topics included).
UNSUBSCRIBE_ALL_EVENT = "unsubscribe-all"
# The consent-trail event written when a subscription takes each status.
SUBSCRIPTION_ACTIONS = {
    "unconfirmed": "subscribe",
    "confirmed": "confirm",
    "unsubscribed": "unsubscribe",
}
# meta key: the largest id erasure has freed (see ``next_id``).
_ERASED_MAX_ID = "erased_max_subscriber_id"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def normalize_email(raw: str) -> str:
    """Trimmed, validated address; the domain lower-cased, the local part kept as given."""
    if raw is None:
        raise InvalidEmail("empty address")
    if any(ch in raw for ch in "\r\n\0"):
        raise InvalidEmail("line break in address")
    text = raw.strip()
    if not text:
        raise InvalidEmail("empty address")
    if not text.rpartition("@")[0].isascii():
        # Sending has no SMTPUTF8, so such an address could never be mailed.
        raise InvalidEmail("non-ASCII local part: cannot be mailed (needs SMTPUTF8)")
    # Loaded on first use: commands that never check an address (status, lists) start faster.
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return f"{checked.local_part}@{checked.domain.lower()}"


def clean_name(raw: str) -> str:
    """Unicode kept as given; control characters and runs of white space become one space.

    Names go into the To header: a CR or LF must never get there, nor NUL or escapes.
    """
    return " ".join(_CONTROL.sub(" ", raw).split())


def email_key(email: str) -> str:
    """Uniqueness key: addresses are unique regardless of case."""
    return email.casefold()


def suppression_hash(db: Database, email: str) -> str:
    # Keyed with a key kept in the database (not NEWSLETTER_SECRET) so rotating the
    # link secret never forgets who asked to be erased.
    return keyed_hash(meta_key(db, "suppression_key"), email_key(email))


def suppression_reason(db: Database, email: str) -> str | None:
    """Why the address is on the suppression list (``erased:...``, ``blocklisted:...``), or
    None when it is not."""
    row = db.execute(
        "SELECT reason FROM suppressions WHERE hash = ?", [suppression_hash(db, email)]
    ).fetchone()
    return row[0] if row else None


def is_suppressed(db: Database, email: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM suppressions WHERE hash = ?", [suppression_hash(db, email)]
    ).fetchone()
    return row is not None


def suppress(db: Database, email: str, reason: str) -> bool:
    """Block an address nobody subscribes with: only its keyed hash is kept, and imports and
    unconfirmed sign-ups skip it. False when it was already suppressed."""
    address = normalize_email(email)
    cursor = db.execute(
        "INSERT OR IGNORE INTO suppressions (hash, reason, created) VALUES (?, ?, ?)",
        [suppression_hash(db, address), reason, now_iso()],
    )
    return cursor.rowcount == 1


def lift_suppression(db: Database, email: str) -> bool:
    """Take an address off the suppression list; False when it was not on it."""
    cursor = db.execute("DELETE FROM suppressions WHERE hash = ?", [suppression_hash(db, email)])
    return cursor.rowcount > 0


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


def subscription_statuses(db: Database, subscriber_id: int) -> dict[int, str]:
    """One person's subscriptions: topic id -> unconfirmed, confirmed or unsubscribed."""
    return dict(
        db.execute(
            "SELECT topic_id, status FROM subscriptions WHERE subscriber_id = ?", [subscriber_id]
        ).fetchall()
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
        record_event(db, subscriber_id, SUBSCRIPTION_ACTIONS[status], source, topic_id)
        if status == "confirmed":
            # Every caller that confirms is the person's own action or a consent-checked
            # staff override, so an "unsubscribe from everything" ends here.
            db.execute(
                "UPDATE subscribers SET unsubscribed_all = NULL WHERE id = ?", [subscriber_id]
            )
        if status != "unconfirmed":
            # A sign-up request is answered by a confirmation and void after an unsubscribe:
            # an older confirm link must not turn it on later.
            db.execute(
                "DELETE FROM signup_requests WHERE subscriber_id = ? AND topic_id = ?",
                [subscriber_id, topic_id],
            )
    return True


@dataclass(frozen=True)
class AddResult:
    subscriber_id: int
    created: bool  # a new subscriber row
    changed: bool  # anything about the person or their subscriptions changed
    overridden: tuple[str, ...] = ()  # opt-outs a staff override undid (their reasons)


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
    Imports must check ``is_suppressed`` first and skip. The name goes through
    ``clean_name``.
    """
    address = normalize_email(email)
    cleaned = clean_name(name) if name is not None else None
    if lang is not None and lang not in ("fi", "sv", "en"):
        raise InvalidEmail(f"unknown language {lang!r}: use fi, sv or en")
    with immediate(db):  # read-then-write: see ``unsubscribe``
        row = find(db, address)
        changed = row is None
        # Also for a row that exists: an unconfirmed web sign-up creates one without
        # lifting the suppression, and a later staff add must still lift it.
        if lift_suppression_ and lift_suppression(db, address):
            changed = True
        if row is None:
            subscriber_id = _create(db, address, cleaned or "", lang or default_lang, source)
        else:
            subscriber_id = row["id"]
            changed |= _update_details(db, row, cleaned, lang, source)
        for topic_id in topic_ids:
            changed |= set_subscription(db, subscriber_id, topic_id, status, source)
    return AddResult(subscriber_id, row is None, changed)


def next_id(db: Database) -> int:
    """The id for a new subscriber: never one an erased person had.

    SQLite would hand out the largest id again once its row is gone, and the signed
    unsubscribe and preferences links in the erased person's old mails carry that id: they
    would open the newcomer's preferences. The caller holds the write lock.
    """
    largest = db.execute("SELECT COALESCE(MAX(id), 0) FROM subscribers").fetchone()[0]
    return max(int(largest), _erased_max_id(db)) + 1


def _erased_max_id(db: Database) -> int:
    return int(meta_get(db, _ERASED_MAX_ID) or 0)


def _create(db: Database, address: str, name: str, lang: str, source: str) -> int:
    stamp = now_iso()
    subscriber_id = next_id(db)
    db.execute(
        "INSERT INTO subscribers (id, email, email_key, name, lang, status, created, updated)"
        " VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
        [subscriber_id, address, email_key(address), name, lang, stamp, stamp],
    )
    record_event(db, subscriber_id, "create", source)
    return subscriber_id


def _update_details(
    db: Database, row: dict, name: str | None, lang: str | None, source: str
) -> bool:
    """Store a new name or language given for a known person; False when neither changed."""
    updates = {}
    if name and name != row["name"]:
        updates["name"] = name
    if lang and lang != row["lang"]:
        updates["lang"] = lang
    if not updates:
        return False
    db.execute(
        f"UPDATE subscribers SET {', '.join(f'{k} = ?' for k in updates)}, updated = ?"
        " WHERE id = ?",
        [*updates.values(), now_iso(), row["id"]],
    )
    record_event(db, row["id"], "update", source, detail=updates)
    return True


def unsubscribe(db: Database, subscriber_id: int, topic_id: int | None, source: str) -> int:
    """Unsubscribe from one topic, or from all when ``topic_id`` is None. Idempotent.

    "All" also covers topics that do not exist yet: the person is marked
    ``unsubscribed_all`` (``consent.all_opted_out``) until their own confirmed action.
    """
    changed = 0
    # It reads before it writes: take the write lock first, or a web request committing in
    # between makes the write fail at once ("database is locked"), whatever busy_timeout.
    with immediate(db):
        if topic_id is None:
            statuses = subscription_statuses(db, subscriber_id)
            topic_ids = [tid for tid, status in statuses.items() if status != "unsubscribed"]
        else:
            topic_ids = [topic_id]
        # With a named topic the row is written even when there was no subscription, so
        # the person's "no" to that topic stops a later import from subscribing them.
        for tid in topic_ids:
            if set_subscription(db, subscriber_id, tid, "unsubscribed", source):
                changed += 1
        if topic_id is None:
            _mark_unsubscribed_all(db, subscriber_id, source)
    return changed


def _mark_unsubscribed_all(db: Database, subscriber_id: int, source: str) -> None:
    # The mark is not a topic, so it is not counted in ``unsubscribe``'s changes.
    stamp = now_iso()
    cursor = db.execute(
        "UPDATE subscribers SET unsubscribed_all = ?, updated = ?"
        " WHERE id = ? AND unsubscribed_all IS NULL",
        [stamp, stamp, subscriber_id],
    )
    if cursor.rowcount:
        record_event(db, subscriber_id, UNSUBSCRIBE_ALL_EVENT, source)


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


def erase(db: Database, email: str, source: str = "cli") -> bool:
    """GDPR erasure: delete the person and their events; keep only a keyed hash.

    Pending deliveries are closed first so a running send cannot mail them. The delivery
    log keeps its rows (the edition's counts) but loses the SMTP replies, which often quote
    the address. Returns ``flush_wal``'s answer: False when another connection still holds
    old copies of the person's pages in the -wal file.
    """
    row = require(db, email)
    with db.atomic():
        db.execute(
            "UPDATE deliveries SET status = 'failed', reason = 'erased', updated = ?"
            " WHERE subscriber_id = ? AND status = 'pending'",
            [now_iso(), row["id"]],
        )
        db.execute("UPDATE deliveries SET last_reply = NULL WHERE subscriber_id = ?", [row["id"]])
        db.execute(
            "INSERT OR IGNORE INTO suppressions (hash, reason, created) VALUES (?, ?, ?)",
            [suppression_hash(db, row["email"]), f"erased:{source}", now_iso()],
        )
        db.execute("DELETE FROM subscribers WHERE id = ?", [row["id"]])
        if row["id"] > _erased_max_id(db):
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [_ERASED_MAX_ID, str(row["id"])],
            )
    # Move the WAL's copies of the deleted pages into the main file (where secure_delete
    # zeroed them) and truncate the WAL, so no readable trace of the address remains.
    return flush_wal(db)


def flush_wal(db: Database, *, attempts: int = 5, pause: float = 0.2) -> bool:
    """Checkpoint and truncate the WAL; False when another connection kept part of it.

    After an erasure the WAL may still hold old copies of the person's pages until every
    reader has moved on: the caller can tell the user instead of claiming they are gone.
    Readers (web requests) are short, so a few short tries usually get through.
    """
    saved = db.execute("PRAGMA busy_timeout").fetchone()[0]
    # A checkpoint waits for readers through the busy handler: 30 s by default, each try.
    db.execute(f"PRAGMA busy_timeout = {int(pause * 1000)}")
    try:
        for _ in range(attempts):
            busy, log_pages, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy and log_pages in (0, -1) and done in (0, -1):
                return True
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(saved)}")
    return False
