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
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import typer

if TYPE_CHECKING:
    from rich.console import Console

TABLE_BLOCK = 1000
WIDE = 200  # columns of a table that goes to a file or a pipe, where nothing wraps lines


def limited(rows: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """The first ``limit`` rows (all without a limit), without reading the rest."""
    return iter(rows) if limit is None else islice(rows, limit)


def print_json_rows(rows: Iterable[Any]) -> int:
    """Stream a JSON array, element by element; returns how many were written."""
    out = sys.stdout
    count = 0
    for row in rows:
        text = json.dumps(row, ensure_ascii=False, indent=2, default=str)
        out.write(("[\n" if count == 0 else ",\n") + _indent(text))
        count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


def local_time(value: str | datetime | None, tz: ZoneInfo) -> str:
    """A stored UTC time as the organisation's clock shows it: 2026-12-01 23:54."""
    if not value:
        return ""
    from datetime import UTC

    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # everything is stored in UTC; an old row may lack the offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _console() -> Console:
    from rich.console import Console

    # Console() reads sys.stdout when it writes, so test runners that swap it still capture.
    terminal = sys.stdout.isatty()
    return Console(width=None if terminal else WIDE, soft_wrap=False, highlight=False)


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
    ``caption(count)`` is printed under the last block. Returns the number of rows.
    """
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    count = 0
    iterator = iter(rows)
    while True:
        block = list(islice(iterator, TABLE_BLOCK))
        if not block and count:
            break
        if not block:
            if empty:
                typer.echo(empty)
            return 0
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            name, justify = (column, "left") if isinstance(column, str) else column
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row in block:
            # Content is data, never markup: a title with [bold] prints as typed.
            table.add_row(*(escape("" if c is None else str(c)) for c in cells(row)))
        console.print(table)
        count += len(block)
        if len(block) < TABLE_BLOCK:
            break
    if caption is not None:
        line = caption(count)
        if line:
            console.print(escape(line))
    return count
