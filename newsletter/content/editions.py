"""Editions: choose a topic's new articles, render them once, store the result as a draft.

The stored HTML and text keep the per-recipient placeholders; the sender fills them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from newsletter import dates, i18n
from newsletter.clock import from_iso, now, now_iso
from newsletter.config import Settings
from newsletter.content import archive, article_views, contacts, contract, render
from newsletter.content import articles as articles_mod
from newsletter.content import topics as topics_mod
from newsletter.content.articles import Article
from newsletter.content.topics import Topic
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import placeholders
from newsletter.store.db import immediate

FIRST_EDITION_DAYS = 30
PREHEADER_LIMIT = 140  # characters most clients show after the subject
SIZE_WARNING = 90 * 1024  # bytes; Gmail clips HTML above ~102 KB


@dataclass(frozen=True)
class BuildResult:
    edition_id: int
    topics: list[str]  # slugs
    subject: str
    articles: list[str]  # URLs, in the order shown
    html_path: Path
    text_path: Path
    html_bytes: int
    warnings: list[str] = field(default_factory=list)

    @property
    def too_big(self) -> bool:
        return self.html_bytes > SIZE_WARNING

    def as_json(self) -> dict:
        return {
            "edition": self.edition_id,
            "topics": self.topics,
            "subject": self.subject,
            "articles": self.articles,
            "html": str(self.html_path),
            "text": str(self.text_path),
            "html_bytes": self.html_bytes,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Edition:
    id: int
    subject: str
    preheader: str
    lang: str
    status: str
    html: str
    text: str
    intro: str
    template: str
    topic_ids: list[int]
    topic_slugs: list[str]
    topic_names: list[str]
    created: str
    article_ids: list[int]
    sent_at: str | None = None

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def as_json(self) -> dict:
        return {
            "edition": self.id,
            "subject": self.subject,
            "preheader": self.preheader,
            "lang": self.lang,
            "status": self.status,
            "topics": self.topic_slugs,
            "topic_names": self.topic_names,
            "template": self.template,
            "created": self.created,
            "sent_at": self.sent_at,
            "article_ids": self.article_ids,
            "html_bytes": self.html_bytes,
            "text_bytes": len(self.text.encode("utf-8")),
        }


@dataclass(frozen=True)
class EditionSummary:
    id: int
    subject: str
    lang: str
    status: str
    created: str
    topics: list[str]  # slugs
    article_count: int
    html_bytes: int

    def as_json(self) -> dict:
        return {
            "edition": self.id,
            "subject": self.subject,
            "lang": self.lang,
            "status": self.status,
            "created": self.created,
            "topics": self.topics,
            "articles": self.article_count,
            "html_bytes": self.html_bytes,
        }


def file_paths(out: Path, edition_id: int) -> tuple[Path, Path]:
    return out / f"edition-{edition_id}.html", out / f"edition-{edition_id}.txt"


def default_subject(topic_names: Sequence[str], lang: str, settings: Settings) -> str:
    day = dates.format_date(now(), lang, settings.tz)
    return i18n.text(lang, "default_subject", topics=", ".join(topic_names), date=day)


def make_preheader(intro: str | None, chosen: Sequence[Article]) -> str:
    """The inbox teaser: the intro's start, else the first titles."""
    source = " ".join((intro or "").split()) or " · ".join(a.title for a in chosen[:3])
    return article_views.shorten(source, PREHEADER_LIMIT)


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


def build(
    db: Database,
    settings: Settings,
    *,
    topics: list[str],
    since: str | None,
    until: str | None,
    limit: int | None,
    subject: str | None,
    intro: str | None,
    lang: str | None,
    template: str | None,
    out: Path,
) -> BuildResult:
    """Select, render, store as a draft edition and write ``edition-<id>.html/.txt``."""
    lang = i18n.check_lang(lang or settings.default_lang)
    if limit is not None and limit < 1:
        raise NewsletterError("--limit must be at least 1")
    if subject is not None and not subject.strip():
        raise NewsletterError("the subject must not be empty")
    chosen_topics = topics_mod.resolve_many(db, topics)
    if not chosen_topics:
        raise NewsletterError("choose at least one topic with --topic")
    start, end = articles_mod.window(since, until, settings.tz)
    names = [t.name for t in chosen_topics]
    # One write transaction from selection to insert: two builds at once must not both
    # take the same "new" articles.
    with immediate(db):
        chosen, window = select_articles(
            db, chosen_topics, since=start, until=end, limit=limit, tz=settings.tz
        )
        if not chosen:
            slugs = ", ".join(t.slug for t in chosen_topics)
            raise NewsletterError(
                f"no articles for {slugs} ({window}): import articles or choose --since"
            )
        subject = subject.strip() if subject else default_subject(names, lang, settings)
        preheader = make_preheader(intro, chosen)
        # Drawn now, after the content is fixed: nothing in it can know the marker.
        holes = placeholders.Holes.new()
        # The row comes first: the edition's number is in its web-version link.
        edition_id = _insert(db, lang, subject, preheader, intro or "", chosen_topics, chosen)
        rendered, choice, web_html = _render(
            db,
            settings,
            edition_id,
            chosen_topics,
            chosen,
            lang=lang,
            subject=subject,
            preheader=preheader,
            intro=intro,
            template=template,
            holes=holes,
        )
        db.execute(
            "UPDATE editions SET template = ?, html = ?, text = ?, web_html = ?, hole_marker = ?"
            " WHERE id = ?",
            [choice.label, rendered.html, rendered.text, web_html, holes.marker, edition_id],
        )
        # Written inside the transaction: a file that cannot be written rolls the edition back.
        html_path, text_path = write_files(out, edition_id, rendered.html, rendered.text)
    warnings = []
    if contract.ignored_articles(rendered.html, chosen):
        warnings.append(
            f"template {choice.label} shows none of the {len(chosen)} articles in its HTML"
            " (only the text part has them): loop over `articles` in the template"
        )
    return BuildResult(
        edition_id=edition_id,
        topics=[t.slug for t in chosen_topics],
        subject=subject,
        articles=[a.url for a in chosen],
        html_path=html_path,
        text_path=text_path,
        html_bytes=len(rendered.html.encode("utf-8")),
        warnings=warnings,
    )


def _render(
    db: Database,
    settings: Settings,
    edition_id: int,
    chosen_topics: Sequence[Topic],
    chosen: Sequence[Article],
    *,
    lang: str,
    subject: str,
    preheader: str,
    intro: str | None,
    template: str | None,
    holes: placeholders.Holes,
) -> tuple[render.Rendered, render.TemplateChoice, str]:
    """The email (HTML and text, with ``holes`` for per-recipient values) and the public
    web version (no holes at all)."""
    names = [t.name for t in chosen_topics]
    people = [c.as_json() for c in contacts.of_topics(db, [t.id for t in chosen_topics])]
    public = archive.public_links(db, settings, edition_id, chosen_topics)
    shared = {
        "lang": lang,
        "subject": subject,
        "preheader": preheader,
        "intro": intro,
        "articles": chosen,
        "topic_names": names,
        "contacts": people,
        "public": public,
    }
    rendered, choice = render.render_edition(settings, template=template, holes=holes, **shared)
    web_html = render.render_web_version(settings, choice, **shared)
    return rendered, choice, web_html


def _insert(
    db: Database,
    lang: str,
    subject: str,
    preheader: str,
    intro: str,
    chosen_topics: Sequence[Topic],
    chosen: Sequence[Article],
) -> int:
    """The draft's row, its topics and articles; the rendering is filled in right after."""
    stamp = now_iso()
    cursor = db.execute(
        "INSERT INTO editions (subject, preheader, lang, intro, template, html, text, status,"
        " created, updated) VALUES (?, ?, ?, ?, '', '', '', 'draft', ?, ?)",
        [subject, preheader, lang, intro, stamp, stamp],
    )
    edition_id = cursor.lastrowid
    assert edition_id is not None
    db.conn.executemany(
        "INSERT INTO edition_topics (edition_id, topic_id) VALUES (?, ?)",
        [(edition_id, t.id) for t in chosen_topics],
    )
    db.conn.executemany(
        "INSERT INTO edition_articles (edition_id, article_id, position) VALUES (?, ?, ?)",
        [(edition_id, a.id, pos) for pos, a in enumerate(chosen, start=1)],
    )
    return edition_id


def write_files(out: Path, edition_id: int, html: str, text: str) -> tuple[Path, Path]:
    html_path, text_path = file_paths(out, edition_id)
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the edition to {out}: {exc.strerror}") from None
    return html_path, text_path


def write_preview(out: Path, edition_id: int, html: str, text: str) -> tuple[Path, Path]:
    """``preview-<id>.html/.txt``: the edition filled in for a sample subscriber. Kept apart
    from ``edition-<id>.*``, which hold the placeholders the sender fills."""
    html_path, text_path = out / f"preview-{edition_id}.html", out / f"preview-{edition_id}.txt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the preview to {out}: {exc.strerror}") from None
    return html_path, text_path


def delete(db: Database, edition_id: int, out: Path) -> None:
    """Delete a draft edition and its ``edition-<id>.html/.txt`` in ``out`` if present.

    An edition that has started going out is kept: its delivery log is the record of who
    was sent what.
    """
    with immediate(db):  # the status read and the delete must not straddle a send's start
        row = db.execute("SELECT status FROM editions WHERE id = ?", [edition_id]).fetchone()
        if row is None:
            raise NotFound(f"no edition {edition_id} (see `newsletter editions list`)")
        if row[0] != "draft":
            raise NewsletterError(
                f"edition {edition_id} is {row[0]}, not a draft: it is kept as the record"
                " of who was sent what"
            )
        # ON DELETE CASCADE removes its topics and articles (a draft has no deliveries).
        db.execute("DELETE FROM editions WHERE id = ?", [edition_id])
        # Removed inside the transaction: a file that cannot be removed keeps the edition.
        for path in file_paths(out, edition_id):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise NewsletterError(f"cannot remove {path}: {exc.strerror}") from None


def get(db: Database, edition_id: int) -> Edition:
    row = db.execute(
        "SELECT id, subject, preheader, lang, status, html, text, intro, template, created,"
        " sent_at FROM editions WHERE id = ?",
        [edition_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no edition {edition_id} (see `newsletter editions list`)")
    topic_rows = db.execute(
        "SELECT t.id, t.slug, t.name FROM edition_topics et JOIN topics t ON t.id = et.topic_id"
        " WHERE et.edition_id = ? ORDER BY t.slug",
        [edition_id],
    ).fetchall()
    article_ids = [
        r[0]
        for r in db.execute(
            "SELECT article_id FROM edition_articles WHERE edition_id = ? ORDER BY position",
            [edition_id],
        )
    ]
    return Edition(
        id=row[0],
        subject=row[1],
        preheader=row[2],
        lang=row[3],
        status=row[4],
        html=row[5],
        text=row[6],
        intro=row[7],
        template=row[8],
        created=row[9],
        sent_at=row[10],
        topic_ids=[r[0] for r in topic_rows],
        topic_slugs=[r[1] for r in topic_rows],
        topic_names=[r[2] for r in topic_rows],
        article_ids=article_ids,
    )


def list_(db: Database) -> list[EditionSummary]:
    """Every edition, newest first."""
    rows = db.execute(
        "SELECT e.id, e.subject, e.lang, e.status, e.created, length(CAST(e.html AS BLOB)),"
        " (SELECT group_concat(slug, ' ') FROM (SELECT t.slug FROM edition_topics et"
        "   JOIN topics t ON t.id = et.topic_id WHERE et.edition_id = e.id ORDER BY t.slug)),"
        " (SELECT count(*) FROM edition_articles ea WHERE ea.edition_id = e.id)"
        " FROM editions e ORDER BY e.id DESC"
    ).fetchall()
    return [
        EditionSummary(
            id=r[0],
            subject=r[1],
            lang=r[2],
            status=r[3],
            created=r[4],
            html_bytes=r[5] or 0,
            topics=(r[6] or "").split(),
            article_count=r[7],
        )
        for r in rows
    ]


def articles_of(db: Database, edition: Edition) -> list[Article]:
    """The edition's articles in the order they appear."""
    return articles_mod.by_ids(db, edition.article_ids)
