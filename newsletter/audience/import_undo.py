"""The undo journal that keeps a chunked import all-or-nothing.

An import is applied in many short transactions (so an opt-out never waits behind it);
each one also writes, in the same transaction, what it changed and the value it replaced.
If the import fails, is interrupted, or its process dies (the next import, send, digest,
build or serve notices), the journal is played backwards; until then the recipient query
skips what a running import journalled. Each step only puts back a value that is still the one the
import wrote: whatever someone else changed meanwhile (an unsubscribe, a block) is kept.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence

from sqlite_utils import Database

from newsletter.clock import now_iso
from newsletter.store.db import immediate

STEP = 2000  # journal rows (or event ids) per undo transaction: short, like the import's


def start_run(db: Database, source: str, stamp: str) -> int:
    with immediate(db):
        first_event = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        cursor = db.execute(
            "INSERT INTO import_runs (source, stamp, first_event_id, pid, host, status, started)"
            " VALUES (?, ?, ?, ?, ?, 'running', ?)",
            [source, stamp, first_event, os.getpid(), socket.gethostname(), now_iso()],
        )
    return int(cursor.lastrowid)


def journal(db: Database, rows: Sequence[tuple]) -> None:
    """(import id, kind, subscriber id, topic id, old, new) rows, in the caller's transaction."""
    db.conn.executemany(
        "INSERT INTO import_undo (import_id, kind, subscriber_id, topic_id, old, new)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


def finish_run(db: Database, import_id: int) -> None:
    """The import is complete: mark it done and empty its journal, a step at a time."""
    with immediate(db):
        db.execute(
            "UPDATE import_runs SET status = 'done', finished = ? WHERE id = ?",
            [now_iso(), import_id],
        )
    _clear_journal(db, import_id)


def _clear_journal(db: Database, import_id: int) -> None:
    while True:
        with immediate(db):
            cursor = db.execute(
                "DELETE FROM import_undo WHERE id IN"
                " (SELECT id FROM import_undo WHERE import_id = ? ORDER BY id LIMIT ?)",
                [import_id, STEP],
            )
        if cursor.rowcount < STEP:
            return


def _undo_row(db: Database, kind: str, sid: int | None, tid: int | None, old, new) -> None:
    if kind == "people":
        # People this import added (ids old..new), unless someone else acted on them since.
        first, last = int(old), int(new)
        db.execute(
            "DELETE FROM subscribers WHERE id BETWEEN ? AND ? AND NOT EXISTS"
            " (SELECT 1 FROM events e JOIN import_runs r ON r.id = ?"
            "  WHERE e.subscriber_id = subscribers.id"
            "  AND NOT (e.source = r.source AND e.time = r.stamp))",
            [first, last, tid],
        )
    elif kind == "details":
        values = json.loads(old)
        db.execute(
            "UPDATE subscribers SET name = ?, lang = ?, attributes = ? WHERE id = ?",
            [values["name"], values["lang"], values["attributes"], sid],
        )
    elif kind == "sub_new":
        db.execute(
            "DELETE FROM subscriptions WHERE subscriber_id = ? AND topic_id = ? AND status = ?",
            [sid, tid, new],
        )
    elif kind == "sub_status":
        db.execute(
            "UPDATE subscriptions SET status = ? WHERE subscriber_id = ? AND topic_id = ?"
            " AND status = ?",
            [old, sid, tid, new],
        )
    elif kind == "stamp":  # the time the import wrote, unless someone changed it since
        db.execute(
            "UPDATE subscribers SET updated = ? WHERE id = ? AND updated = ?", [old, sid, new]
        )
    elif kind == "status":
        db.execute("UPDATE subscribers SET status = ? WHERE id = ? AND status = ?", [old, sid, new])
    elif kind == "suppression":
        db.execute("DELETE FROM suppressions WHERE hash = ? AND reason = ?", [old, new])
    elif kind == "topic":
        db.execute(
            "DELETE FROM topics WHERE id = ?"
            " AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE topic_id = topics.id)"
            " AND NOT EXISTS (SELECT 1 FROM article_topics WHERE topic_id = topics.id)"
            " AND NOT EXISTS (SELECT 1 FROM edition_topics WHERE topic_id = topics.id)",
            [tid],
        )


def undo_run(db: Database, import_id: int) -> None:
    """Put back what the import changed, newest first, in short transactions."""
    while True:
        with immediate(db):
            rows = db.execute(
                "SELECT id, kind, subscriber_id, topic_id, old, new FROM import_undo"
                " WHERE import_id = ? ORDER BY id DESC LIMIT ?",
                [import_id, STEP],
            ).fetchall()
            for _, kind, sid, tid, old, new in rows:
                _undo_row(db, kind, sid, import_id if kind == "people" else tid, old, new)
            if rows:
                db.execute(
                    f"DELETE FROM import_undo WHERE id IN ({', '.join('?' for _ in rows)})",
                    [row[0] for row in rows],
                )
        if len(rows) < STEP:
            break
    _delete_events(db, import_id)
    with immediate(db):
        db.execute(
            "UPDATE import_runs SET status = 'undone', finished = ? WHERE id = ?",
            [now_iso(), import_id],
        )


def _delete_events(db: Database, import_id: int) -> None:
    """The consent-trail events of an undone import: nothing it recorded happened."""
    source, stamp, low = db.execute(
        "SELECT source, stamp, first_event_id FROM import_runs WHERE id = ?", [import_id]
    ).fetchone()
    high = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    while low < high:
        with immediate(db):
            db.execute(
                "DELETE FROM events WHERE id > ? AND id <= ? AND source = ? AND time = ?",
                [low, low + STEP, source, stamp],
            )
        low += STEP


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def recover(db: Database) -> list[str]:
    """Undo the imports whose process died on this host; their sources, for a warning."""
    host = socket.gethostname()
    stale = [
        (run_id, source)
        for run_id, source, pid, run_host in db.execute(
            "SELECT id, source, pid, host FROM import_runs WHERE status = 'running'"
        ).fetchall()
        if run_host == host and pid != os.getpid() and not _alive(pid)
    ]
    for run_id, _source in stale:
        undo_run(db, run_id)
    return [source for _, source in stale]
