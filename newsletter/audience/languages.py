"""Which languages a topic's readers read: the variants an edition needs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from newsletter.audience.subscribers import recipient_condition


def recipient_language_counts(db: Database, topic_ids: Sequence[int]) -> dict[str, int]:
    """How many of the topics' recipients read each language, most readers first.

    Built on ``recipient_condition``, the one definition of who gets mailed.
    """
    if not topic_ids:
        return {}
    condition, params = recipient_condition(topic_ids)
    rows = db.execute(
        "SELECT lang, COUNT(*) AS n FROM (SELECT DISTINCT s.id, s.lang FROM subscribers s"
        f" JOIN subscriptions sub ON sub.subscriber_id = s.id WHERE {condition})"
        " GROUP BY lang ORDER BY n DESC, lang",
        params,
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def recipient_languages(db: Database, topic_ids: Sequence[int]) -> list[str]:
    """The languages the topics' recipients read, most readers first (then by code)."""
    return list(recipient_language_counts(db, topic_ids))
