"""Hostile and messy intake: encodings, field names in three languages, bombs, huge fields,
languages and translation keys. Each problem is one line (an error or a warning naming the
item); none is a traceback or a half-changed database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from build_helpers import HELSINKI, TOPIC_SLUG, add_articles, sample_articles

from newsletter.config import Settings
from newsletter.content import intake
from newsletter.content.intake import markdown
from newsletter.content.intake.problems import Problem, Problems
from newsletter.content.intake.text import decode_text, strip_read_more

BASE = datetime(2025, 8, 15, 9, 30, tzinfo=HELSINKI)
FINNISH_CSV = (
    "Otsikko;Linkki;Julkaistu;Ingressi;Aiheet;Kieli;Käännös\n"
    "Syksyn leirit;https://www.example.fi/leirit;15.9.2025;Haku on auki – Lue lisää;"
    "Leiritoiminta, Nuoret;fi-FI;leirit-2025\n"
    "Höstens läger;https://www.example.fi/sv/lager;15.9.2025;Ansökan är öppen.;"
    "Lägerverksamhet;sv_FI;leirit-2025\n"
)


def report_of(cli, *args: str, code: int = 0) -> dict:
    result = cli("articles", "import", *args, "--json")
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def rows(cli) -> dict[str, dict]:
    return {r["url"]: r for r in json.loads(cli.ok("articles", "list", "--json").stdout)}


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8-sig", "utf-16"])
def test_finnish_csv_in_every_spreadsheet_encoding(cli, workdir: Path, encoding: str) -> None:
    path = workdir / "artikkelit.csv"
    # Windows-1252 has no en dash problem: – is 0x96 there.
    path.write_bytes(FINNISH_CSV.encode(encoding))
    assert report_of(cli, str(path))["imported"] == 2
    found = rows(cli)
    fi = found["https://www.example.fi/leirit"]
    assert (fi["title"], fi["summary"]) == ("Syksyn leirit", "Haku on auki")
    assert (fi["lang"], fi["translation_of"]) == ("fi", "leirit-2025")
    assert fi["topics"] == ["leiritoiminta", "nuoret"]
    assert fi["published"] == "2025-09-15T00:00:00+03:00"
    sv = found["https://www.example.fi/sv/lager"]
    assert (sv["title"], sv["lang"], sv["translation_of"]) == ("Höstens läger", "sv", "leirit-2025")


def test_a_file_in_no_known_encoding_is_one_line_error(cli, db, workdir: Path) -> None:
    path = workdir / "rikki.csv"
    path.write_bytes(b"title,url,date\nA\x81,https://www.example.fi/a,2025-01-01\n")
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}: rikki.csv: byte 0x81 at offset 16 is neither UTF-8 nor Windows-1252:"
        " save the file as UTF-8"
    )
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_headers_without_a_link_list_the_accepted_names(cli, workdir: Path) -> None:
    path = workdir / "vaarin.csv"
    path.write_text("Otsikko;Linkki2;Päivä\nA;https://www.example.fi/a;1.1.2025\n", "utf-8")
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(
        f"error: {path}: no field names the article's link (accepted: url, link,"
    )
    assert "linkki" in line and "länk" in line
    assert line.endswith("found: Otsikko, Linkki2, Päivä)")
    json_path = workdir / "vaarin.json"
    json_path.write_text(json.dumps([{"otsikko": "A", "osoitteet": "x"}]), "utf-8")
    result = cli("articles", "import", str(json_path))
    assert result.exit_code == 1
    assert "no field names the article's link" in result.stderr
    assert "found: otsikko, osoitteet)" in result.stderr


def test_swedish_and_english_field_names(cli, workdir: Path) -> None:
    path = workdir / "artiklar.json"
    records = [
        {"Rubrik": "Läger", "Länk": "https://www.example.fi/sv/l", "Publicerad": "2025-09-15",
         "Ämnen": ["Läger"], "Bild": "https://www.example.fi/b.jpg", "Bildens alt": "Barn",
         "Språk": "svenska"},
        {"Headline": "Camps", "Permalink": "https://www.example.fi/en/c", "Date": "2025-09-15",
         "Image URL": "https://www.example.fi/c.jpg", "Alt text": "Children", "Language": "en-GB",
         "Translation key": "camps"},
    ]  # fmt: skip
    path.write_text(json.dumps(records), "utf-8")
    assert report_of(cli, str(path))["imported"] == 2
    found = rows(cli)
    sv = found["https://www.example.fi/sv/l"]
    assert (sv["title"], sv["lang"], sv["image_alt"], sv["topics"]) == (
        "Läger",
        "sv",
        "Barn",
        ["lager"],
    )
    en = found["https://www.example.fi/en/c"]
    assert (en["lang"], en["translation_of"], en["image_alt"]) == ("en", "camps", "Children")


def test_markdown_language_and_hugo_translation_key(cli, workdir: Path) -> None:
    folder = workdir / "content"
    folder.mkdir()
    (folder / "leiri.fi.md").write_text(
        "---\ntitle: Leirit\nurl: https://www.example.fi/leirit\ndate: 2025-09-15\n"
        "lang: fi\ntranslationKey: leirit\n---\nHaku on auki.\n",
        "utf-8",
    )
    (folder / "leiri.de.md").write_text(
        "---\ntitle: Lager\nurl: https://www.example.fi/de/lager\ndate: 2025-09-15\n"
        "language: de-DE\ntranslationKey: leirit\n---\nDie Anmeldung ist offen.\n",
        "utf-8",
    )
    report = report_of(cli, str(folder))
    assert report["imported"] == 2
    [warning] = report["warnings"]
    assert (warning["unit"], warning["link"], warning["skipped"]) == ("file", "leiri.de.md", False)
    assert "language 'de-DE' is not one of fi, sv, en" in warning["message"]
    found = rows(cli)
    assert found["https://www.example.fi/leirit"]["lang"] == "fi"
    assert found["https://www.example.fi/de/lager"]["lang"] == "fi"  # unsupported: default
    assert {r["translation_of"] for r in found.values()} == {"leirit"}


def test_default_lang_fills_what_the_source_leaves_open(db) -> None:
    path = Path(__file__).parent / "data" / "intake" / "corpus" / "atom-sv.atom"
    report = intake.import_sources(db, Settings(), [str(path)], default_lang="en-US")
    assert report.imported == 3
    langs = dict(db.execute("SELECT url, lang FROM articles").fetchall())
    assert langs["https://www.example.fi/sv/blogg/gemenskap/"] == "sv"
    assert langs["https://www.example.fi/de/blog/gemeinschaft/"] == "en"


# --- bombs and huge fields -----------------------------------------------------------------

ALIAS_BOMB = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
title: *e
url: https://www.example.fi/pommi
date: 2025-01-01
---
"""


def test_yaml_alias_bomb_is_refused_safely(cli, db, workdir: Path) -> None:
    path = workdir / "pommi.md"
    path.write_text(ALIAS_BOMB, "utf-8")
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}: front matter uses more than {markdown.MAX_ALIASES} YAML aliases"
    )
    # A few aliases are fine, but a list or mapping is never a title.
    path.write_text(
        "---\nt: &t [a, b]\ntitle: *t\nurl: https://www.example.fi/x\ndate: 2025-01-01\n---\n",
        "utf-8",
    )
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    assert "field 'title' must be a single value, not list" in result.stderr
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_huge_front_matter_and_deep_yaml_are_one_line_errors(cli, workdir: Path) -> None:
    path = workdir / "iso.md"
    path.write_text("---\ntitle: " + "x" * 70_000 + "\n---\n", "utf-8")
    result = cli("articles", "import", str(path))
    assert result.stderr.strip() == f"error: {path}: front matter larger than 64 KB"
    path.write_text("---\ntitle: " + "[" * 20_000 + "\n---\n", "utf-8")
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_deeply_nested_json_and_xml_are_one_line_errors(cli, workdir: Path) -> None:
    deep = workdir / "syva.json"
    deep.write_text("[" * 100_000, "utf-8")
    result = cli("articles", "import", str(deep))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {deep}: invalid JSON: nested too deeply"
    xml = workdir / "syva.xml"
    xml.write_text("<rss version='2.0'><channel>" + "<a>" * 50_000 + "</channel></rss>", "utf-8")
    result = cli("articles", "import", str(xml))
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_huge_fields_are_shortened_with_a_warning_naming_the_item(cli, workdir: Path) -> None:
    path = workdir / "iso.json"
    record = {
        "title": "Otsikko " * 200_000,
        "url": "https://www.example.fi/iso",
        "published": "2025-01-01",
        "summary": "sana " * 1_000_000,
        "topics": ["Aihe"] * 5,
    }
    long_link = {
        "title": "Pitkä",
        "url": "https://www.example.fi/" + "a" * 5000,
        "date": "2025-01-01",
    }
    path.write_text(json.dumps([record, long_link]), "utf-8")
    report = report_of(cli, str(path))
    assert (report["imported"], report["skipped"]) == (1, 1)
    messages = [(w["position"], w["link"], w["message"]) for w in report["warnings"]]
    assert messages[0][:2] == (1, "https://www.example.fi/iso")
    assert messages[0][2].startswith("title shortened from ")
    assert messages[1][2].startswith("summary shortened from ")
    assert messages[2][0] == 2 and "link longer than 2048 characters" in messages[2][2]
    [row] = rows(cli).values()
    assert len(row["title"]) <= 300 and len(row["summary"]) <= 3000


def test_impossible_dates_are_never_a_different_date(cli, workdir: Path) -> None:
    path = workdir / "paivat.csv"
    path.write_text(
        "url,title,published\n"
        "https://www.example.fi/1,Yksi,2025-02-30\n"
        "https://www.example.fi/2,Kaksi,31.13.2025\n"
        "https://www.example.fi/3,Kolme,0001-01-01\n"
        "https://www.example.fi/4,Neljä,2025-02-28\n",
        "utf-8",
    )
    report = report_of(cli, str(path))
    assert (report["imported"], report["skipped"]) == (1, 3)
    assert [w["position"] for w in report["warnings"]] == [2, 3, 4]
    assert list(rows(cli)) == ["https://www.example.fi/4"]


# --- intro files and small helpers ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "utf-8-sig", "utf-16"])
def test_intro_file_in_spreadsheet_and_editor_encodings(cli, db, workdir: Path, encoding) -> None:
    add_articles(db, sample_articles(BASE))
    (workdir / "intro.txt").write_bytes("Hyvää syksyä – tervetuloa!\n".encode(encoding))
    cli.ok("build", "-t", TOPIC_SLUG, "--since", "2025-08-01", "--intro-file", "intro.txt")
    assert "Hyvää syksyä – tervetuloa!" in (workdir / "editions/edition-1.html").read_text("utf-8")


def test_intro_file_in_no_known_encoding_is_one_line_error(cli, db, workdir: Path) -> None:
    add_articles(db, sample_articles(BASE))
    (workdir / "intro.txt").write_bytes(b"Hyv\xe4\xe4 \x8f")
    result = cli("build", "-t", TOPIC_SLUG, "--since", "2025-08-01", "--intro-file", "intro.txt")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: cannot read intro.txt: byte 0x8f at offset 6 is neither UTF-8 nor Windows-1252:"
        " save the file as UTF-8"
    )


@pytest.mark.parametrize(
    ("summary", "kept"),
    [
        ("Tekstiä… Lue lisää “Otsikko”", "Tekstiä…"),
        ("Tekstiä [&hellip;]", "Tekstiä [&hellip;]"),  # entities are decoded before this
        ("Tekstiä […]", "Tekstiä…"),
        ("Text. Continue reading Title →", "Text."),
        ("Texten. Läs mer »", "Texten."),
        ("Lue lisää sivuiltamme. Siellä on paljon.", "Lue lisää sivuiltamme. Siellä on paljon."),
        ("Body. The post Hi appeared first on Site.", "Body."),
        ("Read more", ""),
    ],
)  # fmt: skip
def test_read_more_links_leave_summaries(summary: str, kept: str) -> None:
    assert strip_read_more(summary) == kept


def test_decode_text_tells_encodings_apart() -> None:
    text = "Äiti ja lapsi – 5 €"
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "cp1252"):
        assert decode_text(text.encode(encoding), "x") == text


def test_strict_problems_raise_on_the_first_skip() -> None:
    problems = Problems(strict=True)
    with pytest.raises(ValueError, match="item 1: bad"):
        problems.skip(Problem("bad", 1))


def test_docs_list_every_accepted_field_name() -> None:
    from newsletter.content.intake.records import FIELD_NAMES

    docs = (Path(__file__).parent.parent / "docs" / "articles.md").read_text("utf-8")
    table = {
        line.split("|")[1].split("(")[0].strip(): line.split("|")[2].strip()
        for line in docs.splitlines()
        if line.startswith("| ") and line.count("|") == 3
    }
    for field, names in FIELD_NAMES.items():
        assert table[field] == ", ".join(names), field


def test_item_language_beats_the_channel_language() -> None:
    from newsletter.content.intake import feeds

    body = (
        b'<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b"<channel><title>t</title><link>https://www.example.fi/</link><language>fi-FI</language>"
        b"<item><title>Svenska</title><link>https://www.example.fi/sv</link><dc:language>sv"
        b"</dc:language><pubDate>Mon, 06 Oct 2025 09:00:00 +0300</pubDate></item>"
        b"<item><title>Suomi</title><link>https://www.example.fi/fi</link>"
        b"<pubDate>Mon, 06 Oct 2025 09:00:00 +0300</pubDate></item>"
        b"<item><title>Norsk</title><link>https://www.example.fi/no</link><dc:language>nb-NO"
        b"</dc:language><pubDate>Mon, 06 Oct 2025 09:00:00 +0300</pubDate></item>"
        b"</channel></rss>"
    )
    problems = Problems()
    found = feeds.parse_feed(body, Settings(), problems)
    assert [(a.title, a.lang) for a in found] == [
        ("Svenska", "sv"),
        ("Suomi", "fi"),
        ("Norsk", None),
    ]
    [warning] = problems.found
    assert (warning.position, warning.link, warning.skipped) == (
        3,
        "https://www.example.fi/no",
        False,
    )
    assert "language 'nb-NO' is not one of fi, sv, en" in warning.message


@pytest.mark.parametrize("encoding", ["bogus", "x-mac-roman", "unicode", "x-sjis", "utf-32"])
def test_an_encoding_python_does_not_know_is_no_traceback(cli, workdir: Path, encoding) -> None:
    path = workdir / "koodaus.xml"
    path.write_bytes(
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://www.example.fi/</link><item><title>Äänestys</title>"
        "<link>https://www.example.fi/a</link><media:content xmlns:media="
        '"http://search.yahoo.com/mrss/" url="https://www.example.fi/k.jpg" medium="image"/>'
        "<pubDate>Mon, 06 Oct 2025 09:00:00 +0300</pubDate></item></channel></rss>".encode()
    )
    result = cli("articles", "import", str(path), "--json")
    assert "Traceback" not in result.stderr
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 1
    [row] = rows(cli).values()
    assert row["image"] == "https://www.example.fi/k.jpg"


def test_atom_hreflang_alternates_link_the_language_versions() -> None:
    from newsletter.content.intake import feeds

    entry = (
        '<entry xml:lang="{lang}"><title>{title}</title><id>tag:x,2025:{lang}</id>'
        "<updated>2025-10-06T10:15:00+03:00</updated>"
        '<link rel="alternate" hreflang="fi-FI" href="/fi/leirit"/>'
        '<link rel="alternate" hreflang="sv-FI" href="/sv/lager"/></entry>'
    )
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        '<link href="https://www.example.fi/"/>'
        + entry.format(lang="fi", title="Leirit")
        + entry.format(lang="sv", title="Läger")
        + "</feed>"
    ).encode()
    found = feeds.parse_feed(body, Settings())
    assert [(a.title, a.url, a.lang) for a in found] == [
        ("Leirit", "https://www.example.fi/fi/leirit", "fi"),
        ("Läger", "https://www.example.fi/sv/lager", "sv"),
    ]
    assert {a.translation_of for a in found} == {"https://www.example.fi/fi/leirit"}


def test_a_csv_cell_beyond_the_csv_limit_names_its_line(cli, db, workdir: Path) -> None:
    path = workdir / "iso.csv"
    path.write_text(
        "url,title,published,summary\nhttps://www.example.fi/1,Yksi,2025-01-01,lyhyt\n"
        f'https://www.example.fi/2,Kaksi,2025-01-01,"{"x" * 200_000}"\n',
        "utf-8",
    )
    result = cli("articles", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: {path}: line 3: field larger than field limit")
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


@pytest.mark.parametrize(
    "written",
    ["2025-02-30", "2025-02-31T01:02:03", "2025-01-32T10:00:00Z", "31.2.2025"],
)
def test_a_date_feedparser_would_roll_over_is_skipped_not_moved(written: str) -> None:
    from newsletter.content.intake import feeds

    body = (
        '<rss version="2.0"><channel><title>t</title><link>https://www.example.fi/</link>'
        f"<item><title>Päivä</title><link>https://www.example.fi/p</link><pubDate>{written}"
        "</pubDate></item></channel></rss>"
    ).encode()
    problems = Problems()
    assert feeds.parse_feed(body, Settings(), problems) == []
    [problem] = problems.found
    assert problem.skipped and written in problem.message


def test_a_bad_file_in_a_markdown_folder_is_skipped_and_named(cli, workdir: Path) -> None:
    folder = workdir / "posts"
    folder.mkdir()
    (folder / "hyva.md").write_text(
        "---\ntitle: Hyvä\nurl: https://www.example.fi/hyva\ndate: 2025-09-01\n---\nTeksti.\n",
        "utf-8",
    )
    (folder / "pommi.md").write_text(ALIAS_BOMB, "utf-8")
    report = report_of(cli, str(folder))
    assert (report["imported"], report["skipped"]) == (1, 1)
    [warning] = report["warnings"]
    assert (warning["unit"], warning["link"]) == ("file", "pommi.md")
    assert "more than 20 YAML aliases" in warning["message"]
    result = cli("articles", "import", str(folder))
    assert f"warning: {folder}: pommi.md skipped: front matter uses more than 20" in result.stderr
