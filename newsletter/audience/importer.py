"""Importing subscribers from spreadsheets and other tools' exports.

An import never blocks an opt-out and is still all-or-nothing for the staff member:

1. The whole file is read, checked and staged into a temporary table of this connection,
   without any lock on the database: a broken line anywhere stops the import before
   anything is written. Duplicates are found there, with their line numbers.
2. The staged people are applied in short transactions of ``CHUNK`` people. Between them
   one-click unsubscribes, the preferences page, sign-ups, sends and erasures get the write
   lock; each chunk reads what it merges inside its own transaction, so an opt-out recorded
   a moment ago is honoured.
3. Each chunk journals what it changed (``import_undo``) in the same transaction. A failure
   or an interrupt plays the journal backwards; an import whose process died is undone by
   the next one (``import_undo.recover``). ``dry_run`` rolls every chunk back.

It never re-subscribes anyone who unsubscribed from a topic, was erased or blocked (the
suppression list), bounced or is blocklisted, and people another tool says had left arrive
unsubscribed or suppressed, never as recipients.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlite_utils import Database

from newsletter.audience import import_undo, suppression_file
from newsletter.audience.import_apply import REASONS, Batch, Plan, Writes, apply_record
from newsletter.audience.import_columns import (
    Columns,
    Invalid,
    Record,
    columns,
    parse_lang,
    read_records,
)
from newsletter.audience.import_read import AddressChecker, detect_encoding, read_rows
from newsletter.audience.subscribers import clean_name, next_id, sql_marks
from newsletter.clock import now_iso
from newsletter.content import topics
from newsletter.errors import NewsletterError
from newsletter.store.db import immediate, meta_key

__all__ = ["REASONS", "AddressChecker", "ImportReport", "clean_name", "detect_encoding",
           "import_file", "parse_lang"]  # fmt: skip

CHUNK = 500  # people per write transaction: each one holds the write lock for milliseconds
STAGE_CHUNK = 5000
# After each chunk the importer leaves the write lock free for about half as long as it
# held it (at least MIN_YIELD), with jitter: a web request waiting for the lock polls
# every 1-100 ms (SQLite's busy handler), so it finds the lock free within a few polls
# instead of racing the import (and never stays in step with it).
YIELD_SHARE = 0.5
MIN_YIELD = 0.005
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    suppressed: int = 0
    invalid: list[Invalid] = field(default_factory=list)
    warnings: list[Invalid] = field(default_factory=list)
    duplicate_lines: list[tuple[int, int, str]] = field(default_factory=list)  # line, first
    # Why the suppressed were not subscribed: see import_apply.REASONS.
    left: Counter = field(default_factory=Counter)
    no_consent: int = 0  # kept unconfirmed although --confirmed: the file records no consent
    columns: dict[str, str] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    confirmed: bool = False
    import_id: int | None = None
    recovered: list[str] = field(default_factory=list)  # earlier imports undone first
    topics_created: list[str] = field(default_factory=list)  # from a topics column
    # People of this import with an unconfirmed subscription: the ones a confirmation
    # request goes to. Meaningless after a dry run (rolled back).
    pending_ids: list[int] = field(default_factory=list)

    @property
    def unconfirmed(self) -> int:
        return len(self.pending_ids)

    def as_json(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "suppressed_by_reason": dict(sorted(self.left.items())),
            "unconfirmed": self.unconfirmed,
            "no_consent": self.no_consent,
            "columns": self.columns,
            "attributes": self.attributes,
            "ignored": self.ignored,
            "topics_created": self.topics_created,
            "duplicate_lines": [
                {"line": line, "first_line": first, "email": email}
                for line, first, email in self.duplicate_lines
            ],
            "invalid": [_item(item) for item in self.invalid],
            "warnings": [_item(item) for item in self.warnings],
        }


def _item(item: Invalid) -> dict:
    return {"line": item.line, "email": item.email, "error": item.error}


class _DryRun(Exception):
    """Raised inside a chunk's transaction to roll a dry run back."""


def open_file(path: Path, progress: Progress | None = None) -> tuple[Columns, Iterator]:
    """The file's columns and its data rows; header problems are raised here, up front."""
    if not path.is_file():
        raise NewsletterError(f"{path}: no such file")
    total = path.stat().st_size

    def on_bytes(done: int) -> None:
        if progress is not None:
            progress("reading", done, total)

    rows = read_rows(path, on_bytes)
    first = next(rows, None)
    if first is None:
        raise NewsletterError(f"{path.name}: the file is empty")
    cols = columns(first[1])
    return cols, (rows if cols.has_header else _prepend(first, rows))


def _prepend(first: tuple[int, list[str]], rest: Iterator) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


# -- staging ---------------------------------------------------------------------------

_STAGE_COLUMNS = "line, key, email, name, lang, state, topics, left_topics, attributes"


def _stage(db: Database, records: Iterator[Record]) -> int:
    """Write every record into this connection's TEMP tables (no database lock); the
    number of distinct people."""
    conn = db.conn
    conn.execute("DROP TABLE IF EXISTS temp.import_stage")
    conn.execute("DROP TABLE IF EXISTS temp.import_first")
    conn.execute(
        "CREATE TEMP TABLE import_stage (line INTEGER PRIMARY KEY, key TEXT NOT NULL,"
        " email TEXT, name TEXT, lang TEXT, state TEXT, topics TEXT, left_topics TEXT,"
        " attributes TEXT)"
    )
    while chunk := list(islice(records, STAGE_CHUNK)):
        conn.executemany(
            f"INSERT INTO temp.import_stage ({_STAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_stage_row(r) for r in chunk],
        )
    conn.execute("CREATE INDEX temp.import_stage_key ON import_stage (key, line)")
    conn.execute(
        "CREATE TEMP TABLE import_first AS"
        " SELECT MIN(line) AS line, key FROM import_stage GROUP BY key"
    )
    conn.execute("CREATE UNIQUE INDEX temp.import_first_line ON import_first (line)")
    conn.commit()  # only the TEMP tables were written: the database itself was not locked
    return int(conn.execute("SELECT COUNT(*) FROM temp.import_first").fetchone()[0])


def _stage_row(r: Record) -> tuple:
    topics_, left = ";".join(r.topics), ";".join(r.left_topics)
    return (r.line, r.key, r.email, r.name, r.lang, r.state, topics_, left, r.attributes)


def _duplicates(db: Database) -> Iterator[tuple[int, int, str]]:
    return db.execute(
        "SELECT s.line, f.line, s.email FROM temp.import_stage s"
        " JOIN temp.import_first f ON f.key = s.key WHERE s.line <> f.line ORDER BY s.line"
    )


def _staged_chunks(db: Database, size: int) -> Iterator[list[tuple[Record, str | None]]]:
    """The first row of each person, in file order, with a later row's name (for someone
    this import adds without one)."""
    after = 0
    while True:
        rows = db.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in _STAGE_COLUMNS.split(','))},"
            " CASE WHEN s.name IS NULL THEN (SELECT x.name FROM temp.import_stage x"
            "  WHERE x.key = s.key AND x.line > s.line AND x.name IS NOT NULL"
            "  ORDER BY x.line LIMIT 1) END"
            " FROM temp.import_first f JOIN temp.import_stage s ON s.line = f.line"
            " WHERE f.line > ? ORDER BY f.line LIMIT ?",
            [after, size],
        ).fetchall()
        if not rows:
            return
        yield [
            (
                Record(line, key, email, name, lang, state, _split(tops), _split(left), attrs),
                later,
            )
            for line, key, email, name, lang, state, tops, left, attrs, later in rows
        ]
        after = rows[-1][0]


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part for part in (text or "").split(";") if part)


def _drop_stage(db: Database) -> None:
    db.conn.execute("DROP TABLE IF EXISTS temp.import_stage")
    db.conn.execute("DROP TABLE IF EXISTS temp.import_first")


# -- applying --------------------------------------------------------------------------


def _hash(keyed: hmac.HMAC, text: str) -> str:
    """``db.keyed_hash`` without re-keying HMAC for each of 100,000 addresses."""
    mac = keyed.copy()
    mac.update(text.encode())
    return mac.hexdigest()


def _lookup(db: Database, keys: Sequence[str], hkey: hmac.HMAC) -> Batch:
    rows = db.execute(
        "SELECT id, email_key, name, lang, status, attributes, unsubscribed_all, updated"
        f" FROM subscribers WHERE email_key IN ({sql_marks(keys)})",
        list(keys),
    ).fetchall()
    existing = {row[1]: (row[0], *row[2:6]) for row in rows}
    all_out = {row[0] for row in rows if row[6] is not None}
    hashes = {_hash(hkey, key): key for key in keys}
    suppressed = {
        hashes[row[0]]: row[1]
        for row in db.execute(
            f"SELECT hash, reason FROM suppressions WHERE hash IN ({sql_marks(hashes)})",
            list(hashes),
        )
    }
    subscriptions: dict[int, dict[int, str]] = {}
    ids = [value[0] for value in existing.values()]
    if ids:
        for sid, tid, status in db.execute(
            "SELECT subscriber_id, topic_id, status FROM subscriptions"
            f" WHERE subscriber_id IN ({sql_marks(ids)})",
            ids,
        ):
            subscriptions.setdefault(sid, {})[tid] = status
    stamps = {row[0]: row[7] for row in rows}
    keyed = {v: k for k, v in hashes.items()}
    return Batch(existing, suppressed, subscriptions, keyed, all_out, stamps)


def _topic_ids(db: Database, plan: Plan, chunk: list[tuple[Record, str | None]]) -> None:
    """Resolve (creating if needed) the topics the chunk's rows name; journal new ones."""
    for rec, _ in chunk:
        for text in (*rec.topics, *rec.left_topics):
            if text in plan.row_topics:
                continue
            found = topics.find(db, text)
            if found is None:
                found = topics.ensure_topic(db, text)
                plan.undo.append((plan.import_id, "topic", None, found.id, None, None))
                plan.created_topics.append(found.slug)
            plan.row_topics[text] = found.id


def _apply_chunk(
    db: Database, plan: Plan, chunk: list[tuple[Record, str | None]], hkey: hmac.HMAC,
    report: ImportReport,
) -> None:  # fmt: skip
    known_topics = dict(plan.row_topics)
    try:
        with immediate(db):
            _topic_ids(db, plan, chunk)
            batch = _lookup(db, [rec.key for rec, _ in chunk], hkey)
            writes = Writes()
            new_ids = next_id(db)  # inside the lock: a web sign-up cannot take these ids
            first_new = new_ids
            for rec, later_name in chunk:
                if apply_record(plan, writes, batch, rec, later_name, new_ids, report):
                    new_ids += 1
            if new_ids > first_new:
                plan.undo.append(
                    (plan.import_id, "people", None, None, str(first_new), str(new_ids - 1))
                )
            writes.flush(db)
            if plan.dry_run:
                raise _DryRun
            import_undo.journal(db, plan.undo)
    except _DryRun:
        plan.row_topics = known_topics  # the topics it created were rolled back too
    finally:
        plan.undo.clear()


def import_file(
    db: Database,
    path: Path | str,
    *,
    topic_ids: Sequence[int] = (),
    confirmed: bool = False,
    dry_run: bool = False,
    default_lang: str = "fi",
    suppress: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a subscriber file; all-or-nothing, never holding the write lock for long.

    Every row counts once: added, updated, unchanged, suppressed (see ``ImportReport.left``
    for why: erased or blocked, had left in the other tool, unsubscribed from an imported
    topic here, bounced, blocklisted), a duplicate of an earlier row (case-insensitively;
    the first row wins, a later one can only add the missing name of someone this file
    adds), or invalid. Events carry the source ``import:<file name>``.

    ``suppress``: the file lists people who left (another tool's unsubscribed or cleaned
    export): known people are unsubscribed from every topic (or marked bounced), unknown
    ones go on the suppression list as a keyed hash only.
    """
    path = Path(path)
    if suppress and suppression_file.is_hash_file(path):  # our own suppression export
        listed, _new = suppression_file.read_back(db, path, dry_run=dry_run)
        return ImportReport(suppressed=listed, left=Counter(suppression_list=listed))
    cols, rows = open_file(path, progress)
    report = ImportReport(confirmed=confirmed)
    report.columns = cols.used()
    report.attributes = [header for _, header in cols.extra]
    report.ignored = list(cols.ignored)
    records = read_records(cols, rows, report.invalid, report.warnings)
    try:
        total = _stage(db, records)
    except sqlite3.Error as exc:
        raise NewsletterError(f"import of {path.name} failed, nothing was changed: {exc}") from None
    finally:
        records.close()
    try:
        report.duplicate_lines = list(_duplicates(db))
        report.duplicates = len(report.duplicate_lines)
        plan = Plan(
            topic_ids=list(dict.fromkeys(topic_ids)),
            status="confirmed" if confirmed else "unconfirmed",
            source=f"import:{path.name}",
            default_lang=default_lang,
            stamp=now_iso(),
            dry_run=dry_run,
            suppress=suppress,
        )
        _run(db, path, plan, total, progress, report)
    finally:
        _drop_stage(db)
    return report


def _run(
    db: Database, path: Path, plan: Plan, total: int, progress: Progress | None,
    report: ImportReport,
) -> None:  # fmt: skip
    report.recovered = import_undo.recover(db)
    hkey = hmac.new(meta_key(db, "suppression_key"), digestmod=hashlib.sha256)
    if not plan.dry_run:
        plan.import_id = report.import_id = import_undo.start_run(db, plan.source, plan.stamp)
    done = 0
    try:
        for chunk in _staged_chunks(db, CHUNK):
            held = time.monotonic()
            _apply_chunk(db, plan, chunk, hkey, report)
            held = time.monotonic() - held
            done += len(chunk)
            if progress is not None:
                progress("writing", done, total)
            time.sleep(max(MIN_YIELD, YIELD_SHARE * held) * random.uniform(0.5, 1.5))
    except BaseException as exc:
        if plan.import_id is not None:
            import_undo.undo_run(db, plan.import_id)
        if isinstance(exc, sqlite3.Error):
            raise NewsletterError(
                f"import of {path.name} failed, nothing was changed: {exc}"
            ) from None
        raise
    report.topics_created = list(dict.fromkeys(plan.created_topics))
    if plan.import_id is not None:
        import_undo.finish_run(db, plan.import_id)
