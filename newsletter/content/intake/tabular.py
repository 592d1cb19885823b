"""JSON and CSV files of articles: one record per article, fields named as in ``articles list``.

JSON is a list of objects (or an object with an ``articles`` list), so the output of
``newsletter articles list --json`` imports back unchanged; a JSON Feed or a WordPress REST
API export is recognised by its shape. CSV has a header row; several topics go in one cell
separated by commas or semicolons. Both may be UTF-8 (with or without BOM), UTF-16 or
Windows-1252, as spreadsheets save them.
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
from newsletter.content.intake import jsonfeed
from newsletter.content.intake.fields import ItemError
from newsletter.content.intake.problems import Problem, Problems
from newsletter.content.intake.records import (
    article_from_record,
    field_key,
    missing_link_error,
    names_a_link,
)
from newsletter.content.intake.text import collapse, decode_text, raw_text_of

MAX_COLUMNS = 200


def read_json(path: Path, settings: Settings, problems: Problems) -> list[ArticleIn]:
    return parse_json(decode_text(path.read_bytes(), path.name), settings, problems)


def parse_json(text: str, settings: Settings, problems: Problems | None = None) -> list[ArticleIn]:
    problems = problems if problems is not None else Problems()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. a number with thousands of digits
        raise ValueError(f"invalid JSON: {exc}") from None
    if jsonfeed.is_json_feed(data):
        return jsonfeed.parse_json_feed(data, settings, problems)
    if isinstance(data, Mapping) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if not isinstance(data, list):
        raise ValueError("expected a JSON list of article objects, or a JSON Feed")
    objects = [r for r in data if isinstance(r, Mapping)]
    if objects and not any(jsonfeed.is_wordpress_post(r) or names_a_link(r) for r in objects):
        raise ValueError(missing_link_error(dict.fromkeys(k for r in objects for k in r)))
    return _records(enumerate(data, start=1), settings, problems, "item")


def read_csv(path: Path, settings: Settings, problems: Problems) -> list[ArticleIn]:
    return parse_csv(decode_text(path.read_bytes(), path.name), settings, problems)


def parse_csv(text: str, settings: Settings, problems: Problems | None = None) -> list[ArticleIn]:
    problems = problems if problems is not None else Problems()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header = [cell.strip() for cell in next(reader, [])][:MAX_COLUMNS]
    if not any(header):
        raise ValueError("empty CSV file: a header row is needed")
    if not names_a_link(header):
        raise ValueError(missing_link_error(header))
    return _records(_rows(reader, header), settings, problems, "line")


def _rows(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record) of each non-blank row, numbered as a spreadsheet shows them.

    The number is the row's first line: blank lines and line breaks inside quoted cells
    count, so it cannot be a running count of records.
    """
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the csv module's 128 KB limit
            raise ValueError(f"line {previous + 1}: {exc}") from None
        if any(cell.strip() for cell in row):
            yield previous + 1, dict(zip(header, row, strict=False))
        previous = reader.line_num


def _delimiter(text: str) -> str:
    """Comma, semicolon (spreadsheets in Finnish locales) or tab: whichever the header uses most."""
    header = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=header.count)


def _records(
    numbered: Iterable[tuple[int, Any]], settings: Settings, problems: Problems, unit: str
) -> list[ArticleIn]:
    articles = []
    for number, record in numbered:
        if not isinstance(record, Mapping):
            problems.skip(
                Problem("expected an object with url, title, published", number, unit=unit)
            )
            continue
        keys = {field_key(k): v for k, v in record.items()}
        link = collapse(raw_text_of(keys, "url", "link"))[:300] or None
        guid = collapse(raw_text_of(keys, "guid", "id"))[:300] or None
        warn = problems.warner(number, guid, link, unit)
        try:
            if jsonfeed.is_wordpress_post(record):
                articles.append(jsonfeed.wordpress_post(record, settings, warn))
            else:
                articles.append(article_from_record(record, settings, warn))
        except ItemError as exc:
            problems.skip(Problem(str(exc), number, guid, link, unit))
    return articles
