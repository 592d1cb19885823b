"""An edition as a phone and a desktop client show it: headless Chromium at 375 and 600 px."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from axe_helpers import violations
from build_helpers import (
    HELSINKI,
    TOPIC_SLUG,
    add_articles,
    png_bytes,
    sample_articles,
    unseal,
    with_images,
)

from newsletter.content import contacts, editions
from newsletter.mail import placeholders

pytestmark = pytest.mark.browser


@pytest.fixture
def image_server(workdir: Path) -> Iterator[str]:
    """The workdir over HTTP on loopback: emails may only use http(s) images."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(workdir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def edition_file(db, settings, workdir: Path, image_server: str) -> Path:
    """A built edition whose images come from a loopback server, placeholders filled in."""
    (workdir / "kuva.png").write_bytes(png_bytes(1200, 600, (40, 110, 140)))
    (workdir / "logo.png").write_bytes(png_bytes(320, 80, (200, 60, 40)))
    base = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
    add_articles(db, with_images(sample_articles(base), f"{image_server}/kuva.png"))
    for name, email in (("Mari Hirvonen", "mari.hirvonen"), ("Oona Palosaari", "oona.palosaari")):
        contacts.add(
            db,
            TOPIC_SLUG,
            name=name,
            title="Erityisasiantuntija",
            title_en="Senior Specialist",
            email=f"{email}@example.fi",
            phone="044 363 7276",
        )
    result = editions.build(
        db,
        settings.with_overrides(logo_url=f"{image_server}/logo.png"),
        topics=[TOPIC_SLUG],
        since="2025-08-01",
        until=None,
        limit=None,
        subject=None,
        intro="Hyvä lukija,\n\ntässä ovat kuukauden uutiset.",
        lang="fi",
        template=None,
        out=workdir / "editions",
    )
    html = placeholders.fill(
        unseal(result.html_path.read_text(encoding="utf-8")),
        {
            placeholders.UNSUBSCRIBE_URL: "https://uutiskirje.example.fi/u/abc",
            placeholders.PREFERENCES_URL: "https://uutiskirje.example.fi/p/abc",
            placeholders.NAME: "Maija",
        },
    )
    page_file = workdir / "edition.html"
    page_file.write_text(html, encoding="utf-8")
    return page_file


@pytest.mark.parametrize("width", [375, 600])
def test_edition_fits_the_screen_and_every_image_has_alt(
    browser, artifacts: Path, edition_file: Path, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        # Only the local file and its local images may load: nothing leaves the machine.
        page.route("**/*", lambda route: _local_only(route))
        page.goto(edition_file.as_uri(), wait_until="load")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        inner_width = page.evaluate("window.innerWidth")
        assert scroll_width <= inner_width, f"horizontal scroll at {width}px: {scroll_width}"
        images = page.evaluate(
            "Array.from(document.images).map(i => ({alt: i.getAttribute('alt'),"
            " loaded: i.complete && i.naturalWidth > 0, shown: i.getBoundingClientRect().width}))"
        )
        assert len(images) == 3  # logo + two articles with images
        assert all(img["alt"] and img["alt"].strip() for img in images), images
        assert all(img["loaded"] for img in images), images
        assert all(0 < img["shown"] <= width for img in images), images
        # The long unbroken title wraps inside the card instead of widening the page.
        title_width = page.evaluate(
            "Math.max(...Array.from(document.querySelectorAll('h2, h3'))"
            ".map(h => h.getBoundingClientRect().right))"
        )
        assert title_width <= inner_width
        # The compact story's thumbnail sits beside its text on a wide screen, above it on
        # a phone; the lead image spans the content.
        boxes = page.evaluate(LAYOUT)
        thumb, text = boxes["thumb"], boxes["text"]
        if width >= 600:
            assert thumb["right"] <= text["left"] + 1 and abs(thumb["top"] - text["top"]) < 40
        else:
            assert thumb["bottom"] <= text["top"] + 1
        assert boxes["lead"]["width"] >= min(width, 600) - 60
        # The contact people: side by side on a wide screen, one under the other on a phone.
        first, second = boxes["contacts"]
        if width >= 600:
            assert abs(first["top"] - second["top"]) < 2
        else:
            assert first["bottom"] <= second["top"] + 1
        links = page.evaluate(
            "Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))"
        )
        assert "https://uutiskirje.example.fi/u/abc" in links
        page.screenshot(path=str(artifacts / f"edition-{width}px.png"), full_page=True)
    finally:
        page.close()


# Where the pieces of the design land: the lead image, the first compact story with a
# thumbnail (its image and its headline) and the first two contact people.
LAYOUT = """() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
  const story = [...document.querySelectorAll('div.nl-story')].find(d => d.querySelector('img'));
  return {
    lead: box(document.querySelector('div.nl-lead img')),
    thumb: box(story.querySelector('img')),
    text: box(story.querySelector('h3')),
    contacts: [...document.querySelectorAll('div.nl-contacts strong')].slice(0, 2).map(box),
  };
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_edition_has_no_axe_violations(browser, edition_file: Path, scheme: str) -> None:
    context = browser.new_context(viewport={"width": 600, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        page.route("**/*", lambda route: _local_only(route))
        page.goto(edition_file.as_uri(), wait_until="load")
        assert violations(page) == []
        langs = page.evaluate(
            "[...document.querySelectorAll('div.nl-lead, div.nl-story')].map(d => d.lang)"
        )
        assert langs and set(langs) == {"fi"}
    finally:
        context.close()


def test_dark_mode_page_still_fits(browser, artifacts: Path, edition_file: Path) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 900}, color_scheme="dark")
    try:
        page.route("**/*", lambda route: _local_only(route))
        page.goto(edition_file.as_uri(), wait_until="load")
        background = page.evaluate(
            "getComputedStyle(document.querySelector('.nl-page')).backgroundColor"
        )
        assert background == "rgb(18, 18, 18)"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(artifacts / "edition-375px-dark.png"), full_page=True)
    finally:
        page.close()


def _local_only(route) -> None:
    if route.request.url.startswith(("file:", "http://127.0.0.1:")):
        route.continue_()
    else:
        route.abort()


@pytest.mark.parametrize(("lang", "lead"), [("fi", "Pääjuttu"), ("sv", "Huvudartikel"),
                                             ("en", "Top story")])  # fmt: skip
def test_each_language_variant_as_a_phone_shows_it(
    browser, artifacts: Path, db, settings, workdir: Path, image_server: str, lang, lead
) -> None:
    """One edition, three variants: each declares its language, Finnish articles say theirs."""
    (workdir / "kuva.png").write_bytes(png_bytes(1200, 600, (40, 110, 140)))
    base = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
    add_articles(db, with_images(sample_articles(base), f"{image_server}/kuva.png"))
    result = editions.build(
        db, settings, topics=[TOPIC_SLUG], since="2025-08-01", until=None, limit=None,
        subject=None, intro=None, lang=["fi", "sv", "en"], template=None,
        out=workdir / "editions",
    )  # fmt: skip
    (variant,) = [v for v in result.variants if v.lang == lang]
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.route("**/*", lambda route: _local_only(route))
        page.goto(variant.html_path.resolve().as_uri(), wait_until="load")
        assert page.evaluate("document.documentElement.lang") == lang
        titles = page.evaluate(
            "Array.from(document.querySelectorAll('h2, h3'))"
            ".filter(h => h.closest('.nl-lead, .nl-story')).map(h => h.closest('[lang]').lang)"
        )
        assert titles == ["fi", "fi", "fi"]
        # The chrome around them is the reader's: the lead label, in a block marked so.
        meta = page.evaluate(
            "Array.from(document.querySelectorAll('.nl-lead p[lang]')).map(p => p.lang)"
        )
        assert meta[:1] == [lang] and lead in page.inner_text("body")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(artifacts / f"edition-{lang}-375px.png"), full_page=True)
    finally:
        page.close()
