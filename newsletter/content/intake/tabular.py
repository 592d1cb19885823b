"""JSON and CSV files of articles: one record per article, fields named as in ``articles list``.

JSON is a list of objects (or an object with an ``articles`` list), so the output of
``newsletter articles list --json`` imports back unchanged. CSV has a header row; several
topics go in one cell separated by commas or semicolons.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.content.articles import ArticleIn
from newsletter.content.intake.fields import ItemError, article_from_record


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
    return _records(enumerate(data, start=1), settings, "item")


def read_csv(path: Path, settings: Settings) -> list[ArticleIn]:
    # Spreadsheet exports often start with a byte order mark; utf-8-sig drops it.
    return parse_csv(path.read_text(encoding="utf-8-sig"), settings)


def parse_csv(text: str, settings: Settings) -> list[ArticleIn]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = [cell.strip() for cell in next(reader, [])]
    if not any(header):
        raise ValueError("empty CSV file: a header row is needed")
    return _records(_rows(reader, header), settings, "line")


def _rows(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) of each non-blank row, numbered as a spreadsheet shows them.

    The number is the row's first line: blank lines and line breaks inside quoted cells
    count, so it cannot be a running count of records.
    """
    previous = reader.line_num
    for row in reader:
        if any(cell.strip() for cell in row):
            yield previous + 1, dict(zip(header, row, strict=False))
        previous = reader.line_num


def _delimiter(text: str) -> str:
    """Comma, semicolon (spreadsheets in Finnish locales) or tab: whichever the header uses most."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def _records(numbered: Iterable[tuple[int, Any]], settings: Settings, unit: str) -> list[ArticleIn]:
    articles = []
    for number, record in numbered:
        if not isinstance(record, Mapping):
            raise ValueError(f"{unit} {number}: expected an object with url, title, published")
        try:
            articles.append(article_from_record(record, settings))
        except ItemError as exc:
            raise ValueError(f"{unit} {number}: {exc}") from None
    return articles
