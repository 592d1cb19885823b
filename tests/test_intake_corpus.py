"""A corpus of feeds as real publishing tools write them, each checked for counts, warnings
and fields: WordPress, Drupal, Ghost, Hugo, Substack, Atom, JSON Feed 1.0/1.1, WordPress
REST API exports, and ill-formed variants that feed readers still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.web_helpers import Client, LiveServer, web_settings

CORPUS = Path(__file__).parent / "data" / "intake" / "corpus"

# file -> (imported, [(position, skipped, words in the warning)], {url: {field: value}})
EXPECTED: dict[str, tuple[int, list[tuple[int | None, bool, str]], dict[str, dict]]] = {
    "wordpress.xml": (
        3,
        [],
        {
            "https://www.example.fi/blogi/yhteisovaikuttavuus-nakyy-arjessa/": {
                "title": "Yhteisövaikuttavuus näkyy arjessa",
                # "… Lue lisää" and "The post ... appeared first on ..." are gone.
                "summary": "Miten säätiön työ näkyy perheiden arjessa? Kävimme kysymässä"
                " kolmelta kumppanilta…",
                "category": "Blogi",
                "topics": ["yhteisovaikuttavuus"],
                "published": "2025-10-06T09:00:00+03:00",
                # No Media RSS: the image of the content, with its alt text.
                "image": "https://www.example.fi/wp-content/uploads/2025/10/perhe-1024x683.jpg",
                "image_alt": "Perhe istuu keittiön pöydän ääressä",
                "lang": "fi",
            },
            "https://www.example.fi/uutiset/haku-kesaleireille/": {
                "summary": "Leirien haku päättyy 31.10. Paikkoja on 120 lapselle ja nuorelle…",
                "category": "Uutiset",
                "topics": ["leiritoiminta"],
            },
            "https://www.example.fi/uutiset/vuosikertomus-2024/": {
                "summary": "Vuosikertomus kertoo, mitä teimme yhdessä vuonna 2024.",
                "topics": ["saatio"],
                "image": None,
            },
        },
    ),
    "drupal.xml": (
        2,
        [(3, True, "'Utkast utan datum' has no date")],
        {
            "https://www.example.fi/sv/nyheter/ansokan-till-sommarlagren": {
                "summary": "Ansökningstiden går ut den 31 oktober. Det finns 120 platser.",
                "category": "Nyheter",
                "topics": ["lagerverksamhet"],
                "lang": "sv",
                "published": "2025-10-02T12:30:00+03:00",
            },
            # A relative link, resolved against xml:base.
            "https://www.example.fi/sv/nyheter/verksamhetsberattelsen-2024": {"lang": "sv"},
        },
    ),
    "ghost.xml": (
        2,
        [],
        {
            "https://blogi.example.fi/palautteen-avulla/": {
                "image": "https://blogi.example.fi/content/images/2025/10/palaute.jpg",
                # media:content has no description: the same picture's alt in the content.
                "image_alt": "Nuori ja työntekijä keskustelevat",
                "topics": ["nuoret", "vaikuttavuus"],
                "published": "2025-10-06T10:45:00+03:00",
                "lang": "fi",  # none given (or unsupported): the default language
            },
            # The content's only picture is another one: its alt text must not be borrowed.
            "https://blogi.example.fi/kolme-oppia/": {
                "image": "https://blogi.example.fi/content/images/2025/09/kumppanit.jpg",
                "image_alt": None,
            },
        },
    ),
    "hugo.xml": (
        2,
        [],
        {
            "https://www.example.fi/en/news/summer-camps/": {
                "summary": "The application period ends on 31 October. There are 120 places"
                " for children and young people.",
                "image": "https://www.example.fi/en/news/summer-camps/camp.jpg",
                "image_alt": "Children by a lake",
                "lang": "en",
            },
            "https://www.example.fi/en/news/annual-report-2024/": {"lang": "en", "image": None},
        },
    ),
    "substack.xml": (
        1,
        [(2, True, "'Kirje ilman linkkiä' has no link")],
        {
            "https://arjenaarella.substack.com/p/syksyn-kirje": {
                "image": "https://substack-post-media.s3.amazonaws.com/public/images/"
                "kesa_1456x816.jpeg",
                "image_alt": "Kesäleirin nuotio",  # from the CDN copy in the content
                "lang": "fi",
                "published": "2025-10-06T08:00:43+03:00",
            }
        },
    ),
    "atom-sv.atom": (
        3,
        [(3, False, "language 'de' is not one of fi, sv, en")],
        {
            "https://www.example.fi/sv/blogg/gemenskap/": {
                "summary": "Hur syns stiftelsens arbete i familjernas vardag?",
                "lang": "sv",
                "published": "2025-10-06T09:00:00+03:00",
            },
            "https://www.example.fi/en/blog/community/": {
                "summary": "How does the foundation's work show in families' everyday life?",
                "lang": "en",
                "published": "2025-10-06T10:15:00+03:00",  # only <updated>
            },
            "https://www.example.fi/de/blog/gemeinschaft/": {"lang": "fi"},
        },
    ),
    "jsonfeed-1.1.json": (
        2,
        [(3, True, "'Luonnos ilman osoitetta' has no link")],
        {
            "https://www.example.fi/blogi/yhteisovaikuttavuus-nakyy-arjessa/": {
                "summary": "Miten säätiön työ näkyy perheiden arjessa?",
                "category": "Blogi",
                "topics": ["yhteisovaikuttavuus"],
                "image": "https://www.example.fi/kuvat/perhe.jpg",
                "image_alt": "Perhe keittiössä",
                "lang": "fi",  # the feed's fi-FI
            },
            "https://www.example.fi/sv/blogg/gemenskap/": {
                "summary": "Hur syns stiftelsens arbete i familjernas vardag?",
                "lang": "sv",
                "topics": ["samhallseffekt"],
            },
        },
    ),
    "jsonfeed-1.0.json": (
        1,
        [(2, True, "unreadable date '2025-13-45T08:00:00+03:00'")],
        {
            "https://arjenaarella.example.fi/2025/10/syksyn-kirje": {
                "title": "Syksyn kirje",
                "summary": "Kesä opetti meille kolme asiaa yhteistyöstä, ja niistä kerron"
                " tässä kirjeessä.",
                "lang": "fi",  # none given (or unsupported): the default language
            }
        },
    ),
    "wp-rest-embed.json": (
        2,
        [],
        {
            "https://www.example.fi/blogi/yhteisovaikuttavuus-nakyy-arjessa/": {
                "title": "Yhteisövaikuttavuus näkyy arjessa",
                "summary": "Miten säätiön työ näkyy perheiden arjessa? Kävimme kysymässä"
                " kolmelta kumppanilta…",
                "published": "2025-10-06T09:00:00+03:00",  # date_gmt is UTC
                "category": "Blogi",
                "topics": ["perheet", "yhteisovaikuttavuus"],
                "image": "https://www.example.fi/wp-content/uploads/2025/10/perhe.jpg",
                "image_alt": "Perhe istuu keittiön pöydän ääressä",
                "lang": "fi",
                "translation_of": "wordpress:www.example.fi:4211",
            },
            "https://www.example.fi/sv/blogg/gemenskap/": {
                "summary": "Hur syns stiftelsens arbete i familjernas vardag?…",
                "topics": ["samhallseffekt"],
                "lang": "sv",
                "translation_of": "wordpress:www.example.fi:4211",
            },
        },
    ),
    "wp-rest-plain.json": (
        2,
        [(1, False, "category and tag ids without names left out")],
        {
            "https://www.example.fi/uutiset/haku-kesaleireille/": {
                "title": "Haku kesäleireille on auki",
                "summary": "Leirien haku päättyy 31.10.…",
                "topics": [],  # ids 3 and 7 never become topics
                "category": None,
                "image": "https://www.example.fi/wp-content/uploads/2025/10/leiri.jpg",
                "image_alt": "Nuotio järven rannalla",  # leiri-300x200.jpg in the content
                "published": "2025-10-02T12:30:00+03:00",
            },
            "https://www.example.fi/uutiset/vuosikertomus-2024/": {
                # No date_gmt: the site's local time.
                "published": "2025-09-30T15:00:00+03:00",
                "summary": "Vuosikertomus kertoo, mitä teimme yhdessä.",
            },
        },
    ),
    "ill-formed-entities.xml": (
        2,
        [(None, False, "not a well-formed feed, read leniently: undefined entity")],
        {
            "https://www.example.fi/tapahtumat?kieli=fi&sivu=2": {
                "title": "Tapahtumat syksyllä",
                "summary": "Syksyn tapahtumat & tilaisuudet.",
                "lang": "fi",
            },
            "https://www.example.fi/lapset-ja-nuoret": {"title": "Lapset & nuoret"},
        },
    ),
    "unknown-encoding.xml": (1, [], {"https://www.example.fi/koodaus": {"title": "Koodaukseton"}}),
    # Prefixes used without declaring them, a channel date in Finnish, an item without one.
    "undeclared-namespace.xml": (
        1,
        [
            (None, False, "not a well-formed feed, read leniently: unbound prefix at line 11"),
            (None, False, "channel: unreadable date 'Ma, 06 loka 2025 09:00:00 +0300'"),
            (2, True, "'Jakso 11: Kumppanuudet' has no date"),
        ],
        {
            "https://www.example.fi/podcast/jakso-12/": {
                "image": "https://www.example.fi/podcast/jakso-12.jpg",  # itunes:image
                "lang": "fi",
                "summary": "Keskustelu nuorten tulevaisuususkosta.",
            }
        },
    ),
    # A download cut off inside a CDATA section: what came before is kept.
    "incomplete-cdata.xml": (
        2,
        [(None, False, "not a well-formed feed, read leniently: unclosed token at line 7")],
        {
            "https://www.example.fi/1": {"summary": "Ehjä kuvaus."},
            "https://www.example.fi/2": {"title": "Toinen", "summary": ""},
        },
    ),
    # "Billion laughs": entities are never expanded, the feed is read without its DOCTYPE.
    "xml-entity-bomb.xml": (
        1,
        [(None, False, "not a well-formed feed, read leniently: undefined entity")],
        {"https://www.example.fi/a": {"title": "&lol9;"}},
    ),
    "bad-dates.xml": (
        2,
        [
            (2, True, "unreadable date '2025-13-45'"),
            (3, True, "date out of range '9999-12-31T23:59:59-12:00'"),
            (4, True, "99999999999"),
        ],
        {
            "https://www.example.fi/paivat/hyva": {"published": "2025-10-06T09:00:00+03:00"},
            "https://www.example.fi/paivat/w3c": {"published": "2025-10-01T11:00:00+03:00"},
        },
    ),
}


def test_the_corpus_is_all_checked() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_feed(cli, name: str) -> None:
    count, warnings, fields = EXPECTED[name]
    result = cli("articles", "import", str(CORPUS / name), "--json")
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == count
    assert report["skipped"] == sum(1 for w in warnings if w[1])
    got = [(w["position"], w["skipped"], w["message"]) for w in report["warnings"]]
    assert len(got) == len(warnings), got
    for (position, skipped, words), (at, was_skipped, message) in zip(warnings, got, strict=True):
        assert (at, was_skipped) == (position, skipped)
        assert words in message
    # Each warning is also one line on stderr naming the source.
    assert result.stderr.count(f"warning: {CORPUS / name}: ") == len(warnings)
    rows = {r["url"]: r for r in json.loads(cli.ok("articles", "list", "--json").stdout)}
    assert len(rows) == count
    for url, expected in fields.items():
        for field, value in expected.items():
            assert rows[url][field] == value, (url, field)
    # Importing again changes nothing.
    again = json.loads(cli.ok("articles", "import", str(CORPUS / name), "--json").stdout)
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, count)


def test_feed_topics_stay_off_the_sign_up_page_until_staff_show_them(
    cli, db, settings, smtp_sink
) -> None:
    cli.ok("articles", "import", str(CORPUS / "wordpress.xml"))
    shown = {r[0] for r in db.execute("SELECT slug FROM topics WHERE listed = 1")}
    assert shown == set()
    listing = cli.ok("topics", "list").stdout.splitlines()
    row = next(line for line in listing if line.startswith("leiritoiminta "))
    assert row.split()[-1] == "hidden"
    with LiveServer(web_settings(settings, smtp_sink)) as server:
        assert 'value="leiritoiminta"' not in Client(server.url).get("/subscribe").body
        cli.ok("topics", "unhide", "leiritoiminta")
        page = Client(server.url).get("/subscribe").body
        assert 'value="leiritoiminta"' in page
        assert 'value="saatio"' not in page
    shown = {r[0] for r in db.execute("SELECT slug FROM topics WHERE listed = 1")}
    assert shown == {"leiritoiminta"}
    # A re-import does not hide it again.
    cli.ok("articles", "import", str(CORPUS / "wordpress.xml"))
    shown = {r[0] for r in db.execute("SELECT slug FROM topics WHERE listed = 1")}
    assert shown == {"leiritoiminta"}


def test_sites_can_have_feed_topics_public_at_once(cli, db, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_NEW_TOPICS", "listed")
    cli.ok("articles", "import", str(CORPUS / "ghost.xml"))
    shown = {r[0] for r in db.execute("SELECT slug FROM topics WHERE listed = 1")}
    assert shown == {"nuoret", "vaikuttavuus", "kumppanuudet"}
    monkeypatch.setenv("NEWSLETTER_NEW_TOPICS", "public")
    result = cli("articles", "import", str(CORPUS / "ghost.xml"))
    assert result.exit_code == 1
    assert "NEWSLETTER_NEW_TOPICS: must be one of hidden, listed" in result.stderr


def test_topic_option_names_an_existing_topic_unless_asked_to_create(cli, db) -> None:
    cli.ok("topics", "add", "leiritoiminta", "--name", "Leiritoiminta")
    result = cli("articles", "import", str(CORPUS / "hugo.xml"), "--topic", "Leiritoimnta")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: unknown topic 'Leiritoimnta' (known topics: leiritoiminta);"
        " add --create-topic to create it"
    )
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM topics").fetchone()[0] == 1
    cli.ok("articles", "import", str(CORPUS / "hugo.xml"), "--topic", "LEIRITOIMINTA")
    rows = json.loads(cli.ok("articles", "list", "--json").stdout)
    assert all(r["topics"] == ["leiritoiminta"] for r in rows)
    cli.ok("articles", "import", str(CORPUS / "hugo.xml"), "-t", "Kesä 2026", "--create-topic")
    # Made on purpose by staff: offered on the sign-up page like `topics add`.
    assert db.execute("SELECT listed FROM topics WHERE slug = 'kesa-2026'").fetchone() == (1,)
