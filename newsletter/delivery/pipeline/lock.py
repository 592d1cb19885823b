"""The edition's send lock: one live send per edition, kept alive by a heartbeat.

A send that stops beating for ``LOCK_STALE_AFTER`` seconds (frozen, or its host died) may
be taken over; the frozen one notices at its next beat and stops.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from datetime import timedelta

from sqlite_utils import Database

from newsletter.clock import from_iso, now, now_iso
from newsletter.errors import NewsletterError, NotFound
from newsletter.store.db import immediate, is_busy

# Read at call time (tests shorten them on this module).
LOCK_STALE_AFTER = 60.0  # seconds without a heartbeat before another send may take over
HEARTBEAT_EVERY = 10.0


class EditionLocked(NewsletterError):
    """Another process is sending this edition right now."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_is_stale(row: tuple, host: str) -> bool:
    _owner, pid, lock_host, heartbeat = row
    if lock_host == host and pid and not _pid_alive(int(pid)):
        return True
    if not heartbeat:
        return True
    return now() - from_iso(heartbeat) > timedelta(seconds=LOCK_STALE_AFTER)


def acquire_lock(db: Database, edition_id: int, owner: str) -> None:
    """Take the edition's lock, or raise EditionLocked if a live send holds it."""
    host = socket.gethostname()
    with immediate(db):
        row = db.execute(
            "SELECT lock_owner, lock_pid, lock_host, lock_heartbeat FROM editions WHERE id = ?",
            [edition_id],
        ).fetchone()
        if row is None:
            raise NotFound(f"no edition {edition_id}")
        if row[0] and row[0] != owner and not _lock_is_stale(row, host):
            raise EditionLocked(
                f"edition {edition_id} is already being sent (pid {row[1]} on {row[2]},"
                f" last seen {row[3]}); wait for it to finish or stop it first"
            )
        db.execute(
            "UPDATE editions SET lock_owner = ?, lock_pid = ?, lock_host = ?, lock_heartbeat = ?"
            " WHERE id = ?",
            [owner, os.getpid(), host, now_iso(), edition_id],
        )


def heartbeat(db: Database, edition_id: int, owner: str) -> bool:
    """Refresh the lock; False when another send took it over (this one was frozen)."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE editions SET lock_heartbeat = ? WHERE id = ? AND lock_owner = ?",
            [now_iso(), edition_id, owner],
        )
    return cursor.rowcount == 1


def release_lock(db: Database, edition_id: int, owner: str) -> None:
    with db.atomic():
        db.execute(
            "UPDATE editions SET lock_owner = NULL, lock_pid = NULL, lock_host = NULL,"
            " lock_heartbeat = NULL WHERE id = ? AND lock_owner = ?",
            [edition_id, owner],
        )


class Heartbeat:
    """A running send's side of the lock: beats at most every ``HEARTBEAT_EVERY`` seconds."""

    def __init__(self, db: Database, edition_id: int, owner: str) -> None:
        self.db = db
        self.edition_id = edition_id
        self.owner = owner
        self.last = time.monotonic()

    def beat(self) -> bool:
        """Refresh the lock when due; False when another send has taken it over."""
        if time.monotonic() - self.last < HEARTBEAT_EVERY:
            return True
        try:
            held = heartbeat(self.db, self.edition_id, self.owner)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return True  # another writer is busy: the lock stays fresh for a while yet
        self.last = time.monotonic()
        return held
