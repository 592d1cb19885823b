"""Which articles an edition takes: after the newest article of the topic's latest edition
that went out (drafts do not count, so they can be rebuilt), or the last 30 days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from newsletter.clock import from_iso, now
from newsletter.content import articles as articles_mod
from newsletter.content.articles import Article
from newsletter.content.topics import Topic
from newsletter.errors import NewsletterError

FIRST_EDITION_DAYS = 30


# Statuses of an edition that has gone out (at least in part). A draft has not: it may be
# rebuilt or deleted, so it must not move the next edition's window.
OUT_STATUSES = ("sending", "paused", "sent")


def previous_cutoff(db: Database, topic_id: int) -> tuple[int, datetime] | None:
    """The topic's latest edition that has gone out, and the publication time of its newest
    article.

    Articles of the topic count first (a multi-topic edition may carry newer articles of
    another topic); an edition without any falls back to its newest article of all.
    """
    marks = ", ".join("?" for _ in OUT_STATUSES)
    row = db.execute(
        "SELECT max(et.edition_id) FROM edition_topics et JOIN editions e ON e.id = et.edition_id"
        f" WHERE et.topic_id = ? AND e.status IN ({marks})",
        [topic_id, *OUT_STATUSES],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    edition_id = row[0]
    newest = db.execute(
        "SELECT max(a.published) FROM edition_articles ea JOIN articles a ON a.id = ea.article_id"
        " WHERE ea.edition_id = ? AND a.id IN"
        " (SELECT article_id FROM article_topics WHERE topic_id = ?)",
        [edition_id, topic_id],
    ).fetchone()[0]
    if newest is None:
        newest = db.execute(
            "SELECT max(a.published) FROM edition_articles ea"
            " JOIN articles a ON a.id = ea.article_id WHERE ea.edition_id = ?",
            [edition_id],
        ).fetchone()[0]
    return (edition_id, from_iso(newest)) if newest else None


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def select_articles(
    db: Database,
    topics: Sequence[Topic],
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    tz: ZoneInfo,
) -> tuple[list[Article], str]:
    """The articles of an edition, newest first, and a description of the window used.

    With an explicit ``since`` every topic shares it. Without, each topic starts after the
    newest article of its latest edition that went out (so sent editions never repeat one,
    while drafts can be rebuilt), or 30 days back.
    """
    found: dict[int, Article] = {}
    described: list[str] = []
    for topic in topics:
        start, exclusive = since, False
        if start is None:
            previous = previous_cutoff(db, topic.id)
            if previous is None:
                start = now() - timedelta(days=FIRST_EDITION_DAYS)
                described.append(
                    f"{topic.slug}: published since {_local(start, tz)}, no edition sent yet"
                )
            else:
                start, exclusive = previous[1], True
                described.append(
                    f"{topic.slug}: published after {_local(start, tz)},"
                    f" the newest article of edition {previous[0]}, the latest one sent"
                )
            if until is not None and start >= until:
                raise NewsletterError(
                    f"--until ends before the window starts ({described[-1]}):"
                    " choose --since as well"
                )
        for article in articles_mod.select(db, [topic.id], start, until, since_exclusive=exclusive):
            found.setdefault(article.id, article)
    chosen = sorted(found.values(), key=lambda a: (a.published, a.id), reverse=True)
    if since is not None:
        described = [f"published since {_local(since, tz)}"]
    if until is not None:
        described.append(f"before {_local(until, tz)}")
    return (chosen[:limit] if limit is not None else chosen), "; ".join(described)
