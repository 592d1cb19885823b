"""``newsletter build``: article windows, rendering, placeholders, golden files, editions."""

from __future__ import annotations

import json
import logging
import re
import webbrowser
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from build_helpers import (
    HELSINKI,
    LONG_WORD,
    TOPIC,
    TOPIC_SLUG,
    add_articles,
    assert_golden,
    readable_html,
    sample_articles,
    unseal,
)
from premailer import Premailer

from newsletter import clock, dates, i18n
from newsletter.config import LANGUAGES
from newsletter.content import contract, editions, render
from newsletter.content.articles import ArticleIn
from newsletter.delivery import checks
from newsletter.errors import NewsletterError, NotFound
from newsletter.mail import placeholders

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)


def _build(db, settings, workdir: Path, **overrides) -> editions.BuildResult:
    options = {
        "topics": [TOPIC_SLUG],
        "since": "2025-08-01",
        "until": None,
        "limit": None,
        "subject": None,
        "intro": None,
        "lang": None,
        "template": None,
        "out": workdir / "editions",
    }
    options.update(overrides)
    return editions.build(db, settings, **options)


def _article(title: str, published: datetime, topic: str = TOPIC, **extra) -> ArticleIn:
    slug = re.sub(r"\W+", "-", title.lower())
    return ArticleIn(
        url=f"https://www.example.fi/ajankohtaista/{slug}",
        title=title,
        published=published,
        topics=[topic],
        **extra,
    )


def _edition_count(db) -> int:
    return db.execute("SELECT count(*) FROM editions").fetchone()[0]


# --- golden files ------------------------------------------------------------------------


def _normalise(text: str, lang: str, settings) -> str:
    """Only the build date and the web version's token (signed with the database's own key)
    vary between runs: the date is in the default subject (and so sets the length of the
    subject's underline in the text part)."""
    today = dates.format_date(clock.now(), lang, settings.tz)
    text = re.sub(r"(?m)^=+$", "<UNDERLINE>", unseal(text))
    text = re.sub(r"/e/[0-9a-z]+\.[A-Za-z0-9_-]+", "/e/<WEB-TOKEN>", text)
    return text.replace(today, "<BUILD-DATE>")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_edition_matches_golden_files(db, settings, workdir: Path, lang: str) -> None:
    add_articles(db, sample_articles(BASE))
    result = _build(db, settings, workdir, lang=lang, intro="Hyvä lukija,\n\ntervetuloa & 🌱!")
    html = result.html_path.read_text(encoding="utf-8")
    text = result.text_path.read_text(encoding="utf-8")
    assert_golden(f"edition-{lang}.html", readable_html(_normalise(html, lang, settings)))
    assert_golden(f"edition-{lang}.txt", _normalise(text, lang, settings))


def test_message_matches_golden_files(settings) -> None:
    rendered = _confirmation(settings)
    assert_golden("message-fi.html", readable_html(rendered.html))
    assert_golden("message-fi.txt", rendered.text)


# --- what the HTML must contain -----------------------------------------------------------


@pytest.fixture
def built(db, settings, workdir: Path) -> tuple[editions.BuildResult, str, str]:
    add_articles(db, sample_articles(BASE))
    result = _build(db, settings, workdir, subject="Elokuun uutiset")
    html = unseal(result.html_path.read_text(encoding="utf-8"))
    text = unseal(result.text_path.read_text(encoding="utf-8"))
    return result, html, text


def test_article_text_is_escaped_in_html_and_plain_in_text(built) -> None:
    _, html, text = built
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert "Kuntien &amp; järjestöjen" in html
    assert "&lt;b&gt;lihavoitu&lt;/b&gt;" in html
    assert 'href="https://www.example.fi/ajankohtaista/turvallisuus?a=1&amp;b=2"' in html
    # The text part is not HTML: the same characters appear as they are.
    assert "Kuntien & järjestöjen yhteistyö <script>alert('x')</script> 🌱" in text
    assert "https://www.example.fi/ajankohtaista/turvallisuus?a=1&b=2" in text
    assert "&amp;" not in text and "&lt;" not in text


def test_html_structure_for_mail_clients(built) -> None:
    _, html, _ = built
    assert html.startswith("<!DOCTYPE html>")
    assert re.search(r'<html[^>]*\slang="fi"', html)
    assert '<meta name="color-scheme" content="light dark"' in html
    assert "prefers-color-scheme: dark" in html
    assert "max-width:600px" in html.replace(" ", "")
    assert "<title>Elokuun uutiset</title>" in html
    # The preheader is the first text of the body, visible (a hidden one in white text is
    # what SpamAssassin's HTML_FONT_LOW_CONTRAST scores), and followed by the web version.
    body = html.split("<body", 1)[1]
    first_text = re.search(r">([^<>]*\w[^<>]*)<", body).group(1).strip()
    assert first_text.startswith("Keski-Suomi liittyi")
    assert "display:none" not in body.replace(" ", "")
    assert "#ffffff;line-height:1px" not in html.replace(" ", "")
    assert re.search(r'href="https://uutiskirje\.example\.fi/e/[^"]+"[^>]*>Näytä selaimessa<', html)
    # Mobile rules keep !important (premailer would strip it by default).
    assert (
        "@media only screen and (min-width:480px) { .mj-column-per-100 { width:100% !important;"
        in html
    )
    assert "fonts.googleapis" not in html
    assert "bgcolor" not in re.search(r"<body[^>]*>", html).group(0)


def test_outlook_conditional_comments_survive_inlining(settings) -> None:
    context = render.edition_context(
        settings,
        lang="fi",
        subject="Aihe",
        preheader="",
        intro=None,
        articles=[],
        topic_names=[TOPIC],
    )
    choice = render.choose_template(settings, None, render.DEFAULT_EDITION)
    compiled = render.compile_mjml(
        render.render_template(choice, choice.html, context), template="edition"
    )
    inlined = render.inline_css(compiled)
    assert compiled.count("<!--[if mso") > 3
    assert inlined.count("<!--[if mso") == compiled.count("<!--[if mso")
    assert inlined.count("<![endif]-->") == compiled.count("<![endif]-->")


def test_every_image_has_alt_and_a_pixel_width(built, settings) -> None:
    _, html, _ = built
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 2  # the article without an image gets no <img>
    for tag in images:
        assert re.search(r'\salt="[^"]+"', tag), tag
    # The lead story's image spans the body; a compact story's is a thumbnail.
    assert re.search(r'\swidth="552"', images[0]), images[0]
    assert re.search(r'\swidth="176"', images[1]), images[1]
    assert 'alt="Perhekeskuksen työntekijöitä pöydän ääressä"' in html
    # An image without alt text gets a description from the title.
    assert 'alt="Artikkelin kuva: Erittäin pitkä otsikko' in html


def test_logo_appears_only_when_configured(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    plain = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    assert "logo" not in plain.lower()
    with_logo = settings.with_overrides(logo_url="https://www.example.fi/logo.png")
    html = _build(db, with_logo, workdir).html_path.read_text(encoding="utf-8")
    assert re.search(
        r'<img alt="Esimerkkisäätiö – logo"[^>]*src="https://www.example.fi/logo.png"', html
    )


def test_cards_show_date_category_title_summary_and_button(built) -> None:
    _, html, text = built
    # The category is the article's own text: it carries the article's language.
    assert '15.08.2025 · <span lang="fi">Uutiset</span>' in html
    assert "15.08.2025 · Uutiset" in text
    assert '14.08.2025 · <span lang="fi">Blogi</span>' in html
    assert re.search(r'<a href="https://www.example.fi/ajankohtaista/keski-suomi-liittyi"', html)
    # One link per story, its headline: no "Lue lisää" buttons repeating the same URL.
    for url in re.findall(r"https://www\.example\.fi/ajankohtaista/[^\s\"]+", text):
        assert html.count(f'href="{url.replace("&", "&amp;")}"') == 1, url
    assert ">Lue lisää</a>" not in html
    assert text.count("Lue lisää: https://www.example.fi/ajankohtaista/") == 3
    # Newest first in both parts.
    first, second = "Keski-Suomi liittyi", "Kuntien &"
    assert text.index(first) < text.index(second) < text.index(LONG_WORD[:20])


def test_missing_summary_leaves_no_empty_paragraph(built) -> None:
    _, html, text = built
    assert not re.search(r"<p[^>]*>\s*</p>", html)
    block = text.split("Erittäin pitkä otsikko", 1)[1].split("Lue lisää", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines[-1] == "13.08.2025"  # the date, then directly the link


def test_emoji_and_long_titles_are_kept(built) -> None:
    _, html, text = built
    assert "🌱" in html and "💚" in html and "🌱" in text
    assert LONG_WORD in html
    assert LONG_WORD in text  # never broken inside a word
    assert "overflow-wrap: anywhere" in html or "overflow-wrap:anywhere" in html


def test_footer_has_contact_reason_and_placeholder_links(built) -> None:
    _, html, text = built
    for value in ("Esimerkkisäätiö", "Esimerkkikatu 1, 00100 Helsinki", "info@example.fi"):
        assert value in html and value in text
    assert 'href="https://www.example.fi"' in html
    reason = i18n.text("fi", "why_edition", topics=TOPIC)
    assert reason in html
    assert " ".join(reason.split()) in " ".join(text.split())
    assert f'<a href="{placeholders.UNSUBSCRIBE_URL}"' in html
    assert f'<a href="{placeholders.PREFERENCES_URL}"' in html
    assert re.search(rf'href="{placeholders.UNSUBSCRIBE_URL}"[^>]*>Peru tilaus</a>', html)
    assert f"Peru tilaus: {placeholders.UNSUBSCRIBE_URL}" in text
    assert f"Tilausasetukset: {placeholders.PREFERENCES_URL}" in text


def test_placeholders_fill_to_working_links(built) -> None:
    _, html, text = built
    url = "https://uutiskirje.example.fi/u/AbC_12-x?y=1&z=2"
    values = {
        placeholders.UNSUBSCRIBE_URL: url.replace("&", "&amp;"),
        placeholders.PREFERENCES_URL: "https://uutiskirje.example.fi/p/xyz",
        placeholders.NAME: "Maija",
    }
    filled = placeholders.fill(html, values)
    assert placeholders.remaining(filled) == []
    assert 'href="https://uutiskirje.example.fi/u/AbC_12-x?y=1&amp;z=2"' in filled
    filled_text = placeholders.fill(text, {**values, placeholders.UNSUBSCRIBE_URL: url})
    assert f"Peru tilaus: {url}" in filled_text


def test_premailer_would_break_handlebars_but_keeps_our_placeholders() -> None:
    page = (
        "<!DOCTYPE html><html><head><style>a {color: red}</style></head><body>"
        '<a href="{{ unsubscribe_url }}">x</a> <a href="%%UNSUBSCRIBE_URL%%">y</a></body></html>'
    )
    # The reason for the %%...%% form: the stock premailer URL-encodes {{ ... }} in href.
    stock = Premailer(page, allow_network=False, cssutils_logging_level=logging.CRITICAL)
    assert "{{%20unsubscribe_url%20}}" in stock.transform()
    ours = render.inline_css(page)
    assert 'href="%%UNSUBSCRIBE_URL%%"' in ours
    assert "color:red" in ours.replace(" ", "")


def test_lower_case_doctype_survives_inlining() -> None:
    out = render.inline_css("<!doctype html><html><body><p>x</p></body></html>")
    assert out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("lang", "date", "read_more", "unsubscribe"),
    [
        ("fi", "15.08.2025", "Lue lisää", "Peru tilaus"),
        ("sv", "15.8.2025", "Läs mer", "Avsluta prenumerationen"),
        ("en", "15 Aug 2025", "Read more", "Unsubscribe"),
    ],
)
def test_each_language(db, settings, workdir, lang, date, read_more, unsubscribe) -> None:
    add_articles(db, sample_articles(BASE))
    result = _build(db, settings, workdir, lang=lang)
    html = result.html_path.read_text(encoding="utf-8")
    text = result.text_path.read_text(encoding="utf-8")
    assert re.search(rf'<html[^>]*\slang="{lang}"', html)
    assert date in html and date in text
    assert f"{read_more}: https://" in text
    assert f">{i18n.text(lang, 'view_in_browser')}</a>" in html
    assert f">{unsubscribe}</a>" in html
    today = dates.format_date(clock.now(), lang, settings.tz)
    assert result.subject == i18n.text(lang, "default_subject", topics=TOPIC, date=today)
    assert editions.get(db, result.edition_id).lang == lang


def test_every_language_defines_every_string() -> None:
    keys = {lang: set(table) for lang, table in i18n.STRINGS.items()}
    assert set(keys) == set(LANGUAGES)
    assert keys["fi"] == keys["sv"] == keys["en"]
    assert all(value.strip() for table in i18n.STRINGS.values() for value in table.values())


# --- the article window ------------------------------------------------------------------


def test_first_edition_takes_the_last_30_days(db, settings, workdir: Path) -> None:
    now = clock.now()
    add_articles(
        db,
        [
            _article("Tuore", now - timedelta(days=2)),
            _article("Kuukauden vanha", now - timedelta(days=29)),
            _article("Liian vanha", now - timedelta(days=31)),
        ],
    )
    result = _build(db, settings, workdir, since=None)
    assert [u.rsplit("/", 1)[1] for u in result.articles] == ["tuore", "kuukauden-vanha"]


def _mark(db, edition_id: int, status: str) -> None:
    """What a send does to the edition's status (the send itself is tested in test_send)."""
    with db.atomic():
        db.execute("UPDATE editions SET status = ? WHERE id = ?", [status, edition_id])


@pytest.mark.parametrize("status", ["sending", "paused", "sent"])
def test_next_edition_starts_after_the_newest_article_of_the_last_one_sent(
    db, settings, workdir: Path, status: str
) -> None:
    now = clock.now()
    add_articles(
        db, [_article("Eka", now - timedelta(days=3)), _article("Toka", now - timedelta(days=2))]
    )
    first = _build(db, settings, workdir, since=None)
    assert len(first.articles) == 2
    _mark(db, first.edition_id, status)
    with pytest.raises(
        NewsletterError, match=r"no articles .* newest article of edition 1, the latest one sent"
    ):
        _build(db, settings, workdir, since=None)
    # A newer article is picked up, and only that one.
    add_articles(db, [_article("Kolmas", now - timedelta(hours=5))])
    second = _build(db, settings, workdir, since=None)
    assert second.articles == ["https://www.example.fi/ajankohtaista/kolmas"]
    # An explicit --since overrides the window.
    again = _build(db, settings, workdir, since="7d")
    assert len(again.articles) == 3


def test_drafts_do_not_move_the_window(db, settings, workdir: Path) -> None:
    """Build, spot a typo, build again: the second draft gets the same articles."""
    now = clock.now()
    add_articles(
        db, [_article("Eka", now - timedelta(days=3)), _article("Toka", now - timedelta(days=2))]
    )
    first = _build(db, settings, workdir, since=None, subject="Kirjoitusvirhe")
    fixed = _build(db, settings, workdir, since=None, subject="Korjattu")
    assert fixed.articles == first.articles and len(fixed.articles) == 2
    # A sent edition moves it; a newer draft after the sent one does not.
    _mark(db, first.edition_id, "sent")
    add_articles(db, [_article("Kolmas", now - timedelta(hours=5))])
    draft = _build(db, settings, workdir, since=None)
    again = _build(db, settings, workdir, since=None)
    assert draft.articles == again.articles == ["https://www.example.fi/ajankohtaista/kolmas"]


def test_the_window_of_a_topic_with_only_drafts_is_the_last_30_days(
    db, settings, workdir: Path
) -> None:
    now = clock.now()
    add_articles(db, [_article("Tuore", now - timedelta(days=2))])
    _build(db, settings, workdir, since=None)
    with pytest.raises(NewsletterError, match=r"published since .*, no edition sent yet"):
        _build(db, settings, workdir, since=None, until="2020-01-01")


def test_since_until_limit_and_newest_first(db, settings, workdir: Path) -> None:
    add_articles(
        db,
        [_article(f"Päivä {n}", datetime(2025, 8, n, 12, tzinfo=HELSINKI)) for n in range(1, 11)],
    )
    result = _build(db, settings, workdir, since="2025-08-03", until="2025-08-08", limit=4)
    assert [u.rsplit("-", 1)[1] for u in result.articles] == ["8", "7", "6", "5"]
    stored = editions.get(db, result.edition_id)
    assert [a.url for a in editions.articles_of(db, stored)] == result.articles


def test_topics_are_kept_apart_and_combined(db, settings, workdir: Path) -> None:
    add_articles(
        db,
        [
            _article("Vaikuttavuus A", BASE, topic=TOPIC),
            _article("Lapset B", BASE - timedelta(hours=1), topic="Lapsiperheet"),
        ],
    )
    only = _build(db, settings, workdir)
    assert only.articles == ["https://www.example.fi/ajankohtaista/vaikuttavuus-a"]
    both = _build(db, settings, workdir, topics=[TOPIC_SLUG, "Lapsiperheet"])
    assert both.topics == [TOPIC_SLUG, "lapsiperheet"]
    assert len(both.articles) == 2
    html = both.html_path.read_text(encoding="utf-8")
    assert f"{TOPIC}, Lapsiperheet" in html


def test_no_article_is_an_error_and_stores_nothing(db, settings, workdir: Path) -> None:
    add_articles(db, [_article("Vanha", datetime(2024, 1, 1, tzinfo=HELSINKI))])
    with pytest.raises(NewsletterError, match="no articles for yhteisovaikuttavuus"):
        _build(db, settings, workdir)
    assert _edition_count(db) == 0
    assert not (workdir / "editions").exists()


def test_bad_options_are_errors(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    with pytest.raises(NotFound, match="unknown topic"):
        _build(db, settings, workdir, topics=["ei-ole"])
    with pytest.raises(NewsletterError, match="unknown language"):
        _build(db, settings, workdir, lang="de")
    with pytest.raises(NewsletterError, match="--limit"):
        _build(db, settings, workdir, limit=0)
    with pytest.raises(NewsletterError, match="invalid date"):
        _build(db, settings, workdir, since="eilen")
    with pytest.raises(NewsletterError, match="--since 2025-08-10 is later than --until"):
        _build(db, settings, workdir, since="2025-08-10", until="2025-08-01")
    with pytest.raises(NewsletterError, match="--since 0d is later than --until 2025-08-01"):
        _build(db, settings, workdir, since="0d", until="2025-08-01")
    with pytest.raises(NewsletterError, match="at least one topic"):
        _build(db, settings, workdir, topics=[])
    assert _edition_count(db) == 0


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x"]
)
def test_an_article_link_that_is_not_http_stops_the_build(
    db, settings, workdir: Path, link: str
) -> None:
    trap = ArticleIn(url=link, title="Ansa", published=BASE, topics=[TOPIC])
    add_articles(db, [_article("Syöte", BASE), trap])
    with pytest.raises(NewsletterError, match=r"article 'Ansa': its link .* is not an http"):
        _build(db, settings, workdir)
    assert _edition_count(db) == 0


def test_unwritable_output_rolls_the_edition_back(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    blocker = workdir / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(NewsletterError, match="cannot write the edition"):
        _build(db, settings, workdir, out=blocker)
    assert _edition_count(db) == 0
    assert db.execute("SELECT count(*) FROM edition_articles").fetchone()[0] == 0


# --- stored editions -----------------------------------------------------------------------


def test_edition_is_stored_as_a_draft_with_placeholders(built, db) -> None:
    result, html, text = built
    edition = editions.get(db, result.edition_id)
    assert edition.status == "draft"
    assert edition.subject == "Elokuun uutiset"
    assert unseal(edition.html) == html and unseal(edition.text) == text
    assert edition.topic_slugs == [TOPIC_SLUG] and edition.topic_names == [TOPIC]
    assert len(edition.article_ids) == 3
    assert edition.preheader.startswith("Keski-Suomi liittyi")
    assert edition.template == "edition"
    assert result.html_bytes == len(edition.html.encode("utf-8"))
    assert result.html_path.name == f"edition-{result.edition_id}.html"
    assert set(placeholders.remaining(unseal(edition.html))) == {
        placeholders.UNSUBSCRIBE_URL,
        placeholders.PREFERENCES_URL,
    }
    summary = editions.list_(db)[0]
    assert (summary.id, summary.article_count, summary.topics) == (
        result.edition_id,
        3,
        [TOPIC_SLUG],
    )
    assert summary.html_bytes == result.html_bytes


def test_get_unknown_edition(db) -> None:
    with pytest.raises(NotFound, match="no edition 42"):
        editions.get(db, 42)


def test_intro_becomes_paragraphs_and_preheader(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    result = _build(db, settings, workdir, intro="Hei <kaikki>!\nToinen rivi.\n\nUusi kappale.")
    html = result.html_path.read_text(encoding="utf-8")
    assert ">Hei &lt;kaikki&gt;! Toinen rivi.</p>" in html
    assert ">Uusi kappale.</p>" in html
    edition = editions.get(db, result.edition_id)
    assert edition.preheader == "Hei <kaikki>! Toinen rivi. Uusi kappale."
    assert edition.intro.startswith("Hei <kaikki>!")


# --- templates -----------------------------------------------------------------------------


CUSTOM = """\
<mjml lang="{{ lang }}">
  {% include "partials/head.mjml.j2" %}
  <mj-body width="600px">
    <mj-section><mj-column><mj-text><p>OMA POHJA {{ articles | length }}</p></mj-text>
    </mj-column></mj-section>
    {% include "partials/footer.mjml.j2" %}
  </mj-body>
</mjml>
"""


def test_template_by_path_uses_packaged_partials(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    path = workdir / "oma.mjml.j2"
    path.write_text(CUSTOM, encoding="utf-8")
    result = _build(db, settings, workdir, template=str(path))
    html = unseal(result.html_path.read_text(encoding="utf-8"))
    assert "OMA POHJA 3" in html
    assert f'href="{placeholders.UNSUBSCRIBE_URL}"' in html
    # No oma.txt.j2 beside it: the default text template writes the text part.
    assert "Lue lisää: https://" in result.text_path.read_text(encoding="utf-8")
    assert editions.get(db, result.edition_id).template == str(path)


def test_template_by_name_from_the_configured_folder(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    folder = workdir / "pohjat"
    folder.mkdir()
    (folder / "juhla.mjml.j2").write_text(CUSTOM.replace("OMA POHJA", "JUHLA"), encoding="utf-8")
    (folder / "juhla.txt.j2").write_text(
        "JUHLATEKSTI {{ subject }}\n{{ unsubscribe_url }}\n", encoding="utf-8"
    )
    configured = settings.with_overrides(templates_dir=folder)
    result = _build(db, configured, workdir, template="juhla", subject="Juhla")
    assert "JUHLA 3" in result.html_path.read_text(encoding="utf-8")
    assert unseal(result.text_path.read_text(encoding="utf-8")) == (
        f"JUHLATEKSTI Juhla\n{placeholders.UNSUBSCRIBE_URL}\n"
    )
    by_file_name = _build(db, configured, workdir, template="juhla.mjml.j2", subject="Juhla")
    assert "JUHLA 3" in by_file_name.html_path.read_text(encoding="utf-8")
    with pytest.raises(NewsletterError, match="unknown template 'juhla'"):
        _build(db, settings, workdir, template="juhla")


def test_packaged_templates_are_found() -> None:
    folder = render.packaged_templates_dir()
    for name in ("edition.mjml.j2", "edition.txt.j2", "message.mjml.j2", "message.txt.j2"):
        assert (folder / name).is_file(), name


def test_template_errors_name_the_template_and_line(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    broken = workdir / "rikki.mjml.j2"
    broken.write_text("<mjml>\n<mj-body>\n{% if x %}\n</mj-body>\n</mjml>\n", encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"template .*rikki\.mjml\.j2, line \d"):
        _build(db, settings, workdir, template=str(broken))
    undefined = workdir / "puuttuu.mjml.j2"
    undefined.write_text(
        "<mjml>\n<mj-body>\n{{ nothing.here }}\n</mj-body></mjml>", encoding="utf-8"
    )
    with pytest.raises(NewsletterError, match=r"puuttuu\.mjml\.j2, line 3: 'nothing' is undefined"):
        _build(db, settings, workdir, template=str(undefined))
    bad_mjml = workdir / "huono.mjml.j2"
    bad_mjml.write_text("<mjml>\n<mj-body>\n<mj-section>\n</mj-body>\n</mjml>", encoding="utf-8")
    with pytest.raises(
        NewsletterError,
        match=r"template huono\.mjml\.j2, line 4: invalid MJML: </mj-body> while <mj-section>",
    ):
        _build(db, settings, workdir, template=str(bad_mjml))
    with pytest.raises(NewsletterError, match="does not exist"):
        _build(db, settings, workdir, template=str(workdir / "ei.mjml.j2"))
    assert _edition_count(db) == 0


def test_mjml_error_position_becomes_a_line() -> None:
    source = "<!-- ääkköset ennen virhettä -->\n\n<mj-body></mj-body>\n"
    with pytest.raises(NewsletterError, match=r"at line 3 of its MJML output \('<mj-body>"):
        render.compile_mjml(source, template="t")


# --- the one-off message (sign-up confirmation) --------------------------------------------


def _confirmation(settings) -> render.Rendered:
    return render.render_message(
        settings,
        lang="fi",
        subject="Vahvista tilauksesi",
        heading="Vahvista tilauksesi",
        paragraphs=["Hei!", "Tilasit uutiskirjeen aiheesta Yhteisövaikuttavuus & muut."],
        button_label="Vahvista tilaus",
        button_url="https://uutiskirje.example.fi/confirm/abc?x=1&y=2",
        reason="Saat tämän viestin, koska osoitteesi annettiin tilauslomakkeella.",
    )


def test_message_has_the_look_but_no_unsubscribe_link(settings) -> None:
    rendered = _confirmation(settings)
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert 'lang="fi"' in rendered.html
    assert 'href="https://uutiskirje.example.fi/confirm/abc?x=1&amp;y=2"' in rendered.html
    assert ">Vahvista tilaus</a>" in rendered.html
    assert "Yhteisövaikuttavuus &amp; muut." in rendered.html
    assert "koska osoitteesi annettiin tilauslomakkeella" in rendered.html
    assert "Esimerkkikatu 1, 00100 Helsinki" in rendered.html
    assert placeholders.remaining(rendered.html) == []
    assert "Peru tilaus" not in rendered.html
    assert "Vahvista tilaus: https://uutiskirje.example.fi/confirm/abc?x=1&y=2" in rendered.text
    assert "Yhteisövaikuttavuus & muut." in rendered.text
    assert placeholders.remaining(rendered.text) == []


# --- the command line ----------------------------------------------------------------------


def test_cli_build_json_shape(cli, db, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    result = cli.ok("build", "--topic", TOPIC, "--since", "2025-08-01", "--json", "--out", "out")
    data = json.loads(result.stdout)
    assert list(data) == [
        "edition", "topics", "subject", "lang", "articles", "html", "text", "html_bytes",
        "variants", "warnings",
    ]  # fmt: skip
    assert data["warnings"] == []
    assert data["topics"] == [TOPIC_SLUG]
    assert len(data["articles"]) == 3 and data["articles"][0].startswith("https://")
    html = Path(data["html"])
    assert html == Path("out") / f"edition-{data['edition']}.html"
    assert (workdir / html).stat().st_size == data["html_bytes"]
    assert (workdir / data["text"]).exists()


def test_cli_build_text_output_and_intro_file(cli, db, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    (workdir / "intro.txt").write_text("Tervehdys tiedostosta.\n", encoding="utf-8")
    result = cli.ok(
        "build", "-t", TOPIC_SLUG, "--since", "2025-08-01", "--intro-file", "intro.txt",
        "--subject", "Elokuu", "--lang", "sv",
    )  # fmt: skip
    assert "edition 1 (draft): Elokuu" in result.stdout
    assert "editions/edition-1.html" in result.stdout
    assert "Tervehdys tiedostosta." in (workdir / "editions/edition-1.html").read_text("utf-8")
    clash = cli("build", "-t", TOPIC_SLUG, "--intro", "x", "--intro-file", "intro.txt")
    assert clash.exit_code == 1
    assert "either --intro or --intro-file" in clash.stderr


def test_cli_no_articles_is_one_line_error(cli, db) -> None:
    add_articles(db, [_article("Vanha", datetime(2024, 1, 1, tzinfo=HELSINKI))])
    result = cli("build", "--topic", TOPIC_SLUG)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no articles for yhteisovaikuttavuus")
    assert result.stderr.count("\n") == 1


def test_cli_warns_when_the_html_nears_gmails_limit(cli, db) -> None:
    long_summary = "Pitkä tiivistelmä, jossa on paljon sanoja ja asiaa. " * 12
    add_articles(
        db,
        [
            _article(f"Artikkeli numero {n}", BASE - timedelta(hours=n), summary=long_summary,
                     image=f"https://www.example.fi/media/{n}.jpg", image_alt=f"Kuva {n}")
            for n in range(40)
        ],
    )  # fmt: skip
    result = cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--json")
    size = json.loads(result.stdout)["html_bytes"]
    assert size > editions.SIZE_WARNING
    assert f"({size} bytes)" in result.stderr and "Gmail clips" in result.stderr
    small = cli.ok("build", "-t", TOPIC_SLUG, "--since", "2025-08-01", "--limit", "3")
    assert "warning" not in small.stderr


def test_cli_editions_list_show_and_preview(cli, db, settings, workdir: Path) -> None:
    empty = cli.ok("editions", "list")
    assert "no editions yet" in empty.stdout
    add_articles(db, sample_articles(BASE))
    cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--subject", "Elokuu")
    listed = json.loads(cli.ok("editions", "list", "--json").stdout)
    assert [(e["edition"], e["status"], e["articles"]) for e in listed] == [(1, "draft", 3)]
    assert "Elokuu" in cli.ok("editions", "list").stdout
    shown = cli.ok("editions", "show", "1")
    assert "status:    draft" in shown.stdout
    assert "https://www.example.fi/ajankohtaista/keski-suomi-liittyi" in shown.stdout
    shown_json = json.loads(cli.ok("editions", "show", "1", "--json").stdout)
    assert shown_json["topics"] == [TOPIC_SLUG] and len(shown_json["articles"]) == 3
    # The preview is what a sample subscriber gets: every per-recipient value filled in.
    text = cli.ok("preview", "1", "--text").stdout
    stored = editions.get(db, 1)
    assert placeholders.remaining(text) == [] and placeholders.remaining(stored.text)
    assert "Peru tilaus: https://uutiskirje.example.fi/u/sample" in text
    assert text == contract.fill_holes(stored.text, checks.sample_values(settings))
    path = cli.ok("preview", "1").stdout.strip()
    assert Path(path) == Path("editions/preview-1.html")
    html = (workdir / path).read_text("utf-8")
    assert placeholders.remaining(html) == []
    assert 'href="https://uutiskirje.example.fi/u/sample"' in html
    # The built file keeps the placeholders the sender fills.
    assert (workdir / "editions/edition-1.html").read_text("utf-8") == stored.html
    missing = cli("editions", "show", "7")
    assert missing.exit_code == 1 and "no edition 7" in missing.stderr


def test_cli_preview_open_starts_the_browser(cli, db, workdir: Path, monkeypatch) -> None:
    # $BROWSER names the program webbrowser runs; here a script that records its argument.
    record = workdir / "opened.txt"
    script = workdir / "fake-browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> "{record}"\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(script))
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # re-read $BROWSER
    monkeypatch.setattr(webbrowser, "_browsers", {})
    add_articles(db, sample_articles(BASE))
    cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01")
    cli.ok("preview", "1", "--open")
    opened = record.read_text(encoding="utf-8").split()
    assert opened == [(workdir / "editions/preview-1.html").resolve().as_uri()]


def test_cli_since_later_than_until_is_one_line_error(cli, db) -> None:
    add_articles(db, sample_articles(BASE))
    result = cli("build", "-t", TOPIC_SLUG, "--since", "2025-08-20", "--until", "2025-08-10")
    assert result.exit_code == 1
    assert result.stderr == "error: --since 2025-08-20 is later than --until 2025-08-10\n"
    # No --since: the default window (the last 30 days) starts after this --until.
    early = cli("build", "-t", TOPIC_SLUG, "--until", "2025-08-10")
    assert early.exit_code == 1
    assert early.stderr.startswith("error: --until ends before the window starts (")
    assert early.stderr.count("\n") == 1
    assert _edition_count(db) == 0


def test_cli_editions_delete_a_draft(cli, db, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01")
    cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--out", "muualla")
    assert (workdir / "editions/edition-1.html").exists()
    result = cli.ok("editions", "delete", "1", "--json")
    assert json.loads(result.stdout) == {"deleted": 1}
    assert not (workdir / "editions/edition-1.html").exists()
    assert not (workdir / "editions/edition-1.txt").exists()
    assert [e.id for e in editions.list_(db)] == [2]
    for table in ("edition_topics", "edition_articles"):
        rows = db.execute(f"SELECT count(*) FROM {table} WHERE edition_id = 1").fetchone()[0]
        assert rows == 0, table
    # Its files are elsewhere (--out muualla) or gone: deleting still works.
    (workdir / "muualla/edition-2.txt").unlink()
    done = cli.ok("editions", "delete", "2", "--out", "muualla")
    assert done.stdout == "deleted edition 2\n"
    assert not (workdir / "muualla/edition-2.html").exists()
    assert editions.list_(db) == []
    missing = cli("editions", "delete", "2")
    assert missing.exit_code == 1 and "no edition 2" in missing.stderr


@pytest.mark.parametrize("status", ["sending", "paused", "sent"])
def test_cli_editions_delete_refuses_an_edition_that_went_out(
    cli, db, workdir: Path, status: str
) -> None:
    add_articles(db, sample_articles(BASE))
    cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01")
    _mark(db, 1, status)
    before = editions.get(db, 1)
    result = cli("editions", "delete", "1", "--json")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: edition 1 is {status}, not a draft:"
        " it is kept as the record of who was sent what\n"
    )
    assert result.stdout == ""
    assert editions.get(db, 1) == before
    assert (workdir / "editions/edition-1.html").exists()
