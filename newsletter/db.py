"""Opening the SQLite database: pragmas, migrations, and the keys kept inside it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from newsletter.errors import NewsletterError
from newsletter.migrations import migrations


def open_db(path: Path | str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database with the pragmas every connection needs."""
    path = Path(path)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db = Database(conn)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA foreign_keys = ON")
        # Erased subscribers must leave no readable bytes behind in the file.
        db.execute("PRAGMA secure_delete = ON")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        raise NewsletterError(f"{path}: cannot open database: {exc}") from None
    if migrate:
        migrations.apply(db)
    return db


def meta_get(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def meta_key(db: Database, name: str) -> bytes:
    """A random 32-byte key generated on first use and kept in the database."""
    value = meta_get(db, name)
    if value is None:
        with db.atomic():
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [name, secrets.token_hex(32)],
            )
        value = meta_get(db, name)
    assert value is not None
    return bytes.fromhex(value)


def token_key(db: Database, secret: str) -> bytes:
    """Key for signed links: NEWSLETTER_SECRET when set, else one kept in the database."""
    if secret:
        return hashlib.sha256(b"newsletter-token:" + secret.encode()).digest()
    return meta_key(db, "token_key")


def keyed_hash(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction that takes SQLite's write lock up front (``BEGIN IMMEDIATE``).

    ``db.atomic()`` begins DEFERRED: a transaction that reads and then writes fails at once
    with "database is locked" when another connection wrote in between (WAL snapshots cannot
    be upgraded), whatever busy_timeout says. Concurrent writers (web threads, a running
    send) use this for read-then-write work; inside it, ``db.atomic()`` nests as savepoints.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.conn.rollback()
        raise
