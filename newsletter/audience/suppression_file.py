"""The suppression list as a file of keyed hashes (``subscribers export --format
suppressions``), read back by ``subscribers import --suppress``.

An export of people does not carry what keeps erased and blocked people out: only keyed
hashes of their addresses are kept, under a key that lives in the database. This file holds
those hashes with their key, so a new database can keep the same people out. The key moves
only into a database that holds no suppressions yet (a hash made under another key could
never match again); into any other database the file is refused, and nothing changes.
No address is in the file, but with the key anyone can test whether a given address is on
the list: it is written readable by its owner only, like every export.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TextIO

from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.clock import now_iso
from newsletter.errors import NewsletterError
from newsletter.store.db import immediate, keyed_hash, meta_get, meta_key

HEADER = ["suppression_key", "hash", "reason", "created"]
_KEY = "suppression_key"
_HEX = re.compile(r"[0-9a-f]{64}")


def write(db: Database, out: TextIO) -> int:
    """Every suppression entry with the key its hash was made with; how many."""
    key = meta_key(db, _KEY).hex()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for digest, reason, created in db.execute(
        "SELECT hash, reason, created FROM suppressions ORDER BY created, hash"
    ):
        writer.writerow([key, digest, reason, created])
        count += 1
    return count


def is_hash_file(path: Path) -> bool:
    """Does the file start with this module's header (and so hold hashes, not people)?"""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline(200)
    except OSError:
        return False  # the importer reports the file's problem in its own words
    return first.strip().lstrip("\ufeff") == ",".join(HEADER)


def read_back(db: Database, path: Path, *, dry_run: bool = False) -> tuple[int, int]:
    """Add the file's entries to the suppression list: (rows, new entries). People here
    whose address matches an entry are unsubscribed from everything. All or nothing."""
    rows = _rows(path)
    if not rows:
        return 0, 0
    key = rows[0][0]
    source = f"import:{path.name}"
    with immediate(db):
        _check_key(db, key, path)
        known = {row[0] for row in db.execute("SELECT hash FROM suppressions")}
        added = len({row[1] for row in rows} - known)
        if dry_run:
            return len(rows), added
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [_KEY, key])
        db.conn.executemany(
            "INSERT OR IGNORE INTO suppressions (hash, reason, created) VALUES (?, ?, ?)",
            [(digest, reason, created or now_iso()) for _, digest, reason, created in rows],
        )
        _unsubscribe_matches(db, bytes.fromhex(key), {row[1] for row in rows}, source)
    return len(rows), added


def _rows(path: Path) -> list[tuple[str, str, str, str]]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(HEADER) or not (_HEX.fullmatch(row[0]) and _HEX.fullmatch(row[1])):
                raise NewsletterError(f"{path.name}:{line}: not a suppression entry")
            rows.append((row[0], row[1], row[2] or "suppressed", row[3]))
    if len({row[0] for row in rows}) > 1:
        raise NewsletterError(f"{path.name}: entries made with different keys")
    return rows


def _check_key(db: Database, key: str, path: Path) -> None:
    """The file's key may become this database's only while no hash here was made with
    another one."""
    if meta_get(db, _KEY) == key:
        return
    if db.execute("SELECT 1 FROM suppressions LIMIT 1").fetchone() is not None:
        raise NewsletterError(
            f"{path.name} comes from a database with another suppression key and this one"
            " already has a suppression list: copy the database file to move it instead"
        )


def _unsubscribe_matches(db: Database, key: bytes, hashes: set[str], source: str) -> None:
    for sid, address in db.execute("SELECT id, email FROM subscribers").fetchall():
        if keyed_hash(key, subscribers.email_key(address)) in hashes:
            subscribers.unsubscribe(db, sid, None, source)
