"""Editions: choose a topic's new articles, render them once, store the result as a draft.

An edition has a variant per language (``edition_variants``); the editions row carries the
main one (the default language when built) so older readers of that row keep working.
The stored HTML and text keep the per-recipient placeholders; the sender fills them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from newsletter import dates, i18n
from newsletter.clock import now, now_iso
from newsletter.config import Settings
from newsletter.content import archive, article_views, contacts, contract, render
from newsletter.content import articles as articles_mod
from newsletter.content import topics as topics_mod
from newsletter.content import variants as variants_mod
from newsletter.content.articles import Article
from newsletter.content.edition_files import file_paths, write_files, write_preview
from newsletter.content.edition_records import (
    SIZE_WARNING,
    BuildResult,
    Edition,
    EditionSummary,
    Variant,
    VariantFiles,
)
from newsletter.content.selection import select_articles
from newsletter.content.topics import Topic
from newsletter.content.variants import PerLanguage
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import placeholders
from newsletter.store.db import immediate

__all__ = [
    "SIZE_WARNING",
    "BuildResult",
    "Edition",
    "EditionSummary",
    "Variant",
    "build",
    "file_paths",
    "select_articles",
    "write_files",
    "write_preview",
]

PREHEADER_LIMIT = 140  # characters most clients show after the subject


def default_subject(topic_names: Sequence[str], lang: str, settings: Settings) -> str:
    """``Topic: uutiskirje 1.12.2026`` in ``lang``, with the topics' names in ``lang``."""
    day = dates.format_date(now(), lang, settings.tz)
    return i18n.text(lang, "default_subject", topics=", ".join(topic_names), date=day)


def make_preheader(intro: str | None, chosen: Sequence[Article]) -> str:
    """The inbox teaser: the intro's start, else the first titles."""
    source = " ".join((intro or "").split()) or " · ".join(a.title for a in chosen[:3])
    return article_views.shorten(source, PREHEADER_LIMIT)


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


# How often a build renders again when another build or a send changed what it read while it
# rendered; each round re-reads everything, so only a steady stream of changes exhausts it.
BUILD_ATTEMPTS = 5


@dataclass(frozen=True)
class _Inputs:
    """Everything a rendering depends on from the database, compared before it is stored."""

    topics: list[Topic]
    found: list[Article]
    people: list[dict[str, str]]
    public: archive.EditionLinks
    edition_id: int  # the number the edition will get: its web-version links carry it


def _read_inputs(
    db: Database,
    settings: Settings,
    topics: list[str],
    start: datetime | None,
    end: datetime | None,
) -> _Inputs:
    chosen_topics = topics_mod.resolve_many(db, topics)
    if not chosen_topics:
        raise NewsletterError("choose at least one topic with --topic")
    found, window = select_articles(
        db, chosen_topics, since=start, until=end, limit=None, tz=settings.tz
    )
    if not found:
        slugs = ", ".join(t.slug for t in chosen_topics)
        raise NewsletterError(
            f"no articles for {slugs} ({window}): import articles or choose --since"
        )
    edition_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM editions").fetchone()[0]
    people = [c.as_json() for c in contacts.of_topics(db, [t.id for t in chosen_topics])]
    public = archive.public_links(db, settings, edition_id, chosen_topics)
    return _Inputs(chosen_topics, found, people, public, edition_id)


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
    store as a draft edition and write ``edition-<id>[.<lang>].html/.txt``.

    Rendering (MJML and premailer for every variant) takes long, so it runs outside any
    write transaction: one-click unsubscribes and sends must not wait behind it. The short
    write transaction that stores the edition reads the inputs again; if another build took
    the edition's number or a send moved the article window meanwhile, it renders again.
    So the stored edition is exactly what a build at that moment would make, and two builds
    at once never share a number or take articles that went out in between.
    """
    plan = _plan(settings, lang, subject, intro, limit, template)
    start, end = articles_mod.window(since, until, settings.tz)
    for _attempt in range(BUILD_ATTEMPTS):
        inputs = _read_inputs(db, settings, topics, start, end)
        # Drawn now, after the content is fixed: nothing in it can know the marker. Every
        # variant of the edition shares it (the delivery log knows one per edition).
        holes = placeholders.Holes.new()
        made = [
            _render_variant(
                settings,
                plan,
                variant_lang,
                inputs.found,
                inputs.topics,
                holes,
                inputs.people,
                _links_in(inputs.public, variant_lang, main=index == 0),
            )
            for index, variant_lang in enumerate(plan.langs)
        ]
        with immediate(db):
            if _read_inputs(db, settings, topics, start, end) != inputs:
                continue  # changed while rendering: render again from what is there now
            edition_id = _insert_row(db, inputs.edition_id, inputs.topics)
            _store(db, edition_id, made[0].template, [m.variant for m in made], holes)
            # Written inside the transaction: a file that cannot be written rolls the
            # edition back (writing is quick next to rendering).
            files = [
                _write_variant(out, edition_id, m.variant, m.urls, index == 0)
                for index, m in enumerate(made)
            ]
        return _result(edition_id, inputs.topics, made, files)
    raise NewsletterError(
        "the topic's articles or editions kept changing while this edition was built"
        " (other builds or sends running): try again"
    )


def _result(
    edition_id: int, chosen_topics: Sequence[Topic], made: Sequence[_Made],
    files: Sequence[VariantFiles],
) -> BuildResult:  # fmt: skip
    main = made[0].variant
    return BuildResult(
        edition_id=edition_id,
        topics=[t.slug for t in chosen_topics],
        subject=main.subject,
        articles=files[0].articles,
        html_path=files[0].html_path,
        text_path=files[0].text_path,
        html_bytes=files[0].html_bytes,
        lang=main.lang,
        variants=list(files),
        warnings=[w for m in made for w in m.warnings],
    )


@dataclass(frozen=True)
class _Made:
    """One rendered variant, the template's label, its article URLs and build warnings."""

    variant: Variant
    template: str
    urls: list[str]
    warnings: list[str]


def _links_in(public: archive.EditionLinks, lang: str, *, main: bool) -> archive.EditionLinks:
    """A variant's public links: its web version opens in its own language."""
    if main or not public.web_url:
        return public
    return replace(public, web_url=f"{public.web_url}?lang={lang}")


def _render_variant(
    settings: Settings,
    plan: _Plan,
    lang: str,
    found: Sequence[Article],
    chosen_topics: Sequence[Topic],
    holes: placeholders.Holes,
    people: Sequence[Mapping[str, str]],
    public: archive.EditionLinks,
) -> _Made:
    """One language's variant: the email (with ``holes``) and its public web version."""
    default = settings.default_lang
    chosen = variants_mod.for_language(found, lang, default, plan.limit)
    names = [t.name_for(lang) for t in chosen_topics]
    subject, subject_lang = plan.subjects.get(lang, default)
    subject = subject.strip() if subject else default_subject(names, lang, settings)
    intro, intro_lang = plan.intros.get(lang, default)
    shared = {
        "lang": lang,
        "subject": subject,
        "preheader": make_preheader(intro, chosen),
        "intro": intro,
        "intro_lang": intro_lang,
        "subject_lang": subject_lang,
        "articles": chosen,
        "topic_names": names,
        "contacts": people,
        "public": public,
    }
    rendered, choice = render.render_edition(
        settings, template=plan.template, holes=holes, **shared
    )
    web_html = render.render_web_version(settings, choice, **shared)
    variant = Variant(
        lang,
        subject,
        shared["preheader"],
        intro or "",
        rendered.html,
        rendered.text,
        [a.id for a in chosen],
        web_html=web_html,
    )
    warnings = []
    if contract.ignored_articles(rendered.html, chosen):
        warnings.append(
            f"template {choice.label} shows none of the {len(chosen)} articles in its HTML"
            f" ({lang}; only the text part has them): loop over `articles` in the template"
        )
    return _Made(variant, choice.label, [a.url for a in chosen], warnings)


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


def _insert_row(db: Database, edition_id: int, chosen_topics: Sequence[Topic]) -> int:
    """The draft's row (with the number its links were rendered with) and its topics; the
    rendering is stored right after (``_store``)."""
    stamp = now_iso()
    db.execute(
        "INSERT INTO editions (id, subject, preheader, lang, intro, template, html, text,"
        " status, created, updated) VALUES (?, '', '', '', '', '', '', '', 'draft', ?, ?)",
        [edition_id, stamp, stamp],
    )
    db.conn.executemany(
        "INSERT INTO edition_topics (edition_id, topic_id) VALUES (?, ?)",
        [(edition_id, t.id) for t in chosen_topics],
    )
    return edition_id


def _store(
    db: Database,
    edition_id: int,
    template: str,
    made: Sequence[Variant],
    holes: placeholders.Holes,
) -> None:
    """The main variant into the edition's row, every variant into ``edition_variants``."""
    main = made[0]
    db.execute(
        "UPDATE editions SET subject = ?, preheader = ?, lang = ?, intro = ?, template = ?,"
        " html = ?, text = ?, web_html = ?, hole_marker = ? WHERE id = ?",
        [main.subject, main.preheader, main.lang, main.intro, template, main.html, main.text,
         main.web_html, holes.marker, edition_id],
    )  # fmt: skip
    # Every article some variant shows, the main variant's first: what the next edition's
    # window starts after, and what ``editions show`` lists.
    shown = list(dict.fromkeys(i for variant in made for i in variant.article_ids))
    db.conn.executemany(
        "INSERT INTO edition_articles (edition_id, article_id, position) VALUES (?, ?, ?)",
        [(edition_id, article_id, pos) for pos, article_id in enumerate(shown, start=1)],
    )
    db.conn.executemany(
        "INSERT INTO edition_variants (edition_id, lang, subject, preheader, intro, html, text,"
        " article_ids, web_html) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (edition_id, v.lang, v.subject, v.preheader, v.intro, v.html, v.text,
             json.dumps(v.article_ids), v.web_html)
            for v in made
        ],
    )  # fmt: skip


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
        Variant(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), web_html=r[7] or "")
        for r in db.execute(
            "SELECT lang, subject, preheader, intro, html, text, article_ids, web_html"
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
