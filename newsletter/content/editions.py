"""Editions: choose a topic's new articles, render them once, store the result as a draft.

An edition has a variant per language (``edition_variants``); the editions row carries the
main one (the default language when built) so older readers of that row keep working.
The stored HTML and text keep the per-recipient placeholders; the sender fills them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from newsletter import dates, i18n
from newsletter.clock import from_iso, now, now_iso
from newsletter.config import Settings
from newsletter.content import articles as articles_mod
from newsletter.content import render
from newsletter.content import topics as topics_mod
from newsletter.content import variants as variants_mod
from newsletter.content.articles import Article
from newsletter.content.edition_records import (
    SIZE_WARNING,
    BuildResult,
    Edition,
    EditionSummary,
    Variant,
    VariantFiles,
)
from newsletter.content.topics import Topic
from newsletter.content.variants import PerLanguage
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import placeholders
from newsletter.store.db import immediate

__all__ = ["SIZE_WARNING", "BuildResult", "Edition", "EditionSummary", "Variant", "build"]

FIRST_EDITION_DAYS = 30
PREHEADER_LIMIT = 140  # characters most clients show after the subject


def file_paths(out: Path, edition_id: int, lang: str | None = None) -> tuple[Path, Path]:
    """``edition-ID.html/.txt`` for the main variant, ``edition-ID.LANG.html/.txt`` else."""
    stem = f"edition-{edition_id}" + (f".{lang}" if lang else "")
    return out / f"{stem}.html", out / f"{stem}.txt"


def default_subject(topic_names: Sequence[str], lang: str, settings: Settings) -> str:
    """``Topic: uutiskirje 1.12.2026`` in ``lang``, with the topics' names in ``lang``."""
    day = dates.format_date(now(), lang, settings.tz)
    return i18n.text(lang, "default_subject", topics=", ".join(topic_names), date=day)


def make_preheader(intro: str | None, chosen: Sequence[Article]) -> str:
    """The inbox teaser: the intro's start, else the first titles."""
    source = " ".join((intro or "").split()) or " · ".join(a.title for a in chosen[:3])
    return render.shorten(source, PREHEADER_LIMIT)


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


def _per_language(value: str | Sequence[str] | PerLanguage | None, option: str) -> PerLanguage:
    """A plain value, ``["sv=...", "..."]`` as the CLI gives it, or already parsed."""
    if isinstance(value, PerLanguage):
        return value
    if value is None or isinstance(value, str):
        return PerLanguage(value, {})
    return variants_mod.parse_per_language(value, option)


@dataclass(frozen=True)
class _Plan:
    """What ``build`` was asked for, checked."""

    langs: list[str]  # the main variant's language first
    subjects: PerLanguage
    intros: PerLanguage
    limit: int | None
    template: str | None


def _plan(
    settings: Settings,
    langs: Sequence[str] | str | None,
    subject: str | Sequence[str] | PerLanguage | None,
    intro: str | Sequence[str] | PerLanguage | None,
    limit: int | None,
    template: str | None,
) -> _Plan:
    if isinstance(langs, str):
        langs = [langs]
    chosen = variants_mod.check_languages(langs or [settings.default_lang])
    # The default language's variant is the main one (what readers of a language the
    # edition lacks get); without it, the first named.
    if settings.default_lang in chosen:
        chosen.remove(settings.default_lang)
        chosen.insert(0, settings.default_lang)
    if limit is not None and limit < 1:
        raise NewsletterError("--limit must be at least 1")
    subjects, intros = _per_language(subject, "--subject"), _per_language(intro, "--intro")
    for given in (subjects.plain, *subjects.by_lang.values()):
        if given is not None and not given.strip():
            raise NewsletterError("the subject must not be empty")
    return _Plan(chosen, subjects, intros, limit, template)


def build(
    db: Database,
    settings: Settings,
    *,
    topics: list[str],
    since: str | None,
    until: str | None,
    limit: int | None,
    subject: str | Sequence[str] | PerLanguage | None,
    intro: str | Sequence[str] | PerLanguage | None,
    lang: Sequence[str] | str | None,
    template: str | None,
    out: Path,
) -> BuildResult:
    """Select, render a variant per language in ``lang`` (default: the default language),
    store as a draft edition and write ``edition-<id>[.<lang>].html/.txt``."""
    plan = _plan(settings, lang, subject, intro, limit, template)
    chosen_topics = topics_mod.resolve_many(db, topics)
    if not chosen_topics:
        raise NewsletterError("choose at least one topic with --topic")
    start, end = articles_mod.window(since, until, settings.tz)
    # One write transaction from selection to insert: two builds at once must not both
    # take the same "new" articles.
    with immediate(db):
        found, window = select_articles(
            db, chosen_topics, since=start, until=end, limit=None, tz=settings.tz
        )
        if not found:
            slugs = ", ".join(t.slug for t in chosen_topics)
            raise NewsletterError(
                f"no articles for {slugs} ({window}): import articles or choose --since"
            )
        # Drawn now, after the content is fixed: nothing in it can know the marker. Every
        # variant of the edition shares it (the delivery log knows one per edition).
        holes = placeholders.Holes.new()
        made = [
            _render_variant(settings, plan, variant_lang, found, chosen_topics, holes)
            for variant_lang in plan.langs
        ]
        main = made[0][0]
        edition_id = _insert(db, made[0][1], [v for v, _, _ in made], chosen_topics)
        db.execute("UPDATE editions SET hole_marker = ? WHERE id = ?", [holes.marker, edition_id])
        # Written inside the transaction: a file that cannot be written rolls the edition back.
        files = [
            _write_variant(out, edition_id, variant, urls, index == 0)
            for index, (variant, _, urls) in enumerate(made)
        ]
    return BuildResult(
        edition_id=edition_id,
        topics=[t.slug for t in chosen_topics],
        subject=main.subject,
        articles=files[0].articles,
        html_path=files[0].html_path,
        text_path=files[0].text_path,
        html_bytes=files[0].html_bytes,
        lang=main.lang,
        variants=files,
    )


def _render_variant(
    settings: Settings,
    plan: _Plan,
    lang: str,
    found: Sequence[Article],
    chosen_topics: Sequence[Topic],
    holes: placeholders.Holes,
) -> tuple[Variant, str, list[str]]:
    """One language's variant, the template label and the URLs of its articles."""
    default = settings.default_lang
    chosen = variants_mod.for_language(found, lang, default, plan.limit)
    names = [t.name_for(lang) for t in chosen_topics]
    subject, subject_lang = plan.subjects.get(lang, default)
    subject = subject.strip() if subject else default_subject(names, lang, settings)
    intro, intro_lang = plan.intros.get(lang, default)
    preheader = make_preheader(intro, chosen)
    rendered, choice = render.render_edition(
        settings,
        lang=lang,
        subject=subject,
        preheader=preheader,
        intro=intro,
        intro_lang=intro_lang,
        subject_lang=subject_lang,
        articles=chosen,
        topic_names=names,
        template=plan.template,
        holes=holes,
    )
    variant = Variant(
        lang, subject, preheader, intro or "", rendered.html, rendered.text, [a.id for a in chosen]
    )
    return variant, choice.label, [a.url for a in chosen]


def _write_variant(
    out: Path, edition_id: int, variant: Variant, urls: list[str], main: bool
) -> VariantFiles:
    html_path, text_path = write_files(
        out, edition_id, variant.html, variant.text, None if main else variant.lang
    )
    return VariantFiles(
        lang=variant.lang,
        subject=variant.subject,
        articles=urls,
        html_path=html_path,
        text_path=text_path,
        html_bytes=variant.html_bytes,
    )


def _insert(
    db: Database, template: str, made: Sequence[Variant], chosen_topics: Sequence[Topic]
) -> int:
    main = made[0]
    stamp = now_iso()
    cursor = db.execute(
        "INSERT INTO editions (subject, preheader, lang, intro, template, html, text, status,"
        " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?)",
        [main.subject, main.preheader, main.lang, main.intro, template, main.html, main.text,
         stamp, stamp],
    )  # fmt: skip
    edition_id = cursor.lastrowid
    assert edition_id is not None
    db.conn.executemany(
        "INSERT INTO edition_topics (edition_id, topic_id) VALUES (?, ?)",
        [(edition_id, t.id) for t in chosen_topics],
    )
    # Every article some variant shows, the main variant's first: what the next edition's
    # window starts after, and what ``editions show`` lists.
    shown = list(dict.fromkeys(i for variant in made for i in variant.article_ids))
    db.conn.executemany(
        "INSERT INTO edition_articles (edition_id, article_id, position) VALUES (?, ?, ?)",
        [(edition_id, article_id, pos) for pos, article_id in enumerate(shown, start=1)],
    )
    db.conn.executemany(
        "INSERT INTO edition_variants (edition_id, lang, subject, preheader, intro, html, text,"
        " article_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (edition_id, v.lang, v.subject, v.preheader, v.intro, v.html, v.text,
             json.dumps(v.article_ids))
            for v in made
        ],
    )  # fmt: skip
    return edition_id


def write_files(
    out: Path, edition_id: int, html: str, text: str, lang: str | None = None
) -> tuple[Path, Path]:
    html_path, text_path = file_paths(out, edition_id, lang)
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the edition to {out}: {exc.strerror}") from None
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
        langs = [r[0] for r in db.execute(
            "SELECT lang FROM edition_variants WHERE edition_id = ?", [edition_id]
        )]  # fmt: skip
        # ON DELETE CASCADE removes its topics, articles and variants (a draft has no
        # deliveries).
        db.execute("DELETE FROM editions WHERE id = ?", [edition_id])
        paths = [*file_paths(out, edition_id)]
        for lang in langs:
            paths.extend(file_paths(out, edition_id, lang))
        # Removed inside the transaction: a file that cannot be removed keeps the edition.
        for path in paths:
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
        variants=load_variants(db, edition_id, row[3]),
    )


def load_variants(db: Database, edition_id: int, main_lang: str) -> list[Variant]:
    """The edition's variants, the main one first (none for an edition built before them)."""
    found = [
        Variant(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]))
        for r in db.execute(
            "SELECT lang, subject, preheader, intro, html, text, article_ids"
            " FROM edition_variants WHERE edition_id = ? ORDER BY lang",
            [edition_id],
        )
    ]
    found.sort(key=lambda v: v.lang != main_lang)
    return found


def list_(db: Database) -> list[EditionSummary]:
    """Every edition, newest first."""
    rows = db.execute(
        "SELECT e.id, e.subject, e.lang, e.status, e.created, length(CAST(e.html AS BLOB)),"
        " (SELECT group_concat(slug, ' ') FROM (SELECT t.slug FROM edition_topics et"
        "   JOIN topics t ON t.id = et.topic_id WHERE et.edition_id = e.id ORDER BY t.slug)),"
        " (SELECT count(*) FROM edition_articles ea WHERE ea.edition_id = e.id),"
        " (SELECT group_concat(v.lang, ' ') FROM edition_variants v WHERE v.edition_id = e.id)"
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
            # The main variant first, then by code.
            languages=sorted(
                (r[8] or r[2]).split(), key=lambda lang, main=r[2]: (lang != main, lang)
            ),
        )
        for r in rows
    ]


def articles_of(db: Database, edition: Edition, lang: str | None = None) -> list[Article]:
    """The edition's articles in the order they appear (in ``lang``'s variant if given)."""
    ids = edition.variant(lang).article_ids if lang else edition.article_ids
    return articles_mod.by_ids(db, ids)
