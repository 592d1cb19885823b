"""Consent re-checks: which claimed rows may no longer be mailed, and why.

The delivery log is fixed when the first send starts; people unsubscribe, bounce or are
erased while it runs, so every batch is checked again before it leaves (``mailable`` is
the one definition), and a message leaving later than ``CONSENT_FRESH`` seconds after its
batch's check is checked once more on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.delivery.pipeline.jobs import Job

CONSENT_FRESH = 0.25


def refusal_reasons(db: Database, rows: Sequence[Job]) -> dict[int, str]:
    """For rows that may no longer be mailed: delivery id -> why (checked via ``mailable``)."""
    pairs = [(r.subscriber_id, r.topic_id) for r in rows if r.subscriber_id is not None]
    allowed = subscribers.mailable(db, pairs)
    reasons: dict[int, str] = {}
    for row in rows:
        if row.subscriber_id is None:
            reasons[row.delivery_id] = "erased"
        elif (row.subscriber_id, row.topic_id) not in allowed:
            reasons[row.delivery_id] = _why_not(db, row.subscriber_id, row.topic_id)
    return reasons


def _why_not(db: Database, subscriber_id: int, topic_id: int) -> str:
    person = db.execute("SELECT status FROM subscribers WHERE id = ?", [subscriber_id]).fetchone()
    if person is None:
        return "erased"
    if person[0] != "active":
        return str(person[0])  # bounced | blocklisted
    return "unsubscribed"
