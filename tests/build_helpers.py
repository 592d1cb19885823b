"""Test data and golden-file helpers for the edition tests (build, render, browser)."""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from newsletter.content import articles
from newsletter.content.articles import ArticleIn

GOLDEN = Path(__file__).parent / "golden"
HELSINKI = ZoneInfo("Europe/Helsinki")
TOPIC = "Yhteisövaikuttavuus"
TOPIC_SLUG = "yhteisovaikuttavuus"
LONG_WORD = "Hyvinvointialueyhteistyökehittämisohjelmakokonaisuussuunnitelma" * 3


def sample_articles(base: datetime) -> list[ArticleIn]:
    """Articles modelled on the foundation's news page, with the awkward cases built in."""
    day = timedelta(days=1)
    return [
        ArticleIn(
            url="https://www.example.fi/ajankohtaista/keski-suomi-liittyi",
            title="Keski-Suomi liittyi yhteisövaikuttavuustyöhön – tavoitteena hyvä arki kaikille",
            summary=(
                "Keski-Suomen hyvinvointialue liittyi virallisesti yhteisövaikuttavuustyöhön"
                " viime keväänä, mutta monet toimintatavat ovat alueella entuudestaan tuttuja."
            ),
            published=base,
            category="Uutiset",
            topics=[TOPIC],
            image="https://www.example.fi/media/keski-suomi.jpg",
            image_alt="Perhekeskuksen työntekijöitä pöydän ääressä",
        ),
        ArticleIn(
            url="https://www.example.fi/ajankohtaista/turvallisuus?a=1&b=2",
            title="Kuntien & järjestöjen yhteistyö <script>alert('x')</script> 🌱",
            summary='Tiivistelmässä on merkkejä: <b>lihavoitu</b> & "lainaus" 💚.',
            published=base - day,
            category="Blogi",
            topics=[TOPIC],
            image=None,
        ),
        ArticleIn(
            url="https://www.example.fi/ajankohtaista/pitka-otsikko",
            title=f"Erittäin pitkä otsikko {LONG_WORD} joka jatkuu vielä pitkään",
            summary="",
            published=base - 2 * day,
            category=None,
            topics=[TOPIC],
            image="https://www.example.fi/media/ilman-alt.png",
            image_alt=None,
        ),
    ]


def add_articles(db, items: list[ArticleIn]) -> None:
    with db.atomic():
        for item in items:
            articles.upsert(db, item)


def with_images(items: list[ArticleIn], url: str) -> list[ArticleIn]:
    """The same articles with every existing image pointing at ``url``."""
    return [replace(item, image=url) if item.image else item for item in items]


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, written by hand so no imaging library is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def readable_html(html: str) -> str:
    """One tag per line, so a golden-file diff shows what changed."""
    return re.sub(r">\s*<", ">\n<", html).strip() + "\n"


def assert_golden(name: str, actual: str) -> None:
    """Compare with ``tests/golden/<name>``; ``UPDATE_GOLDEN=1`` rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"


def unseal(text: str) -> str:
    """An edition's sealed holes (``%%NAME.<marker>%%``) written in the legacy form, so
    golden files and comparisons do not depend on the marker drawn at build time."""
    return re.sub(r"(%%[A-Z_]+)\.[0-9a-f]{32}%%", r"\1%%", text)
