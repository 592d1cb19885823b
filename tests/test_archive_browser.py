"""The archive page and an edition's web version as readers see them: headless Chromium at
375 and 600 px against the real server, axe-core on both pages, screenshots."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from axe_helpers import violations
from build_helpers import HELSINKI, TOPIC_SLUG, add_articles, sample_articles
from send_helpers import add_people
from web_helpers import LiveServer, web_settings

from newsletter.content import archive, contacts, editions, topics
from newsletter.delivery import pipeline
from newsletter.store.db import token_key

pytestmark = pytest.mark.browser
BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)


@pytest.fixture
def published(settings, smtp_sink, db, workdir: Path):
    """A server with two sent editions of the topic; (server, web path of the newest)."""
    config = web_settings(settings, smtp_sink)
    add_articles(db, sample_articles(BASE))
    contacts.add(
        db,
        TOPIC_SLUG,
        name="Mari Hirvonen",
        title="Erityisasiantuntija",
        email="mari.hirvonen@example.fi",
        phone="044 363 7276",
    )
    add_people(db, topics.resolve(db, TOPIC_SLUG).id, 2)
    newest = 0
    for subject in ("Kesäkuun uutiset", "Elokuun uutiset"):
        newest = editions.build(
            db,
            config,
            topics=[TOPIC_SLUG],
            since="2025-08-01",
            until=None,
            limit=None,
            subject=subject,
            intro="Hyvä lukija,\n\ntässä ovat uutiset.",
            lang="fi",
            template=None,
            out=workdir / "editions",
        ).edition_id
        assert pipeline.send(db, config, newest).sent == 2
    with LiveServer(config) as server:
        yield server, archive.web_path(token_key(db, config.secret), newest)


@pytest.mark.parametrize("width", [375, 600])
def test_archive_and_web_version_pages(browser, artifacts: Path, published, width: int) -> None:
    server, web_path = published
    # axe-core is injected as a script, which the pages' Content-Security-Policy forbids.
    context = browser.new_context(
        viewport={"width": width, "height": 900}, locale="fi-FI", bypass_csp=True
    )
    page = context.new_page()
    try:
        page.goto(f"{server.url}/archive/{TOPIC_SLUG}")
        assert page.get_attribute("html", "lang") == "fi"
        items = page.locator("ul.archive li a")
        assert items.all_inner_texts() == ["Elokuun uutiset", "Kesäkuun uutiset"]
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert violations(page) == []
        page.screenshot(path=str(artifacts / f"archive-{width}px.png"), full_page=True)

        items.first.click()
        page.wait_for_url(f"**{web_path}")
        assert page.title() == "Elokuun uutiset"
        assert page.get_by_text("Mari Hirvonen").is_visible()
        assert page.get_by_role("link", name="Tilaa uutiskirje").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        hrefs = page.evaluate("[...document.links].map(a => a.href)")
        assert not any("/u/" in h or "/p/" in h for h in hrefs), hrefs
        assert violations(page) == []
        page.screenshot(path=str(artifacts / f"web-version-{width}px.png"), full_page=True)
    finally:
        context.close()


def test_archive_in_the_readers_language(browser, published) -> None:
    server, _ = published
    context = browser.new_context(locale="sv-SE", bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/archive/{TOPIC_SLUG}")
        assert page.get_attribute("html", "lang") == "sv"
        assert page.get_by_role("heading", name="Tidigare nyhetsbrev: Yhteisövaikuttavuus")
        assert violations(page) == []
    finally:
        context.close()


def test_axe_reports_what_is_wrong(browser, tmp_path: Path) -> None:
    """The checker is not silent: a page with known faults gets them reported."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>x</title></head><body>"
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><a href="#"></a>'
        '<p style="color:#ccc;background:#fff">vaalea teksti</p></body></html>',
        encoding="utf-8",
    )
    page = browser.new_page()
    try:
        page.goto(bad.as_uri())
        found = {v["id"] for v in violations(page)}
        assert {"html-has-lang", "image-alt", "link-name", "color-contrast"} <= found
    finally:
        page.close()
