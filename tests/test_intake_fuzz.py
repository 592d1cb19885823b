"""Property tests: no feed, JSON, CSV or front matter makes intake raise (a traceback for
the user) or leave a source half-stored. Every input ends as imported items, warnings, or
one error for its source with the database as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.config import Settings
from newsletter.content import intake
from newsletter.content.intake.records import FIELD_NAMES
from newsletter.store.db import open_db

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = sorted({name for names in FIELD_NAMES.values() for name in names})
TRICKY = [
    "&nbsp;", "&", "&amp;", "<", "]]>", "&#0;", "&#x110000;", "\x00", "\ufeff", "<b>", "</a>",
    "https://www.example.fi/a?x=1&y=2", "javascript:alert(1)", "Lue lisää", "…", "*a", "&a",
]  # fmt: skip
DATES = [
    "Mon, 06 Oct 2025 09:00:00 +0300", "2025-10-06T09:00:00+03:00", "2025-13-45",
    "9999-12-31T23:59:59-12:00", "Mon, 06 Oct 99999999999 09:00:00 +0300", "0000-00-00",
    "15.9.2025", "31.2.2025", "", "-1", "1e309", "2025-10-06T25:61:61Z",
]  # fmt: skip

text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(TRICKY),
    st.sampled_from(DATES),
)
urls = st.one_of(
    st.sampled_from(["https://www.example.fi/", "http://x.example/", "/suhteellinen/", ""]).flatmap(
        lambda base: st.text("abcåäö/-?&=%", max_size=12).map(lambda tail: base + tail)
    ),
    text,
)


def db_and_folder(tmp_path: Path):
    settings_ = Settings(db=tmp_path / "fuzz.db")
    return open_db(settings_.db), settings_


def snapshot(db) -> dict[str, list[tuple]]:
    return {
        table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("articles", "article_topics", "topics")
    }


def check(db, settings_: Settings, path: Path, data: bytes) -> None:
    """Import ``data``: it must not raise, and a failed source must change nothing."""
    path.write_bytes(data)
    before = snapshot(db)
    report = intake.import_sources(db, settings_, [str(path)])
    [line] = report.sources
    after = snapshot(db)
    if line.error:
        assert after == before
        assert "\n" not in line.error and "Traceback" not in line.error
        assert "internal error" not in line.error  # the last-resort net caught a bug
    else:
        stored = len(after["articles"]) - len(before["articles"])
        assert stored == line.imported
    for problem in line.problems:
        assert "\n" not in str(problem)
    strict = intake.import_sources(db, settings_, [str(path)], strict=True)
    if strict.sources[0].error:
        assert snapshot(db) == after


def xml_escape_sometimes(value: str, escape: bool) -> str:
    if not escape:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "title": text,
            "link": urls,
            "guid": text,
            "pubDate": st.one_of(st.sampled_from(DATES), text),
            "description": text,
            "category": text,
            "dc:language": st.sampled_from(["fi", "sv-FI", "en_GB", "de", "", "x" * 50]),
        },
    ),
    max_size=4,
)


@st.composite
def feeds(draw) -> bytes:
    encoding = draw(
        st.sampled_from(["utf-8", "bogus", "x-mac-roman", "unicode", "x-sjis", "latin-1"])
    )
    escape = draw(st.booleans())
    atom = draw(st.booleans())
    parts = []
    for item in draw(items):
        fields = "".join(f"<{k}>{xml_escape_sometimes(v, escape)}</{k}>" for k, v in item.items())
        parts.append(f"<entry>{fields}</entry>" if atom else f"<item>{fields}</item>")
    if atom:
        body = (
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fi"><title>t</title>'
            f"{''.join(parts)}</feed>"
        )
    else:
        body = (
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>t</title>'
            f"<link>https://www.example.fi/</link>{''.join(parts)}</channel></rss>"
        )
    document = f'<?xml version="1.0" encoding="{encoding}"?>\n{body}'.encode("utf-8", "replace")
    cut = draw(st.integers(0, len(document)))
    return document[:cut] if draw(st.booleans()) else document


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(NAMES), text), inner, max_size=5),
    ),
    max_leaves=25,
)
record = st.builds(
    lambda usual, extra: {**extra, **usual},
    st.fixed_dictionaries(
        {"url": urls},
        optional={
            "title": st.one_of(text, json_values),
            "published": st.one_of(st.sampled_from(DATES), json_values),
            "topics": st.one_of(st.lists(text, max_size=3), json_values),
            "lang": st.one_of(text, st.sampled_from(["fi-FI", "sv", "Svenska", "de"])),
            "image": urls,
        },
    ),
    st.dictionaries(
        st.sampled_from([*NAMES, "rendered", "_embedded", "version"]), json_values, max_size=4
    ),
)
records = st.lists(st.one_of(record, record, json_values), max_size=4)
json_docs = st.one_of(
    records,
    records.map(lambda r: {"articles": r}),
    records.map(lambda r: {"version": "https://jsonfeed.org/version/1.1", "items": r}),
    json_values,
)


@pytest.mark.parametrize("kind", ["feed", "json", "csv", "markdown"])
def test_no_input_raises_or_half_changes_the_database(tmp_path: Path, kind: str) -> None:
    db, settings_ = db_and_folder(tmp_path)
    path = tmp_path / {"feed": "f.xml", "json": "f.json", "csv": "f.csv", "markdown": "f.md"}[kind]
    strategy = {
        "feed": feeds(),
        "json": json_docs.map(lambda d: json.dumps(d).encode()),
        "csv": csv_files(),
        "markdown": front_matter(),
    }[kind]

    @FUZZ
    @given(data=st.one_of(strategy, st.binary(max_size=200)))
    def run(data: bytes) -> None:
        check(db, settings_, path, data)

    run()


@st.composite
def csv_files(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(st.one_of(text, urls), max_size=7), max_size=4))
    quote = draw(st.booleans())

    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    lines = [delimiter.join(header)] + [delimiter.join(map(cell, row)) for row in rows]
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    return "\n".join(lines).encode(encoding, "replace")


@st.composite
def front_matter(draw) -> bytes:
    keys = draw(st.lists(st.sampled_from(NAMES), max_size=6))
    values = st.one_of(
        text.map(json.dumps),  # a quoted YAML scalar
        text,
        st.sampled_from(
            ["&a [x, y]", "*a", "[*a, *a, *a]", "!!python/object:os.system", "{", "- - -"]
        ),
        st.sampled_from(DATES),
    )
    lines = [f"{k}: {draw(values)}" for k in keys]
    body = draw(text)
    closed = draw(st.booleans())
    document = "---\n" + "\n".join(lines) + ("\n---\n" if closed else "\n") + body
    return document.encode("utf-8", "replace")
