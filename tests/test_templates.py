"""The template contract: MJML checked before compiling, the unsubscribe link required, the
articles loop expected, ``templates list/copy``, contact people and per-article languages."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from build_helpers import (
    HELSINKI,
    TOPIC,
    TOPIC_SLUG,
    add_articles,
    assert_golden,
    readable_html,
    sample_articles,
    unseal,
)

from newsletter import clock, dates
from newsletter.content import contacts, editions, mjml_check, render, template_files
from newsletter.content.articles import ArticleIn
from newsletter.errors import NewsletterError
from newsletter.mail import placeholders

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)

GOOD_BODY = """\
<mjml>
  <mj-body>
    <mj-section>
      <mj-column>
        {% for article in articles %}
        <mj-text><a href="{{ article.url }}">{{ article.title }}</a></mj-text>
        {% endfor %}
        <mj-text><a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


def _build(db, settings, workdir: Path, **changes) -> editions.BuildResult:
    options = {
        "topics": [TOPIC_SLUG],
        "since": "2025-08-01",
        "until": None,
        "limit": None,
        "subject": "Elokuu",
        "intro": None,
        "lang": "fi",
        "template": None,
        "out": workdir / "editions",
    }
    options.update(changes)
    return editions.build(db, settings, **options)


def _template(workdir: Path, source: str, name: str = "oma.mjml.j2") -> str:
    path = workdir / name
    path.write_text(source, encoding="utf-8")
    return str(path)


def _edition_count(db) -> int:
    return db.execute("SELECT count(*) FROM editions").fetchone()[0]


# --- MJML validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        ("<mj-column>", "<mj-colum>", "line 4: invalid MJML: <mj-colum> is not an MJML tag"),
        (
            "<mj-column>",
            "<mj-text>wrong place</mj-text><mj-column>",
            "line 4: invalid MJML: <mj-text> cannot be inside <mj-section>"
            " (it belongs in <mj-column>, <mj-hero>)",
        ),
        (
            "<mj-section>",
            '<mj-section colour="red">',
            "line 3: invalid MJML: <mj-section> has no attribute 'colour'",
        ),
        (
            "<mj-column>",
            '<mj-column width="50%" {% if x %}paddin="4px"{% endif %}>',
            "line 4: invalid MJML: <mj-column> has no attribute 'paddin'",
        ),
    ],
)
def test_invalid_mjml_is_refused_with_file_and_line(
    db, settings, workdir: Path, change: str, line: str, message: str
) -> None:
    add_articles(db, sample_articles(BASE))
    source = GOOD_BODY.replace(change, line, 1)
    if line == "<mj-colum>":
        source = source.replace("</mj-column>", "</mj-colum>")
    path = _template(workdir, source)
    with pytest.raises(NewsletterError) as caught:
        _build(db, settings, workdir, template=path)
    assert str(caught.value).startswith("template oma.mjml.j2, " + message)
    assert _edition_count(db) == 0


def test_mjml_errors_in_a_partial_name_the_partial(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    (workdir / "partials").mkdir()
    (workdir / "partials" / "kortti.mjml.j2").write_text(
        "{# a card #}\n<mj-section>\n  <mj-text>ei saraketta</mj-text>\n</mj-section>\n",
        encoding="utf-8",
    )
    source = GOOD_BODY.replace(
        "  </mj-body>", '    {% include "partials/kortti.mjml.j2" %}\n  </mj-body>'
    )
    with pytest.raises(NewsletterError, match=r"template partials/kortti\.mjml\.j2, line 3: "):
        _build(db, settings, workdir, template=_template(workdir, source))


def test_the_packaged_templates_pass_the_check() -> None:
    search = (render.packaged_templates_dir(),)
    for name in ("edition.mjml.j2", "message.mjml.j2"):
        lines = mjml_check.expand(search, name)
        assert len(lines) > 40  # the includes were expanded
        assert mjml_check.problems(lines) == [], name


def test_unclosed_and_stray_tags() -> None:
    lines = [mjml_check.Line(t, "x.mjml.j2", n) for n, t in enumerate(["<mjml>", "<mj-body>"], 1)]
    assert mjml_check.problems(lines) == [
        "template x.mjml.j2, line 2: invalid MJML: <mj-body> is never closed"
    ]
    stray = [mjml_check.Line("<mjml></mj-body>", "x.mjml.j2", 1)]
    assert "</mj-body> while <mjml>" in mjml_check.problems(stray)[0]


# --- the contract: unsubscribe link, articles loop ---------------------------------------------


def test_a_template_without_the_unsubscribe_link_is_refused(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    source = GOOD_BODY.replace('<a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a>', "")
    with pytest.raises(NewsletterError, match="has no unsubscribe link in its HTML part"):
        _build(db, settings, workdir, template=_template(workdir, source))
    # Its own text part without the link is refused too.
    _template(workdir, GOOD_BODY, "kaksi.mjml.j2")
    (workdir / "kaksi.txt.j2").write_text("{{ subject }}\n", encoding="utf-8")
    with pytest.raises(NewsletterError, match="has no unsubscribe link in its text part"):
        _build(db, settings, workdir, template=str(workdir / "kaksi.mjml.j2"))
    assert _edition_count(db) == 0


def test_a_template_that_ignores_the_articles_builds_with_a_warning(cli, db, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    lorem = GOOD_BODY.replace(
        '<mj-text><a href="{{ article.url }}">{{ article.title }}</a></mj-text>',
        "<mj-text>Lorem ipsum dolor sit amet</mj-text>",
    )
    path = _template(workdir, lorem)
    result = cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--template", path)
    assert "warning: template" in result.stderr and "none of the 3 articles" in result.stderr
    as_json = cli.ok(
        "build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--template", path, "--json"
    )
    assert "none of the 3 articles" in json.loads(as_json.stdout)["warnings"][0]
    fine = cli.ok(
        "build",
        "--topic",
        TOPIC_SLUG,
        "--since",
        "2025-08-01",
        "--template",
        _template(workdir, GOOD_BODY, "hyva.mjml.j2"),
    )
    assert "warning" not in fine.stderr


# --- templates list / copy ---------------------------------------------------------------------


def test_templates_copy_gives_a_working_starting_point(cli, db, settings, workdir: Path) -> None:
    result = cli.ok("templates", "copy", "pohjat")
    copied = sorted(
        p.relative_to(workdir / "pohjat").as_posix() for p in (workdir / "pohjat").rglob("*.j2")
    )
    assert "edition.mjml.j2" in copied and "partials/footer.mjml.j2" in copied
    assert f"copied {len(copied)} templates" in result.stdout
    again = cli("templates", "copy", "pohjat")
    assert again.exit_code == 1 and "nothing was copied" in again.stderr
    # Used as templates_dir, the copies build the same edition as the packaged ones.
    add_articles(db, sample_articles(BASE))
    packaged = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    own = settings.with_overrides(templates_dir=workdir / "pohjat")
    footer = workdir / "pohjat/partials/footer.mjml.j2"
    footer.write_text(
        footer.read_text(encoding="utf-8").replace("{{ reason }}", "OMA {{ reason }}")
    )
    ours = _build(db, own, workdir).html_path.read_text(encoding="utf-8")
    assert "OMA Saat tämän viestin" in ours and "OMA " not in packaged
    strip = re.compile(r"/e/[^\"\s]+|OMA ")
    assert strip.sub("", unseal(ours)) == strip.sub("", unseal(packaged))


def test_templates_list_shows_own_templates_before_packaged(cli, workdir: Path) -> None:
    listed = json.loads(cli.ok("templates", "list", "--json").stdout)
    names = [row["name"] for row in listed]
    assert {"edition.mjml.j2", "edition.txt.j2", "partials/footer.mjml.j2"} <= set(names)
    assert {row["source"] for row in listed} == {"packaged"}
    (workdir / "own").mkdir()
    (workdir / "own" / "edition.mjml.j2").write_text(GOOD_BODY, encoding="utf-8")
    (workdir / "own" / "juhla.mjml.j2").write_text(GOOD_BODY, encoding="utf-8")
    env = {"NEWSLETTER_TEMPLATES_DIR": str(workdir / "own")}
    listed = json.loads(cli.ok("templates", "list", "--json", env=env).stdout)
    assert [(r["name"], r["shadows_packaged"]) for r in listed[:2]] == [
        ("edition.mjml.j2", True),
        ("juhla.mjml.j2", False),
    ]
    assert [r["name"] for r in listed].count("edition.mjml.j2") == 1
    human = cli.ok("templates", "list", env=env).stdout
    assert "replaces the packaged one" in human


def test_copied_templates_are_what_list_shows(workdir: Path, settings) -> None:
    packaged = {t.name for t in template_files.list_templates(settings)}
    copied = template_files.copy_templates(workdir / "kopio")
    assert {p.relative_to(workdir / "kopio").as_posix() for p in copied} == packaged


# --- contact people ---------------------------------------------------------------------------


def test_contact_people_appear_in_html_and_text(cli, db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    cli.ok(
        "topics",
        "contact-add",
        TOPIC_SLUG,
        "--name",
        "Mari Hirvonen",
        "--title",
        "Erityisasiantuntija",
        "--title-en",
        "Senior Specialist",
        "--email",
        "mari.hirvonen@example.fi",
        "--phone",
        "044 363 7276",
    )
    cli.ok("topics", "contact-add", TOPIC, "--name", "Mika <b>Niemelä</b> & co")
    listed = json.loads(cli.ok("topics", "contacts", TOPIC_SLUG, "--json").stdout)
    assert [p["name"] for p in listed] == ["Mari Hirvonen", "Mika <b>Niemelä</b> & co"]
    result = _build(db, settings, workdir)
    html = result.html_path.read_text(encoding="utf-8")
    text = result.text_path.read_text(encoding="utf-8")
    assert ">Lisätietoja</h2>" in html
    assert 'href="mailto:mari.hirvonen@example.fi"' in html and 'href="tel:0443637276"' in html
    assert '<span lang="en">Senior Specialist</span>' in html
    assert "Mika &lt;b&gt;Niemelä&lt;/b&gt; &amp; co" in html and "<b>Niemelä" not in html
    assert (
        "Lisätietoja\n-----------\nMari Hirvonen\nErityisasiantuntija\nSenior Specialist\n"
        f"{TOPIC}\nmari.hirvonen@example.fi\n044 363 7276\n"
    ) in text
    assert f"Senior Specialist</span><br>{TOPIC}<br>" in html
    assert "Mika <b>Niemelä</b> & co" in text
    cli.ok("topics", "contact-remove", TOPIC_SLUG, "mari.hirvonen@example.fi")
    assert len(json.loads(cli.ok("topics", "contacts", TOPIC_SLUG, "--json").stdout)) == 1
    html = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    assert "Mari Hirvonen" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", " "), "a contact needs a name"),
        (("--name", "A", "--email", "ei osoite"), "is not an address"),
        (("--name", "A", "--phone", "javascript:1"), "may hold digits"),
        (("--name", "x" * 201), "longer than 200"),
    ],
)
def test_bad_contacts_are_refused_in_one_line(cli, db, args, message) -> None:
    add_articles(db, sample_articles(BASE))
    result = cli("topics", "contact-add", TOPIC_SLUG, *args)
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert contacts.list_(db, TOPIC_SLUG) == []


def test_no_contacts_no_block(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    html = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    assert ">Lisätietoja<" not in html and 'class="nl-contacts' not in html


# --- languages, size, golden ---------------------------------------------------------------------


def test_every_article_block_carries_its_language(db, settings, workdir: Path) -> None:
    items = sample_articles(BASE)
    items[1] = ArticleIn(
        url="https://www.example.fi/sv/samarbete",
        title="Samarbete mellan kommuner",
        summary="På svenska.",
        published=BASE - timedelta(hours=1),
        topics=[TOPIC],
        lang="sv",
    )
    add_articles(db, items)
    result = _build(db, settings, workdir, lang=["fi", "sv"])
    # The Swedish variant: the Swedish story in Swedish, the Finnish ones (no Swedish version)
    # marked Finnish inside a Swedish document.
    swedish = next(v for v in result.variants if v.lang == "sv")
    html = swedish.html_path.read_text(encoding="utf-8")
    assert '<html lang="sv"' in html
    blocks = re.findall(r'<div lang="([a-z]+)" class="(nl-lead|nl-story)[^"]*"', html)
    assert [lang for lang, _ in blocks] == ["fi", "sv", "fi"]
    assert [kind for _, kind in blocks] == ["nl-lead", "nl-story", "nl-story"]
    sv_block = html.split('<div lang="sv" class="nl-story', 1)[1].split('<div lang="fi"', 1)[0]
    assert "Samarbete mellan kommuner" in sv_block
    # The Finnish variant leaves the Swedish-only story to the Swedish readers.
    finnish = result.html_path.read_text(encoding="utf-8")
    assert "Samarbete mellan kommuner" not in finnish
    assert re.findall(r'<div lang="([a-z]+)" class="nl-(?:lead|story)', finnish) == ["fi", "fi"]


def test_twenty_stories_stay_under_100_kb(db, settings, workdir: Path) -> None:
    items = [
        ArticleIn(
            url=f"https://www.example.fi/ajankohtaista/juttu-{n}",
            title=f"Juttu numero {n}: yhteisövaikuttavuus arjessa ja kunnissa",
            summary="Tiivistelmä kertoo jutun pääasiat muutamalla virkkeellä. " * 8,
            published=BASE - timedelta(hours=n),
            category="Blogi",
            topics=[TOPIC],
            image=f"https://www.example.fi/media/kuva-{n}.jpg",
            image_alt=f"Kuva {n}",
        )
        for n in range(20)
    ]
    add_articles(db, items)
    for n in range(4):
        contacts.add(
            db,
            TOPIC_SLUG,
            name=f"Henkilö {n}",
            title="Erityisasiantuntija",
            email=f"h{n}@example.fi",
            phone="040 123 4567",
        )
    result = _build(db, settings, workdir, intro="Hyvä lukija,\n\n" + "Johdanto. " * 40)
    assert result.html_bytes < 100 * 1024, result.html_bytes
    html = result.html_path.read_text(encoding="utf-8")
    assert len(re.findall(r'<div lang="fi" class="nl-story ', html)) == 19
    assert len(re.findall(r'<div lang="fi" class="nl-lead ', html)) == 1


def test_web_version_and_contacts_match_golden_files(db, settings, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    contacts.add(
        db,
        TOPIC_SLUG,
        name="Mari Hirvonen",
        title="Erityisasiantuntija",
        title_en="Senior Specialist",
        email="mari.hirvonen@example.fi",
        phone="044 363 7276",
    )
    result = _build(db, settings, workdir, intro="Hyvä lukija,\n\ntervetuloa!")
    stored = db.execute(
        "SELECT html, web_html, hole_marker FROM editions WHERE id = ?", [result.edition_id]
    ).fetchone()
    today = dates.format_date(clock.now(), "fi", settings.tz)

    def normal(html: str) -> str:
        html = re.sub(r"/e/[0-9a-z]+\.[A-Za-z0-9_-]+", "/e/<WEB-TOKEN>", html)
        return readable_html(unseal(html).replace(today, "<BUILD-DATE>"))

    assert_golden("edition-contacts-fi.html", normal(stored[0]))
    assert_golden("web-version-fi.html", normal(stored[1]))
    # The email has the edition's sealed holes; the public page has none, nor the marker.
    assert placeholders.Holes(stored[2]).unsubscribe_url in stored[0]
    assert placeholders.remaining(stored[1]) == [] and stored[2] not in stored[1]


def test_the_worked_example_of_the_docs_builds(db, settings, workdir: Path) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "templates.md").read_text(encoding="utf-8")
    example = docs.split("## Worked example", 1)[1].split("```xml\n", 1)[1].split("```", 1)[0]
    folder = workdir / "my-templates"
    folder.mkdir()
    (folder / "kuukausi.mjml.j2").write_text(example, encoding="utf-8")
    add_articles(db, sample_articles(BASE))
    own = settings.with_overrides(templates_dir=folder)
    result = _build(db, own, workdir, template="kuukausi")
    html = unseal(result.html_path.read_text(encoding="utf-8"))
    assert result.warnings == []
    assert '<div lang="fi" class="nl-story nl-lang-fi"' in html
    assert 'alt="Perhekeskuksen työntekijöitä pöydän ääressä"' in html
    assert f'href="{placeholders.UNSUBSCRIBE_URL}"' in html
    # Every variable the docs' table names exists in the context a template gets.
    names = set(re.findall(r"^\| `([a-z_]+)` \|", docs, flags=re.M))
    context = render.edition_context(
        settings,
        lang="fi",
        subject="s",
        preheader="p",
        intro=None,
        articles=[],
        topic_names=[TOPIC],
    )
    assert names and names <= set(context), names - set(context)
    assert set(context) <= names, set(context) - names
    documented = set(re.findall(r"`t\.([a-z_]+)`", docs))
    assert set(context["t"]) - {"default_subject", "why_edition", "why_web"} <= documented


def test_a_replaced_message_template_is_checked_too(settings, workdir: Path) -> None:
    folder = workdir / "own"
    folder.mkdir()
    broken = GOOD_BODY.replace("<mj-column>", "<mj-colum>").replace("</mj-column>", "</mj-colum>")
    (folder / "message.mjml.j2").write_text(broken, encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"message\.mjml\.j2, line 4: invalid MJML"):
        render.render_message(
            settings.with_overrides(templates_dir=folder),
            lang="fi",
            subject="Vahvista",
            heading="Vahvista",
            paragraphs=["Hei"],
            button_label="Vahvista",
            button_url="https://uutiskirje.example.fi/confirm/x",
            reason="Syy",
        )


def test_content_quoting_the_placeholder_does_not_stand_in_for_the_link(
    db, settings, workdir: Path
) -> None:
    add_articles(
        db,
        [
            ArticleIn(
                url="https://www.example.fi/ajankohtaista/huijaus",
                title=f"Otsikko {placeholders.UNSUBSCRIBE_URL}",
                summary=f'<a href="{placeholders.UNSUBSCRIBE_URL}">x</a>',
                published=BASE,
                topics=[TOPIC],
            )
        ],
    )
    source = GOOD_BODY.replace('<a href="{{ unsubscribe_url }}">{{ t.unsubscribe }}</a>', "")
    (workdir / "huijaus.txt.j2").write_text(
        "{% for article in articles %}{{ article.title }} {{ article.summary }}\n{% endfor %}",
        encoding="utf-8",
    )
    with pytest.raises(NewsletterError, match="no unsubscribe link in its HTML and text part"):
        _build(db, settings, workdir, template=_template(workdir, source, "huijaus.mjml.j2"))


def test_control_characters_in_content_do_not_stop_the_build(db, settings, workdir) -> None:
    add_articles(
        db,
        [
            ArticleIn(
                url="https://www.example.fi/ajankohtaista/ohjausmerkit",
                title="Otsikko\x08 ja\x1b[0m muuta",
                summary="Rivi\x0cvaihto\x7f",
                published=BASE,
                topics=[TOPIC],
            )
        ],
    )
    result = _build(db, settings, workdir)
    html = result.html_path.read_text(encoding="utf-8")
    text = result.text_path.read_text(encoding="utf-8")
    assert "Otsikko ja[0m muuta" in html and "Rivi vaihto" in html
    assert "Otsikko ja[0m muuta" in text
    assert not any(ch in html + text for ch in "\x08\x1b\x0c\x7f")


def test_an_article_in_a_language_the_tool_does_not_speak(db, settings, workdir) -> None:
    items = sample_articles(BASE)
    items[1] = ArticleIn(
        url="https://www.example.fi/de/zusammenarbeit",
        title="Zusammenarbeit",
        published=BASE - timedelta(hours=1),
        topics=[TOPIC],
        lang="de",
    )
    items[2] = ArticleIn(
        url="https://www.example.fi/x/outo",
        title="Outo kieli",
        published=BASE - timedelta(hours=2),
        topics=[TOPIC],
        lang='"><script>',
    )
    add_articles(db, items)
    # A variant shows stories in its language or the default one: a German story (stored by
    # hand: intake maps unsupported languages to the default) only when nothing else is left.
    html = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    assert "Zusammenarbeit" not in html
    blocks = re.findall(r'<div lang="([^"]+)" class="(?:nl-lead|nl-story) ', html)
    assert blocks == ["fi", "fi"]  # the invalid tag is no language either: left out
    assert "<script>" not in html
    db.execute("DELETE FROM article_topics WHERE article_id IN (SELECT id FROM articles"
               " WHERE lang IS NULL OR lang = 'fi')")  # fmt: skip
    db.execute("DELETE FROM edition_articles")
    db.execute("DELETE FROM editions")
    db.conn.commit()
    html = _build(db, settings, workdir).html_path.read_text(encoding="utf-8")
    blocks = re.findall(r'<div lang="([^"]+)" class="(?:nl-lead|nl-story) ', html)
    assert blocks[0] == "de" and "Zusammenarbeit" in html
    assert set(blocks) <= {"de", "fi"}  # an invalid tag falls back to the edition's
    assert "<script>" not in html
    assert "15.08.2025" in html  # the German article's date in the edition's format
