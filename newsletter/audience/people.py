"""Read-only views of the list: who is on it (``subscribers list`` and export filters) and
everything held about one person (``subscribers show``, the GDPR access request)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlite_utils import Database

from newsletter.audience.subscribers import STATUSES, SUBSCRIPTION_STATUSES, require
from newsletter.errors import NewsletterError


def _topic_statuses(packed: str | None) -> dict[str, str]:
    # Slugs hold only a-z, 0-9 and hyphens, so ":" and ";" are safe separators.
    if not packed:
        return {}
    return dict(item.split(":", 1) for item in packed.split(";"))


def list_(
    db: Database, *, topic_id: int | None = None, status: str | None = None
) -> Iterator[dict]:
    """Subscribers ordered by id, streamed from a cursor.

    ``status`` is a subscriber status (active, bounced, blocklisted) or a subscription
    status (unconfirmed, confirmed, unsubscribed: of ``topic_id`` when given, else of any
    topic). ``topic_id`` alone lists everyone with a subscription to it in any state.
    Each row: email, name, lang, status, created, subscriptions ({topic slug: status}).
    """
    where: list[str] = []
    params: list[object] = []
    if status in STATUSES:
        where.append("s.status = ?")
        params.append(status)
    elif status is not None and status not in SUBSCRIPTION_STATUSES:
        known = ", ".join(STATUSES + SUBSCRIPTION_STATUSES)
        raise NewsletterError(f"unknown status {status!r}: use one of {known}")
    sub_status = status if status in SUBSCRIPTION_STATUSES else None
    if topic_id is not None or sub_status is not None:
        exists = "EXISTS (SELECT 1 FROM subscriptions sub WHERE sub.subscriber_id = s.id"
        if sub_status is not None:
            exists += " AND sub.status = ?"
            params.append(sub_status)
        if topic_id is not None:
            exists += " AND sub.topic_id = ?"
            params.append(topic_id)
        where.append(exists + ")")
    sql = (
        "SELECT s.email, s.name, s.lang, s.status, s.created,"
        " (SELECT group_concat(t.slug || ':' || x.status, ';') FROM subscriptions x"
        "  JOIN topics t ON t.id = x.topic_id WHERE x.subscriber_id = s.id)"
        " FROM subscribers s"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY s.id"
    )
    for email, name, lang, state, created, packed in db.execute(sql, params):
        yield {
            "email": email,
            "name": name,
            "lang": lang,
            "status": state,
            "created": created,
            "subscriptions": dict(sorted(_topic_statuses(packed).items())),
        }


def profile(db: Database, email: str) -> dict:
    """Everything held about a person, with the consent trail (GDPR access request).

    Raises NotFound for an unknown address.
    """
    row = require(db, email)
    try:
        attributes = json.loads(row["attributes"] or "{}")
    except ValueError:
        attributes = {"_raw": row["attributes"]}  # show what is stored even if malformed
    subscriptions = [
        {"topic": slug, "status": state, "updated": updated}
        for slug, state, updated in db.execute(
            "SELECT t.slug, x.status, x.updated FROM subscriptions x"
            " JOIN topics t ON t.id = x.topic_id WHERE x.subscriber_id = ? ORDER BY t.slug",
            [row["id"]],
        )
    ]
    events = [
        {"time": time, "action": action, "topic": slug, "source": source}
        for time, action, slug, source in db.execute(
            "SELECT e.time, e.action, t.slug, e.source FROM events e"
            " LEFT JOIN topics t ON t.id = e.topic_id WHERE e.subscriber_id = ? ORDER BY e.id",
            [row["id"]],
        )
    ]
    return {
        "email": row["email"],
        "name": row["name"],
        "lang": row["lang"],
        "status": row["status"],
        "created": row["created"],
        # When they unsubscribed from everything, topics made later included (else None).
        "unsubscribed_all": row["unsubscribed_all"],
        "attributes": attributes,
        "subscriptions": subscriptions,
        "events": events,
    }
