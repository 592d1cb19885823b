"""Opening the SQLite database: pragmas, migrations, and the keys kept inside it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from newsletter.errors import NewsletterError
from newsletter.private_files import PRIVATE_MODE, ensure_folder, make_private
from newsletter.store.migrations import migrations

# How long a connection waits for another one's write lock before "database is locked".
# Sends, web threads and imports share one file; their write transactions are short, so a
# generous wait turns contention into a pause instead of an error.
BUSY_TIMEOUT = 30.0


def open_db(path: Path | str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database with the pragmas every connection needs."""
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        if path.parent != Path():
            ensure_folder(path.parent)
        _private_files(path)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=False)
        db = Database(conn)
        db.execute("PRAGMA foreign_keys = ON")
        # Erased subscribers must leave no readable bytes behind in the file.
        db.execute("PRAGMA secure_delete = ON")
        _enable_wal(db)
        # In WAL mode NORMAL loses no data on a crash of the program, only possibly the last
        # commits on a power cut, and it spares an fsync per transaction.
        db.execute("PRAGMA synchronous = NORMAL")
        if migrate and migrations.pending(db):
            # Two processes opening a new file at once would both see the same pending
            # migrations; the write lock makes the second wait and then find none left.
            with immediate(db):
                migrations.apply(db)
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise NewsletterError(f"{path}: cannot open database: {reason}") from None
    return db


def _private_files(path: Path) -> None:
    """The database holds addresses and the link key: 0600 whatever the umask.

    SQLite gives the -wal and -shm files the main file's permissions, so creating the main
    file private first makes all three private; files an older version left readable by
    others are tightened.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, PRIVATE_MODE)
        os.close(fd)
    for suffix in ("", "-wal", "-shm", "-journal"):
        make_private(Path(f"{path}{suffix}"))


def _enable_wal(db: Database) -> None:
    """Switch a new file to WAL; the setting is stored in the file, so this happens once.

    Switching needs the file to itself, and SQLite answers "locked" at once rather than
    waiting when another connection opens the same new file, so this retries.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.enable_wal()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_busy(error: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock (extended codes such as SQLITE_BUSY_SNAPSHOT too)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


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


def _configured_key(db: Database, secret: str) -> bytes:
    if secret:
        return hashlib.sha256(b"newsletter-token:" + secret.encode()).digest()
    return meta_key(db, "token_key")


def token_key(db: Database, secret: str) -> bytes:
    """Key for signing links: NEWSLETTER_SECRET when set, else one kept in the database."""
    return link_keys(db, secret)[0]


def _has_mailed(db: Database) -> bool:
    """Links went out already (an edition or a confirmation request), maybe signed by an
    earlier version that kept no record of its key: the key of today must be kept now."""
    sql = (
        "SELECT EXISTS (SELECT 1 FROM deliveries)"
        " OR EXISTS (SELECT 1 FROM events WHERE action = 'confirmation-sent')"
    )
    return bool(db.execute(sql).fetchone()[0])


def link_keys(db: Database, secret: str) -> list[bytes]:
    """The current link key, then every earlier one, newest first (for checking only)."""
    record_link_key(db, secret)
    rows = db.execute("SELECT key FROM link_keys ORDER BY id DESC").fetchall()
    return [bytes.fromhex(key) for (key,) in rows]


def record_link_key(db: Database, secret: str, *, only_changes: bool = False) -> int | None:
    """Make the configured key the current one; when it just replaced another, the number
    of earlier keys now kept for checking links already mailed (else None).

    Links in mails already sent were signed with the key of their day: setting or changing
    NEWSLETTER_SECRET must not turn them into "bad link" pages. A database from before
    keys were recorded may have signed with its own kept key: that one is kept too.
    With ``only_changes`` nothing is written unless the key replaced an earlier one, or
    links went out before keys were recorded (the command line asks this on every start; a
    first key can otherwise wait for its first use).
    """
    if only_changes and not secret and meta_get(db, "token_key") is None:
        return None  # no key made yet, so none has signed anything
    current = _configured_key(db, secret).hex()
    latest = db.execute("SELECT key FROM link_keys ORDER BY id DESC LIMIT 1").fetchone()
    if latest is not None and latest[0] == current:
        return None
    first = latest is None and meta_get(db, "token_key") in (None, current)
    if only_changes and first and not _has_mailed(db):
        return None
    with immediate(db):
        latest = db.execute("SELECT key FROM link_keys ORDER BY id DESC LIMIT 1").fetchone()
        if latest is not None and latest[0] == current:
            return None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        legacy = meta_get(db, "token_key")
        if latest is None and legacy is not None and legacy != current:
            db.execute(
                "INSERT OR IGNORE INTO link_keys (key, first_used) VALUES (?, ?)", [legacy, stamp]
            )
        # A key used before and now back (a secret set back) becomes the newest again.
        db.execute("DELETE FROM link_keys WHERE key = ?", [current])
        db.execute("INSERT INTO link_keys (key, first_used) VALUES (?, ?)", [current, stamp])
        earlier = db.execute("SELECT COUNT(*) - 1 FROM link_keys").fetchone()[0]
    return int(earlier) or None


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


# Pages of WAL between the checkpoints a long writer (a send) runs itself: ~40 MB.
SPACED_CHECKPOINT_PAGES = 10_000


@contextlib.contextmanager
def checkpoints_spaced(db: Database) -> Iterator[None]:
    """While a busy writer runs: its commits checkpoint the WAL every
    ``SPACED_CHECKPOINT_PAGES`` pages instead of every 1,000, so thousands of small commits
    (a send writing its results) copy and fsync ten times less often, and the WAL still
    stays bounded.

    A checkpoint on a thread of its own looked cheaper but starves: the WAL is reset only
    when a checkpoint has copied every frame, which never happens while commits keep
    coming, so the file grew with the send (956 MB at 100,000 messages).
    """
    previous = db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    db.execute(f"PRAGMA wal_autocheckpoint = {int(SPACED_CHECKPOINT_PAGES)}")
    try:
        yield
    finally:
        db.execute(f"PRAGMA wal_autocheckpoint = {int(previous)}")
