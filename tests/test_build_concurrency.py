"""`build` renders outside the write transaction: writers are not held up by it, and what it
stores is still exactly what a build at its commit would make (no shared edition number, no
article that went out meanwhile)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

from build_helpers import HELSINKI, TOPIC_SLUG

from newsletter.audience import subscribers
from newsletter.clock import now
from newsletter.content import articles, editions, render, topics
from newsletter.content.articles import ArticleIn
from newsletter.store.db import open_db

# Recent: without --since a build takes what came after the last edition that went out.
BASE = now().astimezone(HELSINKI) - timedelta(days=5)
LANGS = ["fi", "sv", "en"]
NAMES = {"sv": "Samhällspåverkan", "en": "Community impact"}


def _topic(db) -> int:
    return topics.add_topic(db, TOPIC_SLUG, "Yhteisövaikuttavuus", names=NAMES).id


def _articles(db, count: int, *, start: datetime = BASE, prefix: str = "juttu") -> list[int]:
    with db.atomic():
        for n in range(count):
            articles.upsert(
                db,
                ArticleIn(
                    url=f"https://www.example.fi/ajankohtaista/{prefix}-{n}",
                    title=f"Uutinen {prefix} {n}: yhteisövaikuttavuus etenee",
                    summary="Hyvinvointialueet ja järjestöt tekevät yhteistyötä. " * 3,
                    published=start - timedelta(hours=n),
                    topics=["Yhteisövaikuttavuus"],
                ),
            )
    return [r[0] for r in db.execute("SELECT id FROM articles WHERE url LIKE ?", [f"%/{prefix}-%"])]


def _build(db, settings, workdir: Path) -> editions.BuildResult:
    return editions.build(
        db,
        settings,
        topics=[TOPIC_SLUG],
        since=None,
        until=None,
        limit=None,
        subject=None,
        intro=None,
        lang=LANGS,
        template=None,
        out=workdir / "editions",
    )


def _hook(monkeypatch, during) -> list[str]:
    """Call ``during()`` inside every variant's rendering; returns the languages rendered."""
    real = render.render_edition
    rendered: list[str] = []

    def rendering(settings, **kwargs):
        during()
        rendered.append(kwargs["lang"])
        return real(settings, **kwargs)

    monkeypatch.setattr(render, "render_edition", rendering)
    return rendered


def _edition_articles(db, edition_id: int) -> set[int]:
    rows = db.execute("SELECT article_id FROM edition_articles WHERE edition_id = ?", [edition_id])
    return {r[0] for r in rows}


def test_a_one_click_unsubscribe_is_not_held_up_by_a_build(db, settings, workdir, monkeypatch):
    topic = _topic(db)
    _articles(db, 40)
    people = [
        subscribers.add(
            db, f"lukija{n}@example.fi", topic_ids=[topic], status="confirmed"
        ).subscriber_id
        for n in range(len(LANGS))
    ]
    other = open_db(settings.db)
    other.execute("PRAGMA busy_timeout = 0")  # a held write lock fails at once, no waiting
    waiting = iter(people)

    def unsubscribe_one() -> None:
        # The web service's one-click unsubscribe on its own connection, mid-rendering.
        assert subscribers.unsubscribe(other, next(waiting), topic, "one-click") == 1

    rendered = _hook(monkeypatch, unsubscribe_one)
    result = _build(db, settings, workdir)
    other.close()
    assert rendered == LANGS and len(result.variants) == 3
    assert len(result.articles) == 40
    states = {r[0] for r in db.execute("SELECT status FROM subscriptions")}
    assert states == {"unsubscribed"}  # all three landed while the build rendered


def test_a_send_starting_while_a_build_renders_moves_its_articles(
    db, settings, workdir, monkeypatch
):
    _topic(db)
    older = _articles(db, 5)
    first = _build(db, settings, workdir)  # a draft with the five: drafts take no articles
    newer = _articles(db, 2, start=BASE + timedelta(days=2), prefix="uusi")
    other = open_db(settings.db)
    other.execute("PRAGMA busy_timeout = 0")
    started = []

    def send_starts() -> None:
        if not started:  # the first edition goes out while the second is rendered
            with other.conn:
                other.execute(
                    "UPDATE editions SET status = 'sent', sent_at = ? WHERE id = ?",
                    [BASE.isoformat(), first.edition_id],
                )
            started.append(True)

    rendered = _hook(monkeypatch, send_starts)
    second = _build(db, settings, workdir)
    other.close()
    assert rendered == LANGS * 2  # rendered again from what was there at its commit
    assert _edition_articles(db, first.edition_id) == set(older)
    assert _edition_articles(db, second.edition_id) == set(newer)  # none that went out


def test_two_builds_at_once_get_their_own_numbers(db, settings, workdir, monkeypatch):
    _topic(db)
    _articles(db, 6)
    both_rendering = threading.Barrier(2, timeout=60)
    seen = threading.local()

    def meet() -> None:
        if not getattr(seen, "met", False):  # both read the same state, then both store
            seen.met = True
            both_rendering.wait()

    rendered = _hook(monkeypatch, meet)
    results: list[editions.BuildResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = open_db(settings.db)
        try:
            results.append(_build(own, settings, workdir))
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    ids = sorted(r.edition_id for r in results)
    assert ids == [1, 2]
    # Both read number 1 while rendering; the one that stored second rendered again.
    assert len(rendered) == len(LANGS) * 3
    for result in results:
        row = db.execute(
            "SELECT html, web_html, hole_marker FROM editions WHERE id = ?", [result.edition_id]
        ).fetchone()
        assert row[0] and row[1] and row[2]
        assert result.html_path.name == f"edition-{result.edition_id}.html"
        assert result.html_path.read_text(encoding="utf-8") == row[0]
        count = db.execute(
            "SELECT COUNT(*) FROM edition_variants WHERE edition_id = ?", [result.edition_id]
        ).fetchone()[0]
        assert count == len(LANGS)
    markers = {r[0] for r in db.execute("SELECT hole_marker FROM editions WHERE id IN (1, 2)")}
    assert len(markers) == 2


def test_a_write_during_rendering_needs_no_second_rendering(db, settings, workdir, monkeypatch):
    _topic(db)
    _articles(db, 3)
    path = str(settings.db)
    holder = sqlite3.connect(path, timeout=0)

    def hold_briefly() -> None:
        # Another writer takes the lock during rendering and gives it back: nothing to redo.
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE topics SET name = name")
        holder.commit()

    rendered = _hook(monkeypatch, hold_briefly)
    result = _build(db, settings, workdir)
    holder.close()
    assert rendered == LANGS and result.edition_id == 1
