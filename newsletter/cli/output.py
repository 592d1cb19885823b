"""Output for people and for scripts: rich tables with headers, streamed JSON arrays.

Both stream. ``--json`` writes one array element as soon as its row arrives, so memory stays
flat however long the list is, and the text is exactly what ``json.dumps(rows, indent=2)``
would give. A table needs its rows to size its columns, so it is printed in blocks of
``TABLE_BLOCK`` rows, each with its header: a list of a million people costs one block of
memory, and the first rows appear at once.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

TABLE_BLOCK = 1000
# The widest a table cell is shown: one very long value (a 3000-character name, a title) must
# not pad every other row of its block to its width. ``--json`` keeps every value whole.
CELL_WIDTH = 60


def limited(rows: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """The first ``limit`` rows (all without a limit), without reading the rest."""
    return iter(rows) if limit is None else islice(rows, limit)


def print_json_rows(rows: Iterable[Any]) -> int:
    """Stream a JSON array, element by element; returns how many were written."""
    out = sys.stdout
    count = 0
    for row in rows:
        out.write(("[\n  " if count == 0 else ",\n  ") + _dump(row, 1))
        count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count


# Scalars go through the C encoder; json.dumps with indent= uses the pure-Python one, which
# cost 150 us a row. _dump lays out containers exactly as json.dumps(indent=2) does.
_SCALAR = json.JSONEncoder(ensure_ascii=False, default=str)


_STRING = json.encoder.encode_basestring  # C when available, as json.dumps(ensure_ascii=False)
_LITERALS = {None: "null", True: "true", False: "false"}


def _dump(value: Any, level: int) -> str:
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if kind is int:
        return int.__repr__(value)
    if value is None or kind is bool:
        return _LITERALS[value]
    if isinstance(value, dict):
        if not value:
            return "{}"
        if not all(isinstance(key, str) for key in value):  # json's own key rules
            return _indent(json.dumps(value, ensure_ascii=False, indent=2, default=str), level)
        inner = ",\n".join(
            f"{'  ' * (level + 1)}{_STRING(key)}: {_dump(item, level + 1)}"
            for key, item in value.items()
        )
        return "{\n" + inner + "\n" + "  " * level + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        inner = ",\n".join(f"{'  ' * (level + 1)}{_dump(item, level + 1)}" for item in value)
        return "[\n" + inner + "\n" + "  " * level + "]"
    text = _SCALAR.encode(value)
    if text.startswith(("{", "[")):  # default=str never returns one; kept exact regardless
        return _indent(json.dumps(value, ensure_ascii=False, indent=2, default=str), level)
    return text


def _indent(text: str, level: int) -> str:
    return text.replace("\n", "\n" + "  " * level)


def local_time(value: str | datetime | None, tz: ZoneInfo) -> str:
    """A stored UTC time as the organisation's clock shows it: 2026-12-01 23:54."""
    if not value:
        return ""
    from datetime import UTC

    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # everything is stored in UTC; an old row may lack the offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).isoformat(" ", "minutes")[:16]  # faster than strftime


_BREAKS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _cell(value: Any) -> str:
    """A cell as one line of plain text: a line break, tab, terminal escape or bidi control
    in stored content must not break the table or reach the terminal."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch.isprintable() or unicodedata.category(ch) == "Zs"
        else (" " if ch in _BREAKS else "\ufffd")
        for ch in text
    )


def _fit(text: str) -> str:
    """A cell cut to ``CELL_WIDTH`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "\u2026"


def _bold(text: str) -> str:
    return f"\x1b[1m{text}\x1b[0m" if sys.stdout.isatty() else text


def print_table(
    columns: Sequence[str | tuple[str, str]],
    rows: Iterable[Any],
    cells: Callable[[Any], Sequence[Any]],
    *,
    empty: str | None = None,
    caption: Callable[[int], str | None] | None = None,
) -> int:
    """Print ``rows`` as a table under ``columns`` (a header, or (header, "right")).

    ``cells`` turns a row into its cell values; ``empty`` is printed when no row came,
    ``caption(count)`` under the last block. Returns the number of rows. Plain text padded
    to each block's widest cell: rich's tables cost about 2 ms a row, too slow for long lists.
    """
    names = [c if isinstance(c, str) else c[0] for c in columns]
    right = [not isinstance(c, str) and c[1] == "right" for c in columns]
    out = sys.stdout
    count = 0
    iterator = iter(rows)
    while block := [[_fit(_cell(v)) for v in cells(row)] for row in islice(iterator, TABLE_BLOCK)]:
        widths = [max(len(name), *(len(r[i]) for r in block)) for i, name in enumerate(names)]
        out.write(_bold(_line(names, widths, right)) + "\n")
        out.write("".join(_line(r, widths, right) + "\n" for r in block))
        count += len(block)
        if len(block) < TABLE_BLOCK:
            break
    if count == 0 and empty:
        out.write(empty + "\n")
    elif count and caption is not None and (line := caption(count)):
        out.write(_cell(line) + "\n")
    out.flush()
    return count


def _line(values: Sequence[str], widths: Sequence[int], right: Sequence[bool]) -> str:
    padded = [
        v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
    ]
    return "  ".join(padded).rstrip()
