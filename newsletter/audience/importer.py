"""Importing subscribers from the spreadsheets staff actually have.

Real files are messy: Mailchimp exports, Finnish Excel files saved as Windows-1252 with
semicolons, UTF-8 with or without a BOM, header names in three languages. The header is
checked first; then the rows stream through validation and are written in chunks with bulk
statements, all in ONE transaction (a failure anywhere, even on the last line, leaves the
database as it was; ``dry_run`` does the same work and rolls it back). Memory stays flat
however long the file. It never resubscribes anyone who unsubscribed from a topic or whose
address was erased.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from sqlite_utils import Database

from newsletter.audience.subscribers import (
    SUBSCRIPTION_ACTIONS,
    clean_name,
    email_key,
    next_id,
    normalize_email,
    sql_marks,
)
from newsletter.clock import now_iso
from newsletter.errors import InvalidEmail, NewsletterError
from newsletter.store.db import immediate, meta_key

# Header names are compared after casefolding and collapsing spaces, "_" and "-" to one space.
EMAIL_HEADERS = {
    "email", "e mail", "email address", "e mail address", "mail",
    "sähköposti", "sähköpostiosoite", "sahkoposti", "e post", "e postadress",
}  # fmt: skip
NAME_HEADERS = {"name", "full name", "nimi", "koko nimi", "namn", "fullständigt namn"}
FIRST_NAME_HEADERS = {"first name", "firstname", "fname", "etunimi", "förnamn"}
LAST_NAME_HEADERS = {"last name", "lastname", "lname", "sukunimi", "efternamn"}
LANG_HEADERS = {"lang", "language", "kieli", "språk", "sprak"}
LANG_VALUES = {
    "fi": "fi", "fin": "fi", "finnish": "fi", "suomi": "fi", "finska": "fi",
    "sv": "sv", "swe": "sv", "swedish": "sv", "svenska": "sv", "ruotsi": "sv",
    "en": "en", "eng": "en", "english": "en", "englanti": "en", "engelska": "en",
}  # fmt: skip
# Columns only found in Mailchimp's exports of unsubscribed and cleaned (bounced) members.
LEFT_HEADERS = {"unsub time", "unsub campaign title", "unsub reason", "clean time",
                "clean campaign title"}  # fmt: skip
DELIMITERS = (",", ";", "\t")
CHUNK = 1000  # records per bulk statement round: bounds memory, keeps IN (...) lists short


@dataclass(frozen=True, slots=True)
class Invalid:
    line: int
    email: str
    error: str


@dataclass(frozen=True, slots=True)
class Record:
    line: int
    key: str  # case-insensitive identity (subscribers.email_key)
    email: str  # normalised
    name: str | None  # None: not given, keep what is stored
    lang: str | None
    # A later duplicate row's name, for a person this import adds without one. Never used
    # on a known person, so the outcome does not depend on where chunks happen to end.
    later_name: str | None = None


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    suppressed: int = 0
    invalid: list[Invalid] = field(default_factory=list)
    # People of this import with an unconfirmed subscription to an imported topic: the
    # ones a confirmation request goes to. Meaningless after a dry run (rolled back).
    pending_ids: list[int] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "invalid": [
                {"line": item.line, "email": item.email, "error": item.error}
                for item in self.invalid
            ],
        }


class _DryRun(Exception):
    """Raised inside the transaction to roll back a dry run."""


# -- reading ---------------------------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or else Windows-1252 (Finnish Excel).

    A file that is neither is refused up front: Windows-1252 leaves five byte values
    undefined, and meeting one in the middle of the import would be a crash, not a report.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if _first_bad_byte(handle, "utf-8") is None:
            return "utf-8"
        bad = _first_bad_byte(handle, "cp1252")
        if bad is None:
            return "cp1252"
        handle.seek(bad)
        byte = handle.read(1)[0]
    raise NewsletterError(
        f"{path.name}: byte {byte:#04x} at offset {bad} is neither UTF-8 nor Windows-1252:"
        " save the file as CSV UTF-8"
    )


def _first_bad_byte(handle: BinaryIO, encoding: str) -> int | None:
    """The offset of the first byte ``encoding`` cannot decode, or None; read in chunks."""
    handle.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    while chunk := handle.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            return offset + exc.start
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset - 1  # a multi-byte sequence cut off by the end of the file
    return None


def _header_key(text: str) -> str:
    return " ".join(re.sub(r"[_\-]", " ", text.replace("\ufeff", "")).casefold().split())


def _delimiter(first_line: str) -> str:
    """The delimiter the header line uses most (outside quotes); comma for one column."""
    outside = re.sub(r'"[^"]*"', "", first_line)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass(frozen=True)
class _Columns:
    email: int
    name: int | None = None
    first: int | None = None
    last: int | None = None
    lang: int | None = None
    has_header: bool = True


def _columns(header: list[str]) -> _Columns:
    keys = [_header_key(cell) for cell in header]

    def find(names: set[str]) -> int | None:
        return next((i for i, key in enumerate(keys) if key in names), None)

    email = find(EMAIL_HEADERS)
    if email is None:
        # A bare list of addresses without a header row.
        at = next((i for i, cell in enumerate(header) if "@" in cell), None)
        if at is not None:
            return _Columns(email=at, has_header=False)
        raise NewsletterError(
            "no e-mail column: the header must name one of email, e-mail, Email Address,"
            f" sähköposti, e-post (found: {', '.join(h.strip() for h in header) or 'nothing'})"
        )
    left = find(LEFT_HEADERS)
    if left is not None:
        raise NewsletterError(
            f"the file has a {header[left].strip()!r} column: it looks like a list of people"
            " who unsubscribed or bounced (Mailchimp exports those separately); importing it"
            " would subscribe them, so it is refused"
        )
    return _Columns(
        email=email,
        name=find(NAME_HEADERS),
        first=find(FIRST_NAME_HEADERS),
        last=find(LAST_NAME_HEADERS),
        lang=find(LANG_HEADERS),
    )


def parse_lang(raw: str) -> str | None:
    """``fi``/``sv``/``en`` from codes or names (``FI``, ``sv-FI``, ``suomi``); None if empty."""
    text = raw.strip().casefold()
    if not text:
        return None
    found = LANG_VALUES.get(text) or LANG_VALUES.get(re.split(r"[-_]", text)[0])
    if found is None:
        raise InvalidEmail(f"unknown language {raw.strip()!r}: use fi, sv or en")
    return found


class AddressChecker:
    """``subscribers.normalize_email`` for a whole file, checking each domain only once.

    Validation is most of an import's time, and most of that is email-validator's
    character-by-character IDNA check of the domain - yet a list of 100,000 people has only
    a few thousand domains. So a plain ASCII address is checked in two email-validator
    calls whose results are combined: the local part against a 4-character probe domain,
    and (once per distinct domain, cached) the domain behind a 1-character local part.
    Anything unusual (non-ASCII, quoted, a domain literal, near the length limit) takes
    the full path. The outcome, errors included, is exactly normalize_email's: a test
    compares the two on valid and invalid addresses.
    """

    PROBE_DOMAIN = "a.fi"
    _UNUSUAL = re.compile(r'["\[\]\\\s\x00-\x1f\x7f]')
    # RFC 5322 dot-atom: atext runs joined by single dots, no dot first or last.
    _ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
    _DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")

    def __init__(self) -> None:
        self._domains: dict[str, str | InvalidEmail] = {}

    def __call__(self, raw: str) -> str:
        text = raw.strip()
        local, at, domain = text.rpartition("@")
        if (
            not (at and local and domain)
            or "@" in local
            or len(text) > 200
            or not text.isascii()
            or any(ch in raw for ch in "\r\n\0")
            or self._UNUSUAL.search(text)
        ):
            return normalize_email(raw)
        # The local part first: email-validator reports its errors before the domain's.
        # A plain dot-atom (nearly every real address) is valid as it is; anything else
        # gets email-validator's verdict and its error message.
        if len(local) <= 64 and self._DOT_ATOM.match(local):
            checked_local = local
        else:
            checked_local = normalize_email(f"{local}@{self.PROBE_DOMAIN}").rpartition("@")[0]
        checked_domain = self._domains.get(domain)
        if checked_domain is None:
            try:
                checked_domain = normalize_email(f"x@{domain}").rpartition("@")[2]
            except InvalidEmail as exc:
                checked_domain = exc
            self._domains[domain] = checked_domain
        if isinstance(checked_domain, InvalidEmail):
            raise InvalidEmail(str(checked_domain))
        return f"{checked_local}@{checked_domain}"


def _cell(row: list[str], index: int | None) -> str:
    text = row[index] if index is not None and index < len(row) else ""
    # Undo the apostrophe our CSV export puts before a formula-like cell.
    if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):
        return text[1:]
    return text


def _name(row: list[str], cols: _Columns) -> str | None:
    if cols.name is not None:
        text = _cell(row, cols.name)
    else:
        text = f"{_cell(row, cols.first)} {_cell(row, cols.last)}"
    return clean_name(text) or None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) for every record, header included."""
    encoding = detect_encoding(path)
    previous = 0
    with path.open(encoding=encoding, newline="") as handle:
        try:
            first_line = handle.readline()
            # Excel may start a file with "sep=;" to name its delimiter: honour it, skip it.
            hint = first_line.rstrip("\r\n")
            skipped = int(hint[:4].lower() == "sep=" and len(hint) == 5)
            if skipped:
                delimiter = hint[4]
            else:
                delimiter = _delimiter(first_line)
                handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            previous = skipped
            for row in reader:
                yield previous + 1, row
                previous = skipped + reader.line_num
        except (csv.Error, UnicodeDecodeError) as exc:
            # UTF-16 is only checked as it is read; the line is where decoding stopped.
            raise NewsletterError(f"{path.name}: line {previous + 1}: {exc}") from None


def open_file(path: Path) -> tuple[_Columns, Iterator[tuple[int, list[str]]]]:
    """The file's columns and its data rows; header problems are raised here, up front."""
    if not path.is_file():
        raise NewsletterError(f"{path}: no such file")
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        raise NewsletterError(f"{path.name}: the file is empty")
    cols = _columns(first[1])
    return cols, (rows if cols.has_header else _prepend(first, rows))


def _prepend(first: tuple[int, list[str]], rest: Iterator) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def read_records(
    cols: _Columns, rows: Iterator[tuple[int, list[str]]], invalid: list[Invalid]
) -> Iterator[Record]:
    """The valid rows as records, in file order, duplicates included; the invalid ones are
    appended to ``invalid``. Blank lines (and Excel's rows of empty cells) are skipped."""
    check = AddressChecker()
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        raw = _cell(row, cols.email)
        try:
            email = check(raw)  # refuses non-ASCII local parts (no SMTPUTF8 when sending)
            lang = parse_lang(_cell(row, cols.lang))
        except InvalidEmail as exc:
            invalid.append(Invalid(line, raw.strip(), str(exc)))
            continue
        yield Record(line, email_key(email), email, _name(row, cols), lang)


# -- writing ---------------------------------------------------------------------------


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class _Writes:
    people: list[tuple] = field(default_factory=list)
    person_updates: list[tuple] = field(default_factory=list)
    new_subs: list[tuple] = field(default_factory=list)
    sub_updates: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    names: list[tuple] = field(default_factory=list)  # a later duplicate fills a missing name

    def flush(self, db: Database) -> None:
        conn = db.conn
        conn.executemany(
            "INSERT INTO subscribers (id, email, email_key, name, lang, status, created, updated)"
            " VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
            self.people,
        )
        conn.executemany(
            "UPDATE subscribers SET name = ?, lang = ?, updated = ? WHERE id = ?",
            self.person_updates,
        )
        conn.executemany(
            "INSERT INTO subscriptions (subscriber_id, topic_id, status, created, updated)"
            " VALUES (?, ?, ?, ?, ?)",
            self.new_subs,
        )
        conn.executemany(
            "UPDATE subscriptions SET status = ?, updated = ?"
            " WHERE subscriber_id = ? AND topic_id = ?",
            self.sub_updates,
        )
        conn.executemany(
            "INSERT INTO events (subscriber_id, time, action, topic_id, source, detail)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            self.events,
        )
        conn.executemany(
            "UPDATE subscribers SET name = ?, updated = ? WHERE id = ? AND name = ''",
            self.names,
        )


def _hash(keyed: hmac.HMAC, text: str) -> str:
    """``db.keyed_hash`` without re-keying HMAC for each of 100,000 addresses."""
    mac = keyed.copy()
    mac.update(text.encode())
    return mac.hexdigest()


@dataclass
class _Batch:
    """What the database holds about one chunk of the file's addresses."""

    existing: dict[str, tuple[int, str, str]]  # key -> (id, name, lang)
    suppressed: set[str]
    subscriptions: dict[tuple[int, int], str]  # (subscriber id, topic id) -> status


def _lookup(db: Database, keys: Sequence[str], topic_ids: Sequence[int], hkey: hmac.HMAC) -> _Batch:
    existing = {
        key: (sid, name, lang)
        for sid, key, name, lang in db.execute(
            "SELECT id, email_key, name, lang FROM subscribers"
            f" WHERE email_key IN ({sql_marks(keys)})",
            list(keys),
        )
    }
    hashes = {_hash(hkey, key): key for key in keys}
    suppressed = {
        hashes[row[0]]
        for row in db.execute(
            f"SELECT hash FROM suppressions WHERE hash IN ({sql_marks(hashes)})", list(hashes)
        )
    }
    subscriptions: dict[tuple[int, int], str] = {}
    ids = [value[0] for value in existing.values()]
    if ids and topic_ids:
        for sid, tid, status in db.execute(
            "SELECT subscriber_id, topic_id, status FROM subscriptions"
            f" WHERE subscriber_id IN ({sql_marks(ids)}) AND topic_id IN ({sql_marks(topic_ids)})",
            [*ids, *topic_ids],
        ):
            subscriptions[(sid, tid)] = status
    return _Batch(existing, suppressed, subscriptions)


@dataclass
class _Plan:
    """The fixed parameters of one import run."""

    topic_ids: Sequence[int]
    status: str  # "unconfirmed" or "confirmed"
    source: str
    default_lang: str
    stamp: str

    @property
    def action(self) -> str:
        return SUBSCRIPTION_ACTIONS[self.status]


def _add_person(plan: _Plan, writes: _Writes, sid: int, rec: Record) -> None:
    stamp, source = plan.stamp, plan.source
    name, lang = rec.name or rec.later_name or "", rec.lang or plan.default_lang
    writes.people.append((sid, rec.email, rec.key, name, lang, stamp, stamp))
    writes.events.append((sid, stamp, "create", None, source, None))
    for tid in plan.topic_ids:
        writes.new_subs.append((sid, tid, plan.status, stamp, stamp))
        writes.events.append((sid, stamp, plan.action, tid, source, None))


def _update_person(
    plan: _Plan, writes: _Writes, batch: _Batch, rec: Record
) -> tuple[bool, bool, bool]:
    """Merge a row into a known person: (changed, refused a topic, has pending topic)."""
    sid, old_name, old_lang = batch.existing[rec.key]
    stamp, source = plan.stamp, plan.source
    changes = {}
    if rec.name and rec.name != old_name:
        changes["name"] = rec.name
    if rec.lang and rec.lang != old_lang:
        changes["lang"] = rec.lang
    if changes:
        writes.person_updates.append(
            (changes.get("name", old_name), changes.get("lang", old_lang), stamp, sid)
        )
        detail = json.dumps(changes, ensure_ascii=False)
        writes.events.append((sid, stamp, "update", None, source, detail))
    changed, refused, pending = bool(changes), False, False
    for tid in plan.topic_ids:
        current = batch.subscriptions.get((sid, tid))
        if current == "unsubscribed":
            refused = True  # they left: an import never brings them back
            continue
        if current is None:
            writes.new_subs.append((sid, tid, plan.status, stamp, stamp))
        elif current == "unconfirmed" and plan.status == "confirmed":
            writes.sub_updates.append((plan.status, stamp, sid, tid))
        else:
            # Already confirmed (an import never demotes), or unconfirmed either way.
            pending |= current == "unconfirmed"
            continue
        writes.events.append((sid, stamp, plan.action, tid, source, None))
        changed = True
        pending |= plan.status == "unconfirmed"
    return changed, refused, pending


def _merge(chunk: Sequence[Record], report: ImportReport) -> dict[str, Record]:
    """One record per address of a chunk: the first row wins, a later one may add a name
    (for a new person only: see ``Record.later_name``)."""
    merged: dict[str, Record] = {}
    for rec in chunk:
        earlier = merged.get(rec.key)
        if earlier is None:
            merged[rec.key] = rec
            continue
        report.duplicates += 1
        if earlier.name is None and earlier.later_name is None and rec.name:
            merged[rec.key] = replace(earlier, later_name=rec.name)
    return merged


@dataclass
class _Seen:
    """What this import has done so far: enough to tell a later duplicate row."""

    first_new_id: int  # people added by this import have ids from here on
    next_id: int
    updated_ids: set[int] = field(default_factory=set)  # known people already merged
    suppressed: set[str] = field(default_factory=set)  # keys


def _apply_one(
    plan: _Plan, writes: _Writes, batch: _Batch, seen: _Seen, rec: Record, report: ImportReport
) -> None:
    if rec.key in seen.suppressed:
        report.duplicates += 1
        return
    if rec.key in batch.suppressed:
        report.suppressed += 1
        seen.suppressed.add(rec.key)
        return
    known = batch.existing.get(rec.key)
    if known is None:
        # Ids are handed out here: safe because the write lock is held throughout.
        _add_person(plan, writes, seen.next_id, rec)
        if plan.topic_ids and plan.status == "unconfirmed":
            report.pending_ids.append(seen.next_id)
        seen.next_id += 1
        report.added += 1
        return
    sid, name, _lang = known
    if sid >= seen.first_new_id or sid in seen.updated_ids:
        # A duplicate of an earlier row of this file (in an earlier chunk).
        report.duplicates += 1
        later_name = rec.name or rec.later_name
        if sid >= seen.first_new_id and later_name and not name:
            writes.names.append((later_name, plan.stamp, sid))
        return
    seen.updated_ids.add(sid)
    changed, refused, pending = _update_person(plan, writes, batch, rec)
    if pending:
        report.pending_ids.append(sid)
    if refused:
        report.suppressed += 1
    elif changed:
        report.updated += 1
    else:
        report.unchanged += 1


def _apply(db: Database, records: Iterator[Record], plan: _Plan, report: ImportReport) -> None:
    """Write the records chunk by chunk: memory stays flat however long the file is."""
    hkey = hmac.new(meta_key(db, "suppression_key"), digestmod=hashlib.sha256)
    first = next_id(db)
    seen = _Seen(first_new_id=first, next_id=first)
    for chunk in _chunks(records, CHUNK):
        merged = _merge(chunk, report)
        batch = _lookup(db, list(merged), plan.topic_ids, hkey)
        writes = _Writes()
        for rec in merged.values():
            _apply_one(plan, writes, batch, seen, rec, report)
        writes.flush(db)


def import_file(
    db: Database,
    path: Path | str,
    *,
    topic_ids: Sequence[int] = (),
    confirmed: bool = False,
    dry_run: bool = False,
    default_lang: str = "fi",
) -> ImportReport:
    """Import a subscriber file in one transaction; with ``dry_run`` nothing is written.

    Every row counts once: added, updated, unchanged, suppressed (address erased, or an
    imported topic they unsubscribed from - that topic is not touched, even if the row
    changed something else), a duplicate of an earlier row (case-insensitively; the first
    row wins, a later one can only add the missing name of someone this file adds), or
    invalid.
    Events carry the source ``import:<file name>``.
    """
    path = Path(path)
    cols, rows = open_file(path)
    report = ImportReport()
    records = read_records(cols, rows, report.invalid)
    plan = _Plan(
        topic_ids=list(dict.fromkeys(topic_ids)),
        status="confirmed" if confirmed else "unconfirmed",
        source=f"import:{path.name}",
        default_lang=default_lang,
        stamp=now_iso(),
    )
    try:
        with immediate(db):
            _apply(db, records, plan, report)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except sqlite3.Error as exc:
        raise NewsletterError(f"import of {path.name} failed, nothing was changed: {exc}") from None
    finally:
        records.close()
    return report
