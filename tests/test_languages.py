"""One edition, a variant per language: building, sending to a real SMTP server, topics
named in the reader's language, and the commands that show languages."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from build_helpers import HELSINKI, TOPIC, TOPIC_SLUG, add_articles, sample_articles
from web_helpers import (
    Client,
    LiveServer,
    csrf_of,
    html_part,
    text_part,
    wait_for_mail,
    web_settings,
)

from newsletter.audience import languages, subscribers
from newsletter.content import articles, editions, topics, variants
from newsletter.content.articles import Article, ArticleIn
from newsletter.delivery import pipeline
from newsletter.errors import NewsletterError

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
READERS = {"fi": "maija@example.fi", "sv": "stina@example.fi", "en": "john@example.org"}
# Per language: the text part's read-more line, the footer, and the lead story's label (the
# designed edition links each story by its headline, so "Lue lisää" is in the text part only).
CHROME = {
    "fi": ("Lue lisää", "Saat tämän viestin, koska olet tilannut aiheen", "Pääjuttu"),
    "sv": ("Läs mer", "Du får detta meddelande eftersom du prenumererar", "Huvudartikel"),
    "en": ("Read more", "You receive this email because you subscribed", "Top story"),
}
STORY = r'<div lang="(\w+)" class="nl-(?:lead|story)'  # each story's block and its lang
NAMES = {"fi": TOPIC, "sv": "Samhällspåverkan", "en": "Community impact"}


def _topic_with_readers(db) -> int:
    topic = topics.add_topic(db, TOPIC_SLUG, TOPIC, names={"sv": NAMES["sv"], "en": NAMES["en"]})
    for lang, email in READERS.items():
        subscribers.add(db, email, lang=lang, topic_ids=[topic.id], status="confirmed")
    return topic.id


def _build(db, settings, workdir: Path, **changes) -> editions.BuildResult:
    options = {
        "topics": [TOPIC_SLUG],
        "since": "2025-08-01",
        "until": None,
        "limit": None,
        "subject": None,
        "intro": None,
        "lang": ["fi", "sv", "en"],
        "template": None,
        "out": workdir / "editions",
    }
    options.update(changes)
    return editions.build(db, settings, **options)


def _swedish(url: str, title: str, published: datetime, **extra) -> ArticleIn:
    return ArticleIn(
        url=url, title=title, published=published, topics=[NAMES["sv"]], lang="sv", **extra
    )


def _received(sink) -> dict[str, tuple[object, str, str]]:
    """Each reader's one message: (message, html, text)."""
    found = {}
    for lang, email in READERS.items():
        got = sink.to(email)
        assert len(got) == 1, (email, len(got))
        message = got[0].message
        found[lang] = (message, html_part(message), text_part(message))
    return found


def _subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def test_finnish_only_articles_reach_each_reader_in_their_own_chrome(
    db, settings, workdir, smtp_sink
) -> None:
    _topic_with_readers(db)
    add_articles(db, sample_articles(BASE))
    # The recipients' languages are found by the CLI; the core takes them as given.
    langs = languages.recipient_languages(db, [topics.resolve(db, TOPIC_SLUG).id])
    assert sorted(langs) == ["en", "fi", "sv"]
    result = _build(db, settings, workdir, lang=langs)
    assert [v.lang for v in result.variants] == ["fi", "en", "sv"]  # the default first

    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    report = pipeline.send(db, mail, result.edition_id)
    assert (report.sent, report.pending, report.failed) == (3, 0, 0)

    for lang, (message, html, text) in _received(smtp_sink).items():
        read_more, footer, lead = CHROME[lang]
        assert re.search(rf'<html[^>]*\blang="{lang}"', html), lang
        assert f">{lead} · " in html and f"{read_more}: https://" in text
        assert footer in html and footer in text
        assert NAMES[lang] in _subject(message)  # the default subject, in their language
        assert NAMES[lang] in str(message["List-Id"]) and f"{TOPIC_SLUG}." in message["List-Id"]
        # The articles are Finnish whatever the reader's language, and say so.
        titles = re.findall(STORY, html)
        assert titles == ["fi", "fi", "fi"], (lang, titles)
        assert 'lang="fi"' in html and "Keski-Suomi liittyi" in html
        for other in set(CHROME) - {lang}:
            assert f">{CHROME[other][2]} · " not in html

    counts = pipeline.language_counts(db, result.edition_id)
    assert counts == {
        lang: {"total": 1, "sent": 1, "failed": 0, "pending": 0} for lang in ("en", "fi", "sv")
    }


def test_swedish_readers_get_the_swedish_versions(db, settings, workdir, smtp_sink) -> None:
    _topic_with_readers(db)
    finnish = sample_articles(BASE)
    add_articles(db, finnish)
    original = finnish[0]
    add_articles(
        db,
        [
            # A translation of the first Finnish story, linked by its key (here its URL).
            _swedish(
                "https://www.example.fi/sv/aktuellt/mellersta-finland",
                "Mellersta Finland gick med i arbetet för samhällspåverkan",
                BASE + timedelta(hours=2),
                summary="Välfärdsområdet gick med i våras.",
                translation_of=original.url,
            ),
            # A story only in Swedish.
            _swedish(
                "https://www.example.fi/sv/aktuellt/endast-svenska",
                "En nyhet bara på svenska",
                BASE - timedelta(hours=5),
            ),
        ],
    )
    result = _build(db, settings, workdir, subject=["sv=Nyheter i augusti", "Elokuun uutiset"])
    by_lang = {v.lang: v for v in result.variants}
    assert len(by_lang["fi"].articles) == 3 and len(by_lang["en"].articles) == 3
    assert len(by_lang["sv"].articles) == 4
    assert by_lang["sv"].articles[0].endswith("/mellersta-finland")
    assert original.url not in by_lang["sv"].articles
    assert by_lang["sv"].subject == "Nyheter i augusti"
    assert by_lang["fi"].subject == by_lang["en"].subject == "Elokuun uutiset"

    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    pipeline.send(db, mail, result.edition_id)
    got = _received(smtp_sink)
    _, sv_html, sv_text = got["sv"]
    assert "Mellersta Finland gick med" in sv_html and "En nyhet bara på svenska" in sv_text
    assert "Keski-Suomi liittyi" not in sv_html  # the translation replaced its original
    assert re.findall(STORY, sv_html) == ["sv", "sv", "fi", "fi"]
    for lang in ("fi", "en"):
        _, html, _ = got[lang]
        assert "Keski-Suomi liittyi" in html
        assert "Mellersta Finland" not in html and "bara på svenska" not in html
    assert _subject(got["sv"][0]) == "Nyheter i augusti"
    # The English variant has the plain (default-language) subject.
    assert _subject(got["en"][0]) == "Elokuun uutiset"
    assert "<title>Nyheter i augusti</title>" in sv_html

    shown = editions.get(db, result.edition_id)
    assert shown.languages == ["fi", "en", "sv"]
    assert len(shown.article_ids) == 5  # every article some variant shows


def test_a_default_language_intro_is_marked_in_other_variants(db, settings, workdir) -> None:
    _topic_with_readers(db)
    add_articles(db, sample_articles(BASE))
    intro = variants.PerLanguage("Hyvä lukija!", {"en": "Dear reader!"})
    result = _build(db, settings, workdir, intro=intro)
    html = {v.lang: v.html_path.read_text(encoding="utf-8") for v in result.variants}
    assert re.search(r'<p lang="fi"[^>]*>Hyvä lukija!</p>', html["sv"])
    assert "Dear reader!" in html["en"] and "Hyvä lukija!" not in html["en"]
    assert not re.search(r'<p lang="fi"[^>]*>Hyvä lukija!', html["fi"])  # its own language


def test_a_reader_of_a_language_without_a_variant_gets_the_main_one(
    db, settings, workdir, smtp_sink
) -> None:
    _topic_with_readers(db)
    add_articles(db, sample_articles(BASE))
    result = _build(db, settings, workdir, lang=["sv", "fi"])
    assert [v.lang for v in result.variants] == ["fi", "sv"]
    mail = settings.with_overrides(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
    pipeline.send(db, mail, result.edition_id)
    got = _received(smtp_sink)
    assert 'lang="fi"' in got["en"][1][:300] and ">Pääjuttu · " in got["en"][1]
    assert ">Huvudartikel · " in got["sv"][1]


def test_a_variant_with_only_other_languages_articles_shows_them(db, settings, workdir) -> None:
    topics.add_topic(db, "ruotsi", "Ruotsi")
    add_articles(
        db,
        [
            ArticleIn(
                url="https://www.example.fi/sv/a",
                title="Svensk",
                published=BASE,
                topics=["Ruotsi"],
                lang="sv",
            )
        ],
    )
    # Neither English nor Finnish (the default) versions: the Swedish one, marked as such.
    built = _build(db, settings, workdir, topics=["ruotsi"], lang=["en", "sv", "fi"])
    assert [v.articles for v in built.variants] == [["https://www.example.fi/sv/a"]] * 3
    english = built.variants[1].html_path.read_text(encoding="utf-8")
    assert re.findall(STORY, english) == ["sv"] and ">Top story · " in english


# --- stories and per-language values ------------------------------------------------------


def _art(i: int, lang: str | None, key: str = "", of: str | None = None):
    return Article(
        id=i, url=f"https://x.fi/{i}", title=f"t{i}", summary="", category=None, image=None,
        image_alt=None, topics=(), lang=lang, translation_of=of, guid=key or f"https://x.fi/{i}",
        published=BASE - timedelta(hours=i),  # newest first is by id
    )  # fmt: skip


def test_stories_link_by_shared_key_or_by_the_original_key() -> None:
    found = [
        _art(1, None, key="g-1"),
        _art(2, "sv", of="g-1"),
        _art(3, "en", of="story-3"),
        _art(4, "sv", of="story-3"),
        _art(5, "fi"),
    ]
    groups = [sorted(a.id for a in story) for story in variants.stories(found)]
    assert sorted(groups) == [[1, 2], [3, 4], [5]]
    assert [a.id for a in variants.for_language(found, "sv", "fi")] == [2, 4, 5]
    assert [a.id for a in variants.for_language(found, "fi", "fi")] == [1, 5]
    assert [a.id for a in variants.for_language(found, "en", "fi")] == [1, 3, 5]
    assert [a.id for a in variants.for_language(found, "en", "fi", limit=2)] == [1, 3]


@pytest.mark.parametrize(
    ("given", "plain", "by_lang"),
    [
        (["Elokuu"], "Elokuu", {}),
        (["sv=Augusti", "Elokuu"], "Elokuu", {"sv": "Augusti"}),
        (['en=Say "x=y"'], None, {"en": 'Say "x=y"'}),
        (["x=y"], "x=y", {}),  # not a language: the whole text is the subject
    ],
)
def test_per_language_values(given, plain, by_lang) -> None:
    parsed = variants.parse_per_language(given, "--subject")
    assert (parsed.plain, dict(parsed.by_lang)) == (plain, by_lang)


def test_per_language_fallbacks_and_repeats() -> None:
    parsed = variants.parse_per_language(["fi=Hei", "sv=Hej"], "--intro")
    assert parsed.get("sv", "fi") == ("Hej", "sv")
    assert parsed.get("en", "fi") == ("Hei", "fi")  # the default language's, marked as such
    assert variants.parse_per_language([], "--intro").get("en", "fi") == (None, "en")
    with pytest.raises(NewsletterError, match="twice"):
        variants.parse_per_language(["sv=a", "sv=b"], "--subject")
    with pytest.raises(NewsletterError, match="twice"):
        variants.parse_per_language(["a", "b"], "--subject")


# --- topics in three languages -------------------------------------------------------------


def test_topic_names_per_language_and_lookup(db) -> None:
    topic = topics.add_topic(db, "impact", None, names={"fi": "Vaikuttavuus", "sv": "Effekt"})
    assert topic.name == "Vaikuttavuus"  # the first language given
    assert topic.name_for("sv") == "Effekt" and topic.name_for("en") == "Vaikuttavuus"
    assert topics.resolve(db, "effekt").id == topic.id  # found by any of its names
    changed = topics.add_topic(db, "impact", None, names={"sv": ""}, descriptions={"en": "About"})
    assert changed.name_for("sv") == "Vaikuttavuus" and changed.description_for("en") == "About"
    with pytest.raises(NewsletterError, match="unknown language"):
        topics.add_topic(db, "impact", None, names={"de": "Wirkung"})
    with pytest.raises(NewsletterError, match="one line"):
        topics.add_topic(db, "impact", None, names={"sv": "a\r\nBcc: x@y"})


def test_topics_from_a_feed_get_the_name_they_were_found_under(db) -> None:
    with db.atomic():
        articles.upsert(db, _swedish("https://www.example.fi/sv/1", "Nyhet", BASE))
    found = topics.resolve(db, NAMES["sv"])
    assert found.name == NAMES["sv"] and found.name_for("sv") == NAMES["sv"]


def test_cli_topics_add_edit_and_list(cli) -> None:
    added = json.loads(
        cli.ok("topics", "add", "impact", "--name-fi", "Vaikuttavuus", "--name-sv", "Effekt",
               "--json").stdout
    )  # fmt: skip
    assert added["name"] == "Vaikuttavuus" and added["names"] == {
        "fi": "Vaikuttavuus",
        "sv": "Effekt",
    }
    cli.ok("topics", "edit", "Effekt", "--name-en", "Impact", "--description-en", "Our work")
    listed = json.loads(cli.ok("topics", "list", "--json").stdout)
    assert listed[0]["names"]["en"] == "Impact"
    assert listed[0]["descriptions"] == {"en": "Our work"}
    assert "sv: Effekt" in cli.ok("topics", "list").stdout
    bad = cli("topics", "edit", "nothing-here", "--name-sv", "x")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: unknown topic")


def test_signup_and_preferences_pages_show_the_readers_topic_names(db, settings, smtp_sink) -> None:
    topics.add_topic(
        db, TOPIC_SLUG, TOPIC, names={"sv": NAMES["sv"]}, descriptions={"sv": "Om <effekt>"}
    )
    topics.add_topic(db, "nuoret", "Nuoret", names={"sv": "Unga", "en": "Youth"})
    with LiveServer(web_settings(settings, smtp_sink)) as server:
        client = Client(server.url)
        swedish = client.get("/subscribe?lang=sv")
        assert swedish.status == 200 and 'lang="sv"' in swedish.body[:300]
        assert f">{NAMES['sv']}</label>" in swedish.body and ">Unga</label>" in swedish.body
        assert f">{TOPIC}</label>" not in swedish.body
        assert "Om &lt;effekt&gt;" in swedish.body  # the description, escaped
        english = client.get("/subscribe?lang=en").body
        assert ">Youth</label>" in english and f">{TOPIC}</label>" in english  # no en name

        # The form's language chooses the confirmation mail's, topic names included.
        form = {"csrf": csrf_of(swedish.body), "email": READERS["sv"], "topics": [TOPIC_SLUG],
                "lang": "sv"}  # fmt: skip
        assert client.post("/subscribe?lang=sv", form=form).status == 200
        server.wait_mail_queue()
        mail = wait_for_mail(smtp_sink, READERS["sv"])[0].message
        assert "Bekräfta" in text_part(mail) or "bekräfta" in text_part(mail)
        assert NAMES["sv"] in text_part(mail) and TOPIC not in text_part(mail)
        link = re.search(r"https?://\S+/confirm/\S+", text_part(mail))
        assert link is not None
        confirm = client.get(link.group(0))
        assert NAMES["sv"] in confirm.body


# --- the commands ---------------------------------------------------------------------------


def test_cli_build_show_preview_and_status_per_language(cli, db, settings, workdir) -> None:
    _topic_with_readers(db)
    add_articles(db, sample_articles(BASE))
    built = json.loads(
        cli.ok("build", "--topic", TOPIC_SLUG, "--since", "2025-08-01", "--subject",
               "sv=Augusti", "--intro", "en=Hello", "--json").stdout
    )  # fmt: skip
    # Without --lang: the default language and every language the recipients read.
    assert [v["lang"] for v in built["variants"]] == ["fi", "en", "sv"]
    assert built["variants"][2]["subject"] == "Augusti"
    assert built["variants"][2]["html"].endswith("edition-1.sv.html")
    shown = json.loads(cli.ok("editions", "show", "1", "--json").stdout)
    assert shown["languages"] == ["fi", "en", "sv"]
    assert all(a["lang"] == "fi" for a in shown["variants"][1]["articles"])
    text = cli.ok("editions", "show", "1").stdout
    assert "variant sv: Augusti" in text and "variant en:" in text
    listed = cli.ok("editions", "list").stdout
    assert "fi,en,sv" in listed
    sv_text = cli.ok("preview", "1", "--lang", "sv", "--text").stdout
    assert "Läs mer: https://" in sv_text
    path = cli.ok("preview", "1", "--lang", "en", "--out", str(workdir / "p")).stdout.strip()
    assert path.endswith("preview-1.en.html") and "Hello" in Path(path).read_text("utf-8")
    missing = cli("preview", "1", "--lang", "de")
    assert missing.exit_code == 1 and "no de variant" in missing.stderr
    bad = cli("build", "--topic", TOPIC_SLUG, "--lang", "de")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: unknown language")
    status = json.loads(cli.ok("status", "1", "--json").stdout)
    assert status["languages"] == {}  # nothing fixed yet: a draft
    planned = json.loads(cli.ok("send", "1", "--dry-run", "--json").stdout)
    assert planned["recipients"] == 3 and planned["languages"] == {"en": 1, "fi": 1, "sv": 1}
    assert "by language: en 1, fi 1, sv 1" in cli.ok("send", "1", "--dry-run").stdout
    asked = cli("send", "1", "--force", input="n\n")  # --force: the test config's example values
    assert "Variants:   fi: " in asked.stdout and "sv: Augusti" in asked.stdout


def test_cli_articles_import_and_list_by_language(cli, workdir) -> None:
    feed = workdir / "feed.json"
    feed.write_text(
        json.dumps(
            [
                {"url": "https://www.example.fi/sv/1", "title": "Svensk nyhet",
                 "published": "2025-08-10T10:00:00+03:00", "tags": ["Samhälle"]},
            ]
        ),
        encoding="utf-8",
    )  # fmt: skip
    cli.ok("articles", "import", str(feed), "--lang", "sv")
    rows = json.loads(cli.ok("articles", "list", "--json").stdout)
    assert [(r["title"], r["lang"]) for r in rows] == [("Svensk nyhet", "sv")]
    assert json.loads(cli.ok("articles", "list", "--lang", "fi", "--json").stdout) == []
    assert len(json.loads(cli.ok("articles", "list", "--lang", "sv", "--json").stdout)) == 1
    header, row = cli.ok("articles", "list").stdout.splitlines()
    assert header.split()[-1] == "language" and row.split()[-1] == "sv"
    bad = cli("articles", "import", str(feed), "--lang", "xx")
    assert bad.exit_code == 1 and "unknown language" in bad.stderr
    bad_list = cli("articles", "list", "--lang", "xx")
    assert bad_list.exit_code == 1 and "unknown language" in bad_list.stderr


def test_articles_without_a_language_count_as_the_default(db) -> None:
    add_articles(db, sample_articles(BASE)[:1])
    assert len(articles.select(db, lang="fi", default_lang="fi")) == 1
    assert articles.select(db, lang="sv", default_lang="fi") == []
    assert len(articles.select(db, lang="sv", default_lang="sv")) == 1


def test_a_test_copy_of_each_variant(cli, db, settings, workdir, smtp_sink) -> None:
    _topic_with_readers(db)
    add_articles(db, sample_articles(BASE))
    _build(db, settings, workdir)
    env = {"NEWSLETTER_SMTP_HOST": smtp_sink.host, "NEWSLETTER_SMTP_PORT": str(smtp_sink.port)}
    cli.ok("send", "1", "--to", "staff@example.fi", "--lang", "sv", env=env)
    cli.ok("send", "1", "--to", "staff@example.fi", env=env)
    sv_copy, main_copy = (html_part(m.message) for m in smtp_sink.to("staff@example.fi"))
    assert ">Huvudartikel · " in sv_copy and ">Pääjuttu · " in main_copy
    missing = cli("send", "1", "--to", "staff@example.fi", "--lang", "de", env=env)
    assert missing.exit_code == 1 and "no de variant" in missing.stderr
    alone = cli("send", "1", "--lang", "sv", env=env)
    assert alone.exit_code == 2
    assert pipeline.status(db, 1)["total"] == 0  # test copies record no delivery


def test_preferences_and_unsubscribe_pages_name_topics_in_the_readers_language(
    db, settings, smtp_sink
) -> None:
    from newsletter import links
    from newsletter.store.db import token_key

    topic = topics.add_topic(db, TOPIC_SLUG, TOPIC, names={"sv": NAMES["sv"]})
    person = subscribers.add(
        db, READERS["sv"], lang="sv", topic_ids=[topic.id], status="confirmed"
    ).subscriber_id
    config = web_settings(settings, smtp_sink)
    key = token_key(db, config.secret)
    with LiveServer(config) as server:
        client = Client(server.url)
        prefs = client.get(links.preferences_url(config, key, person)).body
        assert f">{NAMES['sv']}</label>" in prefs and f">{TOPIC}</label>" not in prefs
        leave = client.get(links.unsubscribe_url(config, key, person, topic.id)).body
        assert NAMES["sv"] in leave and TOPIC not in leave


def test_every_variant_shows_each_story_once_in_the_best_language() -> None:
    """Random stories in random languages: a variant never shows two versions of one story,
    prefers its own language, then the default one, and leaves out no default story."""
    import random

    rng = random.Random(13)
    for _ in range(200):
        found, number = [], 0
        for story in range(rng.randint(1, 6)):
            for lang in rng.sample(["fi", "sv", "en", None], rng.randint(1, 3)):
                number += 1
                found.append(
                    _art(number, lang, of=f"story-{story}" if rng.random() < 0.8 else None)
                )
        groups = variants.stories(found)
        story_of = {a.id: index for index, story in enumerate(groups) for a in story}
        for lang in ("fi", "sv", "en"):
            shown = variants.for_language(found, lang, "fi")
            assert len({story_of[a.id] for a in shown}) == len(shown)  # once per story
            assert shown == sorted(shown, key=lambda a: (a.published, a.id), reverse=True)
            for story in groups:
                langs = {a.language("fi") for a in story}
                picked = [a for a in shown if story_of[a.id] == story_of[story[0].id]]
                if lang in langs:
                    assert picked and picked[0].language("fi") == lang
                elif "fi" in langs:
                    assert picked and picked[0].language("fi") == "fi"
            assert shown  # never an empty variant when there are articles


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("sv-FI", "sv"), ("FI", "fi"), ("en_GB", "en"), (" sv ", "sv"), ("", None), (None, None),
     ("x y", None)],
)  # fmt: skip
def test_language_tags_are_stored_as_their_code(db, raw, stored) -> None:
    with db.atomic():
        articles.upsert(db, ArticleIn(url="https://x.fi/a", title="A", published=BASE, lang=raw))
    assert articles.select(db)[0].lang == stored
