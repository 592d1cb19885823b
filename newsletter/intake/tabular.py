"""JSON and CSV files of articles: one record per article, fields named as in ``articles list``.

JSON is a list of objects (or an object with an ``articles`` list), so the output of
``newsletter articles list --json`` imports back unchanged. CSV has a header row; several
topics go in one cell separated by commas or semicolons.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from newsletter.articles import ArticleIn
from newsletter.config import Settings
from newsletter.intake.fields import ItemError, article_from_record


def read_json(path: Path, settings: Settings) -> list[ArticleIn]:
    return parse_json(path.read_text(encoding="utf-8-sig"), settings)


def parse_json(text: str, settings: Settings) -> list[ArticleIn]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if isinstance(data, Mapping) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of article objects")
    return _records(data, settings, "item")


def read_csv(path: Path, settings: Settings) -> list[ArticleIn]:
    # Spreadsheet exports often start with a byte order mark; utf-8-sig drops it.
    return parse_csv(path.read_text(encoding="utf-8-sig"), settings)


def parse_csv(text: str, settings: Settings) -> list[ArticleIn]:
    reader = csv.DictReader(io.StringIO(text), delimiter=_delimiter(text))
    if not reader.fieldnames:
        raise ValueError("empty CSV file: a header row is needed")
    # Line numbers count the header, as a spreadsheet shows them.
    return _records(reader, settings, "line", start=2)


def _delimiter(text: str) -> str:
    """Comma, semicolon (spreadsheets in Finnish locales) or tab: whichever the header uses most."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def _records(
    records: Iterable[Any], settings: Settings, unit: str, start: int = 1
) -> list[ArticleIn]:
    articles = []
    for number, record in enumerate(records, start=start):
        if not isinstance(record, Mapping):
            raise ValueError(f"{unit} {number}: expected an object with url, title, published")
        # csv.DictReader puts cells beyond the header under the key None.
        clean = {k: v for k, v in record.items() if k is not None}
        if unit == "line" and not any((v or "").strip() for v in clean.values()):
            continue  # blank line
        try:
            articles.append(article_from_record(clean, settings))
        except ItemError as exc:
            raise ValueError(f"{unit} {number}: {exc}") from None
    return articles
