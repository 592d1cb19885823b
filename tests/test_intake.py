"""Article intake (feeds, JSON, CSV, Markdown, HTTP) and ``articles list``, on a real database."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.content import articles, intake
from newsletter.content.intake import download, feeds
from newsletter.content.intake.fields import parse_time, split_categories
from newsletter.content.intake.problems import Problems
from newsletter.content.intake.text import html_to_text, shorten
from newsletter.errors import NewsletterError

DATA = Path(__file__).parent / "data" / "intake"
SAMPLE = Path(__file__).parent.parent / "sample" / "articles.xml"
HELSINKI_SUMMER = timezone(timedelta(hours=3))


def STRICT() -> Problems:
    """What ``--strict`` gives a parser: the first unusable item fails the source."""
    return Problems(strict=True)


def listed(cli, *args: str) -> list[dict]:
    return json.loads(cli.ok("articles", "list", "--json", *args).stdout)


def by_url(rows: list[dict]) -> dict[str, dict]:
    return {row["url"]: row for row in rows}


def imported(cli, *sources: str | Path, extra: tuple[str, ...] = ()) -> dict:
    """The totals of an import's ``--json`` report (per-source lines are checked elsewhere)."""
    report = json.loads(cli.ok("articles", "import", *map(str, sources), *extra, "--json").stdout)
    return {key: report[key] for key in ("imported", "updated", "unchanged", "errors")}


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of the tables intake writes, to prove a failed import changed nothing."""
    return {
        table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("articles", "article_topics", "topics")
    }


# --- HTML to text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>Yksi <b>kaksi</b></p><p>kolme</p>", "Yksi kaksi kolme"),
        ('<script>alert("x")</script>Otsikko', "Otsikko"),
        ("<style>p { color: red }</style>Teksti", "Teksti"),
        ("Tiede &amp; taide &ndash; &auml;&#228;", "Tiede & taide – ää"),
        ("A < B ja 3 > 2", "A < B ja 3 > 2"),
        ("Fish & chips", "Fish & chips"),
        ("rivi<br>toinen\n\n  kolmas&nbsp;neljäs", "rivi toinen kolmas neljäs"),
        ("", ""),
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


def test_shorten_cuts_at_a_word() -> None:
    assert shorten("yksi kaksi kolme neljä", 12) == "yksi kaksi…"
    assert shorten("lyhyt", 12) == "lyhyt"


# --- categories, topics and times -----------------------------------------------------------


def test_article_types_set_the_category_and_the_rest_are_topics() -> None:
    settings = Settings()
    category, topics = split_categories(
        [
            ("blogi", None),
            ("Yhteisövaikuttavuus", None),
            ("YHTEISOVAIKUTTAVUUS", None),
            ("Uutiset", None),
            ("YOUNG-ohjelma", ""),
            ("–", None),
        ],
        settings,
    )
    # Configured spelling, first type wins; duplicates by slug and slug-less tags drop out.
    assert category == "Blogi"
    assert topics == ["Yhteisövaikuttavuus", "YOUNG-ohjelma"]


def test_type_domain_and_configured_types() -> None:
    settings = Settings().with_overrides(article_types=("Kolumni",))
    assert split_categories([("Blogi", None), ("Kolumni", None)], settings) == (
        "Kolumni",
        ["Blogi"],
    )
    assert split_categories([("Haastattelu", "TYPE"), ("Nuoret", None)], settings) == (
        "Haastattelu",
        ["Nuoret"],
    )


def test_times_keep_their_offset_and_naive_times_are_local() -> None:
    tz = Settings().tz
    assert parse_time("Fri, 15 Aug 2025 09:30:00 +0300", tz) == datetime(
        2025, 8, 15, 9, 30, tzinfo=HELSINKI_SUMMER
    )
    assert parse_time("Fri, 15 Aug 2025 06:30:00 -0000", tz) == datetime(
        2025, 8, 15, 6, 30, tzinfo=UTC
    )
    assert parse_time("2025-01-15 12:00", tz).utcoffset() == timedelta(hours=2)
    assert parse_time("2025-07-15T12:00:00Z", tz).utcoffset() == timedelta(0)
    assert parse_time("15.8.2025", tz) == datetime(2025, 8, 15, tzinfo=tz)
    other = Settings(timezone="America/New_York").tz
    assert parse_time("2025-07-15 12:00", other).utcoffset() == timedelta(hours=-4)
    with pytest.raises(ValueError, match="unreadable date"):
        parse_time("ensi tiistaina", tz)


# --- RSS ------------------------------------------------------------------------------------


def test_messy_rss_feed(cli) -> None:
    report = imported(cli, DATA / "messy.xml")
    # Seven items, two of them repeated: five articles.
    assert report == {"imported": 5, "updated": 0, "unchanged": 0, "errors": []}
    rows = by_url(listed(cli))
    assert len(rows) == 5

    html = rows["https://www.example.fi/a/html-otsikko"]
    assert html["title"] == "Tiede & taide: lihavointi – loppu"
    assert html["summary"] == "Ensimmäinen kappale & ääkkönen. Toinen kappale"
    assert html["category"] == "Kolumni"  # domain="type"
    assert html["topics"] == ["yhteisovaikuttavuus"]  # two spellings, one topic
    assert html["image"] == "https://www.example.fi/kuvat/a.jpg"
    assert html["image_alt"] == "Lapsi piirtää liidulla asfalttiin"
    assert datetime.fromisoformat(html["published"]) == datetime(
        2025, 8, 15, 9, 30, tzinfo=HELSINKI_SUMMER
    )
    assert html["published"] == "2025-08-15T09:30:00+03:00"

    bare = rows["https://www.example.fi/a/ilman-kuvaa"]
    assert (bare["summary"], bare["image"], bare["image_alt"]) == ("", None, None)
    assert bare["category"] == "Uutiset"  # "UUTISET" in the feed
    assert bare["topics"] == []
    assert bare["published"] == "2025-03-03T08:00:00+02:00"

    twice = rows["https://www.example.fi/a/tupla"]
    assert twice["summary"] == "Ensimmäinen kopio."
    assert twice["topics"] == ["nuoret", "vaikuttavuus"]

    enclosure = rows["https://www.example.fi/a/ilman-guidia"]
    assert enclosure["image"] == "https://www.example.fi/kuvat/liite.png"
    assert enclosure["summary"].startswith("Väliotsikko Koko sisältö")
    assert datetime.fromisoformat(enclosure["published"]) == datetime(
        2025, 5, 31, 21, 30, tzinfo=UTC
    )

    local = rows["https://www.example.fi/a/paikallinen"]
    assert local["published"] == "2025-06-01T00:30:00+03:00"
    assert local["image"] == "https://www.example.fi/kuvat/pikkukuva.jpg"
    assert local["image_alt"] == "Kuvateksti kohteen tasolla"


def test_script_in_a_title_is_stored_as_text(cli, db) -> None:
    cli.ok("articles", "import", str(DATA / "messy.xml"))
    stored = [row[0] for row in db.execute("SELECT title FROM articles")]
    assert stored
    assert not any("<" in title or "alert" in title for title in stored)


def test_reimport_is_idempotent_and_changes_are_updates(cli, db, workdir: Path) -> None:
    feed = workdir / "feed.xml"
    shutil.copy(DATA / "messy.xml", feed)
    assert imported(cli, feed)["imported"] == 5
    assert imported(cli, feed) == {"imported": 0, "updated": 0, "unchanged": 5, "errors": []}

    feed.write_text(
        feed.read_text(encoding="utf-8").replace("Ilman kuvaa ja tiivistelmää", "Uusi otsikko"),
        encoding="utf-8",
    )
    assert imported(cli, feed) == {"imported": 0, "updated": 1, "unchanged": 4, "errors": []}
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 5
    titles = {row["title"] for row in listed(cli)}
    assert "Uusi otsikko" in titles
    assert "Ilman kuvaa ja tiivistelmää" not in titles


def test_extra_topic_is_added_to_every_article_and_survives_reimport(cli) -> None:
    imported(cli, DATA / "messy.xml", extra=("--topic", "Kesäkirje", "--create-topic"))
    rows = listed(cli)
    assert rows
    assert all("kesakirje" in row["topics"] for row in rows)
    # A later import without --topic does not take the hand-added topic away.
    assert imported(cli, DATA / "messy.xml")["unchanged"] == 5
    assert all("kesakirje" in row["topics"] for row in listed(cli, "--topic", "KESÄKIRJE"))


def test_topic_without_letters_is_refused(cli, db) -> None:
    result = cli("articles", "import", str(DATA / "messy.xml"), "--topic", "--!")
    assert result.exit_code == 1
    assert "has no letters or digits" in result.stderr
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


# --- Atom, JSON, CSV, Markdown --------------------------------------------------------------


def test_atom_feed(cli) -> None:
    assert imported(cli, DATA / "atom.xml")["imported"] == 2
    rows = by_url(listed(cli))
    first = rows["https://www.example.fi/atom/nuoret"]
    assert first["title"] == "Nuoret & tulevaisuus"
    assert first["summary"] == "Tiivistelmä HTML:nä."
    assert first["category"] == "Blogi"  # the first type wins over scheme="type"
    assert first["topics"] == ["tulevaisuususko"]
    assert first["published"] == "2025-09-30T07:15:00+03:00"  # published, not updated
    assert (first["image"], first["image_alt"]) == (
        "https://www.example.fi/kuvat/atom.jpg",
        "Nuori istuu portailla",
    )
    second = rows["https://www.example.fi/atom/paivitys"]
    assert second["summary"] == "Sisältö XHTML:nä."
    # Only <updated>: 10:00 UTC on the day Finland moves to summer time.
    assert second["published"] == "2025-03-30T13:00:00+03:00"


def test_json_file(cli) -> None:
    assert imported(cli, DATA / "articles.json")["imported"] == 2
    rows = by_url(listed(cli))
    one = rows["https://www.example.fi/json/1"]
    assert one["title"] == "JSON-artikkeli yksi"
    assert one["summary"] == "Tiivistelmä & muuta"
    assert one["topics"] == ["vaikuttavuus", "young-ohjelma"]
    assert one["image_alt"] == "Kuvan kuvaus"
    two = rows["https://www.example.fi/json/2"]
    assert two["category"] == "Blogi"  # a type among the tags
    assert two["topics"] == ["nuoret", "tulevaisuususko"]
    assert two["published"] == "2025-07-02T00:00:00+03:00"


def test_csv_file(cli) -> None:
    assert imported(cli, DATA / "articles.csv")["imported"] == 2  # blank line skipped
    rows = by_url(listed(cli))
    one = rows["https://www.example.fi/csv/1"]
    assert one["summary"] == "Tiivistelmä, jossa pilkku"
    assert one["published"] == "2025-08-15T09:00:00+03:00"  # naive: organisation's zone
    assert one["topics"] == ["nuoret", "yhteisovaikuttavuus"]
    assert rows["https://www.example.fi/csv/2"]["category"] == "Uutiset"


def test_csv_errors_give_the_line_a_spreadsheet_shows(tmp_path: Path) -> None:
    path = tmp_path / "rivit.csv"
    path.write_text(
        "url,title,summary,published\n"
        "\n"  # blank lines count as lines...
        'https://www.example.fi/1,Yksi,"kaksi\nriviä",2025-01-01\n'  # ...and so do breaks
        "\n"
        "https://www.example.fi/2,Kaksi,,huomenna\n",
        encoding="utf-8",
    )
    with pytest.raises(NewsletterError, match=r"rivit\.csv: line 6: unreadable date 'huomenna'"):
        intake.read_source(str(path), Settings(), STRICT())


def test_markdown_folder(cli) -> None:
    assert imported(cli, DATA / "markdown")["imported"] == 2
    rows = by_url(listed(cli))
    given = rows["https://www.example.fi/md/palaute"]
    assert given["summary"] == "Lyhyet kyselyt jokaisen tapaamisen lopussa."
    assert given["category"] == "Blogi"
    assert given["topics"] == ["nuoret", "vaikuttavuus"]
    assert given["published"] == "2025-09-01T09:00:00+03:00"
    derived = rows["https://www.example.fi/md/otsikko-tekstista"]
    assert derived["title"] == "Otsikko tekstistä"
    assert derived["summary"] == (
        "Ensimmäinen kappale on tiivistelmä, jossa on korostusta ja rivinvaihto."
    )
    assert derived["category"] == "Uutiset"
    assert derived["topics"] == ["yhteisovaikuttavuus"]
    # No image in the front matter: the first one in the text, with its alt text.
    assert derived["image"] == "https://www.example.fi/kuvat/md-piha.jpg"
    assert derived["image_alt"] == "Lapset leikkivät pihalla"
    assert given["image"] == "https://www.example.fi/kuvat/palaute.jpg"


def test_markdown_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "posts"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "notes.md").write_text("ei artikkeli", encoding="utf-8")
    (folder / "_luonnos.md").write_text("ei artikkeli", encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"no \.md files in this folder"):
        intake.read_source(str(folder), Settings(), STRICT())

    (folder / "ok.md").write_text("Pelkkää tekstiä.\n", encoding="utf-8")
    with pytest.raises(NewsletterError, match=r"posts: ok\.md: no YAML front matter"):
        intake.read_source(str(folder), Settings(), STRICT())

    single = tmp_path / "yksi.md"
    single.write_text("---\ntitle: [auki\n---\nTeksti\n", encoding="utf-8")
    with pytest.raises(NewsletterError) as caught:
        intake.read_source(str(single), Settings(), STRICT())
    assert str(caught.value).startswith(f"{single}: invalid YAML front matter: ")

    single.write_text(
        "---\nTitle: Yksi\nURL: https://www.example.fi/yksi\nDate: 2025-10-01\n---\n",
        encoding="utf-8",
    )
    [article] = intake.read_source(str(single), Settings())
    assert (article.title, article.url, article.summary) == (
        "Yksi",
        "https://www.example.fi/yksi",
        "",
    )


def test_list_json_imports_back_unchanged(cli, workdir: Path) -> None:
    imported(cli, DATA / "messy.xml", DATA / "atom.xml")
    exported = cli.ok("articles", "list", "--json").stdout
    (workdir / "export.json").write_text(exported, encoding="utf-8")
    # Into the same database: matched by URL, nothing changes.
    assert imported(cli, workdir / "export.json") == {
        "imported": 0,
        "updated": 0,
        "unchanged": 7,
        "errors": [],
    }
    # Into a fresh database: the same listing.
    again = cli.ok("--db", str(workdir / "other.db"), "articles", "import", "export.json")
    assert "imported 7" in again.stdout
    # Equal times (two items here) may list in either order; compare by URL.
    again_rows = json.loads(
        cli.ok("--db", str(workdir / "other.db"), "articles", "list", "--json").stdout
    )
    assert by_url(again_rows) == by_url(json.loads(exported))


def test_guid_arriving_later_updates_the_article_stored_by_url(db) -> None:
    when = datetime(2025, 8, 1, 9, tzinfo=HELSINKI_SUMMER)
    url = "https://www.example.fi/x"
    with db.atomic():
        first = articles.upsert(db, articles.ArticleIn(url=url, title="X", published=when))
        second = articles.upsert(
            db, articles.ArticleIn(url=url, title="X", published=when, guid="guid-x")
        )
        third = articles.upsert(
            db, articles.ArticleIn(url=url, title="X", published=when, guid="guid-x")
        )
    assert (first, second, third) == ("imported", "updated", "unchanged")
    assert db.execute("SELECT guid FROM articles").fetchall() == [("guid-x",)]


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("broken.xml", "not a well-formed feed, read leniently: no element found at line 15"),
        ("bad-item.json", "item 2: 'Osoite puuttuu' has no link (accepted names: url, link,"),
        (
            "bad-link.json",
            "item 2: 'Skriptilinkki' has a link that is not an http(s) address:"
            " 'javascript:alert(1)'",
        ),
        (
            "atom-no-link.xml",
            "item 2: 'Linkitön' has a link that is not an http(s) address: 'urn:uuid:",
        ),
        ("bad-date.csv", "line 4: unreadable date 'ensi viikolla'"),
    ],
)
def test_strict_makes_any_problem_a_one_line_error_and_changes_nothing(
    cli, db, name, message
) -> None:
    cli.ok("articles", "import", str(DATA / "atom.xml"))
    before = snapshot(db)
    result = cli("articles", "import", str(DATA / name), "--strict")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {DATA / name}: ")
    assert message in lines[0]
    assert lines[0].endswith("(--strict)")
    assert "Traceback" not in result.stderr
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not-a-feed.html", "not a well-formed feed"),
        ("missing.xml", "no such file or folder"),
    ],
)
def test_unreadable_source_is_one_line_error_and_database_unchanged(cli, db, name, message) -> None:
    cli.ok("articles", "import", str(DATA / "atom.xml"))
    before = snapshot(db)
    result = cli("articles", "import", str(DATA / name))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {DATA / name}: ")
    assert message in lines[0]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("name", "good", "position", "link", "message"),
    [
        ("broken.xml", 1, None, None, "not a well-formed feed, read leniently"),
        ("bad-item.json", 1, 2, None, "'Osoite puuttuu' has no link"),
        ("bad-link.json", 1, 2, "javascript:alert(1)", "has a link that is not an http(s)"),
        (
            "atom-no-link.xml",
            1,
            2,
            "urn:uuid:6f1c2d3e-0000-4000-8000-000000000012",
            "'Linkitön' has a link that is not an http(s)",
        ),
        ("bad-date.csv", 1, 4, "https://www.example.fi/csv/2", "unreadable date 'ensi viikolla'"),
    ],
)
def test_lenient_import_keeps_the_good_items_and_names_the_bad_ones(
    cli, name, good, position, link, message
) -> None:
    result = cli("articles", "import", str(DATA / name), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == good
    [warning] = [w for w in report["warnings"] if message in w["message"]]
    assert warning["source"] == str(DATA / name)
    assert warning["position"] == position
    assert warning["link"] == link
    assert message in warning["message"]
    assert warning["skipped"] is (position is not None)
    [line] = report["sources"]
    assert (line["ok"], line["imported"]) == (True, good)
    assert line["skipped"] == sum(w["skipped"] for w in report["warnings"]) >= int(bool(position))
    assert f"warning: {DATA / name}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert len(listed(cli)) == good


def test_other_sources_still_import_and_errors_are_reported(cli) -> None:
    sources = [str(DATA / n) for n in ("atom.xml", "not-a-feed.html", "articles.json")]
    result = cli("articles", "import", *sources, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["imported"] == 4
    assert [s["source"] for s in report["sources"]] == sources
    assert [s["ok"] for s in report["sources"]] == [True, False, True]
    assert [s["imported"] for s in report["sources"]] == [2, 0, 2]
    assert report["errors"] == [report["sources"][1]["error"]]
    assert report["errors"][0].startswith(f"{sources[1]}: not a well-formed feed")
    assert f"error: {sources[1]}" in result.stderr
    # Without --json: a line per source and a total.
    text = cli("articles", "import", *sources)
    assert text.exit_code == 1
    assert text.stdout.splitlines() == [
        f"{sources[0]}: imported 0, updated 0, unchanged 2",
        f"{sources[1]}: failed",
        f"{sources[2]}: imported 0, updated 0, unchanged 2",
        "total: imported 0, updated 0, unchanged 4; 1 of 3 sources failed",
    ]


def test_failure_while_storing_rolls_back_the_whole_source(cli, db, workdir: Path) -> None:
    cli.ok("articles", "import", str(DATA / "atom.xml"))
    # A real SQLite refusal in the middle of a source: the earlier items must not stay.
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON articles WHEN NEW.title = 'Tuplattu juttu'"
        " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
    )
    before = snapshot(db)
    result = cli("articles", "import", str(DATA / "messy.xml"))
    assert result.exit_code == 1
    assert "database error: refused by test trigger" in result.stderr
    assert snapshot(db) == before


def test_import_sources_reports_progress_per_source(db) -> None:
    calls: list[tuple[str, int, int, bool]] = []
    report = intake.import_sources(
        db,
        Settings(),
        [str(DATA / "atom.xml"), str(DATA / "not-a-feed.html")],
        progress=lambda *args: calls.append(args),
    )
    atom, broken = str(DATA / "atom.xml"), str(DATA / "not-a-feed.html")
    assert calls == [
        (atom, 0, 0, False),
        (atom, 0, 2, False),
        (atom, 1, 2, False),
        (atom, 2, 2, False),
        (atom, 2, 2, True),
        (broken, 0, 0, False),
        (broken, 0, 0, True),
    ]
    assert (report.imported, len(report.errors)) == (2, 1)


# --- over HTTP ------------------------------------------------------------------------------


class FeedServer:
    """A real http.server on loopback serving the test data; it records request headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(DATA), **kwargs)

            def do_GET(self):
                server.headers.append(dict(self.headers.items()))
                super().do_GET()

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def test_feed_over_http(cli, feed_server: FeedServer) -> None:
    url = f"{feed_server.url}/messy.xml"
    assert imported(cli, url)["imported"] == 5
    assert feed_server.headers[0]["User-Agent"].startswith("newsletter/")
    html = by_url(listed(cli))["https://www.example.fi/a/html-otsikko"]
    assert html["title"] == "Tiede & taide: lihavointi – loppu"
    assert imported(cli, url)["unchanged"] == 5


@pytest.mark.parametrize(
    "name",
    ["articles.json", "articles.csv", "corpus/jsonfeed-1.1.json", "corpus/wp-rest-embed.json"],
)
def test_json_and_csv_over_http(cli, feed_server: FeedServer, name: str) -> None:
    local = imported(cli, DATA / name)
    assert local["imported"] == 2
    # The same records fetched over HTTP are the same articles.
    assert imported(cli, f"{feed_server.url}/{name}")["unchanged"] == 2


def test_http_errors_name_the_url(cli, db, feed_server: FeedServer) -> None:
    missing = f"{feed_server.url}/ei-ole.xml"
    result = cli("articles", "import", missing)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {missing}: HTTP 404 File not found"
    broken = f"{feed_server.url}/not-a-feed.html"
    result = cli("articles", "import", broken)
    assert result.exit_code == 1
    assert f"error: {broken}: not a well-formed feed" in result.stderr
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_http_timeout_is_an_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(5)  # answers only after the client gave up

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setattr(download, "READ_TIMEOUT", 0.5)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
        result = cli("articles", "import", url)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: {url}: ")
    assert "0.5 seconds" in result.stderr or "timed out" in result.stderr


# --- articles list --------------------------------------------------------------------------


def test_list_filters_by_topic_and_inclusive_local_days(cli) -> None:
    imported(cli, DATA / "messy.xml")
    june = listed(cli, "--since", "2025-06-01")
    # 00:30 on 1 June in Helsinki is still 31 May in UTC, and counts as 1 June.
    assert "https://www.example.fi/a/paikallinen" in by_url(june)
    # 21:30 UTC on 31 May is 00:30 on 1 June in Helsinki as well.
    assert "https://www.example.fi/a/ilman-guidia" in by_url(june)
    assert "https://www.example.fi/a/ilman-kuvaa" not in by_url(june)

    may = listed(cli, "--until", "2025-05-31")
    assert [row["url"] for row in may] == ["https://www.example.fi/a/ilman-kuvaa"]

    topic = listed(cli, "--topic", "Yhteisövaikuttavuus", "--since", "2025-06-01")
    assert [row["url"] for row in topic] == [
        "https://www.example.fi/a/html-otsikko",
        "https://www.example.fi/a/paikallinen",
    ]
    assert listed(cli, "--topic", "YHTEISOVAIKUTTAVUUS") == listed(
        cli, "--topic", "yhteisovaikuttavuus"
    )


def test_list_is_newest_first_with_limit_and_relative_since(cli) -> None:
    imported(cli, DATA / "messy.xml", DATA / "atom.xml")
    rows = listed(cli)
    times = [datetime.fromisoformat(row["published"]) for row in rows]
    assert times == sorted(times, reverse=True)
    assert listed(cli, "--limit", "2") == rows[:2]
    assert listed(cli, "--since", "1d") == []  # the test data is from 2025
    assert set(rows[0]) == {
        "url", "title", "summary", "published", "category", "topics", "image", "image_alt",
        "lang", "translation_of",
    }  # fmt: skip


def test_list_text_output_and_bad_options(cli) -> None:
    imported(cli, DATA / "atom.xml")
    text = cli.ok("articles", "list").stdout
    assert "30.09.2025  Blogi" in text
    assert text.splitlines()[0].split() == ["published", "type", "title", "topics", "language"]
    assert "Nuoret & tulevaisuus  tulevaisuususko" in text
    unknown = cli("articles", "list", "--topic", "ei-ole")
    assert unknown.exit_code == 1
    assert "unknown topic 'ei-ole'" in unknown.stderr
    bad_date = cli("articles", "list", "--since", "eilen")
    assert bad_date.exit_code == 1
    assert "invalid date 'eilen'" in bad_date.stderr
    assert cli("articles", "list", "--limit", "0").exit_code == 2


@pytest.mark.parametrize(
    ("since", "until"),
    [("2025-10-01", "2025-09-01"), ("2025-09-02", "2025-09-01"), ("1d", "2025-09-01")],
)
def test_list_since_later_than_until_is_one_line_error(cli, since: str, until: str) -> None:
    imported(cli, DATA / "atom.xml")
    result = cli("articles", "list", "--since", since, "--until", until)
    assert result.exit_code == 1
    assert result.stderr == f"error: --since {since} is later than --until {until}\n"
    assert result.stdout == ""
    # The same day as both ends is one whole day, not an error.
    assert [
        row["title"] for row in listed(cli, "--since", "2025-09-30", "--until", "2025-09-30")
    ] == ["Nuoret & tulevaisuus"]


# --- the bundled sample ---------------------------------------------------------------------


def test_sample_feed_fits_the_demo(cli) -> None:
    assert imported(cli, SAMPLE) == {"imported": 14, "updated": 0, "unchanged": 0, "errors": []}
    rows = listed(cli)
    assert {row["category"] for row in rows} == {"Blogi", "Uutiset"}
    community = listed(cli, "--topic", "Yhteisövaikuttavuus", "--since", "2025-06-01")
    assert len(community) >= 6
    topics = {slug for row in rows for slug in row["topics"]}
    assert {"vaikuttavuus", "tulevaisuususko", "young-ohjelma", "nuoret"} <= topics
    without_image = [row for row in rows if row["image"] is None]
    assert len(without_image) == 1
    with_image = [row for row in rows if row["image"]]
    assert all(row["image_alt"] for row in with_image)
    assert all(row["image"].startswith("https://www.example.fi/") for row in with_image)
    assert all(row["title"] and "<" not in row["title"] for row in rows)
    assert "Data & dialogi: miten yhteistä vaikuttavuutta mitataan?" in {r["title"] for r in rows}
    offsets = {datetime.fromisoformat(row["published"]).utcoffset() for row in rows}
    assert offsets == {timedelta(hours=2), timedelta(hours=3)}
    assert all("2025-03" <= row["published"][:7] <= "2025-11" for row in rows)


# --- progress on a terminal -----------------------------------------------------------------


def run_on_terminal(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run the real command with stderr on a pseudo-terminal, as a person would see it."""
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(TERM="xterm", COLUMNS="120")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "--config", "newsletter.toml", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            timeout=60,
        )
    finally:
        os.close(slave)
        reader.join(5)
        os.close(master)
    return result, b"".join(chunks).decode("utf-8", "replace")


class SlowFeed(BaseHTTPRequestHandler):
    """Answers with a real feed after a pause longer than the progress bar waits for."""

    def do_GET(self):
        time.sleep(1.5)
        body = (DATA / "atom.xml").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_progress_shows_on_a_terminal_only_when_intake_takes_a_while(cli, workdir: Path) -> None:
    quick = (str(DATA / "atom.xml"), str(DATA / "messy.xml"))
    result, terminal = run_on_terminal(workdir, "articles", "import", *quick)
    assert result.returncode == 0
    assert result.stdout.decode().splitlines()[-1] == "total: imported 7, updated 0, unchanged 0"
    assert "sources" not in terminal  # done within a second: the report only

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowFeed)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        slow = f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
        result, terminal = run_on_terminal(workdir, "articles", "import", slow, *quick)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 0
    assert result.stdout.decode().splitlines()[-1] == "total: imported 0, updated 0, unchanged 9"
    assert "sources" in terminal
    assert "3/3" in terminal or "0/3" in terminal
    # Not a terminal (captured output): no bar, just the report.
    plain = cli.ok("articles", "import", *quick)
    assert "sources" not in plain.stderr
    assert plain.stdout.splitlines()[-1] == "total: imported 0, updated 0, unchanged 7"


# --- items with parts missing ---------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>t</title><link>https://www.example.fi/</link>
<description>d</description>{channel}{items}</channel></rss>"""


def feed(items: str, channel: str = "") -> bytes:
    return RSS.format(channel=channel, items=items).encode()


def test_title_from_summary_and_date_from_channel() -> None:
    body = feed(
        "<item><link>https://www.example.fi/1</link>"
        "<description>Pelkkä kuvaus ilman otsikkoa, joka on niin pitkä, että siitä otetaan vain"
        " alku otsikoksi eikä koko tekstiä mitenkään.</description></item>",
        channel="<pubDate>Mon, 01 Sep 2025 10:00:00 +0300</pubDate>",
    )
    [item] = feeds.parse_feed(body, Settings())
    assert item.title.startswith("Pelkkä kuvaus ilman otsikkoa")
    assert item.title.endswith("…")
    assert len(item.title) <= 90
    assert item.published == datetime(2025, 9, 1, 10, tzinfo=HELSINKI_SUMMER)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("<item><title>Ei päivää</title><link>https://www.example.fi/1</link></item>",
         "item 1: 'Ei päivää' has no date"),
        ("<item><title>Ei linkkiä</title><pubDate>Mon, 01 Sep 2025 10:00:00 +0300</pubDate>"
         "</item>", "item 1: 'Ei linkkiä' has no link"),
        ("<item><link>https://www.example.fi/3</link></item>",
         "item 1: https://www.example.fi/3 has no title"),
        ("<item><title>T</title><link>https://www.example.fi/4</link>"
         "<pubDate>maanantaina</pubDate></item>", "item 1: unreadable date 'maanantaina'"),
    ],
)  # fmt: skip
def test_unusable_items_are_errors(items: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feeds.parse_feed(feed(items), Settings(), STRICT())


def test_copies_with_and_without_a_guid_are_one_article(cli, db, workdir: Path) -> None:
    """Matched as stored articles are (guid, else URL), or each copy overwrites the other
    and no re-import is ever "unchanged"."""
    when = "<pubDate>Mon, 01 Sep 2025 10:00:00 +0300</pubDate>"
    link = "<link>https://www.example.fi/a</link>"
    (workdir / "kopiot.xml").write_bytes(
        feed(
            f"<item><title>Ilman guidia</title>{link}{when}<category>Nuoret</category></item>"
            f"<item><title>Versio yksi</title>{link}<guid>g-1</guid>{when}</item>"
            f"<item><title>Versio kaksi</title>{link}{when}</item>"
        )
    )
    first = imported(cli, workdir / "kopiot.xml")
    assert first == {"imported": 1, "updated": 0, "unchanged": 0, "errors": []}
    again = imported(cli, workdir / "kopiot.xml")
    assert again == {"imported": 0, "updated": 0, "unchanged": 1, "errors": []}
    [row] = listed(cli)
    assert (row["title"], row["topics"]) == ("Ilman guidia", ["nuoret"])  # the first copy
    assert db.execute("SELECT guid FROM articles").fetchall() == [("g-1",)]  # a later one's


def test_an_empty_feed_imports_nothing(db, tmp_path: Path) -> None:
    path = tmp_path / "empty.xml"
    path.write_bytes(feed(""))
    report = intake.import_sources(db, Settings(), [str(path)])
    assert report.as_json() == {
        "imported": 0,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "errors": [],
        "warnings": [],
        "sources": [
            {
                "source": str(path),
                "ok": True,
                "imported": 0,
                "updated": 0,
                "unchanged": 0,
                "skipped": 0,
                "error": None,
                "warnings": [],
            }
        ],
    }


def test_relative_links_resolve_against_the_site() -> None:
    body = feed(
        "<item><title>Suhteellinen</title><link>/blogi/suhteellinen</link>"
        "<pubDate>Mon, 01 Sep 2025 10:00:00 +0300</pubDate>"
        '<enclosure url="kuvat/k.jpg" type="image/jpeg" length="1"/></item>'
    )
    [item] = feeds.parse_feed(body, Settings())
    assert item.url == "https://www.example.fi/blogi/suhteellinen"
    assert item.image == "https://www.example.fi/kuvat/k.jpg"


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "data:text/html,x", "mailto:toimitus@example.fi", "https:///polku"],
)
@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_links_that_are_not_http_are_bad_items(link: str, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"outo{suffix}"
    if suffix == ".json":
        record = {"url": link, "title": "Outo linkki", "published": "2025-07-02"}
        path.write_text(json.dumps([record]), encoding="utf-8")
    else:
        path.write_text(f'url,title,published\n"{link}",Outo linkki,2025-07-02\n', encoding="utf-8")
    with pytest.raises(NewsletterError, match="'Outo linkki' has a link that is not an http"):
        intake.read_source(str(path), Settings(), STRICT())


def test_a_markdown_link_that_is_not_http_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "---\ntitle: Skripti\nurl: javascript:alert(1)\npublished: 2025-07-02\n---\nTeksti.\n",
        encoding="utf-8",
    )
    with pytest.raises(NewsletterError, match=r"a\.md: 'Skripti' has a link that is not an http"):
        intake.read_source(str(tmp_path), Settings(), STRICT())


def test_a_relative_link_without_a_site_address_is_a_bad_item() -> None:
    # No channel <link> to resolve against: the link stays relative, which no reader can open.
    body = RSS.replace("<link>https://www.example.fi/</link>", "").format(
        channel="",
        items="<item><title>Suhteellinen</title><link>/blogi/x</link>"
        "<pubDate>Mon, 01 Sep 2025 10:00:00 +0300</pubDate></item>",
    )
    with pytest.raises(ValueError, match="item 1: 'Suhteellinen' has a link that is not an http"):
        feeds.parse_feed(body.encode(), Settings(), STRICT())


def test_refused_and_cut_off_downloads_are_errors(cli, db) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = f"http://127.0.0.1:{closed_port}/feed.xml"
    result = cli("articles", "import", refused)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {refused}: cannot fetch:")

    class CutOff(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write((DATA / "messy.xml").read_bytes()[:500])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CutOff)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
        result = cli("articles", "import", url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {url}: cannot fetch:")
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_import_waits_for_another_writer(cli, db, settings) -> None:
    """A send or the web server writing at the same time delays an import, never breaks it."""
    holding, done = threading.Event(), threading.Event()

    def other_writer() -> None:
        other = sqlite3.connect(str(settings.db), timeout=30)
        other.isolation_level = None
        other.execute("BEGIN IMMEDIATE")
        other.execute(
            "INSERT INTO topics (slug, name, created) VALUES ('muu', 'Muu', '2025-01-01')"
        )
        holding.set()
        time.sleep(0.5)
        other.execute("COMMIT")
        other.close()
        done.set()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert holding.wait(10)
    report = imported(cli, DATA / "atom.xml")
    writer.join(10)
    assert done.is_set()
    assert report == {"imported": 2, "updated": 0, "unchanged": 0, "errors": []}
    assert db.execute("SELECT count(*) FROM topics WHERE slug = 'muu'").fetchone()[0] == 1


def test_an_image_mail_clients_cannot_fetch_is_dropped(db) -> None:
    from datetime import UTC, datetime

    from newsletter.content.articles import ArticleIn, select, upsert

    for n, image in enumerate(["javascript:alert(1)", "data:image/png;base64,AAAA", "kuva.jpg"]):
        upsert(
            db,
            ArticleIn(
                url=f"https://www.example.fi/a/{n}", title=f"Artikkeli {n}",
                published=datetime(2025, 8, 15, tzinfo=UTC), image=image, image_alt="Kuva",
            ),
        )  # fmt: skip
    upsert(
        db,
        ArticleIn(
            url="https://www.example.fi/a/ok", title="Hyvä", image_alt="Kuva",
            published=datetime(2025, 8, 15, tzinfo=UTC), image="https://www.example.fi/k.jpg",
        ),
    )  # fmt: skip
    stored = {a.url.rsplit("/", 1)[1]: (a.image, a.image_alt) for a in select(db)}
    assert stored == {
        "0": (None, None),
        "1": (None, None),
        "2": (None, None),
        "ok": ("https://www.example.fi/k.jpg", "Kuva"),
    }
