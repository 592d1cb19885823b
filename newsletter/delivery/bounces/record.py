"""Matching a bounce or complaint report to a person and an edition, and acting on it.

Matched by the VERP token of the envelope sender first (it names both and cannot be
forged), else by our Message-ID through the delivery log. The bounce address is public
(every message's Return-Path), so anyone can mail it a report naming any subscriber: a
report from the mailbox that names a person only by address is acted on only when it is a
hard bounce and VERP (``mail.bounce_address``) is off, for then a real bounce has nothing
better; a complaint or soft bounce by address alone is left unmatched and listed. A
provider's authenticated webhook is ``vouched``: the provider mailed that address, and
its own message ids are not ours, so its reports are matched by address too. Every
report is stored once by its fingerprint, so reading a mailbox or receiving a webhook
twice counts nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlite_utils import Database

from newsletter import links
from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.config import Settings
from newsletter.delivery import counts
from newsletter.delivery.bounces.reports import Report
from newsletter.store.db import immediate

# Outcomes of ``record``: the kind when it counted, else one of these.
DUPLICATE = "duplicate"
UNMATCHED = "unmatched"  # about nobody on the list
ADDRESS_ONLY = "address only"  # names a subscriber by address alone: not acted on


def _edition_exists(db: Database, edition_id: int | None) -> int | None:
    if edition_id is None:
        return None
    row = db.execute("SELECT 1 FROM editions WHERE id = ?", [edition_id]).fetchone()
    return edition_id if row else None


def match(db: Database, keys: Sequence[bytes], report: Report) -> tuple[int, int | None] | None:
    """(subscriber id, edition id or None) the report proves it is about, or None."""
    for address in report.envelope:
        found = links.read_bounce_address(keys, address)
        if found and subscribers.get(db, found[0]) is not None:
            return found[0], _edition_exists(db, found[1])
    if report.message_id:
        row = db.execute(
            "SELECT subscriber_id, edition_id FROM deliveries WHERE message_id = ?"
            " AND subscriber_id IS NOT NULL LIMIT 1",
            [report.message_id],
        ).fetchone()
        if row:
            return row[0], row[1]
    return None


def match_address(db: Database, report: Report) -> tuple[int, int | None] | None:
    """(subscriber id, their last edition sent) by the address the report names, or None."""
    person = subscribers.find(db, report.recipient) if report.recipient else None
    if person is None:
        return None
    last = db.execute(
        "SELECT edition_id FROM deliveries WHERE subscriber_id = ? AND status = 'sent'"
        " ORDER BY id DESC LIMIT 1",
        [person["id"]],
    ).fetchone()
    return person["id"], last[0] if last else None


def may_match_address(settings: Settings, report: Report, vouched: bool) -> bool:
    """May a report that proves nothing but an address be acted on? See the module doc."""
    return vouched or (report.kind == "hard" and not settings.bounce_address)


def record(
    db: Database,
    settings: Settings,
    keys: Sequence[bytes],
    report: Report,
    source: str,
    vouched: bool = False,
) -> str:
    """Store and apply one report: its kind when it counted, else DUPLICATE, UNMATCHED or
    ADDRESS_ONLY. ``vouched``: a provider authenticated it (a webhook)."""
    with immediate(db):
        found = match(db, keys, report)
        if found is None:
            by_address = match_address(db, report)
            if by_address is None:
                return UNMATCHED
            if not may_match_address(settings, report, vouched):
                return ADDRESS_ONLY
            found = by_address
        subscriber_id, edition_id = found
        cursor = db.execute(
            "INSERT OR IGNORE INTO bounce_reports (fingerprint, kind, subscriber_id,"
            " edition_id, source, status, detail, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [report.fingerprint, report.kind, subscriber_id, edition_id, source,
             report.status, report.detail, now_iso()],
        )  # fmt: skip
        if not cursor.rowcount:
            return DUPLICATE
        detail = {"edition": edition_id, "status": report.status, "detail": report.detail}
        if report.kind == "hard":
            count_hard_bounce(db, settings, subscriber_id, source, detail)
        elif report.kind == "complaint":
            complaint(db, subscriber_id, source, detail)
        else:
            subscribers.record_event(db, subscriber_id, "soft_bounce", source, None, detail)
    return report.kind


def count_hard_bounce(
    db: Database,
    settings: Settings,
    subscriber_id: int,
    source: str,
    detail: dict,
    topic_id: int | None = None,
) -> None:
    """One more hard bounce, refused during the send or reported after it; at
    ``hard_bounce_limit`` the person is marked bounced."""
    counted = db.execute(
        "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?", [subscriber_id]
    )
    if not counted.rowcount:
        return  # erased meanwhile: an event for a deleted person would break the foreign key
    subscribers.record_event(db, subscriber_id, "hard_bounce", source, topic_id, detail)
    row = db.execute(
        "SELECT hard_bounces, status FROM subscribers WHERE id = ?", [subscriber_id]
    ).fetchone()
    if row and row[1] == "active" and row[0] >= settings.hard_bounce_limit:
        subscribers.set_status(db, subscriber_id, "bounced", "bounce")


def complaint(db: Database, subscriber_id: int, source: str, detail: dict) -> None:
    """A spam complaint: unsubscribed from everything, and no import brings them back
    (only their own confirmed sign-up lifts the suppression)."""
    person = subscribers.get(db, subscriber_id)
    if person is None:
        return
    subscribers.unsubscribe(db, subscriber_id, None, "complaint")
    subscribers.suppress(db, person["email"], "complaint")
    subscribers.record_event(db, subscriber_id, "complaint", source, None, json.dumps(detail))


def edition_counts(db: Database, edition_id: int) -> dict[str, int]:
    """Bounces and complaints of one edition (the same counts ``status`` reads)."""
    return counts.bounce_counts(db, edition_id)


def last_edition_warning(db: Database, edition_id: int) -> str | None:
    """A warning when the last edition sent before this one bounced above 2% or drew
    complaints above 0.1%: the thresholds Gmail and Yahoo judge bulk senders by."""
    row = db.execute(
        "SELECT id FROM editions WHERE id != ? AND sent_at IS NOT NULL"
        " ORDER BY sent_at DESC, id DESC LIMIT 1",
        [edition_id],
    ).fetchone()
    if row is None:
        return None
    last = row[0]
    sent = db.execute(
        "SELECT COUNT(*) FROM deliveries WHERE edition_id = ? AND (status = 'sent'"
        " OR reason = 'hard bounce')",
        [last],
    ).fetchone()[0]
    if sent == 0:
        return None
    numbers = edition_counts(db, last)
    bounce_rate = (numbers["hard_bounces"] + numbers["soft_bounces"]) / sent
    complaint_rate = numbers["complaints"] / sent
    problems = []
    if bounce_rate > 0.02:
        problems.append(f"bounce rate {bounce_rate:.1%} (above 2%)")
    if complaint_rate > 0.001:
        problems.append(f"complaint rate {complaint_rate:.2%} (above 0.1%)")
    if not problems:
        return None
    return (
        f"the last edition ({last}) had a {' and a '.join(problems)}: mailbox providers"
        " may start to refuse or junk your mail; clean the list before sending more"
    )
