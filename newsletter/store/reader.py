"""A read-only connection for quick reports (``newsletter status``), without sqlite-utils.

Opening through ``db.open_db`` loads sqlite-utils and checks the migrations, a good part of
a short command's start-up. A report that only counts rows reads the file as it is; when
the file does not exist yet or its schema is older than the query needs, the caller falls
back to ``open_db`` (which creates and migrates).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

BUSY_TIMEOUT = 30.0  # as store/db.py: a read waits out a checkpoint, never a whole send


def read_only(path: Path | str) -> sqlite3.Connection | None:
    """The database opened read-only, or None when there is no such file yet."""
    path = Path(path)
    if not path.is_file():
        return None
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
    conn.execute("PRAGMA query_only = ON")
    return conn


def schema_too_old(exc: sqlite3.Error) -> bool:
    """A table or column the query needs is missing: migrations not applied yet."""
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith("no such ")
