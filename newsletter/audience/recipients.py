"""Who may be mailed: the one definition sending, export, counts and the web service share.

``MAILABLE`` is the rule, ``recipient_condition`` applies it to a list of topics, and the
queries below only choose how SQLite walks the tables to apply it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlite_utils import Database


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    name: str
    lang: str
    topic_id: int  # the edition topic this person is mailed for (their unsubscribe link's)


# A mailable subscription (``sub``) of a person (``s``): confirmed, the person active and
# not unsubscribed from everything, not written by an import still marked running (an
# import is all-or-nothing: nobody it adds is a recipient before it has finished).
# Whether any import is running is asked once per statement (it does not depend on the
# row), so with none running, the usual case, no row needs the journal lookup.
MAILABLE = (
    "sub.status = 'confirmed' AND s.status = 'active' AND s.unsubscribed_all IS NULL"
    " AND (NOT EXISTS (SELECT 1 FROM import_runs WHERE status = 'running')"
    "  OR NOT EXISTS (SELECT 1 FROM import_undo u JOIN import_runs r ON r.id = u.import_id"
    "  WHERE u.subscriber_id = sub.subscriber_id AND u.topic_id = sub.topic_id"
    "  AND u.new = 'confirmed' AND r.status = 'running'))"
)


def sql_marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def recipient_condition(topic_ids: Sequence[int]) -> tuple[str, list[object]]:
    """The SQL condition (on ``subscribers s`` joined to ``subscriptions sub``) that says who
    is a recipient of the topics, with its parameters. ``recipients``, ``count_recipients``
    and the export all build on it, so there is one definition of who gets mailed."""
    return (
        f"sub.topic_id IN ({sql_marks(topic_ids)}) AND {MAILABLE}",
        list(topic_ids),
    )


def recipients(
    db: Database, topic_ids: Sequence[int], *, after_id: int = 0, limit: int | None = None
) -> Iterator[Recipient]:
    """The recipients of the given topics: active subscribers with a confirmed subscription,
    each once, ordered by id. Sending, export and counts all use this."""
    if not topic_ids:
        return iter(())
    sql, params = recipients_sql(topic_ids, after_id=after_id)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return (Recipient(*row) for row in db.execute(sql, params))


def recipients_sql(
    topic_ids: Sequence[int], *, after_id: int = 0, upto_id: int | None = None
) -> tuple[str, list[object]]:
    """The query behind ``recipients`` (id, email, name, lang, topic_id; ids in
    ``(after_id, upto_id]``, by id) with its parameters, for callers that feed it to SQL.

    Both forms read rows in id order straight out of an index, so neither needs a temporary
    B-tree and a page of the list costs its own size, not the size of everything after it.
    One topic: its part of the ``subscriptions_topic`` index (topic, status, subscriber) is
    the outer loop and each person is found by primary key; (subscriber, topic) is the
    primary key of ``subscriptions``, so nobody comes twice and nothing is grouped. Several
    topics: CROSS JOIN keeps ``subscribers`` the outer loop, and GROUP BY gives each person
    once with the lowest of their topics.
    """
    topics = sorted(set(topic_ids))  # a topic named twice would cost an IN loop and a sort
    condition, params = recipient_condition(topics)
    single = len(topics) == 1
    key = "sub.subscriber_id" if single else "s.id"
    upto = ""
    params.append(after_id)
    if upto_id is not None:
        upto = f" AND {key} <= ?"
        params.append(upto_id)
    if single:
        return (
            "SELECT s.id, s.email, s.name, s.lang, sub.topic_id"
            " FROM subscriptions sub CROSS JOIN subscribers s ON s.id = sub.subscriber_id"
            f" WHERE {condition} AND {key} > ?{upto} ORDER BY {key}",
            params,
        )
    sql = (
        "SELECT s.id, s.email, s.name, s.lang, MIN(sub.topic_id) AS topic_id"
        " FROM subscribers s CROSS JOIN subscriptions sub ON sub.subscriber_id = s.id"
        f" WHERE {condition} AND {key} > ?{upto}"
        " GROUP BY s.id ORDER BY s.id"
    )
    return sql, params


def count_recipients(db: Database, topic_ids: Sequence[int]) -> int:
    if not topic_ids:
        return 0
    condition, params = recipient_condition(topic_ids)
    row = db.execute(
        "SELECT COUNT(DISTINCT s.id) FROM subscribers s"
        f" JOIN subscriptions sub ON sub.subscriber_id = s.id WHERE {condition}",
        params,
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
            f" WHERE ({clause}) AND {MAILABLE}",
            params,
        ):
            ok.add((row[0], row[1]))
    return ok
